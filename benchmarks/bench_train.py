"""Training throughput per stage and preset through the real train.py loop (data, loss, backward, AdamW, EMA).

    python -m benchmarks.bench_train --data shards/demo/train [--stages diffusion recon] [--presets tiny cpu-small]
    python -m benchmarks.bench_train --data SHARDS --stages diffusion --presets base --batch-size 4 --grad-checkpointing
    python -m benchmarks.bench_train --data shards/v2/train --stages recon --presets cpu-small --hull-prior [--stride 1]

Runs 2 x --steps optimiser steps per stage and preset into a temporary folder, and reports the second half
(the first half absorbs start-up): samples/s, image tokens/s (V x F x H/p x W/p per sample, H and W the data's)
and, on CUDA (bf16), the peak allocated memory, the forward GFLOP of one sample through the stage's network (counted on
the device by FlopCounterMode; the renderer's kernels are not counted) and the model FLOP utilisation: 3 x those
FLOPs x samples/s, against --peak-tflops.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile

import torch

import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="training shards (64x64 renders for the cpu-small presets)")
    p.add_argument("--stages", nargs="+", default=list(train.STAGES), choices=train.STAGES)
    p.add_argument("--presets", nargs="+", default=["tiny", "cpu-small"], choices=sorted(train.TRAIN_PRESETS))
    p.add_argument("--steps", type=int, default=4, help="measured steps (as many again warm up)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in the backward pass")
    p.add_argument("--hull-prior", action="store_true", help="recon stage: the head with the visual-hull prior (recon/hull.py)")
    p.add_argument("--stride", type=int, default=0, help="recon stage: one Gaussian per stride x stride pixels (0: the preset's)")
    p.add_argument("--num-workers", type=int, default=1, help="data loader workers")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100 and H200 SXM: 989)")
    return p.parse_args(argv)


def sample_shape(stage: str, preset: str, cfg: train.TrainConfig) -> tuple[int, int, int, int]:
    """(V, F, H, W): the views, frames and image size one training sample carries through the stage's network."""
    from data.stream import make_loader
    from model.presets import PRESETS

    images = next(iter(make_loader(cfg.data, batch_size=1, shuffle=0)))["images"]  # [1, V, F, 4, H, W], all of them
    _, views, frames, _, H, W = images.shape
    if stage == "diffusion":
        grid = PRESETS[preset].grid
        return cfg.views or grid.num_views, cfg.frames or grid.num_frames, H, W
    return cfg.views or 4, cfg.frames or frames, H, W  # the recon stage: 4 input views, every frame by default


def tokens_per_sample(stage: str, preset: str, shape: tuple[int, int, int, int]) -> int:
    """Image tokens a sample carries through the network: views x frames x patches."""
    from model.presets import PRESETS
    from recon.head import HEAD_PRESETS

    p = PRESETS[preset].dit.patch_size if stage == "diffusion" else HEAD_PRESETS[preset]["patch_size"]
    V, F, H, W = shape
    return V * F * (H // p) * (W // p)


def flops_per_sample(stage: str, cfg: train.TrainConfig, shape: tuple[int, int, int, int], device: torch.device) -> int:
    """Forward FLOPs of one sample of `shape` through the stage's network as `cfg` builds it (the head with its hull
    prior and stride options), counted on `device`."""
    from benchmarks.bench_model import count, forward_flops
    from data.cameras import intrinsics_from_fov, orbit_c2w, ring_azimuths
    from model.presets import Grid

    V, F, H, W = shape
    if stage == "diffusion":
        return count(cfg.preset, device, Grid(V, F, H, W))[1]
    with device:
        head = train.recon_head(cfg)  # the network only: no loss modules (LPIPS) built to count FLOPs
    c2w = orbit_c2w(torch.full((V,), 15.0), ring_azimuths(V), 2.0, F)[None].to(device)  # [1, V, F, 4, 4]
    K = intrinsics_from_fov(40.0).expand(1, V, 3, 3).to(device)
    images = torch.rand(1, V, F, 3, H, W, device=device)
    return forward_flops(lambda: head(images, c2w, K), device)


def measure(stage: str, cfg: train.TrainConfig, steps: int, peak_tflops: float) -> dict[str, float | str]:
    """samples/s and tokens/s of 2 x `steps` optimiser steps of `cfg` (the second half); peak GB and MFU on CUDA."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        rate = train.train(stage, dataclasses.replace(cfg, out=out, steps=2 * steps, log_every=steps))["samples_per_s"]
    shape = sample_shape(stage, cfg.preset, cfg)
    result = {"samples/s": f"{rate:.2f}", "tokens/s": f"{rate * tokens_per_sample(stage, cfg.preset, shape):.0f}",
              "peak GB": "-", "GFLOP": "-", "MFU": "-"}
    if cuda:
        result["peak GB"] = f"{torch.cuda.max_memory_allocated() / 1e9:.1f}"
        flops = flops_per_sample(stage, cfg, shape, torch.device("cuda"))
        result["GFLOP"] = f"{flops / 1e9:.0f}"  # forward, per sample: the base DiT's is 85,900 at its own grid
        result["MFU"] = f"{3 * flops * rate / (peak_tflops * 1e12):.1%}"
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device}; batch {args.batch_size}, gradient checkpointing {'on' if args.grad_checkpointing else 'off'}")
    print(f"{'stage':<10} {'preset':<10} {'samples/s':>10} {'tokens/s':>10} {'peak GB':>8} {'GFLOP':>8} {'MFU':>6}")
    for stage in args.stages:
        for preset in args.presets:
            cfg = train.TrainConfig(preset=preset, data=args.data, batch_size=args.batch_size, grad_checkpointing=args.grad_checkpointing,
                                    hull_prior=args.hull_prior and stage == "recon", stride=args.stride if stage == "recon" else 0,
                                    save_every=10**9, val_every=10**9,
                                    sample_every=10**9, num_workers=args.num_workers)
            r = measure(stage, cfg, args.steps, args.peak_tflops)
            print(f"{stage:<10} {preset:<10} {r['samples/s']:>10} {r['tokens/s']:>10} {r['peak GB']:>8} {r['GFLOP']:>8} "
                  f"{r['MFU']:>6}", flush=True)


if __name__ == "__main__":
    main()
