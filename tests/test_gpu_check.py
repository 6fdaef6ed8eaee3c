"""benchmarks/gpu_check.sh without a GPU: its dry run (what it would carry exists, every command parses) and its check of
the carried parts."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(*args: str, carry: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "benchmarks/gpu_check.sh", *args, "--carry-dir", str(carry)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHON": sys.executable})


@pytest.fixture
def carry(tmp_path: Path) -> Path:
    """A carry folder laid out as benchmarks/gpu_wheels.sh writes it: two parts and their sha256 sums."""
    parts = {"part-00.tar": b"the small wheels and the shard", "part-01": b"the first piece of the large wheels"}
    for name, data in parts.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "MANIFEST").write_text("".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in parts.items()))
    return tmp_path


def test_dry_run_finds_what_it_carries_and_parses_every_command(carry):
    result = gpu_check("--dry-run", carry=carry)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 2 parts" in result.stdout
    assert "parsed: 2 bench_train commands, the README main command, the CUDA tests of 2 files" in result.stdout
    assert result.stdout.rstrip().endswith("dry run: ok")


@pytest.mark.parametrize("damage", ["a part missing", "a part changed", "no MANIFEST"])
def test_carry_check_fails_on_a_missing_or_changed_part(carry, damage):
    assert gpu_check("--check-carry", carry=carry).returncode == 0
    if damage == "a part missing":
        (carry / "part-01").unlink()
    elif damage == "a part changed":
        (carry / "part-01").write_bytes(b"truncated")
    else:
        (carry / "MANIFEST").unlink()
    result = gpu_check("--check-carry", carry=carry)
    assert result.returncode == 1
    assert ("run bash benchmarks/gpu_wheels.sh first" if damage == "no MANIFEST" else "missing or changed") in result.stdout
