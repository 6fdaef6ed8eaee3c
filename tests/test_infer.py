"""infer.py end to end on a tiny random model: every output file, and clean failures on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pygltflib
import pytest
import torch
from einops import rearrange
from PIL import Image

import infer
import recon.refine
from data.cameras import pixel_size_at_origin
from model.pipeline import MultiViewVideoPipeline
from recon.export import read_ply
from recon.gaussians import Gaussians
from recon.refine import refine_to_views
from recon.render import render


def run(model: Path, out: Path, *extra) -> None:
    infer.main(["a small red ball bouncing", "--out", str(out), "--model", str(model), "--steps", "2", "--video-size", "32", *map(str, extra)])


def test_text_to_4d_writes_every_output(tiny_model, tmp_path):
    out = tmp_path / "ball"
    run(tiny_model, out)
    assert sorted(p.name for p in out.iterdir()) == ["animated.glb", "meta.json", "multiview.mp4", "orbit.mp4", "ply", "viewer.html"]
    multiview = iio.imread(out / "multiview.mp4", index=None)
    assert multiview.shape == (3, 16, 2 * 16, 3)  # F frames, the 2 views side by side
    orbit = iio.imread(out / "orbit.mp4", index=None)
    assert orbit.shape == (48, 32, 32, 3)  # the camera circles once over 48 video frames, at --video-size
    plys = sorted((out / "ply").glob("*.ply"))
    assert [p.name for p in plys] == ["frame_000.ply", "frame_001.ply", "frame_002.ply"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["prompt"] == "a small red ball bouncing" and meta["mode"] == "text" and meta["settings"]["seed"] == 0
    assert meta["views"] == 2 and meta["frames"] == 3 and set(meta["seconds"]) >= {"multiview video", "4D Gaussians", "animated mesh"}
    assert meta["settings"]["refine_steps"] == 0  # generated views only: not refined by default
    gaussians = read_ply(plys[0])
    assert gaussians.num_gaussians == meta["gaussians_per_frame"] > 0
    assert not list(tmp_path.glob(".ball*"))  # no temporary folder left
    glb = pygltflib.GLTF2().load(str(out / "animated.glb"))
    assert len(glb.nodes) == 1 + 3 and len(glb.animations[0].channels) == 3  # a root and one node per frame
    page = (out / "viewer.html").read_text()
    assert "a small red ball bouncing" in page and "GaussianSplats3D" in page and "src=\"http" not in page  # self-contained


def test_no_mesh_skips_animated_glb(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "plain", "--no-mesh")
    assert not (tmp_path / "plain" / "animated.glb").exists() and (tmp_path / "plain" / "viewer.html").is_file()
    meta = json.loads((tmp_path / "plain" / "meta.json").read_text())
    assert meta["settings"]["mesh"] is False and "animated mesh" not in meta["seconds"]


def test_same_seed_gives_the_same_gaussians(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "a", "--seed", 3)
    run(tiny_model, tmp_path / "b", "--seed", 3)
    a, b = (read_ply(tmp_path / x / "ply" / "frame_001.ply") for x in "ab")
    assert torch.equal(a.means, b.means) and torch.equal(a.colours, b.colours)
    run(tiny_model, tmp_path / "c", "--seed", 4)
    assert not torch.equal(read_ply(tmp_path / "c" / "ply" / "frame_001.ply").colours, a.colours)


def test_sampler_choice_changes_the_gaussians_and_is_recorded(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "default")
    run(tiny_model, tmp_path / "ode", "--sampler", "ode")
    default, ode = (read_ply(tmp_path / x / "ply" / "frame_000.ply") for x in ("default", "ode"))
    assert not torch.equal(default.colours, ode.colours)
    assert json.loads((tmp_path / "ode" / "meta.json").read_text())["settings"]["sampling"]["sampler"] == "ode"
    meta = json.loads((tmp_path / "default" / "meta.json").read_text())
    assert meta["settings"]["sampling"]["sampler"] is None and meta["sampler"] == "stochastic"  # the model's, resolved


def read_frames(folder: Path) -> Gaussians:
    """An output folder's ply/frame_*.ply as Gaussians [F, N]."""
    frames = [read_ply(p) for p in sorted((folder / "ply").glob("frame_*.ply"))]
    return Gaussians(**{name: torch.stack([getattr(g, name) for g in frames]) for name in Gaussians.__dataclass_fields__})


def views_of(folder: Path, views: int) -> torch.Tensor:
    """An output folder's multiview.mp4 decoded as images [V, F, 3, H, W] in [0, 1]."""
    video = torch.from_numpy(iio.imread(folder / "multiview.mp4", index=None)).float() / 255  # [F, H, V*W, 3]
    return rearrange(video, "f h (v w) c -> v f c h w", v=views)


def test_refinement_brings_the_gaussians_closer_to_the_generated_views(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "plain")
    run(tiny_model, tmp_path / "refined", "--refine-steps", 20)
    generated = views_of(tmp_path / "plain", 2)  # [V, F, 3, H, W]
    assert torch.equal(views_of(tmp_path / "refined", 2), generated)  # refinement comes after generation: same views
    V, F, _, H, W = generated.shape
    defaults = json.loads((tiny_model / "diffusion" / "pipeline.json").read_text())
    meta = json.loads((tmp_path / "refined" / "meta.json").read_text())
    assert meta["settings"]["refine_steps"] == 20
    c2w, K = MultiViewVideoPipeline.cameras(V, F, H, W, meta["settings"]["elevation"], defaults["fov_deg"], None)

    def error(folder: Path) -> float:
        """Mean squared error of the folder's Gaussians rendered at the generated cameras against the generated views
        as the user gets them (multiview.mp4)."""
        rgb = render(read_frames(folder), c2w.transpose(0, 1), K, H, W, background=1.0).rgb  # [F, V, 3, H, W]
        return (rgb.transpose(0, 1) - generated).square().mean().item()

    plain, refined = error(tmp_path / "plain"), error(tmp_path / "refined")
    assert refined < 0.9 * plain, f"refined {refined:.4f} vs plain {plain:.4f}"


def test_image_to_4d_keeps_the_given_image(tiny_model, tmp_path):
    red = np.zeros((40, 40, 4), np.uint8)
    red[10:30, 10:30] = (220, 30, 30, 255)  # a red square on a transparent background
    Image.fromarray(red).save(tmp_path / "red.png")
    run(tiny_model, tmp_path / "img", "--image", tmp_path / "red.png")
    assert json.loads((tmp_path / "img" / "meta.json").read_text())["mode"] == "image"
    first = iio.imread(tmp_path / "img" / "multiview.mp4", index=0)[:, :16]  # view 0, frame 0: the given image
    assert first[8, 8, 0] > 150 and first[8, 8, 1] < 100 and first[1, 1].min() > 200  # red centre, white corner


def test_video_to_4d_follows_the_given_video(tiny_model, tmp_path):
    square = np.full((40, 40, 3), 255, np.uint8)
    square[10:30, 4:24] = (220, 30, 30)  # a red square on white
    clips = {"right": [np.roll(square, 3 * i, axis=1) for i in range(6)], "down": [np.roll(square, 3 * i, axis=0) for i in range(6)]}
    for name, frames in clips.items():
        iio.imwrite(tmp_path / f"{name}.mp4", np.stack(frames), fps=6, macro_block_size=1)
        run(tiny_model, tmp_path / name, "--video", tmp_path / f"{name}.mp4")
        assert json.loads((tmp_path / name / "meta.json").read_text())["mode"] == "video"
    front = views_of(tmp_path / "right", 2)[0]  # [F, 3, H, W]: view 0 is the given video, frames 0, 2 and 5 of six
    red = (front[:, 0] > 0.6) & (front[:, 1] < 0.4)  # [F, H, W]
    columns = (red * torch.arange(16.0)).sum((1, 2)) / red.sum((1, 2))  # [F] the square's mean column
    assert red.sum((1, 2)).min() > 20 and columns[1] > columns[0] + 0.8 and columns[2] > columns[1] + 1.5  # moving right
    right, down = read_frames(tmp_path / "right"), read_frames(tmp_path / "down")  # the same seed, another video
    assert not torch.allclose(right.colours, down.colours)  # (the tiny head's zero-initialised decoder keeps means on their rays)


def test_video_to_4d_refines_against_the_given_video_alone_by_default(tiny_model, tmp_path, monkeypatch):
    frames = np.full((4, 40, 40, 3), 255, np.uint8)
    frames[:, 10:30, 10:30] = (30, 30, 220)  # a blue square on white
    iio.imwrite(tmp_path / "blue.mp4", frames, fps=4, macro_block_size=1)
    fitted = []  # the views each refinement was given, [1, V, F, 3, H, W]

    def spy(gaussians, images, *args, **kwargs):
        fitted.append(images)
        return refine_to_views(gaussians, images, *args, **kwargs)

    monkeypatch.setattr(recon.refine, "refine_to_views", spy)
    run(tiny_model, tmp_path / "video", "--video", tmp_path / "blue.mp4")
    assert len(fitted) == 1 and fitted[0].shape[:2] == (1, 1)  # one view: the given one
    front = views_of(tmp_path / "video", 2)[0]  # [F, 3, H, W] view 0 as written, the given video
    assert (fitted[0][0, 0] - front).abs().mean() < 0.03  # (up to the video codec)
    meta = json.loads((tmp_path / "video" / "meta.json").read_text())
    assert meta["settings"]["refine_steps"] == infer.REFINE_STEPS > 0
    run(tiny_model, tmp_path / "off", "--video", tmp_path / "blue.mp4", "--refine-steps", 0)
    assert len(fitted) == 1  # not refined


def test_image_to_4d_refines_against_the_given_image_at_the_first_frame_by_default(tiny_model, tmp_path, monkeypatch):
    blue = np.full((40, 40, 3), 255, np.uint8)
    blue[10:30, 10:30] = (30, 30, 220)  # a blue square on white
    Image.fromarray(blue).save(tmp_path / "blue.png")
    fitted = []  # (views, frames) of each refinement: images [1, V, F', 3, H, W] and the Gaussians' frames they show

    def spy(gaussians, images, *args, frames=slice(None), **kwargs):
        fitted.append((images, frames))
        return refine_to_views(gaussians, images, *args, frames=frames, **kwargs)

    monkeypatch.setattr(recon.refine, "refine_to_views", spy)
    run(tiny_model, tmp_path / "image", "--image", tmp_path / "blue.png")
    (images, frames), = fitted
    assert images.shape[:3] == (1, 1, 1) and frames == slice(0, 1)  # view 0 at frame 0: the given image
    assert images[0, 0, 0, 2, 8, 8] > 0.7 and images[0, 0, 0, 0, 8, 8] < 0.3 and images[0, 0, 0, :, 0, 0].min() > 0.9
    assert json.loads((tmp_path / "image" / "meta.json").read_text())["settings"]["refine_steps"] == infer.REFINE_STEPS


def test_refining_one_frame_fits_it_and_carries_the_correction_to_the_others_through_smoothness():
    gaussians = Gaussians(means=torch.tensor([[[[0.1, 0.0, 0.0]], [[0.1, 0.0, 0.0]]]]),  # [B=1, F=2, N=1]: one splat
                          rotations=torch.tensor([1.0, 0, 0, 0]).expand(1, 2, 1, 4), scales=torch.full((1, 2, 1, 3), 0.08),
                          opacities=torch.full((1, 2, 1), 0.9), colours=torch.full((1, 2, 1, 3), 0.5))
    c2w, K = MultiViewVideoPipeline.cameras(1, 2, 16, 16, 0.0, 40.0, None)  # [V=1, F=2, 4, 4], [1, 3, 3]
    target = render(gaussians.map(lambda t: t[0, :1] + torch.tensor(0.0)), c2w[:, :1].transpose(0, 1), K, 16, 16, 1.0).rgb
    moved = gaussians.map(lambda t: t.clone())
    moved.means = moved.means + torch.tensor([0.15, 0.0, 0.0])  # both frames off to one side; the target has it centred
    refined = refine_to_views(moved, target[None], c2w[None, :, :1], K[None], 60, progress=False, frames=slice(0, 1))
    assert refined.means[0, 0, 0, 0] < 0.25 - 0.03  # frame 0 moved back towards the target (Adam: at most 1e-3 a step)...
    assert (refined.means[0, 1, 0, 0] - moved.means[0, 1, 0, 0]).abs() > 0.01  # ...and frame 1 followed
    with pytest.raises(ValueError, match="disagree"):  # two frames of views for one frame of Gaussians
        refine_to_views(moved, target[None].expand(1, 1, 2, 3, 16, 16), c2w[None], K[None], 1, frames=slice(0, 1))


def test_multiview_input_is_reconstructed_as_given_and_refined_against_every_view(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "made", "--no-mesh")  # a multiview video in infer.py's own layout
    given = tmp_path / "made" / "multiview.mp4"
    run(tiny_model, tmp_path / "plain", "--multiview", given, "--refine-steps", 0, "--no-mesh")
    run(tiny_model, tmp_path / "refined", "--multiview", given, "--no-mesh")
    views = views_of(tmp_path / "made", 2)  # [V, F, 3, H, W]
    assert (views_of(tmp_path / "refined", 2) - views).abs().mean() < 0.03  # written back as given (up to the codec)
    meta = json.loads((tmp_path / "refined" / "meta.json").read_text())
    assert meta["mode"] == "multiview" and meta["settings"]["refine_steps"] == infer.REFINE_STEPS
    assert "multiview video" in meta["seconds"]  # read, not generated
    V, F, _, H, W = views.shape
    defaults = json.loads((tiny_model / "diffusion" / "pipeline.json").read_text())
    c2w, K = MultiViewVideoPipeline.cameras(V, F, H, W, meta["settings"]["elevation"], defaults["fov_deg"], None)

    def error(folder: Path) -> float:
        rgb = render(read_frames(folder), c2w.transpose(0, 1), K, H, W, background=1.0).rgb  # [F, V, 3, H, W]
        return (rgb.transpose(0, 1) - views).square().mean().item()

    assert error(tmp_path / "refined") < 0.9 * error(tmp_path / "plain")  # fitted to every given view


def test_bad_input_exits_with_a_message_and_writes_nothing(tiny_model, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    iio.imwrite(tmp_path / "short.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=2, macro_block_size=1)
    odd = np.arange(3, dtype=np.uint8)[:, None, None, None] * np.full((3, 16, 33, 3), 60, np.uint8)  # 3 distinct frames
    iio.imwrite(tmp_path / "odd.gif", odd)  # 33 pixels wide: not two views side by side
    cases = {
        "the prompt is empty": ["   ", "--model", tiny_model],
        "does not exist": ["a ball", "--model", tmp_path / "nowhere"],
        "is incomplete": ["a ball", "--model", tmp_path / "broken"],
        "cannot read image": ["a ball", "--model", tiny_model, "--image", tmp_path / "notes.txt"],
        "cannot read video": ["a ball", "--model", tiny_model, "--video", tmp_path / "notes.txt"],
        "at least 3 are needed": ["a ball", "--model", tiny_model, "--video", tmp_path / "short.mp4"],
        "not 2 views side by side": ["a ball", "--model", tiny_model, "--multiview", tmp_path / "odd.gif"],
    }
    for message, args in cases.items():
        with pytest.raises(SystemExit, match=message):
            infer.main([*map(str, args), "--out", str(tmp_path / "out"), "--steps", "2"])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_smoothing_widens_the_written_gaussians_by_a_fraction_of_a_view_pixel(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "raw", "--smoothing", 0)
    run(tiny_model, tmp_path / "smooth", "--smoothing", 0.75)
    raw, smooth = read_frames(tmp_path / "raw"), read_frames(tmp_path / "smooth")
    defaults = json.loads((tiny_model / "diffusion" / "pipeline.json").read_text())
    c2w, K = MultiViewVideoPipeline.cameras(2, 3, 16, 16, 15.0, defaults["fov_deg"], None)
    sigma = 0.75 * pixel_size_at_origin(c2w, K, 16)  # three quarters of a 16 px view's pixel at the object
    assert torch.allclose(smooth.scales, (raw.scales.square() + sigma**2).sqrt(), rtol=1e-4)
    assert torch.equal(smooth.means, raw.means) and (smooth.opacities < raw.opacities).all()
    assert json.loads((tmp_path / "smooth" / "meta.json").read_text())["settings"]["smoothing"] == 0.75
    assert torch.equal(views_of(tmp_path / "smooth", 2), views_of(tmp_path / "raw", 2))  # the views are not touched
