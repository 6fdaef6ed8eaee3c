"""The Python commands of benchmarks/gpu_check.sh, read and parsed without running them (its --dry-run).

    python -m benchmarks.gpu_commands readme      # the README's main command, one argument a line
    python -m benchmarks.gpu_commands parse --train "ARGS" [--train "ARGS" ...] --tests FILE [FILE ...]

`parse` exits with 1, naming what does not parse: a bench_train command line, the README's main command (through
infer.py's own argument checks), or a CUDA test file in which pytest collects no test marked gpu.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_command(readme: Path = README) -> list[str]:
    """The README's main command, the last command of its first fenced block: ["python", "infer.py", PROMPT, ...]."""
    block = readme.read_text().split("```")[1]  # "bash\n<the command>\n"
    command = shlex.split(block.split("\n", 1)[1].split("&&")[-1])
    if command[:2] != ["python", "infer.py"]:
        raise ValueError(f"{readme}: the first code block does not end with `python infer.py ...`: {command}")
    return command


def gpu_tests(files: list[str]) -> dict[str, list[str]]:
    """The tests marked gpu that pytest collects in each file (imports every module, runs nothing); pytest's report
    goes to stderr when a file has none, so that an import error shows."""
    import pytest

    class Collected:
        items: list = []

        def pytest_collection_finish(self, session):
            self.items = [item.nodeid for item in session.items]

    collected, report = Collected(), io.StringIO()
    with contextlib.redirect_stdout(report):
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "gpu", *files], plugins=[collected])
    found = {name: [i for i in collected.items if i.startswith(name + "::")] for name in files}
    if not all(found.values()):
        print(report.getvalue(), file=sys.stderr)
    return found


def problems(train_lines: list[str], test_files: list[str]) -> list[str]:
    """Each command that does not parse, in words (empty: all parse)."""
    import infer
    from benchmarks import bench_train

    found = []
    for line in train_lines:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                bench_train.parse_args(shlex.split(line))
        except SystemExit:
            found.append(f"bench_train {line}: {stderr.getvalue().strip().splitlines()[-1]}")
    try:
        infer.parse_args(readme_command()[2:])
    except (SystemExit, ValueError) as err:
        found.append(f"README main command: {err}")
    found += [f"{name}: no test marked gpu collected" for name, tests in gpu_tests(test_files).items() if not tests]
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("readme", help="print the README's main command, one argument a line")
    parse = sub.add_parser("parse", help="parse every command without running it")
    parse.add_argument("--train", action="append", default=[], help="bench_train arguments, as one shell-quoted string")
    parse.add_argument("--tests", nargs="+", default=[], help="test files that must hold CUDA tests (marked gpu)")
    args = p.parse_args(argv)
    if args.command == "readme":
        print("\n".join(readme_command()))
        return
    found = problems(args.train, args.tests)
    print("\n".join(f"problem: {line}" for line in found) or f"parsed: {len(args.train)} bench_train commands, the README "
          f"main command, the CUDA tests of {len(args.tests)} files")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
