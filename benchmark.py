"""Evaluate a model folder on held-out shards (assets never trained on).

    python benchmark.py eval --model pretrained/zoetrope4d-cpu-small --data shards/v1/val --out runs/eval

For each held-out clip (its orbit ring plus extra views rendered by Blender):
  recon       the Gaussian head alone, given the ground-truth ring views: PSNR/SSIM at the extra (held-out) views;
  video-to-4D ring view 0's frames -> the diffusion model -> the head: PSNR/SSIM at the extra views;
  text-to-4D  the clip's caption -> the diffusion model -> the head: multi-view consistency, i.e. PSNR of the
              Gaussians re-rendered at the generated views against the generated images (no ground truth).
Images are compared over a white background, at the data's resolution. Prints a Markdown table, writes
OUT/eval.json (per clip and means) and, for each clip, OUT/<key>.png (rows: truth, recon, video-to-4D).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from data.cameras import rotate_about_up
from data.stream import Subset, make_dataset
from recon.losses import composite, psnr, ssim
from recon.render import render_views


def scores(rendered: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of images [..., 3, H, W] in [0, 1]."""
    return {"psnr": psnr(rendered, truth).item(), "ssim": ssim(rendered, truth).item()}


def render_at(gaussians, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gaussians [1, F, N] rendered at cameras c2w [1, V, F, 4, 4], K [1, V, 3, 3] over white: [1, V, F, 3, H, W]."""
    with torch.no_grad():
        return render_views(gaussians, c2w, K, *size, background=1.0).rgb.clamp(0, 1)


def evaluate_clip(pipeline, head, sample: dict, ring: int, steps: int, seed: int) -> tuple[dict, torch.Tensor]:
    """The three evaluations of one held-out clip; returns (metrics, comparison rows [3, V_extra, 3, H, W] at frame 0)."""
    rgb = composite(sample["images"], 1.0)  # [1, V, F, 3, H, W] over white
    c2w, K, size = sample["c2w"], sample["K"], rgb.shape[-2:]
    held_out = slice(ring, None)
    metrics, clock = {}, time.perf_counter()

    with torch.no_grad():
        recon = head(rgb[:, :ring], c2w[:, :ring], K[:, :ring])  # [1, F, N]
    recon_views = render_at(recon, c2w[:, held_out], K[:, held_out], size)
    metrics["recon"] = scores(recon_views, rgb[:, held_out])

    # video-to-4D: the pipeline puts view 0 at azimuth 0, so turn the stored cameras until theirs is too.
    meta = sample["meta"][0]
    generator = torch.Generator().manual_seed(seed)
    gen = pipeline(sample["caption"][0], video=rgb[0, 0], num_views=ring, num_frames=rgb.shape[2], height=size[0], width=size[1], elevation=meta["elevations"][0],
                   num_inference_steps=steps, generator=generator, progress=False)
    with torch.no_grad():
        video4d = head(gen.images[None], gen.c2w[None], gen.K[None])  # [1, F, N]
    aligned = rotate_about_up(c2w[:, held_out], -meta["azimuths"][0])  # [1, E, F, 4, 4]
    video_views = render_at(video4d, aligned, K[:, held_out], size)
    metrics["video_to_4d"] = scores(video_views, rgb[:, held_out])

    text = pipeline(sample["caption"][0], num_views=ring, num_frames=rgb.shape[2], height=size[0], width=size[1], elevation=meta["elevations"][0],
                    num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), progress=False)
    with torch.no_grad():
        text4d = head(text.images[None], text.c2w[None], text.K[None])
    metrics["text_to_4d_consistency"] = scores(render_at(text4d, text.c2w[None], text.K[None], size), text.images[None])
    metrics["seconds"] = round(time.perf_counter() - clock, 2)
    rows = torch.stack([rgb[0, held_out, 0], recon_views[0, :, 0], video_views[0, :, 0]])  # [3, E, 3, H, W]
    return metrics, rows


def mean_of(results: list[dict]) -> dict:
    """Per task and metric, the mean over clips."""
    tasks = [k for k in results[0] if isinstance(results[0][k], dict)]
    return {t: {m: sum(r[t][m] for r in results) / len(results) for m in results[0][t]} for t in tasks}


def run_eval(args) -> dict:
    import infer

    infer.check_model_folder(args.model)
    pipeline, head = infer.load_models(args.model, torch.device("cpu"))
    data = make_dataset(args.data, batch_size=1, shuffle=0, subset=Subset(views=args.views, random=False))
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for sample in data:
        metrics, rows = evaluate_clip(pipeline, head, sample, args.views, args.steps, args.seed)
        results.append({"key": sample["key"][0], "caption": sample["caption"][0], **metrics})
        save_rows(rows, args.out / f"{sample['key'][0]}.png")
        print(f"{sample['key'][0]}: " + ", ".join(f"{t} {metrics[t]['psnr']:.2f} dB" for t in metrics if t != "seconds"))
        if len(results) == args.max_clips:
            break
    if not results:
        raise SystemExit(f"no held-out clips in {args.data}")
    summary = {"model": str(args.model), "data": str(args.data), "clips": len(results), "steps": args.steps,
               "mean": mean_of(results), "per_clip": results}
    (args.out / "eval.json").write_text(json.dumps(summary, indent=1))
    return summary


def save_rows(rows: torch.Tensor, path: Path) -> None:
    """Rows of images [R, C, 3, H, W] in [0, 1] as one PNG."""
    from PIL import Image

    R, C, _, H, W = rows.shape
    grid = rows.permute(0, 3, 1, 4, 2).reshape(R * H, C * W, 3)
    Image.fromarray((grid * 255).round().byte().numpy()).save(path)


def markdown(summary: dict) -> str:
    """The mean scores as a Markdown table."""
    lines = ["| task | PSNR (dB) | SSIM |", "|---|---|---|"]
    for task, m in summary["mean"].items():
        lines.append(f"| {task} | {m['psnr']:.2f} | {m['ssim']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python benchmark.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="score a model folder on held-out shards")
    ev.add_argument("--model", type=Path, required=True)
    ev.add_argument("--data", required=True, help="held-out shards (e.g. shards/v1/val)")
    ev.add_argument("--out", type=Path, default=Path("runs/eval"))
    ev.add_argument("--views", type=int, default=4, help="ring views given to the models")
    ev.add_argument("--steps", type=int, default=20, help="denoising steps")
    ev.add_argument("--max-clips", type=int, default=8)
    ev.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        summary = run_eval(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{summary['clips']} held-out clips, {summary['steps']} denoising steps")
    print(markdown(summary))


if __name__ == "__main__":
    main()
