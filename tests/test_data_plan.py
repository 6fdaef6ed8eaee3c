"""The build's plan without Blender: split by asset, one clip per motion by priority, kinds balanced, typed config."""
from __future__ import annotations

import json

import pytest

from conftest import ASSETS
from data.build import BuildConfig, build, read_licences
from data.plan import Source, allocate, choose_clips, plan_assets
from data.assets import list_clips
from data.render_blender import RenderSettings

QUATERNIUS = ASSETS / "quaternius"
HELD_OUT = ("QuaterniusStag", "SimpleSkin", "cute_fish-Piranha", "dinosaurs-Stegosaurus", "mech-*n")  # a glob too


def _quaternius():
    if not QUATERNIUS.is_dir():
        pytest.skip(f"{QUATERNIUS} not found: tests need ../shared beside the checkout")
    return QUATERNIUS


def test_allocate_fills_one_clip_each_then_more_clips_then_more_orbits():
    assert allocate([3, 1], None, 2, 2) == [[2, 2], [2]]  # no budget: every clip up to the cap, every orbit
    assert allocate([6, 6, 1], 5, 6, 2) == [[1, 1], [1, 1], [1]]  # second clips before any third
    assert allocate([2, 1], 5, 6, 2) == [[2, 1], [2]]  # then second orbits, first clips first
    assert allocate([1, 1, 1], 2, 6, 2) == [[1], [1], [1]]  # never fewer than one clip, even past the budget
    assert allocate([9], 100, 4, 3) == [[3, 3, 3, 3]]  # caps hold however large the budget


def test_choose_clips_keeps_one_clip_per_motion_signature_first_and_rotates():
    clips = list_clips(_quaternius() / "platformer_game-Lever.glb")  # each motion twice (object and armature action)
    assert [c.motion for c in choose_clips(clips)] == ["switching on", "switching off"]
    stag = list_clips(ASSETS / "QuaterniusStag.glb")
    first, second = choose_clips(stag, 0), choose_clips(stag, 1)
    assert {first[0].motion, first[1].motion} == {"galloping", "walking"} and {c.motion for c in first[-2:]} == {"dying", "flinching from a hit"}
    assert first[2] != second[2] and len(first) == len(second) == 11  # 13 clips, two idles and two hit reactions alike


def test_plan_balances_kinds_and_holds_out_whole_assets():
    folders = [(ASSETS, 0.0), (_quaternius(), 0.0)]
    sources = [Source(p, {}, fraction) for folder, fraction in folders for p in sorted(folder.glob("*.gl*"))]
    planned, skipped = plan_assets(sources, HELD_OUT, samples_per_kind=30, max_clips=5, orbits=2)
    assert not skipped and len(planned) == 108
    val = {a.asset_id for a in planned if a.split == "val"}
    assert val == {"QuaterniusStag", "SimpleSkin", "cute_fish-Piranha", "dinosaurs-Stegosaurus", "mech-Stan"}
    motions = {a.asset_id: [c.motion for c in a.clips] for a in planned}
    assert max(map(len, motions.values())) == 5  # the cap binds: the stag's 13 clips hold 11 motions
    assert motions["QuaterniusStag"] == ["galloping", "walking", "headbutting", "kicking", "eating"]
    assert motions["platformer_game-Lever"] == ["switching on", "switching off"]  # each motion is in the file twice
    samples, assets = {}, {}
    for a in planned:
        assert a.orbits == [1] * len(a.clips) if a.split == "val" else max(a.orbits) <= 2
        if a.split == "train":
            samples[a.kind] = samples.get(a.kind, 0) + sum(a.orbits)
            assets[a.kind] = assets.get(a.kind, 0) + 1
    assert samples["fish"] == assets["fish"] == 40  # 41 fish, one held out: one clip each
    assert samples["mammal"] == 30 and assets["mammal"] == 10  # 10 mammals fill the same budget with 3 clips each
    assert all(n <= max(30, assets[k]) for k, n in samples.items()), samples


def test_quaternius_licences_come_from_the_title_and_a_typed_config_plans_without_argparse(tmp_path, capsys):
    licences = read_licences(_quaternius())
    assert len(licences) == 96 and licences["animals-Fox.glb"] == {"licence": "CC0 1.0", "credit": "Quaternius animated assets"}
    assert read_licences(ASSETS)["CesiumMan.glb"]["licence"].startswith("CC BY 4.0")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "still.gltf").write_text(json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}]}))
    config = BuildConfig(out=tmp_path / "out", settings=RenderSettings(), gltf_dirs=[tmp_path / "in", _quaternius()],
                         procedural=9, samples_per_kind=20, max_clips=2, val_fraction=0.0, val_assets=("tank-Tank",), plan_only=True)
    manifest = build(config)
    assert manifest["assets"]["still"] == {"split": "train", "status": "skipped", "reason": f"{tmp_path / 'in' / 'still.gltf'}: the file has no animation"}
    assert "skip still.gltf: " in capsys.readouterr().out
    fox = manifest["assets"]["animals-Fox"]
    assert fox["status"] == "planned" and fox["kind"] == "mammal" and fox["licence"] == "CC0 1.0"
    assert {clip["caption"] for clip in fox["clips"]} == {"a fox galloping", "a fox walking"}  # its two signature motions
    assert "a galloping fox" in fox["clips"][0]["captions"] + fox["clips"][1]["captions"]
    assert manifest["assets"]["tank-Tank"]["split"] == "val" and manifest["assets"]["proc-fish-00003"]["kind"] == "procedural fish"
    assert not (tmp_path / "out" / "manifest.json").exists()  # a plan writes no manifest and no shard
