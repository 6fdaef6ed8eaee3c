"""Every entry point keeps its contract under bad input: one `error:` line naming the problem, exit code 2 for bad
arguments and 1 for failures, no traceback, nothing written, and an earlier output byte-identical afterwards.

Most cases call `main(argv)` in-process (they fail in argument parsing or the early checks, in milliseconds); a
representative subset runs as real commands, in parallel, to check the exit codes and stderr a shell user sees.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import app
import benchmark
import infer
import train
import view
from data import build, objaverse, preview, procedural
from data.cli import entry_point
from test_benchmark import write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
MAINS = {"infer": infer.main, "benchmark": benchmark.main, "train": train.main, "build": build.main,
         "preview": preview.main, "procedural": procedural.main, "objaverse": objaverse.main, "app": app.main,
         "view": view.main}
COMMANDS = {"infer": ["infer.py"], "benchmark": ["benchmark.py"], "train": ["train.py"], "build": ["-m", "data.build"],
            "preview": ["-m", "data.preview"]}
NON_UTF8 = os.fsdecode(b"caf\xe9-\xff")  # bytes no UTF-8 decoder accepts, as a shell would pass them


# ----------------------------------------------------------------------------- fixtures: the things cases point at


@pytest.fixture(scope="module")
def broken_models(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """Model folders that exist but do not load: truncated weights, float16 weights, another preset's head."""
    root = tmp_path_factory.mktemp("broken-models")
    folders = {}
    for name in ("truncated", "float16", "other-preset"):
        folders[name] = shutil.copytree(tiny_model, root / name)
    head = folders["truncated"] / "recon" / "diffusion_pytorch_model.safetensors"
    head.write_bytes(head.read_bytes()[: head.stat().st_size // 2])
    head = folders["float16"] / "recon" / "diffusion_pytorch_model.safetensors"
    save_file({k: v.half() for k, v in load_file(head).items()}, head)
    from recon.head import build_head

    head = folders["other-preset"] / "recon" / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in build_head("tiny", width=32).state_dict().items()}, head)
    (root / "incomplete").mkdir()
    folders["incomplete"] = root / "incomplete"
    return folders


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """What the cases read: shard sets, an empty, an empty-shard and an unreadable-shard folder, a checkpoint of the
    recon stage, a text file posing as an image, a video of two frames."""
    import imageio.v3 as iio
    import numpy as np

    root = tmp_path_factory.mktemp("inputs")
    write_synthetic_set(root / "data")
    write_synthetic_set(root / "shared", val_asset="trained-thing")
    (root / "notes.txt").write_text("not an image")
    for name in ("empty", "zero", "garbage", "ckpt"):
        (root / name).mkdir()
    (root / "zero" / "a.tar").write_bytes(b"")
    (root / "garbage" / "a.tar").write_bytes(os.urandom(3000))
    (root / "ckpt" / "train_state.json").write_text('{"stage": "recon", "step": 1, "config": {"preset": "tiny"}}')
    iio.imwrite(root / "short.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=2, macro_block_size=1)
    return root


@pytest.fixture
def place(tmp_path, inputs, tiny_model, broken_models) -> SimpleNamespace:
    """The work folder (OUT: an earlier output folder with a file in it, SHEET: an earlier PNG, a plain file) and the
    inputs. `place.roots` are the folders whose every byte must be unchanged by a failed command."""
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "keep.txt").write_text("earlier output")
    (work / "sheet.png").write_bytes(b"earlier sheet")
    (work / "plain-file").write_text("not a folder")
    models = {k.replace("-", "_"): v for k, v in broken_models.items()}
    return SimpleNamespace(work=work, out=work / "out", model=tiny_model, inp=inputs, data=inputs / "data",
                           shared=inputs / "shared", roots=(work, inputs), **models)


def infer_args(p, *extra, prompt="a small red ball", model=None):
    return [prompt, "--out", p.out, "--model", model or p.model, "--steps", "1", "--video-size", "16", *extra]


def compare_args(p, *extra, data=None, manifest=None):
    data = data or p.data
    return ["compare", "--model", p.model, "--data", data / "val", "--train-manifest", manifest or data / "manifest.json",
            "--out", p.out, "--views", "2", "--steps", "1", "--sds-iters", "1", "--quiet", *extra]


def eval_args(p, data, *extra):
    return ["eval", "--model", p.model, "--data", data, "--out", p.out, "--steps", "1", *extra]


def build_args(p, *extra):
    return ["--procedural", "1", "--out", p.out, *extra]


def train_args(p, *extra, stage="diffusion"):
    return [stage, "--data", p.data / "val", "--out", p.out, "--num-workers", "0", *extra]


SHIPPED = infer.DEFAULT_MODEL
# (id, entry point, argv from the place, exit code, what the one error line says)
CASES = [
    ("infer-frames-5000", "infer", lambda p: infer_args(p, "--frames", "5000", model=SHIPPED), 2, "at most --frames"),
    ("infer-frames-0", "infer", lambda p: infer_args(p, "--frames", "0"), 2, "--frames: must be at least 1"),
    ("infer-views-negative", "infer", lambda p: infer_args(p, "--views", "-2"), 2, "--views: must be at least 1"),
    ("infer-frames-not-a-number", "infer", lambda p: infer_args(p, "--frames", "many"), 2, "not an integer"),
    ("infer-steps-0", "infer", lambda p: infer_args(p, "--steps", "0"), 2, "--steps: must be at least 1"),
    ("infer-steps-huge", "infer", lambda p: infer_args(p, "--steps", "100000"), 2, "at most 1000"),
    ("infer-guidance-nan", "infer", lambda p: infer_args(p, "--guidance", "nan"), 2, "must be a finite number"),
    ("infer-guidance-inf", "infer", lambda p: infer_args(p, "--guidance", "inf"), 2, "must be a finite number"),
    ("infer-video-guidance-nan", "infer", lambda p: infer_args(p, "--video-guidance", "nan"), 2, "must be a finite number"),
    ("infer-motion-guidance-negative", "infer", lambda p: infer_args(p, "--motion-guidance", "-1"), 2,
     "--motion-guidance -1.0: must be 0 or more (1: off)"),
    ("infer-loop-end-before-start", "infer", lambda p: infer_args(p, "--loop-start", "0.5", "--loop-end", "0.25"), 2,
     "--loop-end 0.25 comes before --loop-start 0.5"),
    ("infer-loop-end-above-1", "infer", lambda p: infer_args(p, "--loop-end", "1.5"), 2, "--loop-end"),
    ("infer-elevation-pole", "infer", lambda p: infer_args(p, "--elevation", "90"), 2, "must be in (-90, 90)"),
    ("infer-elevation-nan", "infer", lambda p: infer_args(p, "--elevation", "nan"), 2, "must be a finite number"),
    ("infer-video-size-odd", "infer", lambda p: infer_args(p, "--video-size", "17"), 2, "an even number"),
    ("infer-seed-negative", "infer", lambda p: infer_args(p, "--seed", "-1"), 2, "--seed: must be 0 or more"),
    ("infer-refine-negative", "infer", lambda p: infer_args(p, "--refine-steps", "-1"), 2, "must be 0 or more"),
    ("infer-smoothing-negative", "infer", lambda p: infer_args(p, "--smoothing", "-0.5"), 2, "--smoothing: must be 0 or more"),
    ("infer-smoothing-nan", "infer", lambda p: infer_args(p, "--smoothing", "nan"), 2, "--smoothing: must be 0 or more"),
    ("infer-prompt-empty", "infer", lambda p: infer_args(p, prompt=""), 2, "the prompt is empty"),
    ("infer-prompt-whitespace", "infer", lambda p: infer_args(p, prompt=" \t\n "), 2, "the prompt is empty"),
    ("infer-prompt-10000", "infer", lambda p: infer_args(p, prompt="a red ball " * 1000), 2, "11000 characters; at most 1000"),
    ("infer-device-cuda", "infer", lambda p: infer_args(p, "--device", "cuda"), 2, "CUDA is not available"),
    ("infer-device-unknown", "infer", lambda p: infer_args(p, "--device", "quantum"), 2, "is not a device"),
    ("infer-sampler-unknown", "infer", lambda p: infer_args(p, "--sampler", "magic"), 2, "choose one of"),
    ("infer-out-is-a-file", "infer", lambda p: [*infer_args(p), "--out", p.work / "plain-file"], 2, "is a file"),
    ("infer-out-under-a-file", "infer", lambda p: [*infer_args(p), "--out", p.work / "plain-file" / "x"], 2, "is a file, not a folder"),
    ("infer-model-missing", "infer", lambda p: infer_args(p, model=p.work / "nowhere"), 2, "does not exist"),
    ("infer-model-non-utf8", "infer", lambda p: infer_args(p, model=p.work / NON_UTF8), 2, "does not exist"),
    ("infer-model-incomplete", "infer", lambda p: infer_args(p, model=p.incomplete), 2, "is incomplete"),
    ("infer-model-truncated", "infer", lambda p: infer_args(p, model=p.truncated), 1, "recon/diffusion_pytorch_model.safetensors cannot be read"),
    ("infer-model-float16", "infer", lambda p: infer_args(p, model=p.float16), 1, "holds F16 weights"),
    ("infer-model-other-preset", "infer", lambda p: infer_args(p, model=p.other_preset), 1, "recon does not load"),
    ("infer-image-missing", "infer", lambda p: infer_args(p, "--image", p.work / "nowhere.png"), 2, "no such file"),
    ("infer-image-non-utf8", "infer", lambda p: infer_args(p, "--image", p.work / NON_UTF8), 2, "no such file"),
    ("infer-image-unreadable", "infer", lambda p: infer_args(p, "--image", p.inp / "notes.txt"), 1, "cannot read image"),
    ("infer-video-too-short", "infer", lambda p: infer_args(p, "--video", p.inp / "short.mp4"), 1, "at least 3 are needed"),
    ("infer-image-and-video", "infer", lambda p: infer_args(p, "--image", p.inp / "notes.txt", "--video", p.inp / "short.mp4"), 2, "not both"),
    ("infer-multiview-and-video", "infer", lambda p: infer_args(p, "--multiview", p.inp / "short.mp4", "--video", p.inp / "short.mp4"), 2,
     "give no --image or --video with it"),
    ("infer-multiview-missing", "infer", lambda p: infer_args(p, "--multiview", p.work / "nowhere.mp4"), 2, "no such file"),
    ("eval-model-missing", "benchmark", lambda p: [*eval_args(p, p.data / "val"), "--model", p.work / "nowhere"], 2, "does not exist"),
    ("eval-no-shards", "benchmark", lambda p: eval_args(p, p.inp / "empty"), 1, "no shards found"),
    ("eval-empty-shard", "benchmark", lambda p: eval_args(p, p.inp / "zero"), 1, "not a readable tar file"),
    ("eval-unreadable-shard", "benchmark", lambda p: eval_args(p, p.inp / "garbage"), 1, "not a readable tar file"),
    ("eval-steps-0", "benchmark", lambda p: eval_args(p, p.data / "val", "--steps", "0"), 2, "--steps: must be at least 1"),
    ("eval-motion-guidance-negative", "benchmark", lambda p: eval_args(p, p.data / "val", "--motion-guidance", "-1"), 2,
     "motion_guidance must be a finite number >= 0"),
    ("eval-loop-end-before-start", "benchmark", lambda p: eval_args(p, p.data / "val", "--loop-start", "0.5", "--loop-end",
                                                                     "0.25"), 2, "loop_end 0.25 comes before loop_start 0.5"),
    ("eval-out-is-a-file", "benchmark", lambda p: [*eval_args(p, p.data / "val"), "--out", p.work / "plain-file"], 2, "is a file"),
    ("compare-no-manifest", "benchmark", lambda p: compare_args(p, manifest=p.work / "v1" / "manifest.json"), 2, "python -m data.build"),
    ("compare-sds-iters-0", "benchmark", lambda p: compare_args(p, "--sds-iters", "0"), 2, "--sds-iters: must be at least 1"),
    ("compare-max-clips-negative", "benchmark", lambda p: compare_args(p, "--max-clips", "-1"), 2, "must be at least 1"),
    ("compare-device-cuda", "benchmark", lambda p: compare_args(p, "--device", "cuda"), 2, "CUDA is not available"),
    ("compare-shares-an-asset", "benchmark", lambda p: compare_args(p, data=p.shared), 1, "shares 1 asset"),
    ("compare-unreadable-shard", "benchmark", lambda p: [*compare_args(p), "--data", p.inp / "garbage"], 1, "not a readable tar file"),
    ("train-no-stage", "train", lambda p: [], 2, "give a stage"),
    ("train-unknown-stage", "train", lambda p: ["diffuse"], 2, "unknown stage 'diffuse'"),
    ("train-unknown-preset", "train", lambda p: train_args(p, "--preset", "huge"), 2, "unknown preset 'huge'"),
    ("train-steps-0", "train", lambda p: train_args(p, "--steps", "0"), 2, "--steps must be at least 1"),
    ("train-batch-negative", "train", lambda p: train_args(p, "--batch-size", "-4"), 2, "--batch-size must be at least 1"),
    ("train-lr-nan", "train", lambda p: train_args(p, "--lr", "nan"), 2, "--lr must be a finite number"),
    ("train-steps-not-a-number", "train", lambda p: train_args(p, "--steps", "abc"), 2, "Error parsing --steps"),
    ("train-unknown-option", "train", lambda p: train_args(p, "--stepz", "3"), 2, "Unrecognized options"),
    ("train-data-missing", "train", lambda p: train_args(p, "--data", "missing/*.tar"), 2, "no shards found"),
    ("train-data-non-utf8", "train", lambda p: train_args(p, "--data", str(p.work / NON_UTF8)), 2, "no shards found"),
    ("train-resume-nothing", "train", lambda p: train_args(p, "--resume", "latest"), 2, "holds no complete checkpoint"),
    ("train-resume-other-stage", "train", lambda p: train_args(p, "--resume", p.inp / "ckpt"), 2, "does not match this configuration"),
    ("train-init-from-missing", "train", lambda p: train_args(p, "--init-from", p.work / "nowhere"), 2, "--init-from"),
    ("train-out-is-a-file", "train", lambda p: train_args(p, "--out", p.work / "plain-file"), 2, "is a file"),
    ("build-procedural-negative", "build", lambda p: build_args(p, "--procedural", "-3"), 2, "--procedural: must be 0 or more"),
    ("build-val-fraction-above-1", "build", lambda p: build_args(p, "--val-fraction", "1.5"), 2, "must be in [0, 1]"),
    ("build-val-fraction-nan", "build", lambda p: build_args(p, "--val-fraction", "nan"), 2, "must be in [0, 1]"),
    ("build-size-tiny", "build", lambda p: build_args(p, "--size", "4"), 2, "at least 8 pixels"),
    ("build-frames-0", "build", lambda p: build_args(p, "--frames", "0"), 2, "--frames: must be at least 1"),
    ("build-workers-0", "build", lambda p: build_args(p, "--workers", "0"), 2, "--workers: must be at least 1"),
    ("build-fov-0", "build", lambda p: build_args(p, "--fov", "0"), 2, "(0, 180) degrees"),
    ("build-max-seconds-inf", "build", lambda p: build_args(p, "--max-seconds", "inf"), 2, "must be a finite number"),
    ("build-gltf-dir-missing", "build", lambda p: build_args(p, "--gltf-dir", p.work / "nowhere"), 2, "no such folder"),
    ("build-nothing", "build", lambda p: ["--out", p.out], 2, "nothing to build"),
    ("build-out-is-a-file", "build", lambda p: build_args(p, "--out", p.work / "plain-file"), 2, "is a file"),
    ("preview-no-shards", "preview", lambda p: [p.inp / "empty", "--out", p.work / "sheet.png"], 1, "no shards found"),
    ("preview-empty-shard", "preview", lambda p: [p.inp / "zero", "--out", p.work / "sheet.png"], 1, "no readable samples"),
    ("preview-unreadable-shard", "preview", lambda p: [p.inp / "garbage", "--out", p.work / "sheet.png"], 1, "no readable samples"),
    ("preview-max-samples-0", "preview", lambda p: [p.data / "val", "--out", p.work / "sheet.png", "--max-samples", "0"], 2, "must be at least 1"),
    ("preview-out-is-a-folder", "preview", lambda p: [p.data / "val", "--out", p.out], 2, "is a folder"),
    ("procedural-count-negative", "procedural", lambda p: ["--count", "-1", "--out", p.out], 2, "--count: must be 0 or more"),
    ("app-port-negative", "app", lambda p: ["--port", "-1", "--model", p.model], 2, "--port: must be 0 or more"),
    ("app-model-truncated", "app", lambda p: ["--model", p.truncated, "--out-root", p.out], 1, "cannot be read"),
    ("view-not-an-output-folder", "view", lambda p: [p.out, "--no-browser"], 2, "is not an infer.py output folder"),
    ("view-port-not-a-number", "view", lambda p: [p.out, "--port", "http"], 2, "--port: not an integer"),
    ("objaverse-count-0", "objaverse", lambda p: ["select", "--count", "0", "--out", p.work / "ids.json"], 2, "--count: must be at least 1"),
]


def snapshot(place) -> dict[str, bytes]:
    """Every file under the place's folders (names included, hidden ones too) with its bytes."""
    return {str(p): p.read_bytes() if p.is_file() else b"<dir>" for root in place.roots for p in sorted(root.rglob("*"))}


def assert_contract(code: int, stderr: str, expected_code: int, message: str, before: dict, place) -> None:
    """The exit code, one `error:` line holding `message`, no traceback, and the work folder exactly as it was."""
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert code == expected_code, (code, stderr[-2000:])
    assert len(errors) == 1 and message in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert snapshot(place) == before  # no output, no temporary folder, the earlier output byte-identical


@pytest.mark.parametrize("case, command, argv, code, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_error_line_and_writes_nothing(case, command, argv, code, message, place, capsys):
    if case.endswith("device-cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = snapshot(place)
    with pytest.raises(SystemExit) as exit:
        MAINS[command]([str(a) for a in argv(place)])
    assert_contract(exit.value.code, capsys.readouterr().err, code, message, before, place)


def test_eval_leaves_a_lone_loop_end_to_the_models_saved_loop_start(place):
    import benchmark
    # The shipped default loop_start is 1 (off); a model may save another, so 0.8 alone is no usage error here.
    benchmark.check_arguments(benchmark.parser().parse_args([str(a) for a in eval_args(place, place.data / "val",
                                                                                         "--loop-end", "0.8")]))


def test_at_least_40_cases_over_every_entry_point():
    assert len(CASES) >= 40 and {command for _, command, *_ in CASES} == set(MAINS)


SUBPROCESS_CASES = ["infer-frames-5000", "build-procedural-negative", "train-data-missing", "compare-no-manifest"]


def test_commands_keep_the_contract_as_a_shell_runs_them(place):
    """A representative subset as real processes (in parallel): what a shell user sees, exit codes included."""
    cases = [c for c in CASES if c[0] in SUBPROCESS_CASES]
    before = snapshot(place)

    def run(case):
        _, command, argv, _, _ = case
        return subprocess.run([sys.executable, *COMMANDS[command], *map(str, argv(place))], cwd=ROOT, capture_output=True,
                              text=True, errors="replace", timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, cases))
    for (name, _, _, code, message), proc in zip(cases, results):
        assert_contract(proc.returncode, proc.stderr, code, message, before, place)


def test_train_help_lists_the_stages_and_where_their_options_are(capsys):
    with pytest.raises(SystemExit) as exit:
        train.main(["--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0
    assert "diffusion" in out and "recon" in out and "python train.py diffusion --help" in out
    with pytest.raises(SystemExit) as exit:
        train.main(["recon", "--help"])
    assert exit.value.code == 0 and "--extra-views" in capsys.readouterr().out


def test_a_full_disk_is_one_error_line_and_the_earlier_output_stays(place, capsys, monkeypatch):
    """ENOSPC from a writer half-way through the output (simulated in-process: mounting a tiny tmpfs needs root)."""
    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"half a video")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(infer, "write_multiview_video", full)
    before = snapshot(place)
    with pytest.raises(SystemExit) as exit:
        infer.main([str(a) for a in infer_args(place)])
    assert_contract(exit.value.code, capsys.readouterr().err, 1, "No space left on device", before, place)


def infer_keeps_the_contract(place, capsys, out, code: int, text: str) -> None:
    """infer.py writing into `out` exits with `code` and one error line holding `text`, and changes nothing."""
    before = snapshot(place)
    with pytest.raises(SystemExit) as exit:
        infer.main([str(a) for a in infer_args(place)] + ["--out", str(out)])
    assert_contract(exit.value.code, capsys.readouterr().err, code, text, before, place)


def test_a_full_tmpfs_is_one_error_line_and_leaves_nothing(place, capsys):
    """A real full disk: a 64 kB tmpfs (where this process may mount one), too small for the outputs."""
    disk = place.work / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here; test_a_full_disk_is_one_error_line_and_the_earlier_output_stays simulates one")
    try:
        infer_keeps_the_contract(place, capsys, disk / "out", 1, "No space left on device")
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_read_only_output_parent_is_refused_before_any_work(place, capsys):
    """A read-only file system (a read-only tmpfs where this may mount one; else a folder without write permission)."""
    parent = place.work / "read-only"
    parent.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(parent)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and no read-only file system could be mounted here")
        parent.chmod(0o555)
    try:
        infer_keeps_the_contract(place, capsys, parent / "out", 2, "cannot write into")
    finally:
        subprocess.run(["umount", str(parent)]) if mounted else parent.chmod(0o755)


def test_a_bug_prints_the_traceback_and_says_it_is_a_bug(capsys):
    @entry_point
    def broken(argv=None):
        return {}["missing"]

    with pytest.raises(SystemExit) as exit:
        broken([])
    err = capsys.readouterr().err
    assert exit.value.code == 1 and "Traceback" in err and "KeyError" in err
    assert err.strip().splitlines()[-1].startswith("this is a bug in zoetrope4d") and "error:" not in err


def test_val_fraction_1_holds_every_asset_out():
    args = build.parse_args(["--procedural", "3", "--out", "shards/x", "--val-fraction", "1.0"])
    assert args.val_fraction == 1.0 and {build.split_of(f"asset-{i}", 1.0) for i in range(200)} == {"val"}
    assert {build.split_of(f"asset-{i}", 0.0) for i in range(200)} == {"train"}
