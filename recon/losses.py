"""Reconstruction losses, kept outside the model: MSE, 1 - SSIM, an alpha mask term, optional LPIPS, geometry terms
(depth against Blender's, opacity outside the silhouette), and the head's training objective (predict from the
input views, render at input + supervision views, compare).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

from data.images import composite  # noqa: F401  (re-exported: recon's losses and their callers use it)
from recon.head import GaussianHead4D
from recon.render import RenderOutput, render_views

SSIM_WINDOW = 11  # pytorch_msssim's default Gaussian window (sigma 1.5), used by `ssim` and `ssim_map`
SSIM_K = (0.01, 0.03)  # SSIM's stabilising constants for a data range of 1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the reconstruction loss terms (0 turns a term off)."""

    mse: float = 1.0  # RGB mean squared error
    ssim: float = 0.2  # 1 - SSIM on RGB
    alpha: float = 1.0  # mean squared error of the rendered alpha against the ground-truth alpha
    lpips: float = 0.0  # perceptual loss; used only where `lpips` and its weights are installed
    depth: float = 0.0  # L1 of rendered against true depth inside the true silhouette; needs data built with depth
    outside: float = 0.0  # mean rendered alpha where the true alpha is 0: opacity outside the silhouette (ghosts)

BACKGROUND_ALPHA = 0.5 / 255  # a true alpha below this is background: 0 in the 8-bit PNG grids


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images [..., 3, H, W] in [0, 1] (pytorch_msssim, 11-pixel Gaussian window); H, W >= 11."""
    return _ssim(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:]), data_range=1.0, size_average=True)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM [M, 3, H - 10, W - 10] of images [..., 3, H, W] in [0, 1] (M = the flattened leading dims).

    The map whose mean is `ssim` (same window, constants and valid convolution), so it can be masked.
    """
    x, y = x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])  # [M, 3, H, W]
    win = _fspecial_gauss_1d(SSIM_WINDOW, 1.5).repeat(x.shape[1], 1, 1, 1)  # [3, 1, 1, 11]
    c1, c2 = SSIM_K[0] ** 2, SSIM_K[1] ** 2
    mu_x, mu_y = gaussian_filter(x, win), gaussian_filter(y, win)  # [M, 3, H', W']
    var_x = gaussian_filter(x * x, win) - mu_x**2
    var_y = gaussian_filter(y * y, win) - mu_y**2
    cov = gaussian_filter(x * y, win) - mu_x * mu_y
    return (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * (2 * cov + c2) / (var_x + var_y + c2)


def psnr(x: torch.Tensor, y: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """PSNR in dB of images in [0, 1]: over all elements, or per entry of the dims not in `dim`."""
    mse = (x - y).square().mean() if dim is None else (x - y).square().mean(dim=dim)
    return -10.0 * torch.log10(mse.clamp(min=1e-10))


def depth_loss(
    depth: torch.Tensor, true_depth: torch.Tensor, true_alpha: torch.Tensor, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean |depth - true_depth| of depth maps [..., 1, H, W] over the pixels inside the true silhouette (true alpha
    [..., 1, H, W] > 0.5) that have a true depth (> 0: Blender saw a surface there); 0 when there are none.

    Given the rendered alpha [..., 1, H, W], only pixels it covers (> 0.5) count: a render's expected depth is
    sum(weight * z) / alpha, whose gradient grows as 1 / alpha in a hole, and filling holes is the alpha term's job.
    """
    inside = (true_alpha > 0.5) & (true_depth > 0)
    if alpha is not None:
        inside &= alpha.detach() > 0.5
    return (depth - true_depth).abs()[inside].sum() / inside.sum().clamp(min=1)


def outside_loss(alpha: torch.Tensor, true_alpha: torch.Tensor) -> torch.Tensor:
    """Mean rendered alpha [..., 1, H, W] over all pixels, counting only those where the true alpha is 0: opacity
    put where nothing is (ghost copies, floaters). The alpha term's square barely sees faint ghosts; this is linear."""
    return (alpha * (true_alpha < BACKGROUND_ALPHA)).mean()


def load_lpips():
    """An LPIPS (VGG) module from the `lpips` package where it and its weights are installed, else None.

    The weights come from a download that is not reachable on every machine, so LPIPS is optional.
    """
    try:
        import lpips

        return lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)
    except Exception as err:  # missing package, missing torchvision, or weights that cannot be fetched
        log.warning("LPIPS unavailable (%s); the loss runs without it", err)
        return None


def image_loss(
    rendered: RenderOutput, target: torch.Tensor, background: torch.Tensor | float, weights: LossWeights, lpips_fn=None,
    target_depth: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted loss of rendered images against ground-truth RGBA (and depth).

    Args:
        rendered: RenderOutput with rgb [..., 3, H, W], alpha and depth [..., 1, H, W].
        target: [..., 4, H, W] straight-alpha RGBA in [0, 1], the same leading dims.
        background: the colour the render was composited over; the target is composited over it too.
        lpips_fn: an LPIPS module (see `load_lpips`), or None to leave that term out.
        target_depth: [..., 1, H, W] true depth (0: no surface), or None; needed when weights.depth > 0.

    Returns:
        (total loss, {term name: value} including "psnr").
    """
    target_rgb = composite(target, background)  # [..., 3, H, W]
    target_alpha = target[..., 3:, :, :]  # [..., 1, H, W]
    terms = {
        "mse": F.mse_loss(rendered.rgb, target_rgb),
        "ssim": 1.0 - ssim(rendered.rgb, target_rgb),
        "alpha": F.mse_loss(rendered.alpha, target_alpha),
        "outside": outside_loss(rendered.alpha, target_alpha),
    }
    if target_depth is not None:
        terms["depth"] = depth_loss(rendered.depth, target_depth, target_alpha, rendered.alpha)
    elif weights.depth > 0:
        raise ValueError("the depth loss needs true depth: build the data with depth (python -m data.build --depth)")
    if lpips_fn is not None and weights.lpips > 0:
        flat = lambda t: t.reshape(-1, *t.shape[-3:]) * 2 - 1  # noqa: E731 - LPIPS wants [-1, 1]
        terms["lpips"] = lpips_fn(flat(rendered.rgb), flat(target_rgb)).mean()
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    metrics = {name: value.item() for name, value in terms.items()} | {"psnr": psnr(rendered.rgb, target_rgb).item()}
    return total, metrics


def recon_loss(
    head: GaussianHead4D,
    batch: dict,
    num_input_views: int,
    background: float = 1.0,
    weights: LossWeights = LossWeights(),
    lpips_fn=None,
    hull_dropout: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The head's training objective on one loader batch.

    The first `num_input_views` views (the orbit ring) go into the head; the predicted Gaussians are rendered at
    every view of the batch (input + supervision) and compared with the ground truth.

    Args:
        batch: the data loader's dict: images [B, V, F, 4, H, W] RGBA in [0, 1], c2w [B, V, F, 4, 4], K [B, V, 3, 3],
            and depth [B, V, F, 1, H, W] where the data has it.
        background: the colour inputs are composited over and renders are composited over.
        hull_dropout: the chance that a sample is reconstructed without the head's visual hull (a head with
            `hull_prior`), so that the head also works on views that disagree, where it leaves the hull out.

    Returns:
        (total loss, metrics over all rendered views).
    """
    images, c2w, K = batch["images"], batch["c2w"], batch["K"]
    height, width = images.shape[-2:]
    if num_input_views > images.shape[1]:
        raise ValueError(f"recon_loss: {num_input_views} input views asked for, the batch has {images.shape[1]}")
    n_in = num_input_views
    off = torch.rand(images.shape[0], device=images.device) < hull_dropout if hull_dropout > 0 else None  # [B]
    gaussians = head(composite(images[:, :n_in], background), c2w[:, :n_in], K[:, :n_in], off)  # [B, F, N]
    rendered = render_views(gaussians, c2w, K, height, width, background)  # [B, V, F, ...]
    return image_loss(rendered, images, background, weights, lpips_fn, batch.get("depth"))
