"""The data pipeline end to end: Blender renders -> shards -> streaming loader, with geometry checks."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import webdataset as wds

from data import cameras, stream
from data.assets import AssetError, list_clips
from data.record import SampleRecord
from data.shards import decode_sample, encode_sample, write_shard

from conftest import shared_asset

pytestmark = pytest.mark.blender


def _one(shards, key_prefix: str, **subset) -> dict:
    dataset = stream.make_dataset(shards, batch_size=1, shuffle=0, subset=stream.Subset(random=False, **subset))
    for batch in dataset:
        if batch["key"][0].startswith(key_prefix):
            return batch
    raise AssertionError(f"no sample {key_prefix}")


def first_train_sample(shards) -> dict:
    """The first sample of the train shards, decoded."""
    return decode_sample(next(iter(wds.WebDataset(stream.resolve_shards(shards / "train"), shardshuffle=False))))


def test_loader_yields_batches_with_documented_shapes(demo_shards):
    batches = list(stream.make_dataset(demo_shards / "train", batch_size=2, shuffle=0))
    assert sum(len(b["key"]) for b in batches) == 3
    batch = batches[0]
    assert batch["images"].shape == (2, 6, 4, 4, 32, 32)  # [B, V(4 ring + 2 extra), F, RGBA, H, W]
    assert batch["c2w"].shape == (2, 6, 4, 4, 4) and batch["K"].shape == (2, 6, 3, 3) and batch["times"].shape == (2, 4)
    assert 0.0 <= batch["images"].min() and batch["images"].max() <= 1.0
    assert batch["depth"].shape == (2, 6, 4, 1, 32, 32)  # built with depth (the default)
    assert ((batch["depth"] > 0) == (batch["images"][:, :, :, 3:] > 0.5)).float().mean() > 0.97
    assert torch.allclose(batch["times"][0], torch.linspace(0, 1, 4))
    assert all(isinstance(c, str) and c for c in batch["caption"])


def test_subset_picks_ring_views_extras_and_a_frame_window(demo_shards):
    full = _one(demo_shards / "train", "CesiumMan")
    part = _one(demo_shards / "train", "CesiumMan", views=2, extra_views=1, frames=3)
    assert part["images"].shape == (1, 3, 3, 4, 32, 32)
    assert torch.equal(part["images"][0, 0], full["images"][0, 0, :3])  # ring view 0
    assert torch.equal(part["images"][0, 1], full["images"][0, 2, :3])  # opposite ring view: evenly spaced
    assert torch.equal(part["c2w"][0, 2], full["c2w"][0, 4, :3])  # first extra view
    assert torch.allclose(part["times"][0], torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="asked for 5 ring views"):
        stream.choose_subset(first_train_sample(demo_shards), stream.Subset(views=5), random.Random(0))


def test_shards_carry_phrasings_and_kind_and_training_draws_among_the_phrasings(demo_shards):
    sample = decode_sample(next(iter(wds.WebDataset(str(demo_shards / "train" / "CesiumMan.tar"), shardshuffle=False))))
    record = sample["meta"]
    assert record.format_version == 3 and record.kind == "character" and record.licence.startswith("CC BY 4.0")
    assert record.captions == ["a man walking", "a walking man", "a person walking"] and sample["caption"] == "a man walking"
    drawn = {stream.choose_subset(sample, stream.Subset(), random.Random(seed))["caption"] for seed in range(30)}
    assert drawn == set(record.captions)  # the model sees every phrasing, not one template
    assert stream.choose_subset(sample, stream.Subset(random=False), random.Random(0))["caption"] == "a man walking"


def test_object_vertices_project_onto_rendered_silhouette_in_every_view(demo_shards):
    """Cameras are right: the posed mesh, moved into the stored object frame, lands on the rendered alpha."""
    from data import render_blender as rb

    batch = _one(demo_shards / "train", "CesiumMan")
    meta = SampleRecord.from_json(next(iter(wds.WebDataset(str(demo_shards / "train" / "CesiumMan.tar"), shardshuffle=False)))["json"])
    start, end, fps = rb.import_clip(shared_asset("CesiumMan.glb"), meta.clip)
    frames, _ = rb.clip_frames(start, end, fps, 4, 4.0)
    for f in (0, 2):
        rb._set_frame(rb._bpy().context.scene, frames[f])
        verts = cameras.blender_to_gltf_points(torch.from_numpy(rb.evaluated_vertices()))  # [N, 3] asset units
        verts = (verts - torch.tensor(meta.center)) * meta.scale  # [N, 3] normalised object frame
        assert verts.norm(dim=-1).max() <= cameras.OBJECT_RADIUS + 1e-4  # the union box fits the sphere
        for v in range(6):
            uv, depth = cameras.project_points(verts, batch["c2w"][0, v, f], batch["K"][0, v])
            assert (depth > 0).all() and ((uv > 0) & (uv < 1)).all()  # in front of the camera, inside the image
            px = (uv * 32).long().clamp(0, 31)  # [N, 2] column, row
            alpha = torch.nn.functional.max_pool2d(batch["images"][0, v, f, 3][None], 3, 1, 1)[0]  # 1-px tolerance
            on_object = (alpha[px[:, 1], px[:, 0]] > 0.5).float().mean()
            assert on_object > 0.97, f"view {v} frame {f}: only {on_object:.2f} of vertices land on the silhouette"
        centre_uv, _ = cameras.project_points(torch.zeros(1, 3), batch["c2w"][0, :, f], batch["K"][0])  # [V, 1, 2]
        assert torch.allclose(centre_uv, torch.full_like(centre_uv, 0.5), atol=1e-5)  # the object centre is the image centre


def test_animated_object_moves_between_frames(demo_shards):
    for name in ("CesiumMan", "BoxAnimated"):
        alpha = _one(demo_shards / "train", name)["images"][0, :4, :, 3] > 0.5  # [V, F, H, W]
        inter = (alpha[:, 0] & alpha[:, 2]).sum((-1, -2)).float()
        union = (alpha[:, 0] | alpha[:, 2]).sum((-1, -2)).float()
        assert (inter / union).mean() < 0.9, f"{name} barely moves"


def test_split_is_by_asset_and_recorded_in_the_manifest(demo_shards):
    manifest = json.loads((demo_shards / "manifest.json").read_text())
    train = {p.stem for p in (demo_shards / "train").glob("*.tar")}
    val = {p.stem for p in (demo_shards / "val").glob("*.tar")}
    assert val == {"QuaterniusWolf"} and not train & val and len(train) == 3
    assert all(manifest["assets"][a]["split"] == "train" and manifest["assets"][a]["status"] == "done" for a in train)
    assert manifest["assets"]["CesiumMan"]["licence"].startswith("CC BY 4.0") and manifest["assets"]["CesiumMan"]["kind"] == "character"
    assert manifest["assets"]["QuaterniusWolf"]["clips"][0]["orbits"] == 1 and manifest["assets"]["BoxAnimated"]["seconds"] > 0


def test_rebuild_skips_what_is_written(demo_shards, capsys):
    from data import build

    before = {p: p.stat().st_mtime_ns for p in demo_shards.glob("*/*.tar")}
    build.main(["--gltf-dir", str(demo_shards / "src"), "--out", str(demo_shards), "--views", "4", "--extra-views", "2",
                "--frames", "4", "--size", "32", "--samples", "4", "--elevation", "10", "--max-clips", "1",
                "--val-assets", "QuaterniusWolf", "--val-fraction", "0"])  # the settings conftest built with
    assert "train/done 3, val/done 1" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in demo_shards.glob("*/*.tar")} == before  # nothing rendered again


def test_build_skips_bad_files_with_a_message(tmp_path, capsys):
    from data import build

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "corrupt.glb").write_bytes(b"not a gltf at all")
    build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "skip corrupt.glb" in out and "not a readable glTF" in out and "train/skipped 1" in out
    with pytest.raises(SystemExit, match="no such folder"):
        build.main(["--gltf-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    (tmp_path / "in" / "corrupt.gltf").write_bytes(b"{}")  # the same stem, so the same shard name
    with pytest.raises(SystemExit, match="have the same asset id 'corrupt'"):
        build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    (tmp_path / "in" / "corrupt.gltf").unlink()
    with pytest.raises(SystemExit, match=r"built with other settings \(before, now\): \{'procedural_seed': \(0, 1\)\}"):
        build.main(["--gltf-dir", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--seed", "1"])


def test_corrupt_and_truncated_samples_are_skipped_and_counted(tmp_path):
    good = encode_sample("good", np.zeros((1, 2, 8, 8, 4), np.uint8), SampleRecord(
        caption="x", orbit_views=1, times=[0.0, 1.0], c2w=torch.eye(4).expand(1, 2, 4, 4).tolist(),
        K=cameras.intrinsics_from_fov(40)[None].tolist()))
    bad_png = {**good, "__key__": "badpng", "png": b"not a png"}
    no_json = {"__key__": "nojson", "png": good["png"]}
    write_shard(tmp_path / "a.tar", [good, bad_png, no_json, {**good, "__key__": "good2"}])
    write_shard(tmp_path / "b.tar", [{**good, "__key__": f"t{i}"} for i in range(4)])
    data = (tmp_path / "b.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(data[: len(data) // 2 + 100])  # truncated mid-file
    stream.SKIPPED.count = 0
    keys = [k for b in stream.make_dataset(tmp_path, batch_size=1, shuffle=0) for k in b["key"]]
    assert {"good", "good2"} <= set(keys) and "badpng" not in keys and "nojson" not in keys
    assert stream.SKIPPED.count >= 3  # two bad samples plus the truncated tar


def test_shard_write_is_atomic(tmp_path):
    def samples():
        yield {"__key__": "a", "txt": b"x"}
        raise RuntimeError("crash while writing")

    target = tmp_path / "s.tar"
    target.write_bytes(b"previous complete shard")
    with pytest.raises(RuntimeError):
        write_shard(target, samples())
    assert target.read_bytes() == b"previous complete shard" and list(tmp_path.iterdir()) == [target]


def test_nodes_see_disjoint_shards_that_cover_everything(demo_shards, monkeypatch):
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append({k for b in stream.make_dataset(demo_shards / "train", batch_size=1, shuffle=0) for k in b["key"]})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 3


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(AssetError, match="no such file"):
        list_clips(tmp_path / "missing.glb")
    (tmp_path / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(AssetError, match="not a readable glTF"):
        list_clips(tmp_path / "corrupt.glb")
    static = json.loads(shared_asset("SimpleMorph.gltf").read_text())
    static.pop("animations")
    (tmp_path / "static.gltf").write_text(json.dumps(static))
    with pytest.raises(AssetError, match="has no animation"):
        list_clips(tmp_path / "static.gltf")
    with pytest.raises(ValueError, match="no shards found"):
        stream.make_dataset(tmp_path / "nothing-*.tar", batch_size=1)
