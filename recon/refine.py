"""Optional test-time refinement: a few hundred Adam steps fitting predicted Gaussians to the given views.

Photometric only (the same image loss as training) plus temporal smoothness; no score distillation.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from recon.gaussians import Gaussians
from recon.losses import LossWeights, image_loss
from recon.render import render_views


def temporal_smoothness(means: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean squared change across frames of the correction `means - reference`, both [..., F, N, 3] (world units^2).

    Per-pixel Gaussians of neighbouring frames only roughly correspond, so the predicted motion is kept and only
    the refinement's corrections are asked to vary smoothly in time.
    """
    correction = means - reference  # [..., F, N, 3]
    return (correction[..., 1:, :, :] - correction[..., :-1, :, :]).square().sum(-1).mean()


def refine(
    gaussians: Gaussians,
    views: dict,
    steps: int = 300,
    lr: float = 1e-2,
    means_lr: float = 1e-3,
    smoothness: float = 1.0,
    background: float = 1.0,
    weights: LossWeights = LossWeights(),
    progress: bool = True,
    frames: slice = slice(None),
) -> Gaussians:
    """Refine Gaussians [B, F, N] against views of the same clips.

    Args:
        gaussians: Gaussians with batch shape [B, F] (e.g. the head's prediction).
        views: loader-format dict of the views to fit: images [B, V, F', 4, H, W] RGBA, c2w [B, V, F', 4, 4], K [B, V, 3, 3],
            F' the frames `frames` of the Gaussians (all F by default).
        steps: Adam steps. lr: for the raw rotations, scales, opacities and colours. means_lr: for the means (world units).
        smoothness: weight of `temporal_smoothness` on the means.
        frames: the Gaussians' frames the views show (an image: the first); the others follow through the smoothness.

    Returns:
        The refined Gaussians [B, F, N], detached.
    """
    images, c2w, K = views["images"], views["c2w"], views["K"]
    B, F = gaussians.batch_shape
    if images.shape[:3] != c2w.shape[:3] or (images.shape[0], images.shape[2]) != (B, len(range(F)[frames])):
        raise ValueError(
            f"refine: images {tuple(images.shape)}, c2w {tuple(c2w.shape)} and Gaussians {tuple(gaussians.batch_shape)} disagree"
        )
    height, width = images.shape[-2:]
    reference = gaussians.means.detach()
    params = {name: value.detach().clone().requires_grad_() for name, value in gaussians.to_raw().items()}
    opt = torch.optim.Adam(
        [{"params": [params["means"]], "lr": means_lr}, {"params": [p for n, p in params.items() if n != "means"], "lr": lr}]
    )
    bar = tqdm(range(steps), desc="refine", disable=not progress)
    for _ in bar:
        current = Gaussians.from_raw(**params)  # [B, F, N]
        rendered = render_views(current.map(lambda t: t[:, frames]), c2w, K, height, width, background)  # [B, V, F', ...]
        loss, metrics = image_loss(rendered, images, background, weights)
        loss = loss + smoothness * temporal_smoothness(current.means, reference)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(psnr=f"{metrics['psnr']:.2f}")
    return Gaussians.from_raw(**{name: p.detach() for name, p in params.items()})


def refine_to_views(gaussians: Gaussians, images: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, steps: int,
                    progress: bool = True, frames: slice = slice(None)) -> Gaussians:
    """`refine` against views that carry no alpha: images [B, V, F', 3, H, W] over white, c2w [B, V, F', 4, 4],
    K [B, V, 3, 3], at the Gaussians' frames `frames` (F' of them). Fits only the colour over white (generated views have no silhouette to fit; an alpha target of 1
    everywhere would grow the splats until they fill the frame). Returns the refined Gaussians [B, F, N]."""
    rgba = torch.cat([images, torch.ones_like(images[:, :, :, :1])], dim=3)  # [B, V, F, 4, H, W], opaque over white
    return refine(gaussians, {"images": rgba, "c2w": c2w, "K": K}, steps=steps, weights=LossWeights(alpha=0.0),
                  progress=progress, frames=frames)
