"""Build the wheel folder the device check carries to a bare CUDA machine (`make gpu-wheels`).

The machine has torch, transformers, peft, accelerate and sentence-transformers but no network and no trl,
bitsandbytes or datasets. This downloads the pure-Python wheels at the versions of constraints/cuda.txt (else
constraints/cpu.txt) for Python 3.12, trims the bitsandbytes wheel to the one CUDA library the target's torch
needs, and copies the bundled SmolLM2 tokenizer beside them. The folder stays under 60 MB.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["trl", "datasets", "dill", "multiprocess", "fsspec", "bitsandbytes", "transformers", "peft"]
PACKAGES += ["pydantic", "pydantic_core", "annotated-types", "typing-inspection"]  # the settings (config.py)
DEVICE_HAS = {"torch", "numpy", "tqdm", "tokenizers", "accelerate", "sentence-transformers", "pandas", "matplotlib"}
"""What the bare CUDA image already holds, of the kit's dependencies (the device tool's KINDS.md package list)."""
NOT_NEEDED = {"gguf": "only the bundled GGUF conversion imports it; the check carries the converted tokenizer"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
LIMIT_MB = 60


def pinned(name: str) -> str:
    """`name==version` from constraints/cuda.txt, else constraints/cpu.txt."""
    for file in ("cuda.txt", "cpu.txt"):
        for line in (ROOT / "constraints" / file).read_text().splitlines():
            if re.fullmatch(rf"{re.escape(name)}==\S+", line.strip(), flags=re.IGNORECASE):
                return line.strip()
    raise SystemExit(f"no pin for {name} in constraints/cuda.txt or constraints/cpu.txt")


def download(requirements: list[str], folder: Path, python: str) -> None:
    """Fetch wheels for the target interpreter, without dependencies."""
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
    subprocess.run(
        [*command, "--python-version", python, "--implementation", "cp", *platforms, *requirements], check=True
    )


def record_line(name: str, data: bytes) -> str:
    """A RECORD row (path, sha256, size) for a file inside a wheel."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def trim_bitsandbytes(wheel: Path, cuda: str) -> Path:
    """Rewrite the bitsandbytes wheel with only the CPU library and `libbitsandbytes_cuda<cuda>.so`."""
    keep = re.compile(rf"libbitsandbytes_(cpu|cuda{cuda})\.so$")
    trimmed = wheel.with_suffix(".trimmed")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as target:
        names = [n for n in source.namelist() if "libbitsandbytes_" not in n or keep.search(n)]
        if not any(keep.search(n) and "cuda" in n for n in names):
            raise SystemExit(f"{wheel.name} has no libbitsandbytes_cuda{cuda}.so")
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = []
        for name in names:
            if name == record:
                continue
            data = source.read(name)
            target.writestr(name, data)
            rows.append(record_line(name, data))
        target.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")
    trimmed.replace(wheel)
    return wheel


def copy_tokenizer(folder: Path) -> None:
    """The bundled policy's tokenizer files (no weights) into `folder/tokenizer`."""
    sys.path.insert(0, str(ROOT))
    from longmab_utils.models import bundled_policy_path

    source = bundled_policy_path()
    target = folder / "tokenizer"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix in (".json", ".jinja", ".txt") and path.name not in ("config.json", "generation_config.json"):
            shutil.copy2(path, target / path.name)


def main() -> int:
    """Build the folder and report its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".whl", help="the wheel folder (git-ignored)")
    parser.add_argument("--python", default="3.12", help="the target machine's Python version")
    parser.add_argument("--cuda", default="130", help="CUDA version of the target's torch, as bitsandbytes names it")
    args = parser.parse_args()
    folder = Path(args.out)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    download([pinned(name) for name in PACKAGES], folder, args.python)
    trim_bitsandbytes(next(folder.glob("bitsandbytes-*.whl")), args.cuda)
    copy_tokenizer(folder)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    print(f"{folder}: {len(list(folder.glob('*.whl')))} wheels and the tokenizer, {size:.1f} MB")
    if size > LIMIT_MB:
        raise SystemExit(f"{folder} is {size:.1f} MB, over the {LIMIT_MB} MB the device check may carry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
