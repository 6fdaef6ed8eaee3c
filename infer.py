"""One-shot 4D generation: prompt (or image, or video) -> multiview video -> 4D Gaussians -> files.

    python infer.py "a small red four-legged animal walking" --out outputs/walker
    python infer.py "a wolf" --image wolf.png --out outputs/wolf          # image-to-4D: view 0, frame 0 given
    python infer.py "a wolf" --video wolf.mp4 --out outputs/wolf-video    # video-to-4D: view 0, every frame given

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
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from data.atomic import atomic_folder
from model.pipeline import LOOP_OUTPUTS, SAMPLERS, MultiViewVideoPipeline

DEFAULT_MODEL = Path(__file__).resolve().parent / "pretrained" / "zoetrope4d-cpu-small"
FPS = 8  # animation frames per second in multiview.mp4, viewer.html and animated.glb


@dataclass
class Settings:
    """What one generation uses; saved in meta.json."""

    views: int | None  # None: the model's
    frames: int | None
    steps: int
    guidance: float
    sampler: str | None  # None: the model's saved default
    seed: int
    elevation: float
    video_size: int
    refine_steps: int
    motion: float | None = None  # None: the model's saved default (read by motion-conditioned models)
    loop_start: float | None = None  # reconstruction in the loop (model.pipeline.PipelineDefaults); None: the model's
    loop_blend: float | None = None
    loop_output: str | None = None
    mesh: bool = True  # write animated.glb


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


def load_video(path: Path, frames: int, height: int, width: int) -> torch.Tensor:
    """A video (mp4, gif, ...) -> `frames` frames evenly spread over it, RGB [F, 3, H, W] in [0, 1]."""
    import imageio.v3 as iio
    from PIL import Image

    try:
        clip = iio.imread(path, index=None)  # [T, H, W, C]
    except Exception as err:  # imageio raises many kinds of errors on unreadable files
        raise InferError(f"cannot read video {path}: {err}") from None
    if clip.ndim != 4 or len(clip) < frames:
        raise InferError(f"video {path} has {len(clip) if clip.ndim == 4 else 0} frames; at least {frames} are needed")
    picks = np.linspace(0, len(clip) - 1, frames).round().astype(int)
    out = np.stack([over_white(Image.fromarray(clip[i]), height, width) for i in picks])  # [F, H, W, 3]
    return torch.from_numpy(out).permute(0, 3, 1, 2)  # [F, 3, H, W]


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
    from recon.head import GaussianHead4D

    pipeline = MultiViewVideoPipeline.from_pretrained(folder / "diffusion").to(device)
    head = GaussianHead4D.from_pretrained(folder / "recon").to(device).eval()
    return pipeline, head


def write_multiview_video(path: Path, images: torch.Tensor, fps: int = 8) -> None:
    """Images [V, F, 3, H, W] in [0, 1] -> an mp4 with F frames, the V views side by side."""
    import imageio.v2 as imageio

    V, F, _, H, W = images.shape
    frames = (images.clamp(0, 1) * 255).round().byte().permute(1, 3, 0, 4, 2).reshape(F, H, V * W, 3)  # [F, H, V*W, 3]
    imageio.mimwrite(path, list(frames.numpy()), fps=fps, codec="libx264", macro_block_size=1, quality=8)


def write_viewer(path: Path, gaussians, title: str) -> None:
    """viewer.html for Gaussians [F, N] (see viewer/page.py)."""
    from recon.export import splat_bytes
    from viewer.page import build_page

    path.write_text(build_page([splat_bytes(gaussians.map(lambda t: t[f])) for f in range(gaussians.batch_shape[0])], title, FPS))


def write_mesh(path: Path, gaussians) -> None:
    """animated.glb: one coloured mesh per frame of Gaussians [F, N], played at FPS."""
    from recon.mesh import extract_meshes, write_animated_glb

    write_animated_glb(path, extract_meshes(gaussians), FPS)


def check_request(prompt: str, image: Path | None, video: Path | None) -> None:
    """Raises InferError on a request that cannot run, before any work."""
    if not prompt or not prompt.strip():
        raise InferError("the prompt is empty: describe the object, e.g. \"a small red ball bouncing\"")
    if image is not None and video is not None:
        raise InferError("give --image or --video, not both")


def generate(prompt: str, out: Path, model: Path, settings: Settings, device: str = "cpu",
             image: Path | None = None, video: Path | None = None) -> dict:
    """Load the model and run the whole job; returns meta.json's content. Raises InferError on bad input before
    writing anything."""
    check_request(prompt, image, video)
    check_model_folder(model)
    stages = Stages(total=1)  # generate_with adds its own stages
    pipeline, head = stages.run("load model", load_models, model, torch.device(device))
    return generate_with(pipeline, head, model, prompt, out, settings, image, video, stages)


def generate_with(pipeline, head, model: Path, prompt: str, out: Path, settings: Settings, image: Path | None = None,
                  video: Path | None = None, stages: Stages | None = None) -> dict:
    """The job on models already loaded (`load_models` of the folder `model`), shared by infer.py and app.py;
    returns meta.json's content. Raises InferError on bad input before writing anything."""
    from recon.export import write_frames, write_orbit_video

    check_request(prompt, image, video)
    stages = stages or Stages(total=0)
    stages.total = stages.done + 6 + settings.mesh
    torch.manual_seed(settings.seed)
    d = pipeline.defaults
    asked = dict(sampler=settings.sampler, motion=settings.motion, loop_start=settings.loop_start,
                 loop_blend=settings.loop_blend, loop_output=settings.loop_output)
    d = replace(d, **{k: v for k, v in asked.items() if v is not None})  # resolved once: used and recorded
    V, F, sampler = settings.views or d.num_views, settings.frames or d.num_frames, d.sampler
    sampling = dict(motion=d.motion, loop_start=d.loop_start, loop_blend=d.loop_blend, loop_output=d.loop_output)
    given = dict(
        image=load_image(image, d.height, d.width) if image else None,
        video=load_video(video, F, d.height, d.width) if video else None,
    )
    generator = torch.Generator().manual_seed(settings.seed)
    result = stages.run("multiview video", pipeline, prompt, **given, num_views=V, num_frames=F, elevation=settings.elevation,
                        num_inference_steps=settings.steps, guidance_scale=settings.guidance, sampler=sampler,
                        reconstruct=head.render_back, **sampling, generator=generator)
    gaussians = stages.run("4D Gaussians", reconstruct, head, result, settings.refine_steps)

    with atomic_folder(out) as tmp:
        stages.run("write multiview.mp4", write_multiview_video, tmp / "multiview.mp4", result.images, FPS)
        stages.run("write orbit.mp4", write_orbit_video, tmp / "orbit.mp4", gaussians, size=settings.video_size,
                   elevation=settings.elevation)
        stages.run("write .ply", write_frames, tmp / "ply", gaussians)
        stages.run("write viewer.html", write_viewer, tmp / "viewer.html", gaussians, prompt)
        if settings.mesh:
            stages.run("animated mesh", write_mesh, tmp / "animated.glb", gaussians)
        meta = {"prompt": prompt, "mode": "video" if video else "image" if image else "text",
                "image": str(image) if image else None, "video": str(video) if video else None,
                "model": str(model), "device": str(next(head.parameters()).device), "settings": asdict(settings),
                "views": V, "frames": F, "fps": FPS, "sampler": sampler, **sampling,
                "gaussians_per_frame": gaussians.num_gaussians, "seconds": stages.seconds,
                "total_seconds": round(sum(stages.seconds.values()), 3)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def reconstruct(head, result, refine_steps: int):
    """Generated views and cameras -> Gaussians [F, N] (refined against the views when refine_steps > 0)."""
    device = next(head.parameters()).device
    images = result.images[None].to(device)  # [1, V, F, 3, H, W]
    c2w, K = result.c2w[None].to(device), result.K[None].to(device)  # [1, V, F, 4, 4], [1, V, 3, 3]
    with torch.no_grad():
        gaussians = head(images, c2w, K)  # [1, F, N]
    if refine_steps > 0:
        from recon.losses import LossWeights
        from recon.refine import refine

        rgba = torch.cat([images, torch.ones_like(images[:, :, :, :1])], dim=3)  # [1, V, F, 4, H, W] (opaque over white)
        # Generated views carry no alpha: fit only the colour over white. An alpha target of 1 everywhere would
        # grow the splats until they fill the frame.
        gaussians = refine(gaussians, {"images": rgba, "c2w": c2w, "K": K}, steps=refine_steps, weights=LossWeights(alpha=0.0))
    return gaussians.map(lambda t: t[0].cpu())  # [F, N]


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring); exits with a message on impossible values."""
    p = argparse.ArgumentParser(prog="python infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help="what to generate, e.g. \"a small red ball bouncing\"")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced when the run completes)")
    p.add_argument("--image", type=Path, help="image-to-4D: the front view at the first frame")
    p.add_argument("--video", type=Path, help="video-to-4D: the front view over time")
    p.add_argument("--views", type=int, help="views (default: the model's)")
    p.add_argument("--frames", type=int, help="frames (default: the model's)")
    p.add_argument("--steps", type=int, default=20, help="denoising steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: off)")
    p.add_argument("--sampler", choices=SAMPLERS, help="stochastic: re-noise each step's clean-image prediction; "
                   "ode: deterministic Euler steps (default: the model's, stochastic for the shipped one)")
    p.add_argument("--motion", type=float, help="motion score for motion-conditioned models: about 0.016 for a walk, "
                   "0 for still, 0.03 for fast (default: the model's)")
    p.add_argument("--loop-start", type=float, help="reconstruction in the sampling loop from this fraction of the steps "
                   "on (1: off; default: the model's)")
    p.add_argument("--loop-blend", type=float, help="how far each step's prediction moves towards the renders of its "
                   "3D reconstruction, in [0, 1] (default: the model's)")
    p.add_argument("--loop-output", choices=LOOP_OUTPUTS, help="sample: the last denoised views; render: the renders of "
                   "the final reconstruction (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees")
    p.add_argument("--video-size", type=int, default=256, help="orbit video side in pixels")
    p.add_argument("--refine-steps", type=int, default=0, help="test-time photometric refinement steps (0: off)")
    p.add_argument("--no-mesh", dest="mesh", action="store_false", help="skip animated.glb (the mesh extraction)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder (default: the shipped model)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    for name in ("views", "frames"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    for name in ("loop_start", "loop_blend"):
        if getattr(args, name) is not None and not 0.0 <= getattr(args, name) <= 1.0:  # also refuses nan
            p.error(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    if args.motion is not None and not 0.0 <= args.motion < math.inf:
        p.error(f"--motion must be a finite score >= 0 (about 0.016 for a walk), got {args.motion}")
    if args.steps < 1 or args.video_size < 16 or args.video_size % 2:
        p.error("--steps must be at least 1 and --video-size an even number of at least 16")
    return args


def main(argv=None) -> None:
    """`python infer.py PROMPT --out DIR [options]`: generate, write the outputs, print the seconds per stage.

    Bad input exits non-zero with a message and writes nothing."""
    args = parse_args(argv)
    settings = Settings(args.views, args.frames, args.steps, args.guidance, args.sampler, args.seed, args.elevation,
                        args.video_size, args.refine_steps, args.motion, args.loop_start, args.loop_blend, args.loop_output,
                        mesh=args.mesh)
    try:
        meta = generate(args.prompt, args.out, args.model, settings, args.device, args.image, args.video)
    except (InferError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in meta["seconds"].items())
    mesh = ", animated.glb" if settings.mesh else ""
    print(f"wrote {args.out}/ (multiview.mp4, orbit.mp4, ply/ x {meta['frames']}, viewer.html{mesh}, meta.json) in {meta['total_seconds']:.1f} s: {stages}")


if __name__ == "__main__":
    main()
