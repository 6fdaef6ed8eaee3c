"""Every file in ../shared/assets renders, for every clip, and the object is in view; so do Quaternius files of
each difficult kind (Draco-compressed meshes, each clip stored twice, clip names without an armature, fish)."""
from __future__ import annotations

import pytest

from conftest import ASSETS
from data.assets import find_assets, list_clips
from data.plan import choose_clips

pytestmark = pytest.mark.blender

CLIPS = [c for p in (find_assets(ASSETS) if ASSETS.is_dir() else []) for c in list_clips(p)]
QUATERNIUS = ["ultimate_space-Enemy_Small", "platformer_game-Chest", "ultimate_space-Mech_FinnTheFrog", "cute_fish-Betta"]


def test_the_shared_assets_hold_every_clip_the_licence_file_lists():
    if not ASSETS.is_dir():
        pytest.skip("../shared/assets not found")
    assert len({c.asset_id for c in CLIPS}) == 12 and len(CLIPS) == 37


@pytest.mark.parametrize("clip", CLIPS, ids=[f"{c.asset_id}-{c.index}" for c in CLIPS])
def test_clip_renders_with_the_object_in_view(clip):
    _renders_in_view(clip)


@pytest.mark.parametrize("name", QUATERNIUS)
def test_quaternius_signature_clip_renders_with_the_object_in_view(name):
    path = ASSETS / "quaternius" / f"{name}.glb"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    _renders_in_view(choose_clips(list_clips(path))[0])


def _renders_in_view(clip) -> None:
    pytest.importorskip("bpy")
    from data.render_blender import RenderSettings, render_clip

    out = render_clip(clip.path, clip.name, RenderSettings(views=2, frames=2, size=16, samples=1))
    alpha = out.images[..., 3]  # [V, F, H, W]
    assert out.images.shape == (2, 2, 16, 16, 4)
    assert (alpha > 127).any(axis=(2, 3)).all(), "the object is missing from a view"
    border = alpha.copy()
    border[..., 1:-1, 1:-1] = 0
    assert border.max() < 128, "the object touches the image border: normalisation failed"
    assert 0 < out.duration <= 4.0 + 1e-6
