"""DreamGaussian4D's recipe (Ren et al. 2023) on the package's own prior: the second, published SDS baseline.

Two stages, as in DreamGaussian4D (its configs: 500 static iterations, then the deformation with the static
geometry frozen and the noise level capped at t_max = 0.5):

1. static Gaussians fitted from the given view (the video's first frame, or the image) with the prior's
   multi-view guidance: SDS of the prior in image-to-4D mode plus the photometric loss of the front view, the
   same set rendered at every frame;
2. a deformation field over time fitted with video guidance: SDS of the prior in video-to-4D mode (image- or
   text-to-4D for those tasks) plus the photometric loss of the front view against every given frame, the static
   Gaussians frozen.

DreamGaussian4D guides with Zero123 (one view at a time) and deforms with a HexPlane; here the guide is the
multiview-video prior of baselines/sds.py (`Guide`, so both recipes differ only in what they optimise) and the
deformation field an MLP on Fourier features of (canonical position, time), as Deformable 3D Gaussians use. The
static stage takes min(static_iters, iters // 2) iterations, so a short budget still deforms.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from baselines.sds import SHARED, Guide, Progress, Request, SDSConfig, Snapshot, descend, init_params
from model.pipeline import MultiViewVideoPipeline
from recon.gaussians import Gaussians


def fourier(x: torch.Tensor, octaves: int) -> torch.Tensor:
    """x [..., D] -> [..., D (1 + 2 octaves)]: x with the sines and cosines of 2^k pi x, k < octaves."""
    scaled = x[..., None] * (torch.pi * 2.0 ** torch.arange(octaves, device=x.device))  # [..., D, octaves]
    return torch.cat([x, scaled.sin().flatten(-2), scaled.cos().flatten(-2)], dim=-1)


class Deformation(nn.Module):
    """(canonical mean [N, 3], times [F]) -> per-frame changes [F, N, 10] of the raw mean (3), rotation (4) and scales
    (3). The last layer starts at zero, so the second stage starts from the static object."""

    def __init__(self, width: int = 64, octaves: tuple[int, int] = (4, 2)):  # of positions, of time
        super().__init__()
        self.octaves = octaves
        inputs = 3 * (1 + 2 * octaves[0]) + (1 + 2 * octaves[1])
        self.net = nn.Sequential(nn.Linear(inputs, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 10))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, means: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        N, F_ = len(means), len(times)
        where = fourier(means, self.octaves[0])[None].expand(F_, N, -1)  # [F, N, 3 (1 + 2 octaves)]
        when = fourier(times[:, None], self.octaves[1])[:, None].expand(F_, N, -1)  # [F, N, 1 + 2 octaves]
        return self.net(torch.cat([where, when], dim=-1))  # [F, N, 10]


def deformed(static: dict[str, torch.Tensor], field: Deformation, times: torch.Tensor) -> Gaussians:
    """The frozen static Gaussians (raw fields [N, ...]) moved by the field at each time: Gaussians [F, N]."""
    change = field(static["means"], times)  # [F, N, 10]
    frames = {k: static[k].expand(len(times), *static[k].shape) for k in ("opacities", "colours")}
    return Gaussians.from_raw(means=static["means"] + change[..., :3], rotations=static["rotations"] + change[..., 3:7],
                              scales=static["scales"] + change[..., 7:], **frames)


def fit_static(guide: Guide, config: SDSConfig, iters: int, run: Progress, params: dict[str, torch.Tensor]) -> None:
    """Stage 1: `iters` steps of the static Gaussians (raw fields [N, ...], optimised in place)."""
    optimiser = torch.optim.Adam([{"params": [params["means"]], "lr": config.means_lr},
                                  {"params": [params[k] for k in SHARED], "lr": config.lr}])
    static = lambda: Gaussians.from_raw(**{k: v[None] for k, v in params.items()})  # noqa: E731  [1, N]
    for step in range(iters):
        c2w, K = guide.ring()
        sigma = guide.sigma(step, iters, config.sigma_max)
        terms = guide.terms(guide.render(static(), c2w, K), c2w, K, sigma)
        descend(optimiser, terms, {"photometric": config.photometric})
        run.step(terms, sigma, lambda: static().map(lambda t: t.expand(guide.F, *t.shape[1:])))


def fit_motion(guide: Guide, config: SDSConfig, iters: int, run: Progress, static: dict[str, torch.Tensor]) -> None:
    """Stage 2: `iters` steps of a deformation field over the frozen static Gaussians (raw fields [N, ...])."""
    field = Deformation().to(guide.device)
    optimiser = torch.optim.Adam(field.parameters(), lr=config.deform_lr)
    for step in range(iters):
        c2w, K = guide.ring()
        sigma = guide.sigma(step, iters, config.deform_sigma_max)
        terms = guide.terms(guide.render(deformed(static, field, guide.times), c2w, K), c2w, K, sigma)
        descend(optimiser, terms, {"photometric": config.photometric})
        run.step(terms, sigma, lambda: deformed(static, field, guide.times))


def distill(pipeline: MultiViewVideoPipeline, request: Request, config: SDSConfig = SDSConfig(),
            history: list[dict[str, float]] | None = None, progress: bool = True) -> list[Snapshot]:
    """The "dg4d" recipe; the arguments and the result as baselines.sds.distill's (snapshots at config.checkpoints
    and at the last iteration, Gaussians [F, N]). history's first min(static_iters, iters // 2) entries are stage 1's."""
    run = Progress(config, history, progress)
    generator = torch.Generator().manual_seed(config.seed)
    motion = Guide(pipeline, request, config, generator)  # checks the request first
    first = request.video[0] if request.video is not None else request.image  # stage 1 sees one view of one moment
    still = Guide(pipeline, replace(request, image=first, video=None), replace(config, frames=motion.F), generator)
    raw = init_params(1, config.num_gaussians, generator)
    params = {k: v.to(motion.device).requires_grad_() for k, v in raw.items() if k != "offsets"}
    static_iters = min(config.static_iters, config.iters // 2)
    fit_static(still, config, static_iters, run, params)
    fit_motion(motion, config, config.iters - static_iters, run, {k: v.detach() for k, v in params.items()})
    return run.finish()
