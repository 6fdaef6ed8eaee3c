"""Writes that never leave half a file or folder under its final name: write beside it, then rename.

Every writer of the package (shards, manifests, checkpoints, exported models, .ply files, videos, inference
outputs) goes through these two, so a killed process or a failing writer leaves the previous version intact.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it replaces `path` when the block ends and is removed if it raises.

    The temporary name is hidden (a leading dot), carries the process id (concurrent writers do not collide) and
    keeps the suffix, for writers that pick a format by it (imageio, PIL).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a new temporary folder beside `out` to fill; it replaces `out` (see `replace_folder`) when the block
    ends and is removed if it raises, so `out` is either the old folder or the complete new one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a folder; it is left as it is")
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; the final folder gets what the user's umask allows
    try:
        yield tmp
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(out: Path) -> None:
    """Tidy what killed writers of `out` left (SIGKILL runs no cleanup): their temporary folders are removed, and
    an older folder set aside by `replace_folder` is put back if `out` itself is missing, else removed. Only folders
    whose process id is no longer running are touched, so a concurrent writer keeps its own."""
    name = glob.escape(out.name)
    for stale in sorted(out.parent.glob(f".{name}.tmp-*")) + sorted(out.parent.glob(f".{name}.old-*")):
        pid = stale.name[len(out.name) + 6:].split("-")[0]  # ".NAME.tmp-PID-xyz" / ".NAME.old-PID"
        if not stale.is_dir() or not pid.isdigit() or _running(int(pid)):
            continue
        if ".old-" in stale.name and not out.exists():
            stale.rename(out)
        else:
            shutil.rmtree(stale, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether a process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished folder `tmp` to `out`. An older `out` is set aside first and removed only once the new one
    is in place; if the move fails, the older one is put back."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}") if out.exists() else None
    with signals_deferred():  # Ctrl-C or SIGTERM between the two renames would leave no folder under `out`
        if old is not None:
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)
            raise
    if old is not None:
        shutil.rmtree(old)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (main thread; elsewhere signals go to the main thread anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
