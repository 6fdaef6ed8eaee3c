"""Evaluate a model folder on held-out shards (assets never trained on).

    python benchmark.py eval --model pretrained/zoetrope4d-cpu-small --data shards/v1/val --out runs/eval

For each held-out clip (its orbit ring plus extra views rendered by Blender):
  recon       the Gaussian head alone, given the ground-truth ring views: PSNR/SSIM at the extra (held-out) views;
  video-to-4D ring view 0's frames -> the diffusion model -> the head: PSNR/SSIM at the extra views;
  text-to-4D  the clip's caption -> the diffusion model -> the head: multi-view consistency, i.e. PSNR of the
              Gaussians re-rendered at the generated views against the generated images (no ground truth).
Recon and video-to-4D are also scored for geometry at the extra views: ghosting, the share of rendered opacity
outside the true silhouette (ghost copies, floaters), and, where the shards carry Blender's depth, the mean
absolute depth error inside the true silhouette (normalised object units, the object's radius is 0.5).
Images are compared over a white background, at the data's resolution. Prints a Markdown table, writes
OUT/eval.json (per clip and means) and, for each clip, OUT/<key>.png (rows: truth, recon, video-to-4D).

    python benchmark.py compare --model DIR --data shards/v1/val --train-manifest shards/v1/manifest.json \
        --max-clips 2 --sds-iters 200 --out runs/compare

The feed-forward pipeline (diffusion model + Gaussian head) against the SDS baseline (baselines/sds.py, the same
diffusion model as its prior) on the same held-out clips, for video-to-4D (image- and text-to-4D with --tasks):
both scored at the extra views Blender rendered (PSNR, SSIM, each also masked to the object, temporal flicker
error; none of these for text-to-4D), CLIP score and LPIPS where their weights are local (evaluation.learned),
the feed-forward multi-view consistency, and seconds and peak memory per asset. Refuses a validation set that
shares an asset with the training manifest. Writes OUT/compare.md (printed too), OUT/compare.csv (per clip), OUT/quality_vs_seconds.png and, per
clip and task, OUT/<key>_<task>.mp4 (ground truth | feed-forward | SDS at the first extra view).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from data.atomic import atomic_folder
from data.cli import (Failure, UsageError, check_device, check_output, entry_point, finite_float, fraction, non_negative_int,
                      positive_int)
from data.cameras import rotate_about_up
from data.preview import grid_image
from data.stream import Subset, make_dataset, resolve_shards
from evaluation.learned import DEFAULT_CLIP, load_learned_metrics
from evaluation.metrics import (coverage, flicker, geometry_metrics, image_metrics, masked_consistency, measure,
                                motion_ratio, patch_seam_ratio, scores, silhouette_iou)
from model.pipeline import LOOP_OUTPUTS, SAMPLERS
from data.images import composite
from recon.render import render_views


# ----------------------------------------------------------------------------- eval


def render_at(gaussians, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gaussians [1, F, N] rendered at cameras c2w [1, V, F, 4, 4], K [1, V, 3, 3] over white: [1, V, F, 3, H, W]."""
    with torch.no_grad():
        return render_views(gaussians, c2w, K, *size, background=1.0).rgb.clamp(0, 1)


def held_out_scores(gaussians, c2w: torch.Tensor, K: torch.Tensor, sample: dict, views: slice) -> tuple[dict, torch.Tensor]:
    """Gaussians [1, F, N] rendered once at cameras c2w [1, V, F, 4, 4], K [1, V, 3, 3] over white, scored against the
    sample's `views`: PSNR/SSIM, ghosting and (where the shard has Blender's depth) the masked depth error
    (evaluation.metrics.geometry_metrics). Returns (scores, the renders [1, V, F, 3, H, W])."""
    with torch.no_grad():
        rendered = render_views(gaussians, c2w, K, *sample["images"].shape[-2:], background=1.0)
    colour = rendered.rgb.clamp(0, 1)  # [1, V, F, 3, H, W]
    depth = sample["depth"][:, views] if "depth" in sample else None
    truth = composite(sample["images"][:, views], 1.0)
    return scores(colour, truth) | geometry_metrics(rendered, sample["images"][:, views], depth), colour


def held_out_cameras(sample: dict, ring: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The extra (held-out) views' cameras c2w [1, E, F, 4, 4], K [1, E, 3, 3], turned about +Y until ring view 0 sits at
    azimuth 0, where the pipeline (and the SDS baseline) put the view they are given."""
    azimuth = sample["meta"][0]["azimuths"][0]
    return rotate_about_up(sample["c2w"][:, ring:], -azimuth), sample["K"][:, ring:]


def feed_forward(pipeline, head, prompt: str, given: dict, num_views: int, num_frames: int, size, elevation: float,
                 steps: int, seed: int, azimuth: float = 0.0):
    """prompt (+ given image= or video=) -> the diffusion model -> the head: (Generation, Gaussians [1, F, N]).
    The pipeline's saved defaults (sampler, motion, reconstruction loop) apply."""
    gen = pipeline(prompt, **given, num_views=num_views, num_frames=num_frames, height=size[0], width=size[1], elevation=elevation,
                   azimuth=azimuth, num_inference_steps=steps, reconstruct=head.render_back,
                   generator=torch.Generator().manual_seed(seed), progress=False)
    device = next(head.parameters()).device
    with torch.no_grad():
        return gen, head(gen.images[None].to(device), gen.c2w[None].to(device), gen.K[None].to(device))


def generated_measures(images: torch.Tensor, truth_ring: torch.Tensor, patch: int) -> dict[str, float]:
    """What a person sees in generated ring views [V, F, 3, H, W] against the truth's ring RGBA [V, F, 4, H, W] at the
    same cameras: silhouette IoU, motion ratio, patch-seam ratio and coverage."""
    truth_rgb = composite(truth_ring, 1.0)  # [V, F, 3, H, W]
    return {"silhouette_iou": silhouette_iou(images, truth_ring[:, :, 3:]), "motion_ratio": motion_ratio(images, truth_rgb),
            "seam_ratio": patch_seam_ratio(images, patch), "coverage": coverage(images)}


def evaluate_clip(pipeline, head, sample: dict, ring: int, steps: int, seed: int) -> tuple[dict, torch.Tensor]:
    """The evaluations of one held-out clip; returns (metrics, comparison rows [3, V_extra, 3, H, W] at frame 0).

    PSNR/SSIM at the held-out views for the head from the true ring views, video-to-4D and an empty (white) render;
    for the generated ring views (video-to-4D's views 1.. and text-to-4D's, the latter at the clip's own ring
    cameras) silhouette IoU, motion ratio and patch-seam ratio (`generated_measures`); text-to-4D consistency (the
    Gaussians re-rendered at the generated views against them), also masked to the object.
    """
    rgb = composite(sample["images"], 1.0)  # [1, V, F, 3, H, W] over white
    c2w, K, size = sample["c2w"], sample["K"], rgb.shape[-2:]
    held_out, patch = slice(ring, None), pipeline.transformer.config.patch_size
    truth_ring = sample["images"][0, :ring]  # [V, F, 4, H, W]
    metrics, clock = {"empty_render": scores(torch.ones_like(rgb[:, held_out]), rgb[:, held_out])}, time.perf_counter()
    metrics["truth"] = {"seam_ratio": patch_seam_ratio(rgb[0, :ring], patch), "motion": flicker(rgb[0, :ring]).item()}

    with torch.no_grad():
        recon = head(rgb[:, :ring], c2w[:, :ring], K[:, :ring])  # [1, F, N]
    metrics["recon"], recon_views = held_out_scores(recon, c2w[:, held_out], K[:, held_out], sample, held_out)

    caption, F, elevation = sample["caption"][0], rgb.shape[2], sample["meta"][0]["elevations"][0]
    video, video4d = feed_forward(pipeline, head, caption, {"video": rgb[0, 0]}, ring, F, size, elevation, steps, seed)
    video_cameras = held_out_cameras(sample, ring)  # camera-z depth is unchanged by the turn about +Y
    video_scores, video_views = held_out_scores(video4d, *video_cameras, sample, held_out)
    metrics["video_to_4d"] = video_scores | generated_measures(video.images[1:], truth_ring[1:], patch)

    azimuth = sample["meta"][0]["azimuths"][0]  # at the truth's ring cameras, so silhouettes can be compared
    text, text4d = feed_forward(pipeline, head, caption, {}, ring, F, size, elevation, steps, seed, azimuth)
    rerendered = render_at(text4d, text.c2w[None], text.K[None], size)  # [1, V, F, 3, H, W]
    metrics["text_to_4d"] = {**{f"consistency_{k}": v for k, v in scores(rerendered, text.images[None]).items()},
                             "consistency_psnr_masked": masked_consistency(rerendered, text.images[None]),
                             **generated_measures(text.images, truth_ring, patch)}
    metrics["seconds"] = round(time.perf_counter() - clock, 2)
    rows = torch.stack([rgb[0, held_out, 0], recon_views[0, :, 0], video_views[0, :, 0]])  # [3, E, 3, H, W]
    return metrics, rows


SAMPLING_OPTIONS = ("sampler", "motion", "loop_start", "loop_blend", "loop_output")  # overrides of PipelineDefaults


def load_models(args, device: torch.device):
    """infer.load_models of --model, with the sampling options given (--sampler, --loop-*, --motion) as the
    pipeline's defaults."""
    import infer

    infer.check_model_folder(args.model)
    pipeline, head = infer.load_models(args.model, device)
    given = {k: getattr(args, k) for k in SAMPLING_OPTIONS if getattr(args, k, None) is not None}
    pipeline.defaults = replace(pipeline.defaults, **given)  # ValueError on a bad value
    return pipeline, head


def mean_of(results: list[dict]) -> dict:
    """Per task and metric, the mean over clips (NaN values, e.g. masked scores of an empty view, left out)."""
    tasks = [k for k in results[0] if isinstance(results[0][k], dict)]
    means = {}
    for t in tasks:
        values = {m: [r[t][m] for r in results if not math.isnan(r[t][m])] for m in results[0][t]}
        means[t] = {m: sum(v) / len(v) if v else math.nan for m, v in values.items()}
    return means


def run_eval(args) -> dict:
    """`eval`: score the model on held-out clips (recon head, video-to-4D, text-to-4D consistency).

    Writes a PNG per clip and eval.json into --out; returns the summary written there."""
    pipeline, head = load_models(args, torch.device("cpu"))
    data = make_dataset(args.data, batch_size=1, shuffle=0, subset=Subset(views=args.views, random=False))
    args.out.mkdir(parents=True, exist_ok=True)
    results, per_asset = [], {}
    for sample in data:
        asset = asset_of(sample["key"][0])
        if args.clips_per_asset and per_asset.get(asset, 0) >= args.clips_per_asset:
            continue  # spread the clips over assets
        per_asset[asset] = per_asset.get(asset, 0) + 1
        metrics, rows = evaluate_clip(pipeline, head, sample, args.views, args.steps, args.seed)
        results.append({"key": sample["key"][0], "caption": sample["caption"][0], **metrics})
        grid_image(rows).save(args.out / f"{sample['key'][0]}.png")
        print(f"{sample['key'][0]}: " + ", ".join(f"{t} {m['psnr']:.2f} dB" for t, m in metrics.items() if isinstance(m, dict) and "psnr" in m))
        if len(results) == args.max_clips:
            break
    if not results:
        raise Failure(f"no held-out clips in {args.data}")
    summary = {"model": str(args.model), "data": str(args.data), "clips": len(results), "steps": args.steps,
               **{k: getattr(pipeline.defaults, k) for k in SAMPLING_OPTIONS},
               "mean": mean_of(results), "per_clip": results}
    (args.out / "eval.json").write_text(json.dumps(summary, indent=1))
    return summary


EVAL_COLUMNS = ("psnr", "ssim", "consistency_psnr", "consistency_psnr_masked", "silhouette_iou", "motion_ratio",
                "seam_ratio", "coverage", "motion", "depth_error", "ghosting")


def markdown(summary: dict) -> str:
    """The mean scores as a Markdown table (n/a where a measure does not apply to a task); PSNR's margin over the
    empty render beside it, so a result below an empty render is visible."""
    means = summary["mean"]
    empty = means["empty_render"]["psnr"]
    lines = ["| task | " + " | ".join(EVAL_COLUMNS) + " | PSNR over empty |", "|---" * (len(EVAL_COLUMNS) + 2) + "|"]
    for task, m in means.items():
        cells = [cell(m.get(c, math.nan), 2 if "psnr" in c else 3) for c in EVAL_COLUMNS]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {cell(m.get('psnr', math.nan) - empty, 2)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- compare

METHODS = ("feed_forward", "sds")
TRUTH_COLUMNS = ("psnr", "psnr_masked", "ssim", "ssim_masked", "flicker_error")  # against Blender renders
COLUMNS = (*TRUTH_COLUMNS, "consistency_psnr", "clip_score", "lpips", "seconds", "peak_mb")


def asset_of(key: str) -> str:
    """The asset id of a sample key (data.shards.sample_key: asset__cNNN__oNN)."""
    return key.split("__c")[0]


def shard_keys(urls: list[str]) -> set[str]:
    """The sample keys in local tar shards, read from the member names without decoding anything."""
    keys = set()
    for url in urls:
        try:
            with tarfile.open(url) as tar:
                keys |= {name.split(".", 1)[0] for name in tar.getnames()}
        except (tarfile.TarError, OSError):
            raise ValueError(f"shard {url} is not a readable tar file (cut short or not a shard)") from None
    return keys


def check_held_out(data: str, manifest: Path) -> None:
    """Raise ValueError unless `data` holds samples and none of their assets is in the manifest's training split."""
    urls = resolve_shards(data)
    keys = shard_keys(urls)
    if not keys:
        raise ValueError(f"the validation set {data} holds no samples")
    if not manifest.is_file():
        raise ValueError(missing_manifest(manifest))
    trained = {a for a, entry in json.loads(manifest.read_text())["assets"].items() if entry.get("split") == "train"}
    shared = sorted(trained & {asset_of(k) for k in keys})
    if shared:
        raise ValueError(f"the validation set {data} shares {len(shared)} asset(s) with the training split of {manifest}: "
                         f"{', '.join(shared[:5])}; compare on held-out assets only")


def missing_manifest(manifest: Path) -> str:
    """Why --train-manifest is needed and which command writes it."""
    return (f"--train-manifest {manifest} not found: the data build that made the validation shards writes it, e.g. "
            f"`python -m data.build --gltf-dir ../shared/assets --procedural 200 --out {manifest.parent}` (README, Data)")


def compare_clip(pipeline, head, sample: dict, task: str, args, learned) -> tuple[list[dict], torch.Tensor]:
    """Feed-forward and SDS on one held-out clip for `task` ("video", "image" or "text").

    Both are scored at the extra views: against the Blender renders (not for text, which the caption alone cannot
    pin down), by CLIP and LPIPS where `learned` (evaluation.learned.LearnedMetrics) has them, and the feed-forward
    result also by its multi-view consistency (its Gaussians re-rendered at the generated views against those
    images; SDS fits its Gaussians directly, so it has no separate images to be inconsistent with).
    Returns (one row of metrics per method, side-by-side clip [3, F, 3, H, W]: truth | feed-forward | SDS at the
    first extra view).
    """
    from baselines.sds import SDSConfig, distill

    device = next(head.parameters()).device
    rgb = composite(sample["images"], 1.0)  # [1, V, F, 3, H, W] over white
    ring, F, size = args.views, rgb.shape[2], rgb.shape[-2:]
    caption, elevation = sample["caption"][0], sample["meta"][0]["elevations"][0]
    given = {"video": {"video": rgb[0, 0]}, "image": {"image": rgb[0, 0, 0]}, "text": {}}[task]
    (generated, ff), ff_cost = measure(device, feed_forward, pipeline, head, caption, given, ring, F, size, elevation, args.steps, args.seed)
    sds_config = SDSConfig(iters=args.sds_iters, num_gaussians=args.sds_gaussians, views=ring, frames=F, seed=args.seed)
    sds, sds_cost = measure(device, distill, pipeline, caption, **{k: v.to(device) for k, v in given.items()}, elevation=elevation,
                            config=sds_config, progress=not args.quiet)
    c2w, K = (t.to(device) for t in held_out_cameras(sample, ring))  # [1, E, F, 4, 4], [1, E, 3, 3]
    truth = sample["images"][:, ring:]  # [1, E, F, 4, H, W]
    truth_rgb = composite(truth, 1.0) if task != "text" else None  # [1, E, F, 3, H, W] over white; text has no truth
    rerendered = render_at(ff, generated.c2w[None].to(device), generated.K[None].to(device), size).cpu()  # [1, V, F, 3, H, W]
    consistency = {"feed_forward": scores(rerendered, generated.images[None])["psnr"], "sds": math.nan}
    rows, clips = [], [rgb[0, ring]]
    for method, gaussians, cost in (("feed_forward", ff, ff_cost), ("sds", sds[-1].gaussians.map(lambda t: t[None]), sds_cost)):
        views = render_at(gaussians, c2w, K, size).cpu()  # [1, E, F, 3, H, W]
        against = image_metrics(views, truth) if task != "text" else dict.fromkeys(TRUTH_COLUMNS, math.nan)
        learnt = learned.score(views, truth_rgb, caption)
        rows.append({"key": sample["key"][0], "task": task, "method": method, **against,
                     "consistency_psnr": consistency[method], **learnt, **cost})
        clips.append(views[0, 0])
    return rows, torch.stack(clips)  # [3, F, 3, H, W]


def summarise(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (task, method), the mean of every column over clips (NaN-free clips only for the masked ones)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"]), []).append(row)
    means = {}
    for group, members in groups.items():
        values = {c: [m[c] for m in members if not math.isnan(m[c])] for c in COLUMNS}
        means[group] = {c: sum(v) / len(v) if v else math.nan for c, v in values.items()}
    return means


def cell(value: float, digits: int = 3) -> str:
    """A number for the table, or n/a where a score does not apply or was skipped (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def compare_markdown(means: dict, clips: int, sds_iters: int, skipped: list[str]) -> str:
    """The means as a Markdown table (n/a where a score does not apply or was skipped), each task's speed ratio
    (SDS seconds / feed-forward seconds) and quality, and why any learned score was skipped."""
    lines = [f"{clips} held-out clips, SDS {sds_iters} iterations", "",
             "| task | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for (task, method), m in sorted(means.items()):
        lines.append(f"| {task} | {method} | " + " | ".join(cell(m[c]) for c in COLUMNS) + " |")
    lines.append("")
    for task in sorted({t for t, _ in means}):
        ff, sds = means[(task, "feed_forward")], means[(task, "sds")]
        quality = "psnr" if task != "text" else "clip_score"
        lines.append(f"{task}-to-4D: SDS takes {sds['seconds'] / max(ff['seconds'], 1e-9):.1f}x the feed-forward time "
                     f"({quality} {cell(ff[quality], 2)} feed-forward, {cell(sds[quality], 2)} SDS)")
    return "\n".join(lines + [""] + skipped)


def write_csv(rows: list[dict], path: Path) -> None:
    """One line per clip, task and method."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["key", "task", "method", *COLUMNS])
        writer.writeheader()
        writer.writerows(rows)


def plot_quality_vs_seconds(points: list[tuple[str, float, float]], path: Path, size: tuple[int, int] = (480, 320)) -> None:
    """(label, seconds, PSNR dB) points on a log-seconds x-axis, drawn with PIL (no matplotlib here) as a PNG."""
    from PIL import Image, ImageDraw

    W, H, left, bottom, pad = *size, 56, 40, 16
    decades = [math.log10(max(s, 1e-3)) for _, s, _ in points]
    x_lo, x_hi = math.floor(min(decades)), max(math.ceil(max(decades)), math.floor(min(decades)) + 1)
    y_lo, y_hi = math.floor(min(p for *_, p in points)) - 1, math.ceil(max(p for *_, p in points)) + 1
    to_x = lambda s: left + (math.log10(max(s, 1e-3)) - x_lo) / (x_hi - x_lo) * (W - left - pad)  # noqa: E731
    to_y = lambda p: pad + (y_hi - p) / (y_hi - y_lo) * (H - bottom - pad)  # noqa: E731
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(left, pad), (left, H - bottom), (W - pad, H - bottom)], fill="black")
    for k in range(x_lo, x_hi + 1):
        x = to_x(10.0**k)
        draw.line([(x, H - bottom), (x, H - bottom + 4)], fill="black")
        draw.text((x - 10, H - bottom + 6), f"{10.0 ** k:g} s", fill="black")
    for p in (y_lo, (y_lo + y_hi) / 2, y_hi):
        draw.text((4, to_y(p) - 5), f"{p:.1f} dB", fill="black")
    for i, (label, seconds, quality) in enumerate(points):
        x, y, colour = to_x(seconds), to_y(quality), ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")[i % 4]
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
        beside = x + 8 if x < W / 2 else x - 8 - draw.textlength(label)  # labels on the right half go left of the point
        draw.text((beside, y - 6), label, fill=colour)
    draw.text((left + 4, 2), "PSNR at held-out views vs seconds per asset (log)", fill="black")
    image.save(path)


def run_compare(args) -> str:
    """Run both methods on up to --max-clips held-out clips; write the table, CSV, plot and videos into --out.

    Returns the Markdown table."""
    import infer

    check_held_out(args.data, args.train_manifest)
    device = torch.device(args.device)
    pipeline, head = load_models(args, device)
    learned = load_learned_metrics(args.clip_model)
    print("\n".join(learned.skipped))
    data = make_dataset(args.data, batch_size=1, shuffle=0, subset=Subset(views=args.views, random=False))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, clips = [], 0
    for sample in data:
        for task in args.tasks:
            clip_rows, video = compare_clip(pipeline, head, sample, task, args, learned)
            rows += clip_rows
            infer.write_multiview_video(args.out / f"{sample['key'][0]}_{task}.mp4", video)
            print(f"{sample['key'][0]} {task}: " + ", ".join(
                f"{r['method']} {r['psnr']:.2f} dB / consistency {r['consistency_psnr']:.2f} dB in {r['seconds']:.1f} s" for r in clip_rows))
        clips += 1
        if clips == args.max_clips:
            break
    if not rows:
        raise ValueError(f"no held-out clips in {args.data}")
    means = summarise(rows)
    table = compare_markdown(means, clips, args.sds_iters, learned.skipped)
    (args.out / "compare.md").write_text(table + "\n")
    write_csv(rows, args.out / "compare.csv")
    points = [(f"{method} ({task})", m["seconds"], m["psnr"]) for (task, method), m in sorted(means.items()) if task != "text"]
    if points:  # text-to-4D has no PSNR to plot
        plot_quality_vs_seconds(points, args.out / "quality_vs_seconds.png")
    return table


def check_arguments(args: argparse.Namespace) -> None:
    """UsageError for arguments that name nothing usable, before any model is loaded or folder made."""
    import infer

    check_output(args.out)
    if args.command == "compare":
        check_device(args.device)
        if not args.train_manifest.is_file():
            raise UsageError(missing_manifest(args.train_manifest))
    try:
        infer.check_model_folder(args.model)
    except infer.InferError as err:
        raise UsageError(f"--model: {err}") from None


@entry_point
def main(argv=None) -> None:
    """`python benchmark.py {eval,compare} [options]`: run, write --out (replaced only when complete), print the table."""
    p = argparse.ArgumentParser(prog="python benchmark.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="score a model folder on held-out shards")
    ev.add_argument("--model", type=Path, required=True)
    ev.add_argument("--data", required=True, help="held-out shards (e.g. shards/v1/val)")
    ev.add_argument("--out", type=Path, default=Path("runs/eval"))
    ev.add_argument("--views", type=positive_int, default=4, help="ring views given to the models")
    ev.add_argument("--steps", type=positive_int, default=20, help="denoising steps")
    ev.add_argument("--max-clips", type=positive_int, default=8)
    ev.add_argument("--clips-per-asset", type=non_negative_int, default=0, help="at most this many clips of one asset (0: no limit)")
    ev.add_argument("--seed", type=non_negative_int, default=0)
    cmp = sub.add_parser("compare", help="feed-forward against the SDS baseline on held-out shards")
    cmp.add_argument("--model", type=Path, required=True)
    cmp.add_argument("--data", required=True, help="held-out shards (e.g. shards/v1/val)")
    cmp.add_argument("--train-manifest", type=Path, required=True, help="the data set's manifest.json; no val asset may be in its train split")
    cmp.add_argument("--out", type=Path, default=Path("runs/compare"))
    cmp.add_argument("--tasks", nargs="+", choices=("video", "image", "text"), default=["video"])
    cmp.add_argument("--views", type=positive_int, default=4, help="ring views the models generate")
    cmp.add_argument("--steps", type=positive_int, default=20, help="feed-forward denoising steps")
    cmp.add_argument("--sds-iters", type=positive_int, default=200, help="SDS optimisation steps per asset")
    cmp.add_argument("--sds-gaussians", type=positive_int, default=2000, help="SDS Gaussians per frame")
    cmp.add_argument("--max-clips", type=positive_int, default=2)
    cmp.add_argument("--seed", type=non_negative_int, default=0)
    cmp.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    cmp.add_argument("--clip-model", default=DEFAULT_CLIP, help="CLIP for the CLIP score: a local folder or a cached id (skipped if absent)")
    cmp.add_argument("--quiet", action="store_true", help="no SDS progress bar")
    for command in (ev, cmp):
        command.add_argument("--sampler", choices=SAMPLERS, help="the diffusion sampler (default: the model's)")
        command.add_argument("--motion", type=finite_float, help="motion score for motion-conditioned models (default: the model's)")
        command.add_argument("--loop-start", type=fraction, help="reconstruction in the loop from this fraction of the steps")
        command.add_argument("--loop-blend", type=fraction, help="blend of the prediction towards the renders, in [0, 1]")
        command.add_argument("--loop-output", choices=LOOP_OUTPUTS, help="sample or render (default: the model's)")
    args = p.parse_args(argv)
    check_arguments(args)
    try:
        with atomic_folder(args.out) as tmp:  # replaces --out when complete
            run = run_compare if args.command == "compare" else run_eval
            report = run(argparse.Namespace(**{**vars(args), "out": tmp}))
    except ValueError as err:  # no shards, shared assets, an unloadable model (infer.InferError)
        raise Failure(str(err)) from None
    if args.command == "compare":
        print(report)
        return
    print(f"{report['clips']} held-out clips, {report['steps']} denoising steps, {report['sampler']} sampler")
    print(markdown(report))


if __name__ == "__main__":
    main()
