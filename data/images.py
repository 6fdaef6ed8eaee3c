"""Image helpers shared by every package: compositing straight-alpha RGBA over a background, object masks of images
over white, and motion.

The motion score of a clip is the mean absolute change of its RGB over white between consecutive frames: 0 for a
still clip, about 0.016 for the walking and swimming clips of the shipped data set at 64x64. The data build stores
it per clip (`motion` in the sample JSON), the diffusion model may be conditioned on it (model/dit.py), and the
benchmark compares generated motion with the truth's (evaluation/metrics.py).
"""
from __future__ import annotations

import torch


def composite(rgba: torch.Tensor, background: torch.Tensor | float) -> torch.Tensor:
    """RGB [..., 3, H, W] of straight-alpha RGBA [..., 4, H, W] over a background (a float, or [..., 3])."""
    background = torch.as_tensor(background, dtype=rgba.dtype, device=rgba.device)
    background = background[..., None, None] if background.ndim else background
    alpha = rgba[..., 3:, :, :]
    return rgba[..., :3, :, :] * alpha + background * (1.0 - alpha)


def object_mask(rgb: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """bool [..., 1, H, W]: pixels of images [..., 3, H, W] over white that differ from white by more than threshold
    (generated views carry no alpha: the object is whatever is not the background)."""
    return (1.0 - rgb).amax(dim=-3, keepdim=True) > threshold


def frame_change(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute frame-to-frame change of images [..., F, C, H, W] (0 for a still clip; needs F >= 2)."""
    if frames.ndim < 4 or frames.shape[-4] < 2:
        raise ValueError(f"frame_change: need images [..., F >= 2, C, H, W], got {tuple(frames.shape)}")
    return (frames[..., 1:, :, :, :] - frames[..., :-1, :, :, :]).abs().mean()


def motion_score(rgba: torch.Tensor) -> float:
    """The motion score of a clip's RGBA views [V, F, 4, H, W] in [0, 1]: frame_change of its RGB over white (0 for
    a single frame)."""
    return float(frame_change(composite(rgba.float(), 1.0))) if rgba.shape[-4] > 1 else 0.0
