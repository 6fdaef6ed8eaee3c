"""One-shot 4D generation: prompt (or image, or video) -> multiview video -> 4D Gaussians -> files.

    python infer.py "a small red four-legged animal walking" --out outputs/walker
    python infer.py "a wolf" --image wolf.png --out outputs/wolf          # image-to-4D: view 0, frame 0 given
    python infer.py "a wolf" --video wolf.mp4 --out outputs/wolf-video    # video-to-4D: view 0, every frame given
    python infer.py "a wolf" --multiview views.mp4 --out outputs/wolf-4d  # 4D reconstruction of given views, no diffusion

Writes into --out (built under a temporary name and renamed when complete, so a failed run leaves nothing):
  multiview.mp4    the generated views x frames, views side by side, one video frame per animation frame
  orbit.mp4        the 4D Gaussians rendered by a camera circling the object while time advances
  ply/frame_NNN.ply  one standard 3DGS .ply per animation frame
  viewer.html      the 4D viewer: plays the Gaussians in a browser, opened from disk with no server
  animated.glb     a coloured mesh per frame (density field + marching cubes), animated (off with --no-mesh)
  meta.json        prompt, mode, settings, seed, seconds per stage, model folder
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from data.atomic import atomic_folder
from data.cameras import pixel_size_at_origin
from data.cli import (Failure, UsageError, check_device, check_output, entry_point, finite_float, fraction, non_negative_float,
                      non_negative_int, positive_int)
from model.sampling import LOOP_OUTPUTS, SAMPLERS, PipelineDefaults, Sampling  # a light module: no diffusers

DEFAULT_MODEL = Path(__file__).resolve().parent / "pretrained" / "zoetrope4d-cpu-small"
FPS = 8  # animation frames per second in multiview.mp4, viewer.html and animated.glb
MAX_PROMPT_CHARS = 1000  # the text encoder reads the first 64 tokens (about 300 characters); more is not a prompt
MAX_STEPS = 1000  # the scheduler's training timesteps: more steps than that only repeat them
# Refinement of the Gaussians against what the user gave, by default: video-to-4D +0.43 dB at the held-out views of
# 15 real clips, +0.35 dB on 12 procedural ones (benchmarks/results/2026-12-03-refine); image-to-4D, fitted to the
# image at the first frame, +0.31 dB on 7 real clips, +0.36 on 12 procedural (benchmarks/results/2026-12-03-image-refine).
REFINE_STEPS = 50
# The written Gaussians are smoothed by this many pixels of the views they were made from (`Gaussians.smoothed`), so
# the orbit, viewer and .ply seen at 256 px and more show a surface, not a grid of dots (benchmarks/results/2026-12-03-smoothing).
SMOOTHING_PIXELS = 0.75


@dataclass
class Settings:
    """What one generation uses; saved in meta.json."""

    views: int | None  # None: the model's
    frames: int | None
    steps: int
    seed: int
    elevation: float
    video_size: int
    refine_steps: int | None  # None: `refine_steps_for`'s default for the input
    sampling: Sampling = Sampling()  # sampler, guidance, motion score, reconstruction loop, patch shifting; None fields: the model's saved default
    mesh: bool = True  # write animated.glb
    smoothing: float = SMOOTHING_PIXELS  # of the written Gaussians, in pixels of the views (0: as the head made them)


class InferError(ValueError):
    """Bad input to infer.py; the message says what is wrong."""


# ----------------------------------------------------------------------------- inputs


def check_model_folder(path: Path) -> None:
    """A model folder holds diffusion/pipeline.json and recon/config.json (what train.py exports)."""
    if not path.is_dir():
        raise InferError(f"model folder {path} does not exist")
    for part in ("diffusion/pipeline.json", "diffusion/transformer/config.json", "recon/config.json"):
        if not (path / part).is_file():
            raise InferError(f"model folder {path} is incomplete: {part} is missing")


def transformer_bytes(tokens_per_image: int, views: int, frames: int, width: int, heads: int, batch: int = 1) -> int:
    """Peak float32 bytes of one block over tokens [batch, views, frames, tokens_per_image, width]: its working
    tensors (x, norms, q, k, v, attention output, a 4x MLP: about 12 copies) plus the largest attention-score
    matrix of the spatial, cross-view and cross-frame attention, counted as if materialised (errs high where a
    kernel does not materialise it)."""
    N, V, F = tokens_per_image, views, frames
    working = 12 * batch * V * F * N * width
    scores = batch * heads * max(V * F * N * N, F * N * V * V, V * N * F * F)
    return 4 * (working + scores)


def grid_bytes(model: Path, views: int, frames: int) -> int:
    """Estimated peak bytes of generating views x frames with a model folder (read from its config files): the
    weights, plus the larger of the diffusion transformer's block (three rows at most: model.pipeline.Guidance) and the
    Gaussian head's, plus the pixels (images, rays, noise, Gaussians: about 64 floats a pixel). The steps set the
    time, not the memory."""
    dit = json.loads((model / "diffusion/transformer/config.json").read_text())
    head = json.loads((model / "recon/config.json").read_text())
    grid = json.loads((model / "diffusion/pipeline.json").read_text())
    pixels = grid["height"] * grid["width"]
    weights = sum(f.stat().st_size for f in model.rglob("*.safetensors"))
    denoise = transformer_bytes(pixels // dit["patch_size"] ** 2, views, frames, dit["hidden_size"], dit["num_heads"], batch=3)
    reconstruct = transformer_bytes(pixels // head["patch_size"] ** 2, views, frames, head["width"], head["heads"])
    return weights + max(denoise, reconstruct) + 4 * 64 * views * frames * pixels


def free_bytes(device: str) -> int:
    """Memory available to this run on `device`: free GPU memory, or the machine's available RAM."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    import psutil

    return psutil.virtual_memory().available


def largest(fits, upper: int) -> int:
    """The largest n in [0, upper] with fits(n) (fits is monotone: true up to some n), by bisection."""
    low, high = 0, upper
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def check_grid(model: Path, views: int | None, frames: int | None, device: str) -> None:
    """UsageError, before any weight is loaded, when the grid's estimated memory (`grid_bytes`) exceeds 80% of what
    `device` has free; the message gives the largest --frames and --views that fit."""
    grid = json.loads((model / "diffusion/pipeline.json").read_text())
    V, F = views or grid["num_views"], frames or grid["num_frames"]
    budget = int(0.8 * free_bytes(device))
    need = grid_bytes(model, V, F)
    if need <= budget:
        return
    most_frames = largest(lambda f: grid_bytes(model, V, f) <= budget, F)
    most_views = largest(lambda v: grid_bytes(model, v, F) <= budget, V)
    gib = 2**30
    raise UsageError(f"{V} views x {F} frames needs about {need / gib:.1f} GiB; {budget / gib:.1f} GiB is free on "
                     f"{device} (80% of what is available): at most --frames {most_frames} with {V} views"
                     + (f", or --views {most_views} with {F} frames" if most_views else ""))


def over_white(image, height: int, width: int) -> np.ndarray:
    """A PIL image resized to W x H with transparent pixels over white: RGB [H, W, 3] float in [0, 1]."""
    from PIL import Image

    rgba = image.convert("RGBA").resize((width, height), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.float32) / 255


def load_image(path: Path, height: int, width: int) -> torch.Tensor:
    """An image file -> RGB [3, H, W] in [0, 1], transparent pixels over white, resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise InferError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(over_white(image, height, width)).permute(2, 0, 1)  # [3, H, W]


def read_clip(path: Path, frames: int) -> np.ndarray:
    """A video (mp4, gif, ...) -> `frames` frames evenly spread over it, [F, H, W, C] as stored."""
    import imageio.v3 as iio

    try:
        clip = iio.imread(path, index=None)  # [T, H, W, C]
    except Exception as err:  # imageio raises many kinds of errors on unreadable files
        raise InferError(f"cannot read video {path}: {err}") from None
    if clip.ndim != 4 or len(clip) < frames:
        raise InferError(f"video {path} has {len(clip) if clip.ndim == 4 else 0} frames; at least {frames} are needed")
    return clip[np.linspace(0, len(clip) - 1, frames).round().astype(int)]


def load_video(path: Path, frames: int, height: int, width: int) -> torch.Tensor:
    """A video -> `frames` frames evenly spread over it, RGB [F, 3, H, W] in [0, 1], over white, resized."""
    from PIL import Image

    out = np.stack([over_white(Image.fromarray(frame), height, width) for frame in read_clip(path, frames)])  # [F, H, W, 3]
    return torch.from_numpy(out).permute(0, 3, 1, 2)  # [F, 3, H, W]


def load_multiview(path: Path, views: int, frames: int, height: int, width: int) -> torch.Tensor:
    """A multiview video laid out as infer.py writes multiview.mp4 (the views side by side, view 0 on the left) ->
    RGB [V, F, 3, H, W] in [0, 1], each view over white and resized."""
    from PIL import Image

    clip = read_clip(path, frames)  # [F, H', V * W', C]
    if clip.shape[2] % views:
        raise InferError(f"multiview video {path} is {clip.shape[2]} pixels wide: not {views} views side by side "
                         "(--views sets how many)")
    tiles = np.split(clip, views, axis=2)  # V x [F, H', W', C]
    out = np.stack([[over_white(Image.fromarray(frame), height, width) for frame in tile] for tile in tiles])  # [V, F, H, W, 3]
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3)  # [V, F, 3, H, W]


# ----------------------------------------------------------------------------- generation


def print_stage(done: int, total: int, name: str) -> None:
    """The command line's progress report: one line per stage on stderr."""
    print(f"[{done}/{total}] {name} ...", file=sys.stderr, flush=True)


class Stages:
    """Wall-clock seconds per stage, with a progress report `report(done, total, name)` as each starts."""

    def __init__(self, total: int, report=print_stage):
        self.seconds: dict[str, float] = {}
        self.total, self.done, self.report = total, 0, report

    def run(self, name: str, fn, *args, **kwargs):
        self.done += 1
        self.report(self.done, self.total, name)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 3)
        return result


def load_models(folder: Path, device: torch.device):
    """The diffusion pipeline and the Gaussian head of a model folder, on `device`, in eval mode."""
    from model.pipeline import MultiViewVideoPipeline
    from recon.head import GaussianHead4D

    check_weight_files(folder)
    pipeline = load_part(MultiViewVideoPipeline.from_pretrained, folder / "diffusion").to(device)
    head = load_part(GaussianHead4D.from_pretrained, folder / "recon").to(device).eval()
    return pipeline, head


def load_part(load, path: Path):
    """load(path), with InferError naming the folder when its weights do not fit the config.json beside them."""
    try:
        return load(path)
    except (OSError, ValueError, RuntimeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise InferError(f"{path} does not load (its weights do not match its config.json, e.g. files of two "
                         f"presets mixed): {reason}") from None


def check_weight_files(folder: Path) -> None:
    """InferError naming the first .safetensors file of a model folder that is unreadable (truncated, not
    safetensors) or holds other than float32 weights, before anything is loaded from it."""
    from safetensors import SafetensorError, safe_open

    for file in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(file, "pt") as f:
                dtypes = {f.get_slice(name).get_dtype() for name in f.keys()}
        except (SafetensorError, OSError) as err:
            raise InferError(f"model file {file} cannot be read ({err}): truncated or not safetensors; "
                             "export or copy the model again") from None
        if dtypes - {"F32"}:
            raise InferError(f"model file {file} holds {', '.join(sorted(dtypes - {'F32'}))} weights; this model "
                             "loads float32 ones (export it again with train.py)")


def write_multiview_video(path: Path, images: torch.Tensor, fps: int = FPS) -> None:
    """Images [V, F, 3, H, W] in [0, 1] -> an mp4 with F frames, the V views side by side."""
    from recon.export import write_video

    V, F, C, H, W = images.shape
    write_video(path, images.permute(1, 2, 3, 0, 4).reshape(F, C, H, V * W), fps)  # [F, 3, H, V*W]


def write_viewer(path: Path, gaussians, title: str) -> None:
    """viewer.html for Gaussians [F, N] (see viewer/page.py)."""
    from recon.export import splat_bytes
    from viewer.page import build_page

    path.write_text(build_page([splat_bytes(gaussians.map(lambda t: t[f])) for f in range(gaussians.batch_shape[0])], title, FPS))


def write_mesh(path: Path, gaussians) -> None:
    """animated.glb: one coloured mesh per frame of Gaussians [F, N], played at FPS."""
    from recon.mesh import extract_meshes, write_animated_glb

    write_animated_glb(path, extract_meshes(gaussians), FPS)


def check_request(prompt: str, image: Path | None, video: Path | None, multiview: Path | None = None) -> None:
    """Raises InferError on a request that cannot run, before any work."""
    if not prompt or not prompt.strip():
        raise InferError("the prompt is empty: describe the object, e.g. \"a small red ball bouncing\"")
    if image is not None and video is not None:
        raise InferError("give --image or --video, not both")
    if multiview is not None and (image is not None or video is not None):
        raise InferError("--multiview is reconstructed as it is: give no --image or --video with it")


def generate(prompt: str, out: Path, model: Path, settings: Settings, device: str = "cpu",
             image: Path | None = None, video: Path | None = None, multiview: Path | None = None) -> dict:
    """Load the model and run the whole job; returns meta.json's content. Raises InferError on bad input before
    writing anything."""
    check_request(prompt, image, video, multiview)
    check_model_folder(model)
    stages = Stages(total=1)  # generate_with adds its own stages
    pipeline, head = stages.run("load model", load_models, model, torch.device(device))
    return generate_with(pipeline, head, model, prompt, out, settings, image, video, stages, multiview)


def generate_with(pipeline, head, model: Path, prompt: str, out: Path, settings: Settings, image: Path | None = None,
                  video: Path | None = None, stages: Stages | None = None, multiview: Path | None = None) -> dict:
    """The job on models already loaded (`load_models` of the folder `model`), shared by infer.py and app.py;
    returns meta.json's content. `multiview`: reconstruct that multiview video instead of generating one (the
    prompt only names the result). Raises InferError on bad input before writing anything."""
    from recon.export import write_frames, write_orbit_video

    check_request(prompt, image, video, multiview)
    something_given = any(x is not None for x in (image, video, multiview))
    settings = replace(settings, refine_steps=refine_steps_for(settings.refine_steps, something_given))  # as recorded
    stages = stages or Stages(total=0)
    stages.total = stages.done + 6 + settings.mesh
    d = settings.sampling.over(pipeline.defaults)
    V, F, sampling = settings.views or d.num_views, settings.frames or d.num_frames, Sampling.of(d)  # resolved once: used and recorded
    if multiview is not None:
        result = stages.run("multiview video", given_multiview, multiview, V, F, d, settings.elevation)
        gaussians = stages.run("4D Gaussians", reconstruct, head, result.images, result.c2w, result.K,
                               settings.refine_steps)  # fits every view
    else:
        given = dict(
            image=load_image(image, d.height, d.width) if image else None,
            video=load_video(video, F, d.height, d.width) if video else None,
        )
        result, gaussians = feed_forward(pipeline, head, prompt, **given, views=V, frames=F, elevation=settings.elevation,
                                         steps=settings.steps, seed=settings.seed,
                                         refine_steps=settings.refine_steps, stages=stages, sampling=sampling)

    sigma = settings.smoothing * pixel_size_at_origin(result.c2w, result.K, result.images.shape[-1])
    gaussians = gaussians.smoothed(sigma)  # [F, N], as every file below shows them
    with atomic_folder(out) as tmp:
        stages.run("write multiview.mp4", write_multiview_video, tmp / "multiview.mp4", result.images, FPS)
        stages.run("write orbit.mp4", write_orbit_video, tmp / "orbit.mp4", gaussians, size=settings.video_size,
                   elevation=settings.elevation)
        stages.run("write .ply", write_frames, tmp / "ply", gaussians)
        stages.run("write viewer.html", write_viewer, tmp / "viewer.html", gaussians, prompt)
        if settings.mesh:
            stages.run("animated mesh", write_mesh, tmp / "animated.glb", gaussians)
        mode = "multiview" if multiview else "video" if video else "image" if image else "text"
        meta = {"prompt": prompt, "mode": mode,
                "image": str(image) if image else None, "video": str(video) if video else None,
                "multiview": str(multiview) if multiview else None,
                "model": str(model), "device": str(next(head.parameters()).device), "settings": asdict(settings),
                "views": V, "frames": F, "fps": FPS, **asdict(sampling),
                "gaussians_per_frame": gaussians.num_gaussians, "seconds": stages.seconds,
                "total_seconds": round(sum(stages.seconds.values()), 3)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def feed_forward(pipeline, head, prompt: str, image: torch.Tensor | None = None, video: torch.Tensor | None = None, *,
                 views: int, frames: int, elevation: float, azimuth: float = 0.0, steps: int = 20,
                 size: tuple[int, int] | None = None, seed: int = 0, refine_steps: int | None = None,
                 stages: Stages | None = None, sampling: Sampling = Sampling(), progress: bool = True):
    """The feed-forward method, shared by infer.py, app.py and benchmark.py: prompt (+ image [3, H, W] or video
    [F, 3, H, W] in [0, 1], the front view) -> the diffusion pipeline -> the Gaussian head (-> refinement).

    The views sit on a ring at `elevation` degrees with view 0 at `azimuth`, `size` (H, W) pixels (None: the given
    image's, else the pipeline's). `sampling` overrides the pipeline's saved sampling defaults; `stages` times and reports the two stages; progress=False hides the denoising
    and refinement progress bars. Returns (Generation, Gaussians [F, N] on the CPU).
    """
    stages = stages or Stages(total=0, report=lambda *_: None)
    torch.manual_seed(seed)
    given = video if video is not None else image
    H, W = size or (given.shape[-2:] if given is not None else (None, None))
    result = stages.run("multiview video", pipeline, prompt, image, video, num_views=views, num_frames=frames, height=H, width=W,
                        elevation=elevation, azimuth=azimuth, num_inference_steps=steps,
                        reconstruct=head.render_back, generator=torch.Generator().manual_seed(seed),
                        sampling=sampling, progress=progress)
    fit = slice(0, 1) if given is not None else slice(None)  # the views refinement fits: the given one, else all
    frames = slice(0, 1) if video is None and image is not None else slice(None)  # an image is the first frame only
    refine_steps = refine_steps_for(refine_steps, given is not None)
    return result, stages.run("4D Gaussians", reconstruct, head, result.images, result.c2w, result.K, refine_steps, fit,
                              progress, frames)


def given_multiview(path: Path, views: int, frames: int, d: PipelineDefaults, elevation: float) -> Generation:
    """A multiview video as a Generation: its views [V, F, 3, H, W] at the ring cameras infer.py generates at
    (view 0 at azimuth 0, the views evenly spread, at `elevation`, with the model's field of view `d.fov_deg`)."""
    from model.pipeline import Generation, MultiViewVideoPipeline

    images = load_multiview(path, views, frames, d.height, d.width)  # [V, F, 3, H, W]
    c2w, K = MultiViewVideoPipeline.cameras(views, frames, d.height, d.width, elevation, d.fov_deg, None)
    return Generation(images, c2w, K, torch.linspace(0, 1, frames))


def refine_steps_for(refine_steps: int | None, given: bool) -> int:
    """The refinement steps of one generation: `refine_steps` when set, else REFINE_STEPS when something is given (an
    image, a video or a multiview video: views known to be right) and none without (fitted to views that are all
    generated, the Gaussians follow their disagreement and score no better at new views: benchmarks/results/2026-12-03-refine)."""
    if refine_steps is not None:
        return refine_steps
    return REFINE_STEPS if given else 0


def reconstruct(head, images: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, refine_steps: int, fit: slice = slice(None),
                progress: bool = True, frames: slice = slice(None)):
    """Views [V, F, 3, H, W] in [0, 1] over white at cameras c2w [V, F, 4, 4], K [V, 3, 3] -> the head's Gaussians
    [F, N] on the CPU, refined for `refine_steps` against the views `fit` at the frames `frames` (with a video, only
    the given view 0, the one known to be right; with an image, its first frame)."""
    device = next(head.parameters()).device
    images = images[None].to(device)  # [1, V, F, 3, H, W]
    c2w, K = c2w[None].to(device), K[None].to(device)  # [1, V, F, 4, 4], [1, V, 3, 3]
    with torch.no_grad():
        gaussians = head(images, c2w, K)  # [1, F, N]
    if refine_steps > 0:
        from recon.refine import refine_to_views

        gaussians = refine_to_views(gaussians, images[:, fit, frames], c2w[:, fit, frames], K[:, fit], refine_steps,
                                    progress=progress, frames=frames)  # [1, F, N]
    return gaussians.map(lambda t: t[0].cpu())  # [F, N]


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring); argparse or UsageError on impossible values."""
    p = argparse.ArgumentParser(prog="python infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help=f"what to generate, e.g. \"a small red ball bouncing\" (at most {MAX_PROMPT_CHARS} "
                   "characters; the text encoder reads the first 64 tokens)")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced when the run completes)")
    p.add_argument("--image", type=Path, help="image-to-4D: the front view at the first frame")
    p.add_argument("--video", type=Path, help="video-to-4D: the front view over time")
    p.add_argument("--multiview", type=Path, help="4D reconstruction, no diffusion: a multiview video laid out as "
                   "multiview.mp4 (--views views side by side, view 0 the front, evenly spread on a ring at --elevation)")
    p.add_argument("--views", type=positive_int, help="views (default: the model's)")
    p.add_argument("--frames", type=positive_int, help="frames (default: the model's)")
    p.add_argument("--steps", type=positive_int, default=20, help=f"denoising steps (at most {MAX_STEPS})")
    p.add_argument("--guidance", type=finite_float, help="classifier-free guidance scale on the prompt (1: off; default: "
                   "the model's, 3 for the shipped one)")
    p.add_argument("--video-guidance", type=finite_float, help="the guidance scale used with --video (default: the "
                   "model's, 1 for the shipped one: the video says more about the object than its caption)")
    p.add_argument("--motion-guidance", type=finite_float, help="above 1, steer each step away from a still clip, so "
                   "the object moves more (1: off; default: the model's)")
    p.add_argument("--sampler", help="stochastic: re-noise each step's clean-image prediction; "
                   "ode: deterministic Euler steps (default: the model's, stochastic for the shipped one)")
    p.add_argument("--motion", type=finite_float, help="motion score for motion-conditioned models: about 0.016 for a "
                   "walk, 0 for still, 0.03 for fast (default: the model's)")
    p.add_argument("--loop-start", type=fraction, help="reconstruction in the sampling loop from this fraction of the "
                   "steps on (1: off; default: the model's)")
    p.add_argument("--loop-end", type=fraction, help="and up to this fraction of the steps (1: to the last; default: "
                   "the model's)")
    p.add_argument("--loop-blend", type=fraction, help="how far each step's prediction moves towards the renders of its "
                   "3D reconstruction, in [0, 1] (default: the model's)")
    p.add_argument("--loop-output", help="sample: the last denoised views; render: the renders of the final "
                   "reconstruction (default: the model's)")
    p.add_argument("--patch-shift", action=argparse.BooleanOptionalAction, help="move the 8x8 patch grid by half a "
                   "patch on alternate denoising steps, so no patch seams stay (a quarter more time; default: the model's)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--elevation", type=finite_float, default=15.0, help="camera elevation in degrees, in (-90, 90)")
    p.add_argument("--video-size", type=positive_int, default=256, help="orbit video side in pixels (even, 16 to 2048)")
    p.add_argument("--refine-steps", type=non_negative_int,
                   help="test-time photometric refinement steps, against what is given (the video; the image, at the first "
                        "frame; every view of --multiview), else against all generated views (0: off; default: "
                        f"{REFINE_STEPS} with --video, --image or --multiview, else 0)")
    p.add_argument("--smoothing", type=non_negative_float, default=SMOOTHING_PIXELS,
                   help="widen the written Gaussians by this many pixels of the views they were made from, so they show a "
                        f"surface, not a grid of dots, at higher resolutions (0: as the head made them; default {SMOOTHING_PIXELS})")
    p.add_argument("--no-mesh", dest="mesh", action="store_false", help="skip animated.glb (the mesh extraction)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder (default: the shipped model)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    check_arguments(args)
    return args


def check_arguments(args: argparse.Namespace) -> None:
    """UsageError for values argparse's types cannot judge alone; reads no model and writes nothing."""
    if not args.prompt.strip():
        raise UsageError("the prompt is empty: describe the object, e.g. \"a small red ball bouncing\"")
    if len(args.prompt) > MAX_PROMPT_CHARS:
        raise UsageError(f"the prompt has {len(args.prompt)} characters; at most {MAX_PROMPT_CHARS} (the text encoder "
                         "reads only its first 64 tokens, about 300 characters)")
    if args.steps > MAX_STEPS:
        raise UsageError(f"--steps {args.steps}: at most {MAX_STEPS} (the scheduler's training timesteps)")
    if not -90 < args.elevation < 90:
        raise UsageError(f"--elevation {args.elevation}: must be in (-90, 90) degrees (at the pole the orbit has no up)")
    if args.video_size % 2 or not 16 <= args.video_size <= 2048:
        raise UsageError(f"--video-size {args.video_size}: must be an even number from 16 to 2048")
    if args.image is not None and args.video is not None:
        raise UsageError("give --image or --video, not both")
    if args.multiview is not None and (args.image is not None or args.video is not None):
        raise UsageError("--multiview is reconstructed as it is: give no --image or --video with it")
    if args.motion_guidance is not None and args.motion_guidance < 0:
        raise UsageError(f"--motion-guidance {args.motion_guidance}: must be 0 or more (1: off)")
    if args.motion is not None and args.motion < 0:
        raise UsageError(f"--motion {args.motion}: must be 0 or more (about 0.016 for a walk)")
    if None not in (args.loop_start, args.loop_end) and args.loop_end < args.loop_start:
        raise UsageError(f"--loop-end {args.loop_end} comes before --loop-start {args.loop_start}: the loop would never run")
    if args.sampler is not None or args.loop_output is not None:
        for option, value, choices in (("--sampler", args.sampler, SAMPLERS), ("--loop-output", args.loop_output, LOOP_OUTPUTS)):
            if value is not None and value not in choices:
                raise UsageError(f"{option} {value!r}: choose one of {', '.join(choices)}")
    for option in ("image", "video", "multiview"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise UsageError(f"--{option} {path}: no such file")
    check_output(args.out)
    check_device(args.device)


@entry_point
def main(argv=None) -> None:
    """`python infer.py PROMPT --out DIR [options]`: generate, write the outputs, print the seconds per stage.

    Bad input stops with one line `error: ...` (exit 2 for arguments, 1 for unusable files) and writes nothing."""
    args = parse_args(argv)
    sampling = Sampling.of(args)
    settings = Settings(args.views, args.frames, args.steps, args.seed, args.elevation, args.video_size,
                        args.refine_steps, sampling, mesh=args.mesh, smoothing=args.smoothing)
    try:
        check_model_folder(args.model)
    except InferError as err:
        raise UsageError(f"--model: {err}") from None
    check_grid(args.model, args.views, args.frames, args.device)
    try:
        meta = generate(args.prompt, args.out, args.model, settings, args.device, args.image, args.video, args.multiview)
    except (InferError, ValueError) as err:
        raise Failure(str(err)) from None
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in meta["seconds"].items())
    mesh = ", animated.glb" if settings.mesh else ""
    print(f"wrote {args.out}/ (multiview.mp4, orbit.mp4, ply/ x {meta['frames']}, viewer.html{mesh}, meta.json) in {meta['total_seconds']:.1f} s: {stages}")


if __name__ == "__main__":
    main()
