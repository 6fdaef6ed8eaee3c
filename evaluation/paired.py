"""Paired comparison of `benchmark.py eval` results: the same held-out clips scored by two models, clip by clip.

    python -m evaluation.paired runs/eval-v3/eval.json runs/eval-v4/eval.json [more eval.json ...]

The first file is the baseline; each result is named by its folder. For each measure and each other file: both means, the mean difference (positive:
better, whichever way the measure points), on how many clips the model is better, and a 90% interval of the mean
difference from a bootstrap over assets (clips of one asset are not independent draws, so whole assets are
resampled). A mean moved by one clip shows as a wide interval and a low count. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaluation.heldout import asset_of

# (task, metric, +1 if higher is better else -1): what issues 14, 15 and 16 judge a model by
MEASURES = (
    ("recon", "psnr", 1), ("recon", "ssim", 1), ("recon", "depth_error", -1), ("recon", "ghosting", -1),
    ("video_to_4d", "psnr", 1), ("video_to_4d", "ssim", 1), ("video_to_4d", "silhouette_iou", 1),
    ("video_to_4d", "motion_ratio", 1), ("video_to_4d", "seam_ratio", -1), ("video_to_4d", "depth_error", -1),
    ("video_to_4d", "ghosting", -1), ("image_to_4d", "psnr", 1), ("image_to_4d", "ssim", 1), ("image_to_4d", "ghosting", -1),
    ("text_to_4d", "consistency_psnr_masked", 1), ("text_to_4d", "silhouette_iou", 1),
    ("text_to_4d", "motion_ratio", 1), ("text_to_4d", "seam_ratio", -1),
)


def per_clip(summary: dict, task: str, metric: str) -> dict[str, float]:
    """{clip key: value} of one measure in an eval.json summary, NaN values left out."""
    values = {r["key"]: r.get(task, {}).get(metric, math.nan) for r in summary["per_clip"]}
    return {key: value for key, value in values.items() if not math.isnan(value)}


def bootstrap_interval(diffs: dict[str, float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """5th and 95th percentiles of the mean of per-clip differences {key: diff}, resampling whole assets."""
    assets = sorted({asset_of(k) for k in diffs})
    groups = [np.array([d for k, d in diffs.items() if asset_of(k) == a]) for a in assets]  # one array per asset
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        means.append(np.concatenate(picked).mean())
    return float(np.percentile(means, 5)), float(np.percentile(means, 95))


def compare(base: dict, new: dict, task: str, metric: str, sign: int) -> dict | None:
    """Means, signed mean difference (positive: `new` better), clips better and the bootstrap interval of one measure;
    None if no clip has it in both. ValueError if the two were scored on different clips."""
    a, b = per_clip(base, task, metric), per_clip(new, task, metric)
    if {r["key"] for r in base["per_clip"]} != {r["key"] for r in new["per_clip"]}:
        raise ValueError(f"{base['model']} and {new['model']} were scored on different clips; run eval with the same "
                         "--data, --max-clips and --clips-per-asset")
    keys = sorted(a.keys() & b.keys())
    if not keys:
        return None
    diffs = {k: sign * (b[k] - a[k]) for k in keys}
    low, high = bootstrap_interval(diffs)
    return {"base": float(np.mean([a[k] for k in keys])), "new": float(np.mean([b[k] for k in keys])),
            "gain": float(np.mean(list(diffs.values()))), "better": sum(d > 0 for d in diffs.values()), "clips": len(keys),
            "interval": (low, high)}


def variant_means(rows: list[dict[str, dict]], base: str | Callable[[str], str], metrics: tuple[str, ...] = ("psnr", "ssim")) -> dict[str, tuple]:
    """Variants of the same clips, scored per clip as rows [{variant: {metric: value}}]: per variant, its mean of each
    metric and on how many clips its PSNR is above that of the variant `base` (a name, or a function of the name)."""
    base_of = base if callable(base) else lambda name: base
    return {name: ({m: float(np.mean([r[name][m] for r in rows])) for m in metrics},
                   sum(r[name]["psnr"] > r[base_of(name)]["psnr"] for r in rows)) for name in rows[0]}


def table(base: dict, others: dict[str, dict]) -> str:
    """The Markdown table of every measure for each model {label: summary} against the baseline."""
    lines = ["| measure | model | baseline | model's | gain (90% interval) | clips better |", "|---|---|---|---|---|---|"]
    for task, metric, sign in MEASURES:
        for label, other in others.items():
            row = compare(base, other, task, metric, sign)
            if row is not None:
                low, high = row["interval"]
                lines.append(f"| {task} {metric}{'' if sign > 0 else ' (lower is better)'} | {label} | "
                             f"{row['base']:.3f} | {row['new']:.3f} | {row['gain']:+.3f} ({low:+.3f}, {high:+.3f}) | "
                             f"{row['better']} of {row['clips']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m evaluation.paired", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="eval.json files, the baseline first")
    args = p.parse_args(argv)
    if len(args.results) < 2:
        p.error("give the baseline's eval.json and at least one other")
    missing = [str(path) for path in args.results if not path.is_file()]
    if missing:
        p.error(f"not found: {', '.join(missing)} (benchmark.py eval writes OUT/eval.json)")
    # a result is named by its folder (eval's --out), which says more than the model path: the same model may be
    # scored with different sampling options
    summaries = {path.parent.name: json.loads(path.read_text()) for path in args.results}
    if len(summaries) < len(args.results):
        p.error("two results files share a folder name; name each eval's --out differently")
    (_, base), *others = summaries.items()
    try:
        print(table(base, dict(others)))
    except ValueError as err:
        p.error(str(err))


if __name__ == "__main__":
    main()
