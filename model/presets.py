"""Named model presets as data: a transformer size, the grid it is trained on, and the scheduler's noise shift.

Forward FLOPs per sample (a multiply-add is 2) are about depth * V*F*N * (44 D^2 + 4 (N + V*N + F + L) D), with
N = H*W/p^2 tokens per image and L = 64 text tokens: 22 D^2 weights per token and block (spatial, cross-view and
cross-frame attention 4 D^2 each, text queries and output 2 D^2, MLP 8 D^2) plus the attention products.
benchmarks/bench_model.py counts them exactly (FlopCounterMode) and measures speed:

  preset     params  GFLOP/sample (fwd)  grid
  tiny       0.14 M  0.015               2 views x 2 frames, 16x16, D=32, depth 2, p=4 (tests)
  cpu-small  7.5 M   24.6                4 views x 8 frames, 64x64, D=192, depth 6, p=8 (the shipped default)
  base       209 M   85,900              8 views x 16 frames, 256x256, D=768, depth 12, p=8 (GPU nodes; the
                                         8192-token cross-view attention is half of it)

cpu-small is sized for about two hours of training on this 2-core CPU (~120 GFLOP/s fp32 matmul): forward +
backward is ~74 GFLOP a sample, measured at 0.46-0.66 samples/s (34-49 GFLOP/s) on ONE core of this machine while
others were busy, so ~1.2-1.5 samples/s on two free cores: ~9-11k samples, ~2.5k steps of batch 4, in two hours,
enough for a small curated set of animated assets. 64x64 with p=8 gives N=64 tokens an image, 2048 a sample; p=4 or twice the width would cost 4x and
leave too few steps. 4 x 8 is the smallest grid that still shows an orbit (views 90 degrees apart) and a motion.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from diffusers import FlowMatchEulerDiscreteScheduler

from model.dit import MultiViewVideoDiT


@dataclass(frozen=True)
class DiTSize:
    """The transformer's size: MultiViewVideoDiT's arguments that presets set."""

    hidden_size: int  # width D
    depth: int  # number of blocks
    num_heads: int  # attention heads
    patch_size: int  # p: pixels per patch side


@dataclass(frozen=True)
class Grid:
    """The sample a model is trained on and generates by default."""

    num_views: int  # V, on a ring of evenly spaced azimuths
    num_frames: int  # F
    height: int  # H, pixels
    width: int  # W, pixels


@dataclass(frozen=True)
class Preset:
    """A named model size, the grid it is trained on and its noise schedule's shift."""

    dit: DiTSize
    grid: Grid
    noise_shift: float  # the flow-matching scheduler's shift: >1 spends more steps at high noise (higher resolutions)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(DiTSize(32, 2, 2, 4), Grid(2, 2, 16, 16), noise_shift=1.0),  # tests
    "cpu-small": Preset(DiTSize(192, 6, 6, 8), Grid(4, 8, 64, 64), noise_shift=1.0),  # the shipped default
    # GPU nodes: 256x256 has 16x the pixels of 64x64, so by simple diffusion's rule the SNR should drop by 16: shift 4.
    "base": Preset(DiTSize(768, 12, 12, 8), Grid(8, 16, 256, 256), noise_shift=4.0),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; ValueError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def build_dit(name: str, text_dim: int = 384, **overrides) -> MultiViewVideoDiT:
    """A freshly initialised MultiViewVideoDiT of preset `name` (overrides: any other constructor argument)."""
    return MultiViewVideoDiT(**asdict(get_preset(name).dit), text_dim=text_dim, **overrides)


def build_scheduler(name: str) -> FlowMatchEulerDiscreteScheduler:
    """The flow-matching scheduler of preset `name`, in its training state."""
    return FlowMatchEulerDiscreteScheduler(shift=get_preset(name).noise_shift)
