"""One writer per run folder: a pipeline step holds its run folder while it runs, and a second process that would
write the same folder stops at once with exit 2, naming the holder (pid, step, since when).

The hold is an advisory `flock` on `.writer.lock` in the folder, so the kernel releases it when the holder dies,
however it dies: a lock left by a killed process is simply taken over. Shards of one rollout (`--shard I/N`)
share the folder (each holds its own shard file); every other step holds it alone. Ranks other than 0 of a
distributed launch write nothing of their own and hold nothing. Where the file system has no `flock` (some
network or FUSE mounts), the step runs unguarded after a warning.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError

LOCK_FILE = ".writer.lock"
HELD: dict[Path, str] = {}
"""Run folders this process holds, with the step: a step called inside another step holds nothing again."""

F = TypeVar("F", bound=Callable[..., Any])


class RunDirBusy(UserError):
    """Another live process is writing the run folder."""


def shard_lock(run_dir: Path, shard: str) -> Path:
    """The lock file of one rollout shard (`I/N`)."""
    return run_dir / f".writer-shard-{shard.replace('/', '-of-')}.lock"


def describe(path: Path) -> str | None:
    """Who holds a lock file, from what its holder wrote into it; None when it names no live process."""
    try:
        holder = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    if not holder or not alive(holder["pid"]):
        return None
    shard = f" shard {holder['shard']}" if holder.get("shard") else ""
    return f"pid {holder['pid']} on {holder['host']} runs {holder['step']}{shard} there since {holder['since']}"


def alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock(stack: ExitStack, path: Path, mode: int, run_dir: Path, holders: Callable[[], list[str]]) -> int | None:
    """Take a non-blocking flock on `path` for the life of `stack`; RunDirBusy naming `holders()` when taken, None
    when the file system cannot lock."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    stack.callback(os.close, descriptor)
    try:
        fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        named = "; ".join(holders()) or "another process (it wrote nothing yet)"
        raise RunDirBusy(
            f"{run_dir} is busy: {named}. Wait for it to finish or stop it, or use another --run-dir (run_dir in "
            "a notebook); its files are untouched"
        ) from None
    except OSError as error:
        warnings.warn(f"{run_dir}: cannot lock the run folder ({error}); nothing stops a second writer", stacklevel=4)
        return None
    stack.callback(fcntl.flock, descriptor, fcntl.LOCK_UN)
    return descriptor


def sign(descriptor: int, step: str, shard: str | None) -> None:
    """Write who holds the lock into its file, for the process that finds it taken."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "step": step, "shard": shard}
    holder["since"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(holder).encode(), 0)


def remove_if_unused(folder: Path) -> None:
    """Remove a folder made for the lock when the step wrote nothing else into it."""
    if all(path.name.startswith(".writer") for path in folder.iterdir()):
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


@contextmanager
def hold(run_dir: str | os.PathLike, step: str, shard: str | None = None) -> Iterator[None]:
    """Hold `run_dir` for `step` (a rollout `shard` shares it with the other shards) until the block ends."""
    from .hardware import is_main_process

    folder = Path(run_dir).resolve()
    if folder in HELD or not is_main_process():
        yield
        return
    main = folder / LOCK_FILE
    with ExitStack() as stack:
        if not folder.exists():  # a step that stops before writing anything leaves no folder behind
            folder.mkdir(parents=True)
            stack.callback(remove_if_unused, folder)

        def holders() -> list[str]:
            return [h for h in map(describe, [main, *sorted(folder.glob(".writer-shard-*.lock"))]) if h]

        mode = fcntl.LOCK_SH if shard else fcntl.LOCK_EX
        descriptor = lock(stack, main, mode, folder, holders)
        if descriptor is not None and shard:
            descriptor = lock(stack, shard_lock(folder, shard), fcntl.LOCK_EX, folder, holders)
        if descriptor is not None:
            sign(descriptor, step, shard)
            stack.callback(os.ftruncate, descriptor, 0)  # released: the file names nobody
        HELD[folder] = step
        stack.callback(HELD.pop, folder)
        yield


def writes_run_dir(step: str) -> Callable[[F], F]:
    """Make a pipeline step hold its `run_dir` argument (and `shard`, when given) while it runs."""

    def wrap(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            with hold(arguments["run_dir"], step, arguments.get("shard")):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap
