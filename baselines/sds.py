"""Score distillation (SDS) of 4D Gaussians, with the package's own MultiViewVideoDiT as the prior.

The baseline the feed-forward model is measured against (benchmark.py compare): the same prior, a different
method. This module holds what every recipe shares (`Guide`: the prior's conditioning, camera rings, noise levels
and loss terms; `Progress`: timing, loss history and snapshots) and the home-made recipe, "offsets": canonical
Gaussians plus a per-frame offset of their means, optimised from a random ball. baselines/dg4d.py holds the second
recipe, DreamGaussian4D's two stages, on the same `Guide`.

Each step renders the Gaussians at a ring of V views for all F frames, noises the renders to a flow-matching level
sigma, asks the prior (with classifier-free guidance) for the velocity v and pulls the renders towards its
denoised estimate:

    x_t = (1 - sigma) x0 + sigma eps,   x0_hat = x_t - sigma v,   loss = 0.5 ||x0 - stopgrad(x0_hat)||^2

whose gradient in x0 is (x0 - x0_hat), the flow-matching form of SDS. Noise levels are drawn below an upper bound
annealed from high to low over the run (coarse shape first, detail last). Image-/video-to-4D give the prior the
same conditioning as MultiViewVideoPipeline (view 0 clean, by its mask) and add a photometric loss of the
rendered view 0 against the given frames. The conditioning pins view 0 to the front camera, so only text-to-4D
draws a random ring (azimuth offset and elevation) each step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from data.cameras import OBJECT_RADIUS, rotate_about_up
from model.diffusion import from_model_rgb, sample_noise
from model.pipeline import Guidance, MultiViewVideoPipeline, guided_velocity, model_conditioning
from recon.gaussians import Gaussians
from recon.refine import temporal_smoothness
from recon.render import render_views


@dataclass(frozen=True)
class SDSConfig:
    """One SDS run's settings (both recipes)."""

    iters: int = 500  # optimisation steps; each renders V x F images and runs the prior once (twice with guidance)
    checkpoints: tuple[int, ...] = ()  # iterations (< iters) at which a snapshot is kept besides the last one
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
    static_iters: int = 500  # dg4d: stage 1 (static Gaussians) length, at most half the run (DG4D: 500)
    deform_sigma_max: float = 0.5  # dg4d: stage 2's noise bound at its first step (DG4D's t_max)
    deform_lr: float = 1e-3  # dg4d: Adam, for the deformation field
    views: int | None = None  # V (None: the prior's)
    frames: int | None = None  # F for text- and image-to-4D (None: the prior's); video-to-4D uses the video's
    height: int | None = None  # render size in pixels (None: the prior's, or the given image's or video's)
    width: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Snapshot:
    """The Gaussians of a run after `iters` iterations, `seconds` after it started (snapshots' own time left out)."""

    iters: int
    seconds: float
    gaussians: Gaussians  # [F, N], detached


@dataclass(frozen=True)
class Request:
    """What to distil: a prompt and, for image-/video-to-4D, the front view seen from `elevation` degrees at azimuth 0
    (the pipeline's view 0)."""

    prompt: str  # non-empty
    image: torch.Tensor | None = None  # [3, H, W] in [0, 1], the front view at frame 0 (image-to-4D)
    video: torch.Tensor | None = None  # [F, 3, H, W] in [0, 1], the front view over time (video-to-4D)
    elevation: float = 0.0


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


def check_config(config: SDSConfig) -> None:
    """ValueError for a run of no iterations or checkpoints outside it."""
    if config.iters < 1:
        raise ValueError(f"SDS needs at least one iteration, got iters={config.iters}")
    outside = [c for c in config.checkpoints if not 0 < c <= config.iters]
    if outside:
        raise ValueError(f"SDS checkpoints must lie in [1, iters={config.iters}], got {outside}")


def check_mode(num_views: int, num_frames: int, image, video) -> None:
    """Raise ValueError when the prior's grid cannot take the requested mode."""
    if image is not None and video is not None:
        raise ValueError("give an image or a video, not both")
    if (image is not None or video is not None) and num_views < 2:
        raise ValueError("image-/video-to-4D gives the prior view 0; a prior of one view leaves no view to distil")
    if video is not None and num_frames < 2:
        raise ValueError("video-to-4D needs a prior of at least two frames")


class Guide:
    """The prior's side of a run, shared by the recipes: the conditioning of a request, the camera ring of each step,
    the noise levels, and the SDS and photometric loss terms of a render.
    Raises ValueError for an empty prompt or a mode the prior's grid cannot take."""

    def __init__(self, pipeline: MultiViewVideoPipeline, request: Request, config: SDSConfig, generator: torch.Generator):
        if not request.prompt or not request.prompt.strip():
            raise ValueError("prompt is empty; describe the object")
        image, video = request.image, request.video
        d, given_frames = pipeline.defaults, video if video is not None else image
        self.V = config.views or d.num_views
        self.F = len(video) if video is not None else config.frames or d.num_frames
        self.H, self.W = given_frames.shape[-2:] if given_frames is not None else (config.height or d.height, config.width or d.width)
        check_mode(self.V, self.F, image, video)
        self.pipeline, self.config, self.elevation, self.generator = pipeline, config, request.elevation, generator
        self.device, self.dtype = pipeline.device, pipeline.transformer.dtype
        self.cond, self.given = pipeline.condition(image, video, self.V, self.F, self.H, self.W)  # [1, V, F, 3, H, W], bool [1, V, F]
        self.guidance = Guidance(text=config.guidance)
        self.text = pipeline.text_encoder(self.guidance.prompts(request.prompt))  # [G, L, D_text]
        self.times = torch.linspace(0, 1, self.F, device=self.device)  # [F]
        self.conditioned = image is not None or video is not None

    def ring(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's cameras c2w [V, F, 4, 4], K [V, 3, 3]: the front ring when conditioned (the given view is view
        0), else a ring at a random elevation and azimuth."""
        u = torch.rand(2, generator=self.generator).tolist()
        low, high = self.config.elevation_range
        elevation = self.elevation if self.conditioned else low + (high - low) * u[0]
        c2w, K = self.pipeline.cameras(self.V, self.F, self.H, self.W, elevation, self.pipeline.defaults.fov_deg, None)
        return rotate_about_up(c2w, 0.0 if self.conditioned else 360.0 * u[1]).to(self.device), K.to(self.device)

    def sigma(self, step: int, iters: int, sigma_max: float) -> float:
        """A noise level drawn in [sigma_min, the bound annealed from sigma_max at step 0 to sigma_min at the last]."""
        bound = noise_bound(step, iters, sigma_max, self.config.sigma_min)
        return self.config.sigma_min + (bound - self.config.sigma_min) * torch.rand(1, generator=self.generator).item()

    def render(self, gaussians: Gaussians, c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """Gaussians [F, N] (or [1, N], the same at every frame) at cameras c2w [V, F, 4, 4] over white: [1, V, F, 3, H, W]."""
        frames = c2w.shape[1] if gaussians.batch_shape[0] == self.F else 1  # a static set is drawn once, then repeated
        rgb = render_views(gaussians.map(lambda t: t[None]), c2w[None, :, :frames], K[None], self.H, self.W, background=1.0).rgb
        return rgb.expand(-1, -1, self.F, -1, -1, -1)

    def terms(self, rgb: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, sigma: float) -> dict[str, torch.Tensor]:
        """The SDS term of renders rgb [1, V, F, 3, H, W] at cameras c2w, K and noise level sigma, plus (when
        conditioned) the photometric term of the given frames."""
        keep = self.given[..., None, None, None]  # [1, V, F, 1, 1, 1]
        x0 = (rgb * 2 - 1).to(self.dtype)  # model units
        noise = sample_noise(tuple(x0.shape), self.pipeline.defaults.shared_noise, self.generator, self.device, self.dtype)
        x_t = torch.where(keep, self.cond, (1 - sigma) * x0.detach() + sigma * noise)  # given frames clean, as in training
        conditioning = model_conditioning(self.cond, self.given, c2w, K, self.times, self.text)  # each [G, ...]
        timestep = torch.tensor([sigma * self.pipeline.scheduler.config.num_train_timesteps], device=self.device)  # [1]
        with torch.no_grad():  # SDS: the prior's output is a fixed target, never differentiated
            velocity = guided_velocity(self.pipeline.transformer, x_t, timestep, conditioning, self.guidance)
        terms = {"sds": sds_loss(x0, x_t - sigma * velocity, (~keep).to(x0))}
        if self.conditioned:
            terms["photometric"] = F.mse_loss(rgb[self.given], from_model_rgb(self.cond)[self.given])
        return terms


class Progress:
    """A run's bookkeeping, shared by the recipes: the progress bar, the loss history and the snapshots at the
    checkpoints and the last iteration, timed from the run's start without the time taken by the snapshots."""

    def __init__(self, config: SDSConfig, history: list[dict[str, float]] | None, progress: bool):
        check_config(config)
        self.marks = set(config.checkpoints) | {config.iters}
        self.history, self.snapshots, self.done = history, [], 0
        self.bar = tqdm(total=config.iters, desc="SDS", disable=not progress)
        self.start, self.paused = time.perf_counter(), 0.0

    def step(self, terms: dict[str, torch.Tensor], sigma: float, gaussians: Callable[[], Gaussians]) -> None:
        """Record one finished iteration's loss terms; keep gaussians() [F, N] when it is a checkpoint."""
        self.done += 1
        values = {name: value.item() for name, value in terms.items()} | {"sigma": sigma}
        self.bar.update()
        self.bar.set_postfix(sds=f"{values['sds']:.4f}", sigma=f"{sigma:.2f}")
        if self.history is not None:
            self.history.append(values)
        if self.done in self.marks:
            clock = time.perf_counter()
            seconds = clock - self.start - self.paused
            self.snapshots.append(Snapshot(self.done, round(seconds, 3), gaussians().map(lambda t: t.detach().clone())))
            self.paused += time.perf_counter() - clock

    def finish(self) -> list[Snapshot]:
        self.bar.close()
        return self.snapshots


def descend(optimiser: torch.optim.Optimizer, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> None:
    """One optimiser step on the weighted sum of the loss terms (a term without a weight counts once)."""
    loss = sum(weights.get(name, 1.0) * value for name, value in terms.items())
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


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


SHARED = ("rotations", "scales", "opacities", "colours")  # the raw fields every frame shares in the offsets recipe


def frames_of(params: dict[str, torch.Tensor]) -> Gaussians:
    """Gaussians [F, N]: the canonical set moved by each frame's offsets."""
    num_frames = len(params["offsets"])
    shared = {k: params[k].expand(num_frames, *params[k].shape) for k in SHARED}
    return Gaussians.from_raw(means=params["means"] + params["offsets"], **shared)


def distill(pipeline: MultiViewVideoPipeline, request: Request, config: SDSConfig = SDSConfig(),
            history: list[dict[str, float]] | None = None, progress: bool = True) -> list[Snapshot]:
    """The "offsets" recipe: optimise canonical Gaussians and per-frame offsets from scratch by score distillation.

    history: when given, each step's loss terms are appended to it. Returns the snapshots at config.checkpoints and
    at the last iteration, Gaussians [F, N] on the pipeline's device. Raises ValueError for zero iterations, an
    empty prompt or a mode the prior's grid cannot take.
    """
    run = Progress(config, history, progress)
    generator = torch.Generator().manual_seed(config.seed)
    guide = Guide(pipeline, request, config, generator)
    params = {k: v.to(guide.device).requires_grad_() for k, v in init_params(guide.F, config.num_gaussians, generator).items()}
    optimiser = torch.optim.Adam([
        {"params": [params["means"]], "lr": config.means_lr},
        {"params": [params["offsets"]], "lr": config.offsets_lr},
        {"params": [params[k] for k in SHARED], "lr": config.lr},
    ])
    weights = {"photometric": config.photometric, "smoothness": config.smoothness}
    for step in range(config.iters):
        c2w, K = guide.ring()
        sigma = guide.sigma(step, config.iters, config.sigma_max)
        terms = guide.terms(guide.render(frames_of(params), c2w, K), c2w, K, sigma)
        terms["smoothness"] = temporal_smoothness(params["offsets"], torch.zeros_like(params["offsets"]))  # offsets only
        descend(optimiser, terms, weights)
        run.step(terms, sigma, lambda: frames_of(params))
    return run.finish()
