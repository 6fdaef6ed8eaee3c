"""Depth in the data pipeline: Blender's Z pass against the posed mesh, the shard layout, the build switch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data import cameras, stream
from data.record import SampleRecord
from data.shards import decode_sample, encode_sample

from conftest import shared_asset


def _meta(views: int, frames: int) -> SampleRecord:
    return SampleRecord(caption="x", orbit_views=views, times=torch.linspace(0, 1, frames).tolist(),
                        c2w=torch.eye(4).expand(views, frames, 4, 4).tolist(), K=cameras.intrinsics_from_fov(40).expand(views, 3, 3).tolist())


def test_depth_round_trips_through_a_shard_sample_within_half_a_unit():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 2, 8, 8, 4), dtype=np.uint8)  # [V, F, H, W, 4]
    depth = rng.uniform(1.1, 2.1, (3, 2, 8, 8)).astype(np.float32)  # [V, F, H, W]
    depth[images[..., 3] < 128] = 0.0  # background: no surface
    sample = decode_sample(encode_sample("k", images, _meta(3, 2), depth))
    unit = sample["meta"].depth_unit
    assert sample["depth"].shape == (3, 2, 1, 8, 8)
    assert np.abs(sample["depth"][:, :, 0].numpy() - depth).max() <= unit / 2 + 1e-7
    assert torch.equal(sample["depth"][:, :, 0] == 0, torch.from_numpy(depth == 0))  # "no surface" survives exactly
    assert torch.equal(sample["images"], torch.from_numpy(images).permute(0, 1, 4, 2, 3).float() / 255)


def test_samples_without_depth_decode_and_batch_as_before():
    images = np.zeros((2, 3, 8, 8, 4), np.uint8)
    old = decode_sample(encode_sample("old", images, _meta(2, 3)))
    assert "depth" not in old and old["meta"].depth_unit is None
    new = decode_sample(encode_sample("new", images, _meta(2, 3), np.ones((2, 3, 8, 8), np.float32)))
    assert "depth" not in stream.collate([old, new])  # a batch carries depth only when every sample has it
    assert stream.collate([new, new])["depth"].shape == (2, 2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="depth must be finite, non-negative"):
        encode_sample("bad", images, _meta(2, 3), np.full((2, 3, 8, 8), np.nan, np.float32))


@pytest.mark.blender
def test_blender_depth_matches_the_posed_vertices_at_their_pixels():
    """The Z pass of a real skinned asset, scaled into the object frame, is the camera-z depth of the posed mesh:
    the vertices of a pixel's nearest surface lie on it, no vertex lies in front of it, background is 0."""
    pytest.importorskip("bpy")
    from data import render_blender as rb
    from data.assets import list_clips

    clip = list_clips(shared_asset("CesiumMan.glb"))[0]
    size = 96  # fine enough that one pixel's footprint (~0.012 units) is below the tolerance
    rendered = rb.render_clip(clip.path, clip.name, rb.RenderSettings(views=2, frames=1, size=size, samples=1, threads=1))
    verts = cameras.blender_to_gltf_points(torch.from_numpy(rb.evaluated_vertices()))  # [N, 3] at the rendered frame
    verts = (verts - torch.tensor(rendered.center)) * rendered.scale  # [N, 3] normalised object frame
    for v in range(2):
        depth = torch.from_numpy(rendered.depth[v, 0]).reshape(-1)  # [H * W]
        alpha = torch.from_numpy(rendered.images[v, 0, ..., 3]).reshape(-1) / 255  # [H * W]
        assert ((depth > 0) == (alpha > 0.5)).float().mean() > 0.97  # depth exactly where the object is
        uv, z = cameras.project_points(verts, rendered.c2w[v, 0], rendered.K[v])  # [N, 2], [N]
        px = (uv * size).long().clamp(0, size - 1)
        pixel = px[:, 1] * size + px[:, 0]  # [N]
        nearest = torch.full((size * size,), float("inf")).scatter_reduce(0, pixel, z, "amin")  # [H * W]
        hit = torch.isfinite(nearest) & (depth > 0)
        assert hit.sum() > 300
        # Camera-z depth, not distance along the ray (which is off by ~0.03 here), in normalised units.
        assert (depth[hit] - nearest[hit]).abs().median() < 0.012
        in_front = (z < depth[pixel] - 0.02) & (depth[pixel] > 0)  # a vertex nearer than the surface it lands on
        assert in_front.float().sum() / (depth[pixel] > 0).sum() < 0.04  # only at silhouette edges (~2% measured)


def test_build_records_depth_and_refuses_to_mix_with_a_build_without_it(tmp_path):
    from data import build

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "corrupt.glb").write_bytes(b"not a gltf at all")  # skipped: nothing is rendered
    out = tmp_path / "out"
    build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["depth"] is True
    del manifest["settings"]["depth"]  # as a data set built before depth existed
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match=r"built with other settings \(before, now\): \{'depth': \(False, True\)\}"):
        build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(out)])
    build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(out), "--no-depth"])  # continues the old build
    assert json.loads((out / "manifest.json").read_text())["settings"]["depth"] is False
