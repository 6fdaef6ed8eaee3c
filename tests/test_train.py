"""train.py end to end: two CPU processes through accelerate launch, exact resume, crash safety, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train

pytestmark = pytest.mark.blender  # trains on the Blender-rendered demo shards
ROOT = Path(__file__).resolve().parents[1]


def run_train(*args, launch: bool = False, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """python train.py ARGS, or the same through `accelerate launch` with two CPU processes (gloo)."""
    prefix = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"] if launch else [sys.executable]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*prefix, str(ROOT / "train.py"), *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def audit(out: Path) -> tuple[list[set[str]], list[str]]:
    """Per rank: the sample keys it trained on and its final weights checksum."""
    keys, weights = [], []
    for path in sorted(out.glob("audit-rank*.txt")):
        lines = [line.split() for line in path.read_text().splitlines()]
        keys.append({line[2] for line in lines if line[0] == "key"})
        weights.append(next(line[1] for line in lines if line[0] == "weights"))
    return keys, weights


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["diffusion", "recon"])
def test_two_processes_train_in_sync_on_disjoint_samples(stage, demo_shards, tmp_path):
    out = tmp_path / stage
    # 3 train shards over 2 ranks: rank 0 reads 2, rank 1 reads 1; batch 1, 2 steps is one pass for rank 0.
    run_train(stage, "--data", demo_shards / "train", "--out", out, "--steps", 2, "--batch-size", 1, "--frames", 2,
              "--extra-views", 1, "--no-resampled", "--audit", "--save-every", 2, launch=True)
    keys, weights = audit(out)
    assert len(keys) == 2 and weights[0] == weights[1]  # gradients were averaged: one model on both ranks
    assert not keys[0] & keys[1]  # each sample on one rank only
    assert keys[0] | keys[1] == {f"{a}__c000__o00" for a in ("CesiumMan", "BoxAnimated", "AnimatedMorphCube")}
    assert (out / "model" / "train_config.json").is_file() and (out / "checkpoints" / "step-0000002").is_dir()


def logged(out: Path, name: str) -> list[float]:
    """One metric of every line of OUT/metrics.jsonl (a line per step with the tiny preset's log_every=1)."""
    return [json.loads(line)[name] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resumed_run_continues_the_uninterrupted_loss_curve(demo_shards, tmp_path):
    common = ["diffusion", "--data", demo_shards / "train", "--steps", 6, "--save-every", 100, "--num-workers", 0]
    run_train(*common, "--out", tmp_path / "straight")
    first = run_train(*common, "--out", tmp_path / "resumed", "--stop-at", 3)
    assert "stopped at step 3" in first.stdout
    run_train(*common, "--out", tmp_path / "resumed", "--resume", "latest")
    straight, resumed = logged(tmp_path / "straight", "loss"), logged(tmp_path / "resumed", "loss")
    assert len(resumed) == 6  # steps 1-3, then 4-6 after the resume
    assert resumed == pytest.approx(straight, rel=1e-5)
    # The tiny preset's schedule (lr 1e-3, 2 warm-up steps, floor 0.1 x) survived the resume: the rate after each
    # step rises linearly to the peak, then falls by a cosine to the floor at the last step.
    lr = logged(tmp_path / "resumed", "lr")
    assert lr == pytest.approx(logged(tmp_path / "straight", "lr"))
    assert lr[:2] == pytest.approx([5e-4, 1e-3]) and lr[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(lr[1:], lr[2:]))
    last = tmp_path / "resumed" / "checkpoints" / "step-0000006"
    state = json.loads((last / "train_state.json").read_text())
    assert state["step"] == 6 and state["batches"] == 6
    assert not list(last.glob("custom_checkpoint*"))  # nothing accelerate would unpickle with weights_only=False
    exported = [load_file(tmp_path / run / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
                for run in ("straight", "resumed")]
    assert exported[0].keys() == exported[1].keys()
    for name, tensor in exported[0].items():  # the EMA (and its warm-up decay) survived the resume
        torch.testing.assert_close(exported[1][name], tensor, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_killing_a_run_mid_checkpoint_leaves_loadable_checkpoints(demo_shards, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train.py"), "diffusion", "--data", str(demo_shards / "train"), "--out", str(out),
           "--steps", "500", "--save-every", "1", "--keep-last", "2", "--num-workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step-0000004").exists():  # a checkpoint every step: the kill lands in a write
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = train.checkpoints(out)
    files = ("train_state.json", "model.safetensors", train.EMA_FILE)
    assert done and all((c / name).is_file() for c in done for name in files)
    last = json.loads((done[-1] / "train_state.json").read_text())["step"]
    run_train("diffusion", "--data", demo_shards / "train", "--out", out, "--steps", last + 2, "--save-every", 1,
              "--num-workers", 0, "--resume", "latest")
    assert json.loads((train.checkpoints(out)[-1] / "train_state.json").read_text())["step"] == last + 2


def test_non_finite_losses_are_skipped_then_stop_the_run(demo_shards, tmp_path, monkeypatch):
    out = tmp_path / "nan"
    run_train("diffusion", "--data", demo_shards / "train", "--out", out, "--steps", 2, "--num-workers", 0)
    before = {p: p.read_bytes() for p in (out / "checkpoints").rglob("*") if p.is_file()}
    nan_loss = lambda self, model, batch, generator=None: (next(model.parameters()).sum() * float("nan"), {})  # noqa: E731
    monkeypatch.setattr(train.DiffusionStage, "loss", nan_loss)
    cfg = train.TrainConfig(data=str(demo_shards / "train"), out=str(out), steps=10, num_workers=0, max_nonfinite=3, resume="latest")
    with pytest.raises(SystemExit, match="3 non-finite losses in a row at step 2"):
        train.train("diffusion", cfg)
    assert {p: p.read_bytes() for p in (out / "checkpoints").rglob("*") if p.is_file()} == before  # last good one intact


def test_bad_input_is_refused_before_training_starts(demo_shards, tmp_path):
    # In-process: tests/test_cli_contract.py runs the shell's view (exit 2, one line on stderr) of these and more.
    (tmp_path / "empty").mkdir()
    cases = {
        "no shards found at": ["--data", tmp_path / "shard-{000..009}.tar"],
        "not a checkpoint folder": ["--data", demo_shards / "train", "--resume", tmp_path / "empty"],
    }
    for message, args in cases.items():
        with pytest.raises(SystemExit, match=message):
            train.main(["diffusion", "--out", str(tmp_path / "run"), *map(str, args)])
    assert not (tmp_path / "run").exists()


def test_init_from_starts_from_exported_weights_and_refuses_ones_that_do_not_fit(demo_shards, tmp_path):
    from model.dit import MultiViewVideoDiT
    from model.presets import build_dit

    common = ["--data", demo_shards / "train", "--steps", 1, "--num-workers", 0]
    run_train("diffusion", *common, "--out", tmp_path / "a", "--prediction", "velocity")
    exported = tmp_path / "a" / "model"
    model = build_dit("tiny")
    train.load_weights(model, str(exported))  # a pipeline folder: its transformer/ is read
    saved = MultiViewVideoDiT.from_pretrained(exported / "transformer").state_dict()
    assert all(torch.equal(tensor, saved[name]) for name, tensor in model.state_dict().items())
    with pytest.raises(SystemExit, match="do not fit this model"):
        train.load_weights(MultiViewVideoDiT(hidden_size=16, depth=2, num_heads=2, patch_size=4), str(exported))
    with pytest.raises(SystemExit, match="no .safetensors weights"):
        train.load_weights(model, str(tmp_path))
    run_train("diffusion", *common, "--out", tmp_path / "b", "--init-from", exported)  # continued as x0-prediction
    assert json.loads((tmp_path / "b" / "model" / "transformer" / "config.json").read_text())["prediction"] == "sample"


def test_the_committed_half_precision_checkpoint_continues_the_cpu_small_model():
    # checkpoints/diffusion-v4-in-progress stores its weights as float16 to keep the working tree small;
    # --init-from must copy every one of them, exactly, into the float32 cpu-small model.
    from model.presets import build_dit

    folder = ROOT / "checkpoints" / "diffusion-v4-in-progress" / "diffusion"
    stored = {name: tensor for file in (folder / "transformer").glob("*.safetensors") for name, tensor in load_file(file).items()}
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    model = build_dit("cpu-small", prediction="sample")
    train.load_weights(model, str(folder))
    state = model.state_dict()
    assert set(state) == set(stored)
    assert all(state[name].dtype == torch.float32 and torch.equal(state[name], tensor.float()) for name, tensor in stored.items())
    assert any(tensor.abs().sum() > 0 for tensor in stored.values())


def test_recon_stage_takes_the_geometry_loss_weights_from_the_command_line(demo_shards):
    from data.stream import make_dataset

    _, cfg = train.parse_args(["recon", "--data", str(demo_shards / "train"), "--extra-views", "2", "--loss.depth", "0.5",
                               "--loss.outside", "2"])
    stage = train.ReconStage(cfg, torch.device("cpu"))
    batch = next(iter(make_dataset(cfg.data, batch_size=1, shuffle=0, subset=stage.subset)))
    assert batch["depth"].shape[1] == 6  # 4 ring + 2 supervision views, each with Blender's depth
    with torch.no_grad():
        loss, metrics = stage.loss(stage.model, batch)
    assert metrics["depth"] > 0 and metrics["outside"] > 0
    rest = metrics["mse"] + 0.2 * metrics["ssim"] + metrics["alpha"]  # the default weights of the other terms
    assert loss.item() == pytest.approx(rest + 0.5 * metrics["depth"] + 2 * metrics["outside"], rel=1e-4)


def test_canonical_ring_training_sees_each_ring_turned_to_view_0_at_azimuth_0_and_saves_the_choice(demo_shards):
    from data.cameras import camera_azimuth, canonical_ring
    from data.stream import make_dataset
    from test_model import randomize_

    stages = [train.DiffusionStage(train.parse_args(["diffusion", "--data", str(demo_shards / "train"), *flag])[1],
                                   torch.device("cpu")) for flag in ([], ["--canonical-ring"])]
    plain, canonical = stages
    randomize_(plain.model, seed=0)  # a model whose output depends on its cameras
    batch = next(iter(make_dataset(str(demo_shards / "train"), batch_size=2, shuffle=0, subset=plain.subset)))
    assert camera_azimuth(batch["c2w"][:, 0, 0]).abs().min() > 1.0  # the data's rings start elsewhere
    turned = {**batch, "c2w": canonical_ring(batch["c2w"])}

    def loss(stage, batch):
        with torch.no_grad():
            return stage.loss(plain.model, batch, torch.Generator().manual_seed(0))[0].item()

    assert loss(canonical, batch) == loss(plain, turned) != loss(plain, batch)
    assert canonical.pipeline(plain.model).defaults.canonical_ring and not plain.pipeline(plain.model).defaults.canonical_ring


def test_preset_sets_the_defaults_in_either_spelling():
    for argv in (["--preset", "cpu-small"], ["--preset=cpu-small"]):
        stage, cfg = train.parse_args(["diffusion", *argv])
        assert stage == "diffusion" and cfg.preset == "cpu-small" and cfg.steps == train.TRAIN_PRESETS["cpu-small"]["steps"]
    assert train.parse_args(["recon", "--preset=cpu-small", "--steps", "7"])[1].steps == 7  # options override the preset
    with pytest.raises(SystemExit, match="unknown preset 'huge'"):
        train.parse_args(["diffusion", "--preset=huge"])
    with pytest.raises(SystemExit, match="--keep-last must be at least 1"):
        train.parse_args(["diffusion", "--keep-last", "0"])


def test_a_head_is_continued_at_a_finer_stride_and_never_at_a_coarser_one(tmp_path):
    from recon.head import build_head

    torch.manual_seed(0)
    build_head("tiny", stride=2).save_pretrained(tmp_path / "coarse")
    stage = train.ReconStage(train.TrainConfig(preset="tiny", stride=1), torch.device("cpu"))
    stage.load(stage.model, str(tmp_path / "coarse"))
    C = stage.model.config.decoder_channels
    assert stage.model.config.stride == 1 and stage.model.unpatch.out_features == 8 * 8 * C  # 8 x 8 pixels a token...
    coarse_rows = load_file(tmp_path / "coarse" / "diffusion_pytorch_model.safetensors")["unpatch.weight"]  # 4 x 4
    assert torch.equal(stage.model.unpatch.weight[:C], coarse_rows[:C])  # ...and the first pixel's rows are its parent's
    build_head("tiny", stride=1).save_pretrained(tmp_path / "fine")
    stage = train.ReconStage(train.TrainConfig(preset="tiny", stride=2), torch.device("cpu"))
    with pytest.raises(SystemExit, match="one Gaussian per 1 pixels; it can be continued at a stride that divides 1"):
        stage.load(stage.model, str(tmp_path / "fine"))
    with pytest.raises(SystemExit, match="--stride 3: .* a divisor of the head's patch size 8"):
        train.main(["recon", "--preset", "tiny", "--stride", "3", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_saved_before_an_option_existed_resumes_with_its_default():
    cfg = train.TrainConfig(preset="tiny")
    saved = {k: getattr(cfg, k) for k in train.MODEL_FIELDS if k not in ("stride", "hull_prior")}  # an older run's fields
    train.check_compatible({"stage": "recon", "config": saved}, "recon", cfg)  # no error
    with pytest.raises(SystemExit, match="does not match"):
        train.check_compatible({"stage": "recon", "config": {**saved, "stride": 2}}, "recon", cfg)
