"""Training throughput per stage and preset through the real train.py loop (data, loss, backward, AdamW, EMA).

    python benchmarks/bench_train.py --data shards/demo/train [--stages diffusion recon] [--presets tiny cpu-small]

Runs 2 x --steps optimiser steps per stage and preset into a temporary folder, and reports the second half
(the first half absorbs start-up): samples/s, image tokens/s (V x F x H/p x W/p per sample) and, on CUDA,
the model FLOP utilisation (3 x forward FLOPs per sample, against --peak-tflops).
"""
from __future__ import annotations

import argparse
import tempfile

import torch

import train


def tokens_per_sample(stage: str, preset: str, cfg: train.TrainConfig) -> int:
    """Image tokens a sample carries through the model: views x frames x patches."""
    if stage == "diffusion":
        from model.presets import PRESETS

        p, grid = PRESETS[preset].dit.patch_size, PRESETS[preset].grid
        return (cfg.views or grid.num_views) * (cfg.frames or grid.num_frames) * grid.height * grid.width // p**2
    from recon.head import HEAD_PRESETS

    return (cfg.views or 4) * (cfg.frames or 8) * 64 * 64 // HEAD_PRESETS[preset]["patch_size"] ** 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="training shards (64x64 renders for the cpu-small presets)")
    p.add_argument("--stages", nargs="+", default=list(train.STAGES))
    p.add_argument("--presets", nargs="+", default=["tiny", "cpu-small"])
    p.add_argument("--steps", type=int, default=4, help="measured steps (as many again warm up)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100 SXM: 989)")
    args = p.parse_args()

    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device}")
    print(f"{'stage':<10} {'preset':<10} {'samples/s':>10} {'tokens/s':>10} {'MFU':>6}")
    for stage in args.stages:
        for preset in args.presets:
            with tempfile.TemporaryDirectory() as out:
                cfg = train.TrainConfig(
                    preset=preset, data=args.data, out=out, steps=2 * args.steps, batch_size=args.batch_size,
                    log_every=args.steps, save_every=10**9, val_every=10**9, sample_every=10**9, num_workers=1,
                )
                metrics = train.train(stage, cfg)
            rate = metrics["samples_per_s"]
            mfu = "-"
            if torch.cuda.is_available() and stage == "diffusion":
                from benchmarks.bench_model import count

                mfu = f"{3 * count(preset)[1] * rate / (args.peak_tflops * 1e12):.1%}"
            print(f"{stage:<10} {preset:<10} {rate:>10.2f} {rate * tokens_per_sample(stage, preset, cfg):>10.0f} {mfu:>6}")


if __name__ == "__main__":
    main()
