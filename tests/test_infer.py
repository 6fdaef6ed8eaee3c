"""infer.py end to end on a tiny random model: every output file, and clean failures on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pygltflib
import pytest
import torch
from PIL import Image

import infer
from recon.export import read_ply


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
    assert json.loads((tmp_path / "ode" / "meta.json").read_text())["settings"]["sampler"] == "ode"
    meta = json.loads((tmp_path / "default" / "meta.json").read_text())
    assert meta["settings"]["sampler"] is None and meta["sampler"] == "stochastic"  # the model's, resolved


def test_refinement_changes_the_gaussians_and_is_recorded(tiny_model, tmp_path):
    run(tiny_model, tmp_path / "plain")
    run(tiny_model, tmp_path / "refined", "--refine-steps", 3)
    plain, refined = (read_ply(tmp_path / x / "ply" / "frame_000.ply") for x in ("plain", "refined"))
    assert plain.num_gaussians == refined.num_gaussians and not torch.equal(plain.colours, refined.colours)
    assert json.loads((tmp_path / "refined" / "meta.json").read_text())["settings"]["refine_steps"] == 3


def test_image_and_video_conditioning(tiny_model, tmp_path):
    red = np.zeros((40, 40, 4), np.uint8)
    red[10:30, 10:30] = (220, 30, 30, 255)  # a red square on a transparent background
    Image.fromarray(red).save(tmp_path / "red.png")
    run(tiny_model, tmp_path / "img", "--image", tmp_path / "red.png")
    assert json.loads((tmp_path / "img" / "meta.json").read_text())["mode"] == "image"
    first = iio.imread(tmp_path / "img" / "multiview.mp4", index=0)[:, :16]  # view 0, frame 0: the given image
    assert first[8, 8, 0] > 150 and first[8, 8, 1] < 100 and first[1, 1].min() > 200  # red centre, white corner
    iio.imwrite(tmp_path / "clip.mp4", np.stack([np.roll(red[..., :3], 2 * i, axis=1) for i in range(6)]), fps=6, macro_block_size=1)
    run(tiny_model, tmp_path / "vid", "--video", tmp_path / "clip.mp4")
    assert json.loads((tmp_path / "vid" / "meta.json").read_text())["mode"] == "video"


def test_bad_input_exits_with_a_message_and_writes_nothing(tiny_model, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    iio.imwrite(tmp_path / "short.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=2, macro_block_size=1)
    cases = {
        "the prompt is empty": ["   ", "--model", tiny_model],
        "does not exist": ["a ball", "--model", tmp_path / "nowhere"],
        "is incomplete": ["a ball", "--model", tmp_path / "broken"],
        "cannot read image": ["a ball", "--model", tiny_model, "--image", tmp_path / "notes.txt"],
        "cannot read video": ["a ball", "--model", tiny_model, "--video", tmp_path / "notes.txt"],
        "at least 3 are needed": ["a ball", "--model", tiny_model, "--video", tmp_path / "short.mp4"],
    }
    for message, args in cases.items():
        with pytest.raises(SystemExit, match=message):
            infer.main([*map(str, args), "--out", str(tmp_path / "out"), "--steps", "2"])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
