"""Score distillation (SDS) of 4D Gaussians, with the package's own MultiViewVideoDiT as the prior.

The baseline the feed-forward model is measured against (benchmark.py compare): the same prior, a different
method. Canonical Gaussians plus a per-frame offset of their means are optimised from a random ball; each step
renders them at a ring of V views for all F frames, noises the renders to a flow-matching level sigma, asks the
prior (with classifier-free guidance) for the velocity v and pulls the renders towards its denoised estimate:

    x_t = (1 - sigma) x0 + sigma eps,   x0_hat = x_t - sigma v,   loss = 0.5 ||x0 - stopgrad(x0_hat)||^2

whose gradient in x0 is (x0 - x0_hat), the flow-matching form of SDS. Noise levels are drawn below an upper bound
annealed from high to low over the run (coarse shape first, detail last). Image-/video-to-4D give the prior the
same conditioning as MultiViewVideoPipeline (view 0 clean, by its mask) and add a photometric loss of the
rendered view 0 against the given frames. The conditioning pins view 0 to the front camera, so only text-to-4D
draws a random ring (azimuth offset and elevation) each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from data.cameras import OBJECT_RADIUS, rotate_about_up
from model.diffusion import from_model_rgb, sample_noise
from model.pipeline import MultiViewVideoPipeline, guided_velocity, model_conditioning
from recon.gaussians import Gaussians
from recon.refine import temporal_smoothness
from recon.render import render_views


@dataclass(frozen=True)
class SDSConfig:
    """One SDS run's settings."""

    iters: int = 500  # optimisation steps; each renders V x F images and runs the prior once (twice with guidance)
    num_gaussians: int = 2000  # N, shared by every frame
    lr: float = 1e-2  # Adam, for the raw rotations, scales, opacities and colours
    means_lr: float = 1e-3  # Adam, for the canonical means (world units)
    offsets_lr: float = 1e-3  # Adam, for the per-frame offsets of the means (world units)
    guidance: float = 5.0  # classifier-free guidance on the prompt (1: off)
    sigma_max: float = 0.98  # the noise levels' upper bound at the first step ...
    sigma_min: float = 0.02  # ... falls linearly to this at the last; levels are drawn in [sigma_min, bound]
    elevation_range: tuple[float, float] = (0.0, 30.0)  # degrees; text-to-4D rings are drawn in this range
    photometric: float = 1.0  # weight of the MSE of rendered view 0 against the given frames (image/video-to-4D)
    smoothness: float = 10.0  # weight of the offsets' frame-to-frame change (recon.refine.temporal_smoothness)
    views: int | None = None  # V (None: the prior's)
    frames: int | None = None  # F for text- and image-to-4D (None: the prior's); video-to-4D uses the video's
    height: int | None = None  # render size in pixels (None: the prior's, or the given image's or video's)
    width: int | None = None
    seed: int = 0


def load_prior(folder: str | Path, device: torch.device | str = "cpu") -> MultiViewVideoPipeline:
    """The diffusion pipeline of a model folder (folder/diffusion) or of a saved pipeline folder, frozen, on `device`."""
    folder = Path(folder)
    for candidate in (folder / "diffusion", folder):
        if (candidate / "pipeline.json").is_file():
            pipeline = MultiViewVideoPipeline.from_pretrained(candidate).to(device)
            pipeline.transformer.eval().requires_grad_(False)
            return pipeline
    raise ValueError(f"{folder} holds no diffusion pipeline (diffusion/pipeline.json): SDS needs the multiview-video prior")


def noise_bound(step: int, iters: int, sigma_max: float, sigma_min: float) -> float:
    """The annealed upper bound of the noise level at `step` of `iters`: sigma_max at the first, sigma_min at the last."""
    return sigma_max + (sigma_min - sigma_max) * step / max(iters - 1, 1)


def sds_loss(x0: torch.Tensor, x0_hat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """0.5 * weighted mean of ||x0 - stopgrad(x0_hat)||^2: its gradient in x0 is weight * (x0 - x0_hat) / weight.sum().

    x0, x0_hat: [B, V, F, 3, H, W] in model units; weight: broadcastable to them (0 on the given frames).
    """
    weight = weight.expand_as(x0)
    return 0.5 * ((x0 - x0_hat.detach()).square() * weight).sum() / weight.sum().clamp(min=1)


def init_params(num_frames: int, num_gaussians: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Raw parameters of a random ball of faint grey Gaussians inside the object sphere, no motion yet.

    Returns Gaussians.from_raw's fields for the canonical set ([N, ...]) plus "offsets" [F, N, 3] (zeros).
    """
    N = num_gaussians
    direction = F.normalize(torch.randn(N, 3, generator=generator), dim=-1)  # [N, 3]
    radius = OBJECT_RADIUS * torch.rand(N, 1, generator=generator) ** (1 / 3)  # [N, 1] uniform in the ball's volume
    canonical = Gaussians(
        means=direction * radius,
        rotations=F.normalize(torch.randn(N, 4, generator=generator), dim=-1),
        scales=torch.full((N, 3), 0.02),
        opacities=torch.full((N,), 0.1),  # faint: SDS first decides where there is matter
        colours=torch.full((N, 3), 0.5),
    )
    return {**canonical.to_raw(), "offsets": torch.zeros(num_frames, N, 3)}


def frames_of(params: dict[str, torch.Tensor]) -> Gaussians:
    """Gaussians [F, N]: the canonical set moved by each frame's offsets."""
    num_frames = len(params["offsets"])
    shared = {k: params[k].expand(num_frames, *params[k].shape) for k in ("rotations", "scales", "opacities", "colours")}
    return Gaussians.from_raw(means=params["means"] + params["offsets"], **shared)


def _grid(pipeline: MultiViewVideoPipeline, config: SDSConfig, given: torch.Tensor | None) -> tuple[int, int, int, int]:
    """(V, F, H, W): the config's, else the given image's or video's size, else the prior's defaults."""
    d = pipeline.defaults
    V = config.views or d.num_views
    F_ = len(given) if given is not None and given.ndim == 4 else config.frames or d.num_frames
    H, W = given.shape[-2:] if given is not None else (config.height or d.height, config.width or d.width)
    return V, F_, H, W


def check_mode(num_views: int, num_frames: int, image, video) -> None:
    """Raise ValueError when the prior's grid cannot take the requested mode."""
    if image is not None and video is not None:
        raise ValueError("give an image or a video, not both")
    if (image is not None or video is not None) and num_views < 2:
        raise ValueError("image-/video-to-4D gives the prior view 0; a prior of one view leaves no view to distil")
    if video is not None and num_frames < 2:
        raise ValueError("video-to-4D needs a prior of at least two frames")


def distill(
    pipeline: MultiViewVideoPipeline,
    prompt: str,
    image: torch.Tensor | None = None,
    video: torch.Tensor | None = None,
    elevation: float = 0.0,
    config: SDSConfig = SDSConfig(),
    history: list[dict[str, float]] | None = None,
    progress: bool = True,
) -> Gaussians:
    """Optimise 4D Gaussians from scratch by score distillation; returns Gaussians [F, N] (detached, on the pipeline's device).

    prompt: non-empty text. image: [3, H, W] in [0, 1], the front view at frame 0 (image-to-4D); video: [F, 3, H, W]
    in [0, 1], the front view over time (video-to-4D), both seen from `elevation` degrees at azimuth 0, the
    pipeline's view 0. history: when given, each step's loss terms are appended to it.
    Raises ValueError for zero iterations, an empty prompt or a mode the prior's grid cannot take.
    """
    if config.iters < 1:
        raise ValueError(f"SDS needs at least one iteration, got iters={config.iters}")
    if not prompt or not prompt.strip():
        raise ValueError("prompt is empty; describe the object")
    given_frames = video if video is not None else image
    V, F_, H, W = _grid(pipeline, config, given_frames)
    check_mode(V, F_, image, video)
    device, dtype = pipeline.device, pipeline.transformer.dtype
    cond, given = pipeline.condition(image, video, V, F_, H, W)  # [1, V, F, 3, H, W] in [-1, 1], bool [1, V, F]
    text = pipeline.text_encoder([prompt, ""] if config.guidance != 1.0 else [prompt])  # [G, L, D_text]
    generator = torch.Generator().manual_seed(config.seed)
    params = {k: v.to(device).requires_grad_() for k, v in init_params(F_, config.num_gaussians, generator).items()}
    opt = torch.optim.Adam([
        {"params": [params["means"]], "lr": config.means_lr},
        {"params": [params["offsets"]], "lr": config.offsets_lr},
        {"params": [params[k] for k in ("rotations", "scales", "opacities", "colours")], "lr": config.lr},
    ])
    keep = given[..., None, None, None]  # [1, V, F, 1, 1, 1]
    times = torch.linspace(0, 1, F_, device=device)  # [F]
    conditioned = image is not None or video is not None
    bar = tqdm(range(config.iters), desc="SDS", disable=not progress)
    for step in bar:
        # Conditioning pins view 0 to the front camera; text-to-4D draws a random ring every step.
        u = torch.rand(3, generator=generator).tolist()
        low, high = config.elevation_range
        ring_elevation = elevation if conditioned else low + (high - low) * u[0]
        c2w, K = pipeline.cameras(V, F_, H, W, ring_elevation, pipeline.defaults.fov_deg, None)  # [V, F, 4, 4], [V, 3, 3]
        c2w, K = rotate_about_up(c2w, 0.0 if conditioned else 360.0 * u[1]).to(device), K.to(device)

        current = frames_of(params)  # [F, N]
        rgb = render_views(current.map(lambda t: t[None]), c2w[None], K[None], H, W, background=1.0).rgb  # [1, V, F, 3, H, W]
        x0 = (rgb * 2 - 1).to(dtype)  # [1, V, F, 3, H, W] model units
        sigma = config.sigma_min + (noise_bound(step, config.iters, config.sigma_max, config.sigma_min) - config.sigma_min) * u[2]
        noise = sample_noise(tuple(x0.shape), pipeline.defaults.shared_noise, generator, device, dtype)  # [1, V, F, 3, H, W]
        x_t = torch.where(keep, cond, (1 - sigma) * x0.detach() + sigma * noise)  # given frames clean, as in training
        conditioning = model_conditioning(cond, given, c2w, K, times, text)  # each [G, ...]
        timestep = torch.tensor([sigma * pipeline.scheduler.config.num_train_timesteps], device=device)  # [1]
        with torch.no_grad():  # SDS: the prior's output is a fixed target, never differentiated
            velocity = guided_velocity(pipeline.transformer, x_t, timestep, conditioning, config.guidance)  # [1, V, F, 3, H, W]
        terms = {"sds": sds_loss(x0, x_t - sigma * velocity, (~keep).to(x0))}
        if conditioned:
            terms["photometric"] = F.mse_loss(rgb[given], from_model_rgb(cond)[given])
        terms["smoothness"] = temporal_smoothness(params["offsets"], torch.zeros_like(params["offsets"]))  # offsets only
        loss = terms["sds"] + config.photometric * terms.get("photometric", 0.0) + config.smoothness * terms["smoothness"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        values = {name: value.item() for name, value in terms.items()} | {"sigma": sigma}
        bar.set_postfix(sds=f"{values['sds']:.4f}", sigma=f"{sigma:.2f}")
        if history is not None:
            history.append(values)
    return frames_of({k: v.detach() for k, v in params.items()})
