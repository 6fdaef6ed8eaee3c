"""Generation pipeline: prompt (+ optional image or video for view 0) -> a grid of views x frames, with its cameras.

A plain class with diffusers' conventions (components as attributes, `__call__`, `to`, `save_pretrained` /
`from_pretrained`, a tqdm progress bar) rather than a DiffusionPipeline subclass: the latter would save the 90 MB
text encoder into every folder and resolve components by import path. A saved pipeline is

    folder/transformer/   config.json + diffusion_pytorch_model.safetensors (MultiViewVideoDiT)
    folder/scheduler/     scheduler_config.json (FlowMatchEulerDiscreteScheduler)
    folder/pipeline.json  the text encoder's reference (local path, or null for the packaged default) and defaults
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from tqdm.auto import tqdm

from data.cameras import fit_distance, intrinsics_from_fov, orbit_c2w, ring_azimuths, roll_intrinsics, rotate_about_up
from model.diffusion import Task, condition_mask, from_model_rgb, sample_noise
from model.dit import MultiViewVideoDiT
from model.sampling import PipelineDefaults, Sampling
from model.text import TextEncoder, TextStates


@dataclass
class Generation:
    """What the pipeline returns (cameras in data.cameras' conventions)."""

    images: torch.Tensor  # [V, F, 3, H, W] in [0, 1]
    c2w: torch.Tensor  # [V, F, 4, 4] OpenCV camera-to-world
    K: torch.Tensor  # [V, 3, 3] normalised intrinsics
    times: torch.Tensor  # [F] in [0, 1]


# images [V, F, 3, H, W] in [0, 1], c2w [V, F, 4, 4], K [V, 3, 3] -> renders [V, F, 3, H, W] in [0, 1] of one 3D
# reconstruction of them at the same cameras (infer.py passes the Gaussian head followed by the renderer).
Reconstructor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def model_conditioning(cond: torch.Tensor, given: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, times: torch.Tensor,
                       text: TextStates, motion: float = PipelineDefaults.motion, still_last: bool = False
                       ) -> dict[str, torch.Tensor]:
    """The transformer's inputs besides x_t and the timestep, repeated to the G = len(text.states) rows.

    cond: [1, V, F, 3, H, W]; given: bool [1, V, F]; c2w: [V, F, 4, 4]; K: [V, 3, 3]; times: [F]; text: [G, L, D_text]
    (the rows of `Guidance.prompts`); motion: the score asked for (read by motion-conditioned models only);
    still_last: the last row sees every frame at time 0, a clip that does not move (motion guidance).
    """
    G = len(text.states)
    times = times[None].repeat(G, 1)  # [G, F]
    if still_last:
        times[-1] = 0.0
    return dict(
        cond_images=cond.expand(G, -1, -1, -1, -1, -1), cond_mask=given.expand(G, -1, -1),
        c2w=c2w[None].expand(G, -1, -1, -1, -1), K=K[None].expand(G, -1, -1, -1), times=times,
        text_states=text.states, text_mask=text.mask, motion=torch.full((G,), float(motion), device=c2w.device),
    )  # each [G, ...]


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance scales; a scale of 1 is off and drops its row from the batch the network sees.

    The rows, in order: the prompt; the empty prompt (`text` != 1); the prompt with every frame at time 0, a still
    clip (`motion` != 1). The guided velocity is
        v = v_prompt + (text - 1) (v_prompt - v_empty) + (motion - 1) (v_prompt - v_still),
    so `motion` > 1 steers each step away from what the model draws for an object that does not move (the
    frame-time condition guided as the prompt is).
    """

    text: float = 3.0
    motion: float = 1.0

    def prompts(self, prompt: str) -> list[str]:
        """The prompt of each row."""
        return [prompt] + [""] * (self.text != 1.0) + [prompt] * (self.motion != 1.0)

    def combine(self, v: torch.Tensor) -> torch.Tensor:
        """The guided velocity [1, ...] from the rows' velocities v [G, ...]."""
        guided = v[1:2] + self.text * (v[:1] - v[1:2]) if self.text != 1.0 else v[:1]
        if self.motion != 1.0:
            guided = guided + (self.motion - 1.0) * (v[:1] - v[-1:])
        return guided


def guided_velocity(transformer, x: torch.Tensor, timestep: torch.Tensor, conditioning: dict, guidance: Guidance) -> torch.Tensor:
    """The guided velocity [1, V, F, 3, H, W] of x [1, V, F, 3, H, W] at timestep [1] or [], the conditioning's G rows
    laid out as `guidance.prompts` lays them out."""
    G = len(conditioning["text_states"])
    v = transformer(x.expand(G, -1, -1, -1, -1, -1), timestep.expand(G), **conditioning)  # [G, V, F, 3, H, W]
    return guidance.combine(v)


def grid_offsets(step: int, steps: int, half_patch: int) -> list[tuple[int, int]]:
    """The patch-grid offsets (rows, columns) in pixels that step `step` of `steps` averages its prediction over when
    patch shifting: the grid, and the grid moved by half a patch, on alternate steps; both in the last quarter."""
    moved = (half_patch, half_patch)
    if step >= 0.75 * steps:
        return [(0, 0), moved]
    return [(0, 0)] if step % 2 == 0 else [moved]


def shifted_velocity(transformer, x: torch.Tensor, timestep: torch.Tensor, conditioning: dict, guidance: Guidance,
                     offsets: list[tuple[int, int]]) -> torch.Tensor:
    """`guided_velocity` [1, V, F, 3, H, W] averaged over patch-grid offsets (dy, dx).

    For each offset the images and the conditioning images are rolled by (dy, dx) pixels and every principal point
    moves with them, so each pixel keeps its own ray; the prediction is rolled back. Patch borders then fall in
    different places at different steps and no 8x8 seam stays put. What wraps round the edge is background.
    """
    if offsets == [(0, 0)]:
        return guided_velocity(transformer, x, timestep, conditioning, guidance)
    H, W = x.shape[-2:]
    total = torch.zeros_like(x)  # [1, V, F, 3, H, W]
    for dy, dx in offsets:
        moved = {**conditioning, "K": roll_intrinsics(conditioning["K"], dy, dx, H, W),  # [G, V, 3, 3]
                 "cond_images": conditioning["cond_images"].roll((dy, dx), (-2, -1))}
        velocity = guided_velocity(transformer, x.roll((dy, dx), (-2, -1)), timestep, moved, guidance)  # [1, V, F, 3, H, W]
        total += velocity.roll((-dy, -dx), (-2, -1))
    return total / len(offsets)


@dataclass
class RenderLoop:
    """Reconstruction in the sampling loop (VideoMV's 3D-aware denoising; DMV3D reconstructs as its denoiser).

    At the steps from fraction `start` to before `end` of them it takes the clean image the model predicts,
    x0 = x_t - sigma * v, reconstructs it in 3D with `render_back` (model-space images [V, F, 3, H, W] in [0, 1] ->
    renders of the reconstruction at the same cameras), blends x0 `blend` of the way towards the renders and returns
    the velocity that leads to it. The views then share one 3D object as the noise falls: consistent by construction
    at blend 1.
    """

    render_back: Callable[[torch.Tensor], torch.Tensor]
    start: float  # fraction of the steps from which it runs (0: from the first)
    blend: float  # 0: the model's prediction, 1: the renders
    end: float = 1.0  # fraction of the steps from which it stops (1: it runs to the last)

    def runs_at(self, step: int, num_steps: int) -> bool:
        """Whether it runs at step `step` of `num_steps` (counted from 0)."""
        return self.start * num_steps <= step < self.end * num_steps

    def velocity(self, x: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The velocity [1, V, F, 3, H, W] whose clean image is blended towards the renders; x, velocity the same."""
        sigma = sigma.to(x)
        x0 = x - sigma * velocity  # [1, V, F, 3, H, W], the model's clean-image prediction in [-1, 1]
        renders = self.render_back(from_model_rgb(x0[0].float())).to(x0) * 2 - 1  # [V, F, 3, H, W] in [-1, 1]
        x0 = x0 + self.blend * (renders[None] - x0)  # [1, V, F, 3, H, W]
        return (x - x0) / sigma.clamp(min=1e-4)  # [1, V, F, 3, H, W]


class MultiViewVideoPipeline:
    """Text-, image- or video-to-multiview-video with classifier-free guidance and flow-matching Euler sampling."""

    def __init__(
        self,
        transformer: MultiViewVideoDiT,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_encoder: TextEncoder,
        defaults: PipelineDefaults | None = None,
    ):
        if text_encoder.dim != transformer.config.text_dim:
            raise ValueError(f"text encoder is {text_encoder.dim} wide but the transformer expects {transformer.config.text_dim}")
        if transformer.config.num_train_timesteps != scheduler.config.num_train_timesteps:
            raise ValueError(
                f"the transformer reads timesteps out of {transformer.config.num_train_timesteps} but the scheduler "
                f"counts {scheduler.config.num_train_timesteps}"
            )
        self.transformer, self.scheduler, self.text_encoder = transformer, scheduler, text_encoder
        self.defaults = defaults or PipelineDefaults()

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def to(self, device: torch.device | str) -> MultiViewVideoPipeline:
        self.transformer.to(device)
        self.text_encoder.to(device)
        return self

    @staticmethod
    def cameras(
        num_views: int, num_frames: int, height: int, width: int, elevation: float, fov_deg: float, distance: float | None,
        azimuth: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Orbit cameras c2w [V, F, 4, 4], K [V, 3, 3] at one elevation (degrees), view 0 at `azimuth` (0: the front)."""
        distance = fit_distance(fov_deg) if distance is None else distance
        c2w = orbit_c2w(torch.full((num_views,), float(elevation)), ring_azimuths(num_views, azimuth), distance, num_frames)
        return c2w, intrinsics_from_fov(fov_deg, aspect=width / height).expand(num_views, 3, 3).clone()

    def condition(self, image, video, num_views, num_frames, height, width) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning RGB [1, V, F, 3, H, W] in [-1, 1] and given-mask [1, V, F] from an optional image or video."""
        if image is not None and video is not None:
            raise ValueError("give an image or a video, not both")
        if video is not None and tuple(video.shape) != (num_frames, 3, height, width):
            raise ValueError(f"video has shape {tuple(video.shape)}, expected [F, 3, H, W] = {(num_frames, 3, height, width)}")
        if image is not None and tuple(image.shape) != (3, height, width):
            raise ValueError(f"image has shape {tuple(image.shape)}, expected [3, H, W] = {(3, height, width)}")
        task = Task.VIDEO if video is not None else Task.IMAGE if image is not None else Task.TEXT
        given = condition_mask(torch.tensor([task]), num_views, num_frames)  # [1, V, F]
        cond = torch.zeros(1, num_views, num_frames, 3, height, width)
        if task != Task.TEXT:
            frames = video if video is not None else image[None]  # [F or 1, 3, H, W]
            cond[0, 0, : len(frames)] = frames.float().cpu() * 2 - 1
        return cond.to(self.device, self.transformer.dtype), given.to(self.device)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        image: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        *,
        num_views: int | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        elevation: float = 0.0,
        azimuth: float = 0.0,
        fov_deg: float | None = None,
        distance: float | None = None,
        num_inference_steps: int = 25,
        sampling: Sampling = Sampling(),
        reconstruct: Reconstructor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> Generation:
        """Generate a grid of views x frames of an object.

        prompt: non-empty text. image: [3, H, W] in [0, 1], view 0 frame 0 (image-to-4D); video: [F, 3, H, W] in
        [0, 1], view 0 (video-to-4D); given frames come back unchanged. Views sit on a ring at `elevation` degrees,
        view 0 at `azimuth`; distance defaults to the one at which the normalised object fits the field of view.
        sampling: the sampler ("stochastic" or "ode", see `_denoise`), the guidance scales (`guidance`, or
        `video_guidance` when a video is given, and `motion_guidance`; see `Guidance`), the motion score asked of a
        motion-conditioned model and the reconstruction loop (`loop_*`, see PipelineDefaults), which runs only with a
        `reconstruct`. None: the saved default. progress=False hides the bar.
        """
        if not prompt or not prompt.strip():
            raise ValueError("prompt is empty; describe the object (the empty prompt is the unconditional branch)")
        grid = dict(num_views=num_views, num_frames=num_frames, height=height, width=width, fov_deg=fov_deg)
        d = replace(sampling.over(self.defaults), **{k: v for k, v in grid.items() if v is not None})  # validates every value
        V, F, H, W = d.num_views, d.num_frames, d.height, d.width
        turn = azimuth if d.canonical_ring else 0.0  # a canonical-ring model sees view 0 at azimuth 0, always
        c2w, K = self.cameras(V, F, H, W, elevation, d.fov_deg, distance, azimuth - turn)  # [V, F, 4, 4], [V, 3, 3]
        times = torch.linspace(0, 1, F)  # [F]
        cond, given = self.condition(image, video, V, F, H, W)  # [1, V, F, 3, H, W], [1, V, F]
        guidance = Guidance(d.video_guidance if video is not None else d.guidance, d.motion_guidance)
        text = self.text_encoder(guidance.prompts(prompt))  # [G, L, D_text], G = 1 to 3 rows
        c2w, K, times = c2w.to(self.device), K.to(self.device), times.to(self.device)
        conditioning = model_conditioning(cond, given, c2w, K, times, text, d.motion, still_last=guidance.motion != 1.0)
        noise = sample_noise((1, V, F, 3, H, W), d.shared_noise, generator, self.device, self.transformer.dtype)
        loop = None if reconstruct is None else RenderLoop(lambda x: reconstruct(x, c2w, K), d.loop_start, d.loop_blend,
                                                           d.loop_end)
        x = self._denoise(noise, cond, given, conditioning, guidance, num_inference_steps, d.sampler, generator,
                          progress, loop, d.patch_shift)
        images = from_model_rgb(x[0].float())  # [V, F, 3, H, W]
        if loop is not None and d.loop_output == "render":
            images = torch.where(given[0, ..., None, None, None], images, reconstruct(images, c2w, K).clamp(0, 1))
        c2w = rotate_about_up(c2w, turn) if turn else c2w  # [V, F, 4, 4] with view 0 at `azimuth`
        return Generation(images.cpu(), c2w.cpu(), K.cpu(), times.cpu())

    def _denoise(self, x, cond, given, conditioning, guidance: Guidance, num_inference_steps, sampler, generator,
                 progress, loop: RenderLoop | None = None, patch_shift: bool = False) -> torch.Tensor:
        """Steps of the flow from noise x [1, V, F, 3, H, W] to images [1, V, F, 3, H, W], the given frames held at cond.

        cond: [1, V, F, 3, H, W]; given: bool [1, V, F]; conditioning: `model_conditioning`'s rows of `guidance`.
        "ode": Euler steps along the predicted velocity (deterministic given the noise). "stochastic": each step
        takes the clean image the model predicts and noises it afresh to the next level (diffusers'
        `stochastic_sampling`), so an error made at one step is not carried along the path. Measured on the
        shipped cpu-small model, "ode" left objects broken into scattered 8x8 patches, "stochastic" joined them
        into whole silhouettes (pretrained/zoetrope4d-cpu-small/README.md). `loop` (RenderLoop) may replace the
        clean-image prediction by renders of its 3D reconstruction before the step is taken. `patch_shift` moves the
        patch grid by half a patch on alternate steps and averages both grids in the last quarter (`grid_offsets`).
        """
        keep = given[..., None, None, None]  # [1, V, F, 1, 1, 1]
        half_patch = self.transformer.config.patch_size // 2
        # A scheduler per call: the pipeline's own stays in the state it was saved in (training code shares it).
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config, stochastic_sampling=sampler == "stochastic")
        scheduler.set_timesteps(num_inference_steps, device=self.device)
        for i, t in enumerate(tqdm(scheduler.timesteps, disable=not progress, desc="denoising")):
            x = torch.where(keep, cond, x)  # [1, V, F, 3, H, W], given frames clean as in training
            offsets = grid_offsets(i, len(scheduler.timesteps), half_patch) if patch_shift else [(0, 0)]
            velocity = shifted_velocity(self.transformer, x, t, conditioning, guidance, offsets)  # [1, V, F, 3, H, W]
            if loop is not None and loop.runs_at(i, len(scheduler.timesteps)):
                velocity = loop.velocity(x, velocity, scheduler.sigmas[i])  # [1, V, F, 3, H, W]
            x = scheduler.step(velocity, t, x, generator=generator).prev_sample  # [1, V, F, 3, H, W]
        return torch.where(keep, cond, x)  # [1, V, F, 3, H, W]

    def save_pretrained(self, path: str | os.PathLike, max_shard_size: str = "16MB") -> None:
        """Write transformer/, scheduler/ and pipeline.json (the text encoder is referenced, not copied).

        The transformer's safetensors are split into files of at most `max_shard_size`, so that an exported model
        can be committed as it is (no file in git over 20 MB).
        """
        path = Path(path)
        self.transformer.save_pretrained(path / "transformer", max_shard_size=max_shard_size)
        self.scheduler.save_pretrained(path / "scheduler")
        meta = {"text_encoder": self.text_encoder.path, "text_max_length": self.text_encoder.max_length, **asdict(self.defaults)}
        (path / "pipeline.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, text_encoder: TextEncoder | None = None) -> MultiViewVideoPipeline:
        """Load a folder written by save_pretrained; text_encoder overrides the referenced one (e.g. one already loaded)."""
        path = Path(path)
        if not (path / "pipeline.json").is_file():
            raise ValueError(f"{str(path)!r} is not a saved pipeline (no pipeline.json)")
        meta = json.loads((path / "pipeline.json").read_text())
        encoder_path, max_length = meta.pop("text_encoder"), meta.pop("text_max_length")
        return cls(
            MultiViewVideoDiT.from_pretrained(path / "transformer"),
            FlowMatchEulerDiscreteScheduler.from_pretrained(path / "scheduler"),
            text_encoder or TextEncoder(encoder_path, max_length=max_length),
            PipelineDefaults(**meta),
        )
