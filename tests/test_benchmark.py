"""benchmark.py eval and compare: score model folders (and the SDS baseline) on held-out shards."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

import benchmark
from data.cameras import ring_azimuths
from data.record import SampleRecord
from data.shards import encode_sample, sample_key, write_shard
from recon.synthetic import synthetic_clip


@pytest.mark.blender
def test_eval_scores_every_task_on_held_out_clips(tiny_model, demo_shards, tmp_path, capsys):
    benchmark.main(["eval", "--model", str(tiny_model), "--data", str(demo_shards / "val"), "--out", str(tmp_path / "eval"), "--steps", "1"])
    summary = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert summary["clips"] == 1 and summary["per_clip"][0]["key"].startswith("QuaterniusWolf")
    mean = summary["mean"]
    for task in ("recon", "video_to_4d", "empty_render"):
        assert 0 < mean[task]["psnr"] < 60 and -1 <= mean[task]["ssim"] <= 1
    assert 0 < mean["text_to_4d"]["consistency_psnr"] < 100 and 0 <= mean["text_to_4d"]["consistency_psnr_masked"] <= 100
    for task in ("video_to_4d", "text_to_4d"):
        assert 0 <= mean[task]["silhouette_iou"] <= 1 and mean[task]["motion_ratio"] >= 0 and mean[task]["seam_ratio"] > 0
    assert mean["truth"]["motion"] > 0  # the wolf's clip moves
    for task in ("recon", "video_to_4d"):  # geometry at the held-out views, against Blender's depth
        assert 0 <= mean[task]["ghosting"] <= 1 and 0 < mean[task]["depth_error"] < 5
    assert (tmp_path / "eval" / f"{summary['per_clip'][0]['key']}.png").is_file()  # the wolf's signature clip (its gallop)
    assert "| recon |" in capsys.readouterr().out


def test_eval_without_data_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(SystemExit, match="no shards found"):
        benchmark.main(["eval", "--model", str(tiny_model), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output folder, no temporary one left


def write_synthetic_set(out: Path, val_asset: str = "spheres") -> Path:
    """A data set without Blender: val/<val_asset>.tar holding one synthetic clip (2 ring views at elevation 10 + 2 extra
    views, 3 frames, 16x16, the tiny model's grid) and a manifest whose train split holds another asset."""
    elevations = torch.tensor([10.0, 10.0, 30.0, -5.0])
    azimuths = torch.cat([ring_azimuths(2, offset=30.0), torch.tensor([75.0, 200.0])])
    clip = synthetic_clip(elevations, azimuths, num_frames=3, size=16, num_spheres=3, points_per_sphere=60)
    images = (clip["images"][0].permute(0, 1, 3, 4, 2) * 255).round().byte().numpy()  # [V, F, H, W, 4]
    meta = {"caption": clip["caption"][0], "c2w": clip["c2w"][0].tolist(), "K": clip["K"][0].tolist(),
            "times": clip["times"][0].tolist(), "orbit_views": 2, "elevations": elevations.tolist(), "azimuths": azimuths.tolist()}
    write_shard(out / "val" / f"{val_asset}.tar", [encode_sample(sample_key(val_asset, 0, 0), images, SampleRecord(**meta))])
    manifest = {"assets": {val_asset: {"split": "val"}, "trained-thing": {"split": "train"}}}  # "train" wins a clash
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def compare_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["compare", "--model", str(model), "--data", str(data / "val"), "--train-manifest", str(data / "manifest.json"),
            "--out", str(out), "--views", "2", "--steps", "1", "--sds-iters", "2", "--sds-gaussians", "100", "--quiet", *extra]


def test_compare_writes_table_csv_plot_and_videos(tiny_model, tmp_path, capsys):
    data = write_synthetic_set(tmp_path / "data")
    benchmark.main(compare_args(tiny_model, data, tmp_path / "out", "--tasks", "video", "image", "text",
                                "--clip-model", str(tmp_path / "no-clip")))
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert len(rows) == 3 * 2  # (video, image, text) x (feed-forward, SDS)
    for name in ("compare.md", "quality_vs_seconds.png", *(f"spheres__c000__o00_{t}.mp4" for t in ("video", "image", "text"))):
        assert (out / name).is_file(), name
    by = {(r["task"], r["method"]): r for r in rows}
    assert math.isfinite(float(by["video", "sds"]["psnr"])) and math.isnan(float(by["text", "sds"]["psnr"]))  # no truth for text
    assert math.isfinite(float(by["text", "feed_forward"]["consistency_psnr"])) and math.isnan(float(by["text", "sds"]["consistency_psnr"]))
    assert all(float(r["seconds"]) > 0 and float(r["peak_mb"]) > 0 for r in rows)
    printed = capsys.readouterr().out
    assert "| video | sds |" in printed and "video-to-4D: SDS takes" in printed and "text-to-4D: SDS takes" in printed
    assert "CLIP score skipped" in printed and "FVD skipped" in printed


def test_compare_refuses_a_validation_set_sharing_an_asset_with_training(tiny_model, tmp_path):
    data = write_synthetic_set(tmp_path / "data", val_asset="trained-thing")
    with pytest.raises(SystemExit, match="shares 1 asset.*trained-thing"):
        benchmark.main(compare_args(tiny_model, data, tmp_path / "out"))


@pytest.mark.parametrize("problem, message", [("empty", "no shards found"), ("missing", "no shards found"), ("no-budget", "--sds-iters: must be at least 1")])
def test_compare_bad_input_is_a_clear_error(tiny_model, tmp_path, problem, message, capsys):
    data = write_synthetic_set(tmp_path / "data")
    args = compare_args(tiny_model, data, tmp_path / "out")
    if problem == "empty":
        (data / "val" / "spheres.tar").unlink()
    elif problem == "missing":
        args[args.index("--data") + 1] = str(tmp_path / "nowhere")
    else:
        args[args.index("--sds-iters") + 1] = "0"
    with pytest.raises(SystemExit):
        benchmark.main(args)
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*out*"))  # nothing written, no temporary folder left


def test_sampler_option_overrides_the_saved_default_only_when_given(tiny_model):
    import argparse

    chosen, _ = benchmark.load_models(argparse.Namespace(model=tiny_model, sampler="ode"), torch.device("cpu"))
    saved, _ = benchmark.load_models(argparse.Namespace(model=tiny_model, sampler=None), torch.device("cpu"))
    assert chosen.defaults.sampler == "ode" and saved.defaults.sampler == "stochastic"
    with pytest.raises(SystemExit):  # argparse refuses names that are not samplers
        benchmark.main(["eval", "--model", str(tiny_model), "--data", "x", "--sampler", "euler"])
