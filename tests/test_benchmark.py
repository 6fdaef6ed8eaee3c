"""benchmark.py eval, compare, score and report: score model folders, the SDS baselines and any method's .ply files
on held-out shards (tiny model, synthetic shards; one compare sweep per module, shared by the tests that read it)."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import benchmark
from data.cameras import ring_azimuths
from data.record import SampleRecord
from data.shards import encode_sample, sample_key, write_shard
from evaluation.heldout import spread
from evaluation.report import (BLOCK_BEGIN, BLOCK_END, COLUMNS, all_reached, crossing, read_results, readme_files, summarise,
                               tables, with_readme_block)
from recon.synthetic import synthetic_clip


@pytest.mark.blender
def test_eval_scores_every_task_on_held_out_clips(tiny_model, demo_shards, tmp_path, capsys):
    benchmark.main(["eval", "--model", str(tiny_model), "--data", str(demo_shards / "val"), "--out", str(tmp_path / "eval"), "--steps", "1"])
    summary = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert summary["clips"] == 1 and summary["per_clip"][0]["key"].startswith("QuaterniusWolf")
    mean = summary["mean"]
    for task in ("recon", "video_to_4d", "image_to_4d", "empty_render"):
        assert 0 < mean[task]["psnr"] < 60 and -1 <= mean[task]["ssim"] <= 1
    assert 0 < mean["text_to_4d"]["consistency_psnr"] < 100 and 0 <= mean["text_to_4d"]["consistency_psnr_masked"] <= 100
    for task in ("video_to_4d", "image_to_4d", "text_to_4d"):
        assert 0 <= mean[task]["silhouette_iou"] <= 1 and mean[task]["motion_ratio"] >= 0 and mean[task]["seam_ratio"] > 0
        assert 0 <= mean[task]["coverage"] <= 1
    assert mean["truth"]["motion"] > 0  # the wolf's clip moves
    for task in ("recon", "video_to_4d", "image_to_4d"):  # geometry at the held-out views, against Blender's depth
        assert 0 <= mean[task]["ghosting"] <= 1 and 0 < mean[task]["depth_error"] < 5
        assert summary["margin_over_empty"][task]["psnr"] == pytest.approx(mean[task]["psnr"] - mean["empty_render"]["psnr"])
    assert summary["per_asset"]["QuaterniusWolf"]["recon"]["psnr"] == pytest.approx(mean["recon"]["psnr"])  # one asset
    assert (tmp_path / "eval" / f"{summary['per_clip'][0]['key']}.png").is_file()  # the wolf's signature clip (its gallop)
    printed = capsys.readouterr().out
    assert "| recon |" in printed and "SSIM over empty" in printed and "| QuaterniusWolf |" in printed


@pytest.mark.blender
def test_eval_head_only_scores_the_head_alone_with_the_same_numbers(tiny_model, demo_shards, tmp_path, capsys):
    common = ["eval", "--model", str(tiny_model), "--data", str(demo_shards / "val"), "--steps", "1"]
    benchmark.main([*common, "--out", str(tmp_path / "all")])
    benchmark.main([*common, "--head-only", "--out", str(tmp_path / "head")])
    full, head = (json.loads((tmp_path / name / "eval.json").read_text()) for name in ("all", "head"))
    assert set(head["mean"]) == {"empty_render", "truth", "recon"}  # no diffusion task was run
    assert head["mean"]["recon"] == pytest.approx(full["mean"]["recon"])  # the head's scores do not depend on the flag
    assert "| recon |" in capsys.readouterr().out


@pytest.mark.blender
def test_eval_refines_the_head_as_infer_multiview_does_unless_told_not_to(tiny_model, demo_shards, tmp_path):
    common = ["eval", "--model", str(tiny_model), "--data", str(demo_shards / "val"), "--head-only"]
    benchmark.main([*common, "--refine-steps", "0", "--out", str(tmp_path / "head")])
    benchmark.main([*common, "--out", str(tmp_path / "default")])
    head, default = (json.loads((tmp_path / name / "eval.json").read_text()) for name in ("head", "default"))
    assert (head["refine_steps"], default["refine_steps"]) == (0, None)  # None: infer.py's default, recorded as asked
    assert default["mean"]["recon"]["psnr"] != head["mean"]["recon"]["psnr"]  # the head's Gaussians were refined
    assert default["mean"]["empty_render"] == head["mean"]["empty_render"]


def test_eval_without_data_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(SystemExit, match="no shards found"):
        benchmark.main(["eval", "--model", str(tiny_model), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output folder, no temporary one left


def write_synthetic_set(out: Path, val_asset: str = "spheres", more_assets: tuple[str, ...] = (), size: int = 16) -> Path:
    """A data set without Blender: val/<asset>.tar for val_asset and each of more_assets, each holding one synthetic clip
    (2 ring views at elevation 10 + 2 extra views, 3 frames, size x size: 16 is the tiny model's grid), and a manifest
    whose train split holds another asset."""
    elevations = torch.tensor([10.0, 10.0, 30.0, -5.0])
    azimuths = torch.cat([ring_azimuths(2, offset=30.0), torch.tensor([75.0, 200.0])])
    for seed, asset in enumerate((val_asset, *more_assets)):
        torch.manual_seed(seed)
        clip = synthetic_clip(elevations, azimuths, num_frames=3, size=size, num_spheres=3, points_per_sphere=60)
        images = (clip["images"][0].permute(0, 1, 3, 4, 2) * 255).round().byte().numpy()  # [V, F, H, W, 4]
        meta = {"caption": clip["caption"][0], "c2w": clip["c2w"][0].tolist(), "K": clip["K"][0].tolist(),
                "times": clip["times"][0].tolist(), "orbit_views": 2, "elevations": elevations.tolist(), "azimuths": azimuths.tolist()}
        write_shard(out / "val" / f"{asset}.tar", [encode_sample(sample_key(asset, 0, 0), images, SampleRecord(**meta))])
    manifest = {"assets": {a: {"split": "val"} for a in (val_asset, *more_assets)} | {"trained-thing": {"split": "train"}}}
    (out / "manifest.json").write_text(json.dumps(manifest))  # "train" wins a clash
    return out


def compare_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["compare", "--model", str(model), "--data", str(data / "val"), "--train-manifest", str(data / "manifest.json"),
            "--out", str(out), "--views", "2", "--steps", "1", "--sds-iters", "2", "--sds-gaussians", "100", "--quiet", *extra]


@pytest.fixture(scope="module")
def sweep(tiny_model, tmp_path_factory):
    """One compare sweep on two held-out assets: both SDS recipes, budgets 2 and 1 (given out of order), seeds 0 and 1,
    every result's .ply files saved."""
    root = tmp_path_factory.mktemp("sweep")
    data = write_synthetic_set(root / "data", "spheres", ("blobs",))
    benchmark.main(compare_args(tiny_model, data, root / "out", "--sds-iters", "2", "1", "--seeds", "0", "1", "--sds-recipe",
                                "offsets", "dg4d", "--max-clips", "2", "--save-gaussians", "--clip-model", str(root / "no-clip")))
    return data, root / "out"


def test_sweep_writes_one_row_per_method_budget_seed_and_clip(sweep):
    _, out = sweep
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    found = sorted((r["key"], r["method"], r["iters"] or 0, r["seed"] if r["seed"] is not None else -1) for r in rows)
    expected = sorted([(k, "empty_render", 0, -1) for k in ("spheres__c000__o00", "blobs__c000__o00")]
                      + [(k, m, i, s) for k in ("spheres__c000__o00", "blobs__c000__o00") for s in (0, 1)
                         for m, i in (("feed_forward", 0), ("sds_offsets", 1), ("sds_offsets", 2), ("sds_dg4d", 1), ("sds_dg4d", 2))])
    assert found == expected
    assert {r["asset"] for r in rows} == {"spheres", "blobs"} and {r["task"] for r in rows} == {"video"}
    assert all(r["coverage"] == 0 if r["method"] == "empty_render" else 0 < r["coverage"] <= 1 for r in rows)
    assert len(list(csv.DictReader((out / "results.csv").open()))) == len(rows)
    assert results["command"].startswith("python benchmark.py compare") and "--sds-iters 2 1" in results["command"]
    assert len(results["commit"]) == 40 and results["machine"]["cores"] >= 1 and results["date"][:2] == "20"
    assert results["options"]["budgets"] == [1, 2] and results["options"]["recipes"] == ["offsets", "dg4d"]
    by = {(r["key"], r["method"], r["iters"], r["seed"]): r for r in rows}
    for key in ("spheres__c000__o00", "blobs__c000__o00"):
        for seed in (0, 1):  # checkpoints of one run: the budget-2 snapshot comes later than the budget-1 one
            assert 0 < by[key, "sds_offsets", 1, seed]["seconds"] < by[key, "sds_offsets", 2, seed]["seconds"]
        assert by[key, "feed_forward", None, 0]["psnr"] > 0 and by[key, "empty_render", None, None]["seconds"] is None
    for name in ("compare.md", "quality_vs_seconds.png", "spheres__c000__o00_video.mp4", "blobs__c000__o00_video.mp4"):
        assert (out / name).is_file(), name
    table = (out / "compare.md").read_text()
    assert "| video | sds_dg4d | 2 | 4 |" in table and "| video | feed_forward |  | 4 |" in table  # 2 clips x 2 seeds
    assert "| blobs | video |" in table  # per-asset means


@pytest.mark.parametrize("folder, method, iters", [("feed_forward-seed0", "feed_forward", None), ("sds_offsets-2-seed0", "sds_offsets", 2)])
def test_score_of_a_methods_plys_reproduces_compare(sweep, tmp_path, folder, method, iters, capsys):
    data, out = sweep
    budget = ["--iters", str(iters)] if iters else []
    benchmark.main(["score", "--method", method, *budget, "--gaussians", str(out / "gaussians" / "video" / folder),
                    "--data", str(data / "val"), "--train-manifest", str(data / "manifest.json"), "--views", "2",
                    "--max-clips", "2", "--out", str(tmp_path / "score"), "--clip-model", str(tmp_path / "no-clip")])
    compared = {r["key"]: r for r in json.loads((out / "results.json").read_text())["rows"]
                if r["method"] == method and r["iters"] == iters and r["seed"] == 0}
    scored = json.loads((tmp_path / "score" / "results.json").read_text())["rows"]
    assert sorted(r["key"] for r in scored) == sorted(compared) and all(r["iters"] == iters for r in scored)
    for row in scored:
        for column in ("psnr", "psnr_masked", "ssim", "ssim_masked", "flicker_error"):
            assert row[column] == pytest.approx(compared[row["key"]][column], abs=1e-3), column
    assert f"{method} " in capsys.readouterr().out


def test_report_merges_results_files_and_draws_the_plot(sweep, tmp_path, capsys):
    _, out = sweep
    benchmark.main(["report", str(out / "results.json"), "--plot", str(tmp_path / "plot.png")])
    printed = capsys.readouterr().out
    assert "`python benchmark.py compare" in printed and "| video | sds_offsets | 1 | 4 |" in printed
    assert "video-to-4D, PSNR (dB): sds_offsets" in printed  # reaches the feed-forward quality, or says it never does
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    headers, rows = read_results([out / "results.json", out / "results.json"])  # the second copy adds nothing
    assert len(rows) == 22 and headers[1]["repeated"] == 22
    assert math.isnan(next(r for r in rows if r["method"] == "empty_render")["seconds"])


def test_a_method_run_on_fewer_clips_is_compared_on_those_clips_only():
    def row(key, method, iters, psnr):
        return {"key": key, "asset": key, "task": "video", "method": method, "iters": iters, "seed": 0,
                **dict.fromkeys(COLUMNS, math.nan), "psnr": psnr, "seconds": 10.0 if iters is None else float(iters)}
    rows = [row("a", "feed_forward", None, 30.0), row("b", "feed_forward", None, 10.0), row("a", "sds_x", 100, 25.0)]
    text = tables(rows)  # the mean over both clips (20 dB) would say SDS reaches it; on clip a (30 dB) it never does
    assert "(1 clip) video-to-4D, PSNR (dB): sds_x never reaches the feed-forward 30" in text


def test_report_rewrites_the_readme_block_from_the_files_it_names(sweep, tmp_path, capsys):
    _, out = sweep
    shutil.copy(out / "results.json", tmp_path / "sweep.json")
    before, after = "# Title\n\nSome text.\n", "\n## Next\n\nMore text.\n"
    readme = tmp_path / "README.md"
    readme.write_text(f"{before}{BLOCK_BEGIN} sweep*.json -->\nan old table\n{BLOCK_END}\n{after}")
    benchmark.main(["report", "--readme", str(readme)])
    text = readme.read_text()
    assert "an old table" not in text and "| video | sds_offsets | 1 | 4 |" in text
    assert text.startswith(before) and text.endswith(after)  # nothing outside the block changed
    assert "rewrote the benchmark block" in capsys.readouterr().out
    benchmark.main(["report", "--readme", str(readme)])
    assert readme.read_text() == text  # regenerating from the same files changes nothing


@pytest.mark.parametrize("content, message", [
    ("# no block here\n", "no generated block"),
    (f"{BLOCK_END}\n{BLOCK_BEGIN} *.json -->\n", "no generated block"),  # the end line before the begin line
    (f"{BLOCK_BEGIN} missing/*.json -->\n{BLOCK_END}\n", "matches no file"),
])
def test_report_refuses_a_readme_without_a_usable_block(tmp_path, content, message):
    readme = tmp_path / "README.md"
    readme.write_text(content)
    with pytest.raises(SystemExit, match=message):
        benchmark.main(["report", "--readme", str(readme)])
    assert readme.read_text() == content


def test_the_readme_comparison_is_generated_from_the_committed_results():
    """Every number of the README's comparison traces back to a results file under benchmarks/results/."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    files = readme_files(text, root)
    assert all(f.resolve().is_relative_to(root / "benchmarks" / "results") for f in files)
    _, rows = read_results(files)
    assert with_readme_block(text, tables(rows)) == text, "README out of date: python benchmark.py report --readme README.md"


@pytest.mark.parametrize("problem, message", [
    ("missing", "spheres__c000__o00 not found"),
    ("frames", "holds 2 .ply file(s)"),
    ("malformed", "is not a 3DGS .ply"),
])
def test_score_refuses_a_folder_that_breaks_the_naming_rule(sweep, tmp_path, problem, message, capsys):
    data, out = sweep
    plys = shutil.copytree(out / "gaussians" / "video" / "feed_forward-seed0", tmp_path / "plys")
    if problem == "missing":
        shutil.rmtree(plys / "spheres__c000__o00")
    elif problem == "frames":
        (plys / "spheres__c000__o00" / "frame_002.ply").unlink()
    else:
        (plys / "spheres__c000__o00" / "frame_001.ply").write_text("ply\nnot really\n")
    with pytest.raises(SystemExit) as exit:
        benchmark.main(["score", "--method", "x", "--gaussians", str(plys), "--data", str(data / "val"), "--train-manifest",
                        str(data / "manifest.json"), "--views", "2", "--max-clips", "2", "--out", str(tmp_path / "score")])
    assert exit.value.code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "score").exists()


def test_compare_scores_every_task(tiny_model, tmp_path, capsys):
    data = write_synthetic_set(tmp_path / "data")
    benchmark.main(compare_args(tiny_model, data, tmp_path / "out", "--tasks", "video", "image", "text",
                                "--sds-iters", "1", "--clip-model", str(tmp_path / "no-clip")))
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["task"], r["method"]) for r in rows) == sorted(
        [(t, m) for t in ("video", "image", "text") for m in ("feed_forward", "sds_offsets")] + [("video", "empty_render"), ("image", "empty_render")])
    assert all((out / f"spheres__c000__o00_{t}.mp4").is_file() for t in ("video", "image", "text"))
    by = {(r["task"], r["method"]): r for r in rows}
    assert math.isfinite(float(by["video", "sds_offsets"]["psnr"])) and by["text", "sds_offsets"]["psnr"] == ""  # no truth for text
    assert math.isfinite(float(by["text", "feed_forward"]["consistency_psnr"])) and by["text", "sds_offsets"]["consistency_psnr"] == ""
    assert all(0 < float(by["text", m]["coverage"]) <= 1 for m in ("feed_forward", "sds_offsets"))  # text's one common measure
    assert all(float(r["seconds"]) > 0 and float(r["peak_mb"]) > 0 for r in rows if r["method"] != "empty_render")
    printed = capsys.readouterr().out
    assert "| text | feed_forward |" in printed and "CLIP score skipped" in printed and "FVD skipped" in printed


def test_compare_refines_the_feed_forward_row_as_infer_does_unless_told_not_to(tiny_model, tmp_path):
    data = write_synthetic_set(tmp_path / "data")
    results = {}
    for name, extra in (("default", []), ("head", ["--refine-steps", "0"])):
        benchmark.main(compare_args(tiny_model, data, tmp_path / name, "--sds-iters", "1", *extra,
                                    "--clip-model", str(tmp_path / "no-clip")))
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert (results["default"]["options"]["refine_steps"], results["head"]["options"]["refine_steps"]) == (None, 0)
    psnr = {name: [r["psnr"] for r in res["rows"] if r["method"] == "feed_forward"] for name, res in results.items()}
    assert psnr["default"] != psnr["head"]  # the default row was refined against the given video


def test_compare_refuses_a_validation_set_sharing_an_asset_with_training(tiny_model, tmp_path):
    data = write_synthetic_set(tmp_path / "data", val_asset="trained-thing")
    with pytest.raises(SystemExit, match="shares 1 asset.*trained-thing"):
        benchmark.main(compare_args(tiny_model, data, tmp_path / "out"))


@pytest.mark.parametrize("problem, message", [
    ("empty", "no shards found"), ("missing", "no shards found"),
    ("no-budget", "--sds-iters: must be at least 1, got '0'"), ("negative-budget", "--sds-iters: must be at least 1, got '-5'"),
])
def test_compare_bad_input_is_a_clear_error(tiny_model, tmp_path, problem, message, capsys):
    data = write_synthetic_set(tmp_path / "data")
    args = compare_args(tiny_model, data, tmp_path / "out")
    if problem == "empty":
        (data / "val" / "spheres.tar").unlink()
    elif problem == "missing":
        args[args.index("--data") + 1] = str(tmp_path / "nowhere")
    else:
        args[args.index("--sds-iters") + 1: args.index("--sds-iters") + 2] = ["100", "0" if problem == "no-budget" else "-5"]
    with pytest.raises(SystemExit):
        benchmark.main(args)
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*out*"))  # nothing written, no temporary folder left


def test_max_clips_spreads_over_assets_then_clips_then_orbits():
    keys = [sample_key("stag", c, o) for c in range(3) for o in range(2)] + [sample_key("ball", 0, o) for o in range(2)]
    keys.append(sample_key("wolf", 0, 0))
    assert spread(keys, 4) == ["ball__c000__o00", "stag__c000__o00", "wolf__c000__o00", "stag__c001__o00"]
    assert spread(keys, 6)[4:] == ["stag__c002__o00", "ball__c000__o01"]  # second orbits only after every clip's first
    assert spread(keys, 10, per_asset=1) == ["ball__c000__o00", "stag__c000__o00", "wolf__c000__o00"]


def summary_rows(points: dict[int | None, tuple[float, float]]) -> list[dict]:
    """One clip's rows: feed-forward (None) and SDS budgets -> (PSNR, seconds)."""
    return [{"key": "a__c000__o00", "asset": "a", "task": "video", "method": "feed_forward" if iters is None else "sds_offsets",
             "iters": iters, "seed": 0, **dict.fromkeys(COLUMNS, math.nan), "psnr": psnr, "seconds": seconds}
            for iters, (psnr, seconds) in points.items()]


def summary_of(points: dict[int | None, tuple[float, float]]) -> dict:
    return summarise(summary_rows(points))


def test_crossing_gives_the_first_budget_at_feed_forward_quality_and_the_speed_ratio_there():
    reached = crossing(summary_of({None: (16.0, 10.0), 100: (15.0, 100.0), 1000: (17.0, 1000.0)}), "video", "sds_offsets")
    # 16 dB lies halfway (in quality) between 100 s and 1000 s: about 316 s on the log scale, 32x the feed-forward time
    assert "first reaches the feed-forward 16 at 1000 iterations" in reached and "about 316 s, 32x" in reached
    never = crossing(summary_of({None: (16.0, 10.0), 100: (14.0, 100.0), 300: (15.5, 300.0)}), "video", "sds_offsets")
    assert "never reaches the feed-forward 16 within 300 iterations (best 15.5 at 300)" in never and "30x" in never
    below_empty = summarise([*summary_rows({None: (16.0, 10.0), 100: (17.0, 100.0)}), {**summary_rows({None: (18.0, 0.0)})[0],
                                                                                        "method": "empty_render"}])
    assert "no better than the empty render's 18" in crossing(below_empty, "video", "sds_offsets")


def test_sampling_options_override_the_saved_defaults_only_when_given(tiny_model):
    chosen, _ = benchmark.load_models(tiny_model, torch.device("cpu"), benchmark.Sampling(sampler="ode"))
    saved, _ = benchmark.load_models(tiny_model, torch.device("cpu"))
    assert chosen.defaults.sampler == "ode" and saved.defaults.sampler == "stochastic"
    with pytest.raises(SystemExit):  # argparse refuses names that are not samplers
        benchmark.main(["eval", "--model", str(tiny_model), "--data", "x", "--sampler", "euler"])


def test_sds_reaches_the_feed_forward_only_when_every_measure_does():
    rows = summary_rows({None: (16.0, 10.0), 100: (17.0, 100.0), 300: (17.5, 300.0)})
    for row, ssim, masked in zip(rows, (0.7, 0.4, 0.8), (8.0, 9.0, 9.0)):  # SDS at 100: better PSNR, worse SSIM
        row.update(ssim=ssim, psnr_masked=masked)
    assert "first at 300 iterations, 300 s, 30x the feed-forward time" in all_reached(summarise(rows), "video", "sds_offsets")
    rows[2]["ssim"] = 0.5
    assert "not as good as the feed-forward on PSNR (dB), SSIM, masked PSNR (dB) together at any budget up to 300" in all_reached(
        summarise(rows), "video", "sds_offsets")


def test_hires_views_scores_low_resolution_gaussians_against_the_same_clips_rendered_larger(tiny_model, tmp_path, capsys):
    from benchmarks import hires_views

    low, high = write_synthetic_set(tmp_path / "low"), write_synthetic_set(tmp_path / "high", size=32)  # the same clip
    hires_views.main(["--model", str(tiny_model), "--views", "2", "--low", str(low / "val" / "*.tar"),
                      "--high", str(high / "val" / "*.tar"), "--smoothing", "0", "0.75"])
    out = capsys.readouterr().out
    agreement = float(out.split("truth averaged down vs low: ")[1].split(" dB")[0])
    assert agreement > 15  # the same scene and cameras (less alike than Blender's: the splat renderer's blur is in pixels)
    rows = [line for line in out.splitlines() if line.startswith("| ") and "@" in line][1:]  # after the header
    assert [r.split(" | ")[0] for r in rows] == [f"| {s}@{w}" for s in ("head", "head+refine", "video-to-4D") for w in ("0", "0.75")]
    for row in rows:
        assert 5 < float(row.split(" | ")[1]) < 60  # a PSNR of Gaussians against the larger truth
    other = write_synthetic_set(tmp_path / "other", val_asset="cubes")
    with pytest.raises(SystemExit, match="is not in --low"):  # a clip the low-resolution set does not hold
        hires_views.main(["--model", str(tiny_model), "--views", "2", "--low", str(low / "val" / "*.tar"),
                          "--high", str(other / "val" / "*.tar")])
