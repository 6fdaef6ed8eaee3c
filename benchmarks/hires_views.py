"""Gaussians made from 64 px views, seen at a higher resolution: scored at the held-out cameras against Blender's renders
of the same clips at that resolution, for several smoothing widths (`Gaussians.smoothed`, infer.py's `--smoothing`).

    python -m data.build --gltf-dir DIR --out runs/hires256 --size 256 --max-clips 1 --orbits 1 --gltf-val-fraction 0 --val-assets '*'
    python -m benchmarks.hires_views --low 'shards/v2/val/[!p]*.tar' --high 'runs/hires256/val/*.tar' --smoothing 0 0.5 0.75 1

DIR holds (links to) validation assets' files. The build seeds cameras, lighting and poses by asset, clip and orbit
alone, so the high-resolution shards show the low-resolution clips of the same keys: the cameras are checked to match
and the agreement of the high-resolution truth, averaged down, with the low-resolution one is printed per clip.
Three sets of Gaussians per clip, made from the low-resolution views: the head from the true ring views, the same
refined as `infer.py --multiview` refines, and video-to-4D as infer.py makes it (seed 0). Each is rendered at the
high resolution, smoothed by each width (in pixels of the low-resolution views), and scored (PSNR/SSIM over white).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import infer
from benchmark import feed_forward, load_models
from data.cameras import pixel_size_at_origin
from data.cli import non_negative_float, positive_int
from data.images import composite
from evaluation.heldout import Selection, held_out_cameras, held_out_samples
from evaluation.metrics import scores
from evaluation.paired import variant_means
from recon.render import render_views

def samples(pattern: str, ring: int) -> dict[str, dict]:
    """Every sample of shards `pattern` (batches of one, every view in order, the first `ring` the ring) by key."""
    every_clip = Selection(pattern, ring, max_clips=sys.maxsize)
    return {sample["key"][0]: sample for sample in held_out_samples(every_clip)}


def gaussian_sets(pipeline, head, low: dict, ring: int) -> dict[str, tuple]:
    """name -> (Gaussians [1, F, N], held-out c2w [1, E, F, 4, 4], K [1, E, 3, 3]) made from a low-resolution sample
    whose first `ring` views are the ring (the models' input) and the others the held-out views."""
    rgb, c2w, K = composite(low["images"], 1.0)[0, :ring], low["c2w"][0, :ring], low["K"][0, :ring]  # the true ring views
    held_out = (low["c2w"][:, ring:], low["K"][:, ring:])
    sets = {}
    for name, steps in (("head", 0), ("head+refine", infer.refine_steps_for(None, given=True))):
        sets[name] = (infer.reconstruct(head, rgb, c2w, K, steps, progress=False).map(lambda t: t[None]), *held_out)
    sets["video-to-4D"] = (feed_forward(pipeline, head, low, "video", ring, 0, 20)[1],
                           *held_out_cameras(low, ring))
    return sets


def score_clip(pipeline, head, low: dict, high: dict, widths: list[float], ring: int) -> dict[str, dict]:
    """'set@width' -> PSNR/SSIM of that set, smoothed by `width` low-resolution pixels, at the high resolution."""
    if not torch.allclose(low["c2w"], high["c2w"], atol=1e-4):
        raise ValueError(f"{low['key'][0]}: the two shard sets' cameras differ (built with other settings or seeds?)")
    truth = composite(high["images"][:, ring:], 1.0)  # [1, E, F, 3, h, w]
    size, pixel = truth.shape[-2:], pixel_size_at_origin(low["c2w"][0, :ring], low["K"][0, :ring], low["images"].shape[-1])
    result = {}
    for name, (gaussians, c2w, K) in gaussian_sets(pipeline, head, low, ring).items():
        for width in widths:
            with torch.no_grad():
                rgb = render_views(gaussians.smoothed(width * pixel), c2w, K, *size, background=1.0).rgb.clamp(0, 1)
            result[f"{name}@{width:g}"] = scores(rgb, truth)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hires_views", description=__doc__.split("\n\n")[0])
    p.add_argument("--low", required=True, help="validation shards at the models' resolution (a glob)")
    p.add_argument("--high", required=True, help="the same clips rendered at a higher resolution (a glob)")
    p.add_argument("--smoothing", type=non_negative_float, nargs="+", default=[0.0, 0.75], help="widths in low-resolution pixels")
    p.add_argument("--views", type=positive_int, default=4, help="ring views given to the models; the shards' others are held out")
    p.add_argument("--model", type=Path, default=infer.DEFAULT_MODEL)
    args = p.parse_args(argv)
    pipeline, head = load_models(args.model, torch.device("cpu"))
    low, rows = samples(args.low, args.views), []
    for key, high in samples(args.high, args.views).items():
        if key not in low:
            raise SystemExit(f"error: {key} of --high is not in --low")
        truth_high = composite(high["images"], 1.0)[0]  # [V, F, 3, h, w]
        factor = truth_high.shape[-1] // low[key]["images"].shape[-1]
        agreement = scores(F.avg_pool2d(truth_high.flatten(0, 1), factor), composite(low[key]["images"], 1.0)[0].flatten(0, 1))
        rows.append(score_clip(pipeline, head, low[key], high, args.smoothing, args.views))
        print(f"{key} (truth averaged down vs low: {agreement['psnr']:.1f} dB) "
              + " ".join(f"{k} {v['psnr']:.2f}/{v['ssim']:.3f}" for k, v in rows[-1].items()), flush=True)
    print(f"\n| set @ smoothing (pixels) | PSNR | SSIM | PSNR above the first width on |\n|---|---|---|---|")
    first_width = lambda name: name.split("@")[0] + f"@{args.smoothing[0]:g}"  # noqa: E731  the same set, first width
    for name, (mean, better) in variant_means(rows, first_width).items():
        print(f"| {name} | {mean['psnr']:.2f} | {mean['ssim']:.3f} | {better} of {len(rows)} |")


if __name__ == "__main__":
    main()
