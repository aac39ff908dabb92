"""The README stays short, and every `page.md#anchor` link in the README, the docs, METHOD.md and the notebooks
lands on a heading or an explicit anchor (GitHub's rules), the numbered deviations above all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "METHOD.md", ROOT / "data" / "README.md", *DOCS]
DEVIATIONS = ROOT / "docs" / "deviations.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.M | re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXPLICIT = re.compile(r"<a\s+(?:id|name)=[\"']([^\"']+)[\"']", re.I)


def markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    return path.read_text()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens and spaces dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    found, seen = set(EXPLICIT.findall(text)), {}
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def anchor_links(path: Path) -> list[tuple[Path, str]]:
    """(target page, fragment) of every link with a fragment to a Markdown page, or to the page itself."""
    links = []
    for target in LINK.findall(FENCE.sub("", markdown(path))):
        if target.startswith(("http://", "https://", "mailto:")) or "#" not in target:
            continue
        page, fragment = target.split("#", 1)
        if page == "" and path.suffix == ".md":
            links.append((path, fragment))
        elif page.endswith(".md"):
            links.append(((path.parent / page).resolve(), fragment))
    return links


def test_slug_follows_github():
    assert slug("Ablations: does the bandit help? (notebook 07)") == "ablations-does-the-bandit-help-notebook-07"
    assert slug("Every profile on a CPU: `--stand-ins`") == "every-profile-on-a-cpu---stand-ins"
    assert slug("11. Every draw has its own seed") == "11-every-draw-has-its-own-seed"


def test_the_readme_is_at_most_15000_bytes():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 15000, f"README.md has {size} bytes: move detail into docs/ and link it"


def test_every_deviation_has_a_numbered_heading_and_a_stable_anchor():
    text = DEVIATIONS.read_text()
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 17
    ids = [int(n) for n in re.findall(r'<a id="d(\d+)-[a-z0-9-]+"></a>', text)]
    assert ids == numbers


@pytest.mark.parametrize("path", [ROOT / "METHOD.md", *NOTEBOOKS], ids=lambda p: p.name)
def test_every_deviation_a_notebook_or_method_cites_exists(path):
    available = anchors(DEVIATIONS)
    for page, fragment in anchor_links(path):
        if page == DEVIATIONS.resolve():
            assert fragment in available, f"{path.name} cites deviations.md#{fragment}, which docs/deviations.md lacks"


@pytest.mark.parametrize("path", [*PAGES, *NOTEBOOKS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_anchor_link_lands_on_a_heading_or_anchor(path):
    for page, fragment in anchor_links(path):
        assert page.exists(), f"{path.name}: broken link to {page}"
        assert fragment in anchors(page), f"{path.name}: {page.name} has no anchor #{fragment}"


def code_cells(path: Path) -> list[str]:
    """A notebook's code, cell by cell, without the parameters papermill injects into an executed copy."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    return [c.source for c in cells if "injected-parameters" not in c.metadata.get("tags", [])]


def test_the_executed_course_is_the_current_notebooks_code_with_outputs():
    from longmab_utils.course.reproduce import ABLATIONS, COURSE, EXECUTED_DOCS

    for name in COURSE + ABLATIONS:
        executed = EXECUTED_DOCS / f"{name}.ipynb"
        assert code_cells(executed) == code_cells(ROOT / "notebooks" / f"{name}.ipynb"), (
            f"{executed.relative_to(ROOT)} is stale: make reproduce ARGS=--ablations && make executed RUN=runs/<run>"
        )
        outputs = [o for c in nbformat.read(executed, as_version=4).cells for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{name}: no figure"
    assert sum(p.stat().st_size for p in EXECUTED_DOCS.iterdir()) < 8_000_000  # a few MB in the repository


def test_only_a_complete_cpu_tiny_run_of_01_to_07_is_published(tmp_path):
    from longmab_utils.course.reproduce import COURSE, publish
    from longmab_utils.errors import UserError

    run = tmp_path / "run"
    run.mkdir()
    manifest = {"status": "complete", "profile": "cpu-tiny", "notebook_seconds": dict.fromkeys(COURSE, 1.0)}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not a complete cpu-tiny run of 01-07"):
        publish(run, tmp_path / "out")  # 07 is missing
    assert not (tmp_path / "out").exists()


def test_published_course_states_its_notebook_times(tmp_path):
    from longmab_utils.course.reproduce import ABLATIONS, COURSE, EXECUTED, publish

    run = tmp_path / "run"
    (run / EXECUTED).mkdir(parents=True)
    names = list(COURSE + ABLATIONS)
    for name in names:
        (run / EXECUTED / f"{name}.ipynb").write_text("{}")
    manifest = {
        "status": "complete",
        "profile": "cpu-tiny",
        "notebook_seconds": {name: 60.0 * (i + 1) for i, name in enumerate(names)},
        "parameters": {"seed": 42},
        "git_commit": "abc",
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    copied = publish(run, tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert [p.name for p in copied] == [f"{name}.ipynb" for name in names]
    assert len(COURSE) == 6 and "01-06 21.0 min, 01-07 28.0 min" in readme  # 1 + ... + 6 and 1 + ... + 7 minutes
    assert "| [03_rollout](03_rollout.ipynb) | 180 |" in readme
