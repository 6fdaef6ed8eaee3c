"""Fit the head to a single clip: the end-to-end check of the recon stack (head, renderer, losses).

Used by the short test and by benchmarks/bench_recon.py's longer run; real training lives in train.py.
"""
from __future__ import annotations

import time

import torch
from einops import rearrange

from recon.head import GaussianHead4D
from data.images import composite
from recon.losses import LossWeights, psnr, recon_loss
from recon.render import render_views


def fit_clip(
    head: GaussianHead4D,
    batch: dict,
    num_input_views: int,
    steps: int | None = None,
    seconds: float | None = None,
    lr: float = 3e-4,
    background: float = 1.0,
    weights: LossWeights = LossWeights(),
    log_every: int = 0,
) -> list[dict[str, float]]:
    """Adam on `recon_loss` over one batch until `steps` steps or `seconds` of wall time (whichever comes
    first; at least one must be given); returns the per-step metrics.

    The learning rate warms up over the first 20 steps; gradients are clipped at norm 1.
    """
    if steps is None and seconds is None:
        raise ValueError("fit_clip: give steps, seconds or both")
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 20))
    history, start = [], time.perf_counter()
    head.train()
    while (steps is None or len(history) < steps) and (seconds is None or time.perf_counter() - start < seconds):
        loss, metrics = recon_loss(head, batch, num_input_views, background, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(metrics | {"seconds": time.perf_counter() - start})
        if log_every and len(history) % log_every == 0:
            print(f"step {len(history)}: " + ", ".join(f"{k} {v:.4g}" for k, v in history[-1].items()), flush=True)
    return history


@torch.no_grad()
def view_psnr(
    head: GaussianHead4D, inputs: dict, targets: dict, num_input_views: int, background: float = 1.0
) -> torch.Tensor:
    """PSNR (dB) per target view [V_t], predicting from the first `num_input_views` views of `inputs`.

    inputs, targets: loader-format dicts of the same clip (targets may hold views the head never saw).
    """
    head.eval()
    images, c2w, K = inputs["images"][:, :num_input_views], inputs["c2w"][:, :num_input_views], inputs["K"][:, :num_input_views]
    gaussians = head(composite(images, background), c2w, K)  # [B, F, N]
    height, width = targets["images"].shape[-2:]
    rendered = render_views(gaussians, targets["c2w"], targets["K"], height, width, background)  # [B, V_t, F, ...]
    truth = rearrange(composite(targets["images"], background), "b v f c h w -> v (b f c h w)")  # [V_t, ...]
    pred = rearrange(rendered.rgb, "b v f c h w -> v (b f c h w)")  # [V_t, ...]
    return psnr(pred, truth, dim=-1)
