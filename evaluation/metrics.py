"""Image, geometry and cost metrics of the benchmark harness: PSNR/SSIM (also masked to the object), temporal
flicker, depth error against Blender's depth and ghosting (opacity outside the true silhouette), and seconds and
peak memory of a call. PSNR, SSIM and the masked depth error live in recon.losses (one home for each)."""
from __future__ import annotations

import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from data.images import composite, frame_change as flicker, object_mask
from recon.losses import BACKGROUND_ALPHA, SSIM_WINDOW, depth_loss, psnr, ssim, ssim_map
from recon.render import RenderOutput


def scores(rendered: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and SSIM of images [..., 3, H, W] in [0, 1]."""
    return {"psnr": psnr(rendered, truth).item(), "ssim": ssim(rendered, truth).item()}


def masked_psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, capped at 100 like recon.losses.psnr) of images [..., 3, H, W] over the pixels where mask [..., 1, H, W] is True."""
    keep = mask.expand_as(x)
    return psnr(x[keep], y[keep])


def masked_ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images [..., 3, H, W] over the window centres where mask [..., 1, H, W] is True (NaN if none)."""
    values = ssim_map(x, y)  # [M, 3, H - 10, W - 10]
    r = SSIM_WINDOW // 2  # the valid convolution drops r pixels on each side
    centres = mask.reshape(-1, *mask.shape[-3:])[..., r:-r, r:-r].expand_as(values)
    return values[centres].mean()


def flicker_error(rendered: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|flicker(rendered) - flicker(truth)| of clips [..., F, 3, H, W]: too much or too little change over time."""
    return (flicker(rendered) - flicker(truth)).abs()


def image_metrics(rendered: torch.Tensor, truth_rgba: torch.Tensor) -> dict[str, float]:
    """Every image metric of renders [..., F, 3, H, W] over white against ground-truth RGBA [..., F, 4, H, W].

    Masked metrics count only the object (ground-truth alpha > 0.5).
    """
    truth, mask = composite(truth_rgba, 1.0), truth_rgba[..., 3:, :, :] > 0.5
    return {**scores(rendered, truth), "psnr_masked": masked_psnr(rendered, truth, mask).item(),
            "ssim_masked": masked_ssim(rendered, truth, mask).item(), "flicker_error": flicker_error(rendered, truth).item()}


def ghosting(alpha: torch.Tensor, true_alpha: torch.Tensor, margin: int = 1) -> torch.Tensor:
    """The share of rendered opacity, alpha [..., 1, H, W], that falls outside the true silhouette (true alpha
    [..., 1, H, W] grown by `margin` pixels, so a soft edge is not a ghost): 0 for a render of the truth, about
    half for the object plus an offset copy of it; 0 when nothing is rendered."""
    H, W = true_alpha.shape[-2:]
    grown = F.max_pool2d(true_alpha.reshape(-1, 1, H, W), 2 * margin + 1, stride=1, padding=margin)  # [M, 1, H, W]
    outside = (grown < BACKGROUND_ALPHA).reshape(true_alpha.shape)
    return (alpha * outside).sum() / alpha.sum().clamp(min=1e-8)


def geometry_metrics(rendered: RenderOutput, truth_rgba: torch.Tensor, true_depth: torch.Tensor | None) -> dict[str, float]:
    """Ghosting and, where the data has Blender's depth, the mean absolute depth error inside the true silhouette
    (normalised object units; a hole in the render counts its whole true depth) of a render (alpha and depth
    [..., 1, H, W]) against ground-truth RGBA [..., 4, H, W] and depth [..., 1, H, W] (or None)."""
    true_alpha = truth_rgba[..., 3:, :, :]
    measured = {"ghosting": ghosting(rendered.alpha, true_alpha).item()}
    if true_depth is not None:
        measured["depth_error"] = depth_loss(rendered.depth, true_depth, true_alpha).item()
    return measured


def _peak_rss_mb() -> float:
    """The process's peak resident memory (MB) since the last reset (/proc on Linux; else since it started)."""
    try:
        line = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(device: torch.device, fn, *args, **kwargs):
    """(fn's result, {"seconds", "peak_mb"}): wall-clock seconds, and peak memory while it ran in MB: allocated CUDA
    memory on CUDA, the process's peak resident memory on the CPU (torch's CPU tensors escape tracemalloc)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS to the current RSS
        except OSError:
            pass
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _peak_rss_mb()
    return result, {"seconds": round(seconds, 3), "peak_mb": round(peak, 1)}


# ----------------------------------------------------------------------------- what a person sees in generated views
# Generated views carry no alpha: the object is whatever is not the white background (data.images.object_mask).


def silhouette_iou(rgb: torch.Tensor, truth_alpha: torch.Tensor) -> float:
    """Mean per-image IoU of the object masks of images [..., 3, H, W] over white and truth alpha [..., 1, H, W] > 0.5
    (an image where both are empty counts 1). Low when a view is drawn from the wrong side or not at all."""
    ours, truth = object_mask(rgb).flatten(-3), (truth_alpha > 0.5).flatten(-3)  # [..., H*W]
    inter, union = (ours & truth).sum(-1).float(), (ours | truth).sum(-1).float()  # [...]
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean().item()


def motion_ratio(generated: torch.Tensor, truth: torch.Tensor) -> float:
    """flicker(generated) / flicker(truth) of clips [..., F, 3, H, W]: 1 when the object moves as much as the truth."""
    return (flicker(generated) / flicker(truth).clamp(min=1e-8)).item()


def patch_seam_ratio(images: torch.Tensor, patch: int) -> float:
    """Mean absolute image gradient across patch borders / elsewhere, of images [..., C, H, W] (about 1 for renders;
    above 1 when an image is built of patch-sized fragments with seams between them)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs()  # [..., C, H, W - 1], between columns x and x + 1
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs()  # [..., C, H - 1, W]
    x_border = torch.arange(1, images.shape[-1]) % patch == 0  # [W - 1], True where x + 1 starts a patch
    y_border = torch.arange(1, images.shape[-2]) % patch == 0  # [H - 1]
    across = torch.cat([dx[..., x_border].flatten(), dy[..., y_border, :].flatten()])
    within = torch.cat([dx[..., ~x_border].flatten(), dy[..., ~y_border, :].flatten()])
    return (across.mean() / within.mean().clamp(min=1e-8)).item()


def masked_consistency(rerendered: torch.Tensor, generated: torch.Tensor) -> float:
    """PSNR (dB) of re-rendered against generated views [..., 3, H, W] over the pixels where either shows an object:
    0 when neither does, so an empty generation cannot score well on consistency."""
    mask = object_mask(rerendered) | object_mask(generated)  # [..., 1, H, W]
    return masked_psnr(rerendered, generated, mask).item() if mask.any() else 0.0


def coverage(rgb: torch.Tensor) -> float:
    """The share of pixels of images [..., 3, H, W] over white that show an object."""
    return object_mask(rgb).float().mean().item()
