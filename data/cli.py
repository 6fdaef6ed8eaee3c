"""How every entry point (infer.py, train.py, benchmark.py, app.py, view.py, data.build, data.preview, data.procedural,
data.objaverse) ends: decorate its `main(argv=None)` with `entry_point`.

    bad arguments          one line `error: ...` on stderr, exit 2 (argparse's own errors keep its usage line)
    a failure              one line `error: ...`, exit 1 (missing data, a model folder that does not load, a full disk)
    Ctrl-C / SIGTERM       one line, exit 130 / 143; `with` blocks (data.atomic) remove their temporary files first
    anything else (a bug)  the traceback, then one line saying it is a bug and where to report it, exit 1

`UsageError` and `Failure` are SystemExit subclasses carrying their exit code, so code that calls `main(argv)`
directly (tests) sees the same exception and message a shell user sees, and `except Exception` never swallows them.
A plain `SystemExit("message")` raised deeper in the package is reported as a Failure.
Argument types for argparse (`positive_int`, `finite_float`, ...) and the output-path check live here too.
"""
from __future__ import annotations

import argparse
import errno
import functools
import math
import os
import signal
import sys
import traceback
from pathlib import Path

# OS errors that come from the machine, not from the code: reported in one line, never as a bug.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOMEM}


class UsageError(SystemExit):
    """Bad arguments: the message names the argument and the fix; exit code 2."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 2


class Failure(SystemExit):
    """The arguments are well formed but the job cannot be done (missing data, unloadable files); exit code 1."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 1


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so `with` and `finally` blocks clean up as they do for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def say(message: str, new_line: bool = False) -> None:
    """Print `error: MESSAGE` as exactly one line on stderr (after a line break with new_line: an interrupt may come
    while a progress bar holds the line, or after the terminal's ^C)."""
    line = " ".join(str(message).split())
    try:  # non-UTF-8 bytes of a path (decoded by Python as surrogates) printed as the \xNN the user typed
        line = line.encode(errors="surrogateescape").decode(errors="backslashreplace")
    except UnicodeEncodeError:  # surrogates that were never bytes
        line = line.encode(errors="backslashreplace").decode()
    line = line if line.startswith("error:") else f"error: {line}"
    print("\n" * new_line + line, file=sys.stderr, flush=True)


def entry_point(main):
    """Decorate a `main(argv=None)` so that it ends by the table of the module docstring."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        if hasattr(sys.stdout, "reconfigure"):  # a text stream of the OS (not a StringIO of a caller)
            sys.stdout.reconfigure(errors="backslashreplace")  # paths with non-UTF-8 bytes print instead of crashing
        try:
            return main(*args, **kwargs)
        except SystemExit as exit:
            if isinstance(exit, (UsageError, Failure)) or isinstance(exit.code, str):
                say(str(exit))
                raise exit if isinstance(exit, (UsageError, Failure)) else Failure(str(exit)) from None
            raise
        except KeyboardInterrupt:
            say("interrupted (Ctrl-C); temporary files removed, earlier output untouched", new_line=True)
            raise SystemExit(130) from None
        except Terminated:
            say("terminated (SIGTERM); temporary files removed, earlier output untouched", new_line=True)
            raise SystemExit(143) from None
        except OSError as err:
            if err.errno not in ENVIRONMENT_ERRNOS:
                bug()
            say(f"{err.strerror}: {err.filename}" if err.filename else err.strerror or str(err))
            raise SystemExit(1) from None
        except Exception:
            bug()
        finally:
            signal.signal(signal.SIGTERM, previous)

    return run


def bug() -> None:
    """Print the traceback of the exception being handled and say it is a bug; exit 1."""
    traceback.print_exc()
    print("this is a bug in zoetrope4d, not a problem with your input: please report it as an issue of the project, "
          "with the command you ran and the traceback above", file=sys.stderr, flush=True)
    raise SystemExit(1) from None


# ----------------------------------------------------------------------------- argument checks


def _number(kind, text: str, low: float | None, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if not math.isfinite(value) or (low is not None and value < low):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _number(int, text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    return _number(int, text, 0, "0 or more")


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, no inf)."""
    return _number(float, text, None, "a finite number")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    return _number(float, text, 0.0, "0 or more")


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = _number(float, text, 0.0, "in [0, 1]")
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def check_output(path: Path, option: str = "--out", folder: bool = True) -> None:
    """UsageError unless `path` can become the output (a folder, or a file when folder=False): it is not the wrong
    kind of thing already, and its nearest existing parent is a folder this process may write into."""
    if path.exists() and path.is_dir() != folder:
        kind = "a file" if folder else "a folder"
        raise UsageError(f"{option} {path} is {kind}; give a new name or {'a folder' if folder else 'a file name'}")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
        raise UsageError(f"{option} {path}: cannot write into {parent} (read-only); choose another place")


def _read_only(folder: Path) -> bool:
    """Whether `folder` is on a read-only file system (root passes os.access checks even there)."""
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def check_device(name: str, option: str = "--device") -> None:
    """UsageError unless torch can run on the device `name` here (cpu, cuda, cuda:N)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"{option} {name!r} is not a device; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{option} {name}: CUDA is not available here (no GPU, or a CPU-only torch); use {option} cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"{option} {name}: only cpu and cuda are supported")
