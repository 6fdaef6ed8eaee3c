"""Benchmark the MultiViewVideoDiT presets: parameters, forward FLOPs per sample, forward and forward+backward speed.

    python -m benchmarks.bench_model                      # every preset, on CUDA if available, else the CPU
    python -m benchmarks.bench_model --presets cpu-small --device cpu --batch 2 --iters 3

FLOPs are counted by torch's FlopCounterMode on the meta device (no compute; a multiply-add is 2 FLOPs; the
attention products are counted through SDPA's math decomposition), for one sample with L = 64 text tokens.
A preset whose forward pass would take longer than --max-seconds (estimated from the FLOP rate of the presets
measured before it) is not timed. CUDA runs in bf16 autocast, the CPU in fp32.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from data.cameras import intrinsics_from_fov, orbit_c2w, ring_azimuths
from layers import attention as attention_module
from model.presets import PRESETS, Grid, build_dit

TEXT_TOKENS = 64  # the text encoder's default max_length


def dummy_inputs(grid: Grid, batch: int, text_dim: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random model inputs for `batch` samples of `grid`: noisy images, orbit cameras, times, text states."""
    V, F, H, W = grid.num_views, grid.num_frames, grid.height, grid.width
    c2w = orbit_c2w(torch.full((V,), 15.0), ring_azimuths(V), 2.0, F)  # [V, F, 4, 4]
    inputs = dict(
        sample=torch.randn(batch, V, F, 3, H, W),
        timestep=torch.full((batch,), 500.0),
        cond_images=torch.zeros(batch, V, F, 3, H, W),
        cond_mask=torch.zeros(batch, V, F, dtype=torch.bool),
        c2w=c2w.expand(batch, -1, -1, -1, -1),
        K=intrinsics_from_fov(40.0).expand(batch, V, 3, 3),
        times=torch.linspace(0, 1, F).expand(batch, F),
        text_states=torch.randn(batch, TEXT_TOKENS, text_dim),
        text_mask=torch.ones(batch, TEXT_TOKENS, dtype=torch.bool),
    )
    return {k: v.to(device) for k, v in inputs.items()}


def forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    args = dict(inputs)
    return model(args.pop("sample"), args.pop("timestep"), **args)


def forward_flops(fn, device: torch.device) -> int:
    """FLOPs of one call fn() (FlopCounterMode: matrix products, convolutions, attention), without gradients and,
    on CUDA, in bf16 autocast as training runs there (the count does not depend on the dtype). Attention goes through
    SDPA while counting: FlopCounterMode sees no FLOPs inside xformers' custom operator."""
    bf16 = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with mock.patch.object(attention_module, "_xformers_ops", lambda: None):
        with torch.no_grad(), bf16, FlopCounterMode(display=False) as counter:
            fn()
    return counter.get_total_flops()


def count(name: str, device: torch.device = torch.device("meta"), grid: Grid | None = None) -> tuple[int, int]:
    """(parameters, forward FLOPs for one sample) of preset `name` at `grid` (default: the preset's own), counted
    on `device`: the meta device computes nothing; on CUDA one real forward pass runs."""
    with device:
        model = build_dit(name)
    inputs = dummy_inputs(grid or PRESETS[name].grid, 1, model.config.text_dim, device)
    return sum(p.numel() for p in model.parameters()), forward_flops(lambda: forward(model, inputs), device)


def seconds_per_call(fn, iters: int, device: torch.device, min_seconds: float = 1.0) -> float:
    """Mean wall time of fn() over at least `iters` calls and `min_seconds`, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    fn()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < iters or time.perf_counter() - start < min_seconds:
        fn()
        sync()
        calls += 1
    return (time.perf_counter() - start) / calls


def matmul_flops_per_second(device: torch.device, size: int = 1024) -> float:
    """Dense fp32 (CPU) or bf16 (CUDA) matmul throughput: an upper bound on what a model reaches."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / seconds_per_call(lambda: a @ a, 3, device, min_seconds=0.5)


def measure(name: str, device: torch.device, batch: int, iters: int, checkpointing: bool) -> tuple[float, float]:
    """(forward, forward+backward) samples per second of preset `name` at `batch` samples a call."""
    model = build_dit(name).to(device)
    if checkpointing:
        model.enable_gradient_checkpointing()
    inputs = dummy_inputs(PRESETS[name].grid, batch, model.config.text_dim, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def fwd():
        with torch.no_grad(), autocast:
            forward(model, inputs)

    def fwd_bwd():
        with autocast:
            loss = forward(model, inputs).float().square().mean()
        loss.backward()

    return batch / seconds_per_call(fwd, iters, device), batch / seconds_per_call(fwd_bwd, iters, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2, help="samples per timed call")
    parser.add_argument("--iters", type=int, default=3, help="timed calls after one warm-up")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (1: faster on a busy machine)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute blocks in the backward pass")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip timing a preset whose forward would take longer")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    name_of = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name_of}); forward FLOPs per sample with {TEXT_TOKENS} text tokens")
    peak = matmul_flops_per_second(device)
    print(f"dense matmul: {peak / 1e9:.0f} GFLOP/s (a forward pass at that rate is the fastest possible)")
    for name in args.presets:
        params, flops = count(name)
        grid = PRESETS[name].grid
        print(f"{name}: {params / 1e6:.2f} M params, {flops / 1e9:.3g} GFLOP/sample forward "
              f"({grid.num_views} views x {grid.num_frames} frames at {grid.height}x{grid.width})")
        batch = args.batch if flops * args.batch / peak < args.max_seconds else 1
        if flops / peak > args.max_seconds:
            print(f"  not timed: a forward pass would take more than {flops / peak:.0f} s here")
            continue
        fwd, fwd_bwd = measure(name, device, batch, args.iters, args.gradient_checkpointing)
        print(f"  forward {fwd:.3g} samples/s ({flops * fwd / 1e9:.0f} GFLOP/s), "
              f"forward+backward {fwd_bwd:.3g} samples/s ({3 * flops * fwd_bwd / 1e9:.0f} GFLOP/s), batch {batch}")


if __name__ == "__main__":
    main()
