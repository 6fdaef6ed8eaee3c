"""Commands killed part-way: SIGTERM cleans up and exits 143, SIGKILL (which nothing can catch) leaves the final name
with the earlier output or the complete new one, and the next run tidies what a killed one left and completes."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from test_benchmark import write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILLS = 6  # per command, SIGTERM and SIGKILL taking turns


def start(*args) -> subprocess.Popen:
    """A command of the package as its own process group (so SIGKILL can take its workers too, as a job scheduler does)."""
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)


def kill_at(proc: subprocess.Popen, seconds: float, sig: int) -> tuple[int, str]:
    """Send `sig` after `seconds` (to the process alone for SIGTERM, to its group for SIGKILL); exit code and stderr."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, sig) if sig == signal.SIGKILL else proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def assert_terminated(code: int, err: str) -> None:
    """SIGTERM: exit 143 after one line saying so; 0 when the run finished first; -15 when it came before Python had
    imported the command (the default action: nothing was written yet)."""
    if code not in (0, -signal.SIGTERM):
        assert code == 143 and "Traceback" not in err, err[-2000:]
        assert [line for line in err.splitlines() if "error:" in line] == [
            "error: terminated (SIGTERM); temporary files removed, earlier output untouched"], err[-2000:]


def test_sigterm_during_compare_removes_its_temporary_folder(tiny_model, tmp_path):
    data = write_synthetic_set(tmp_path / "data")
    out = tmp_path / "runs" / "compare"
    out.mkdir(parents=True)
    (out / "compare.md").write_text("earlier results")
    proc = start("benchmark.py", "compare", "--model", tiny_model, "--data", data / "val", "--train-manifest",
                 data / "manifest.json", "--out", out, "--views", "2", "--steps", "1", "--sds-iters", "100000", "--quiet")
    deadline = time.monotonic() + 240
    while not hidden(out.parent) and time.monotonic() < deadline:  # wait for the temporary folder to exist
        time.sleep(0.2)
    assert hidden(out.parent), "compare never started writing"
    code, err = kill_at(proc, 1.0, signal.SIGTERM)
    assert_terminated(code, err)
    assert code == 143 and hidden(out.parent) == [] and files(out) == {"compare.md": b"earlier results"}


@pytest.mark.slow
def test_sigterm_during_training_leaves_only_complete_checkpoints(tmp_path):
    data = write_synthetic_set(tmp_path / "data")
    out = tmp_path / "run"
    proc = start("train.py", "diffusion", "--data", data / "val", "--out", out, "--steps", "500", "--save-every", "1",
                 "--keep-last", "2", "--num-workers", "0", "--log-every", "100", "--sample-every", "100")
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "step-0000003").exists():  # a checkpoint every step: the signal lands in a write
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be stopped"
        time.sleep(0.05)
    code, err = kill_at(proc, 0.3, signal.SIGTERM)
    assert_terminated(code, err)
    assert code == 143 and not list((out / "checkpoints").glob(".*"))  # no half checkpoint left
    assert all((c / "train_state.json").is_file() and (c / "ema.safetensors").is_file() for c in (out / "checkpoints").iterdir())


def complete_output(out: Path) -> bool:
    """Whether `out` is a complete infer.py output: meta.json and every file it implies."""
    meta = json.loads((out / "meta.json").read_text())
    plys = sorted(p.name for p in (out / "ply").iterdir())
    return (out / "multiview.mp4").stat().st_size > 0 and (out / "orbit.mp4").stat().st_size > 0 and \
        plys == [f"frame_{i:03d}.ply" for i in range(meta["frames"])]


@pytest.mark.slow
def test_infer_killed_at_random_points_keeps_the_earlier_output(tiny_model, tmp_path):
    out = tmp_path / "out"
    command = ["infer.py", "a small red ball bouncing", "--out", out, "--model", tiny_model, "--steps", "2", "--video-size", "16"]
    clock = time.monotonic()
    assert start(*command).wait(timeout=300) == 0
    seconds, earlier, rng = time.monotonic() - clock, files(out), random.Random(19)
    for i in range(KILLS):
        sig = (signal.SIGTERM, signal.SIGKILL)[i % 2]
        before = hidden(tmp_path)
        code, err = kill_at(start(*command), rng.uniform(0.1, 1.0) * seconds, sig)
        if sig == signal.SIGTERM:
            assert_terminated(code, err)
            assert set(hidden(tmp_path)) <= set(before)  # its temporary folder went with it
        now = files(out) if out.is_dir() else None
        assert now == earlier or complete_output(out), (sig, code, err[-1000:])  # never half an output
        earlier = files(out)
    assert start(*command).wait(timeout=300) == 0  # a re-run completes and tidies what SIGKILL left
    assert complete_output(out) and hidden(tmp_path) == []


def readable_shard(path: Path) -> bool:
    """Whether a shard is a complete tar of samples (each at least a .json and a .png)."""
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
    keys = {name.split(".", 1)[0] for name in names}
    return len(keys) > 0 and all({f"{key}.json", f"{key}.png"} <= names for key in keys)


@pytest.mark.slow
@pytest.mark.blender
def test_data_build_killed_at_random_points_keeps_every_written_shard(tmp_path):
    pytest.importorskip("bpy")
    out = tmp_path / "shards"
    command = ["-m", "data.build", "--procedural", "2", "--out", out, "--views", "2", "--extra-views", "0", "--frames", "2",
               "--size", "16", "--samples", "1", "--max-clips", "1", "--val-fraction", "0", "--workers", "1"]
    clock = time.monotonic()
    assert start(*command).wait(timeout=600) == 0
    seconds, rng = time.monotonic() - clock, random.Random(19)
    first, second = sorted((out / "train").glob("*.tar"))
    kept = first.read_bytes()
    for i in range(KILLS):
        sig = (signal.SIGTERM, signal.SIGKILL)[i % 2]
        second.unlink(missing_ok=True)  # so the run has an asset to render
        before = set(out.rglob("*.tmp-*"))
        code, err = kill_at(start(*command), rng.uniform(0.1, 1.0) * seconds, sig)
        if sig == signal.SIGTERM:
            assert_terminated(code, err)
            assert set(out.rglob("*.tmp-*")) <= before  # the workers removed their temporary shards too
        assert first.read_bytes() == kept and (not second.exists() or readable_shard(second)), (sig, code, err[-1000:])
        json.loads((out / "manifest.json").read_text())  # never half a manifest
    assert start(*command).wait(timeout=600) == 0  # a re-run completes and tidies what SIGKILL left
    manifest = json.loads((out / "manifest.json").read_text())
    assert readable_shard(second) and not list(out.rglob("*.tmp-*"))
    assert sorted(a["status"] for a in manifest["assets"].values()) == ["done", "done"]
