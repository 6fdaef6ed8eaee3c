"""Captions from file and clip names read as a person writes them, in several phrasings, on the real assets' names."""
from __future__ import annotations

import re

import pytest

from conftest import ASSETS
from data.assets import find_assets, list_clips
from data.captions import article, describe, gerund

QUATERNIUS = ASSETS / "quaternius"


def _real_clips() -> list:
    if not QUATERNIUS.is_dir():
        pytest.skip(f"{QUATERNIUS} not found: tests need ../shared beside the checkout")
    return [clip for folder in (ASSETS, QUATERNIUS) for path in find_assets(folder) for clip in list_clips(path)]


@pytest.mark.parametrize("stem, clip, caption", [
    ("animals-Deer", "AnimalArmature|Gallop", "a deer galloping"),
    ("cute_fish-Clownfish", "Fish_Armature|Swimming_Normal", "a clownfish swimming"),
    ("dinosaurs-Velociraptor", "Armature|Velociraptor_Run", "a velociraptor running"),
    ("dinosaurs-Apatosaurus", "Armature|Stegosaurus_Death", "an apatosaurus dying"),  # another dinosaur's name in the clip
    ("animals-ShibaInu", "AnimalArmature|Idle_2_HeadLow", "a shiba inu standing with its head low"),
    ("ultimate_space-Astronaut_FinnTheFrog", "No", "an astronaut shaking their head"),
    ("cyberpunk-Enemy_2Legs_Gun", "CharacterArmature|Shoot", "a two-legged robot with a gun shooting"),
    ("cyberpunk-Enemy_Flying", "CharacterArmature|Walk", "a drone flying"),  # it flies where the clip says walk
    ("easy_enemies-Snake", "SnakeArmature|Snake_Walk", "a snake slithering"),
    ("tank-Tank3", "TankArmature|Tank_TurningLeft", "a tank turning left"),
    ("platformer_game-Hazard_SpikeTrap", "Hazard_SpikeTrap_Armature|SpikeTrap_Activate", "a spike trap springing its spikes"),
    ("QuaterniusStag", "AnimalArmature|Jump_toIdle", "a stag jumping"),
    ("CesiumMan", "Anim_0", "a man walking"),  # an unnamed clip: the subject's usual motion
    ("BoxAnimated", "Anim_0", "a box moving"),
])
def test_real_names_give_the_caption_a_person_would_write(stem, clip, caption):
    assert describe(stem, clip).captions[0] == caption


def test_each_clip_has_several_phrasings_with_the_broader_word():
    deer = describe("animals-Deer", "AnimalArmature|Gallop").captions
    assert deer == ("a deer galloping", "a galloping deer", "an animal galloping", "a deer running at a gallop",
                    "an animal running at a gallop")
    assert "a robot waving" in describe("mech-Stan", "Hello").captions
    assert "a dinosaur walking" in describe("dinosaurs-Triceratops", "Armature|Triceratops_Walk").captions


def test_every_real_clip_gets_clean_captions():
    clips = _real_clips()
    assert len(clips) == 37 + 779  # ../shared/assets and its quaternius/ folder, as their LICENSES.md count them
    for clip in clips:
        assert len(clip.captions) >= 2 and clip.caption == clip.captions[0], clip
        for caption in clip.captions:
            assert re.fullmatch(r"(a|an) [a-z][a-z -]*[a-z]", caption), f"{clip.path.name} {clip.name}: {caption!r}"
            assert caption.startswith(article(caption.split(" ", 1)[1]).split(" ")[0] + " ")  # 'an' before a vowel
            assert not {"armature", "anim", "quaternius", "recieve", "enemy"} & set(caption.split()), caption


def test_kinds_group_the_real_assets_and_priorities_put_the_signature_motion_first():
    kinds = {}
    for clip in _real_clips():
        kinds.setdefault(clip.kind, set()).add(clip.asset_id)
    assert {k: len(v) for k, v in kinds.items()} == {
        "mammal": 11, "fish": 41, "dinosaur": 5, "small creature": 5, "robot": 14, "character": 10, "monster": 6,
        "vehicle": 5, "object": 11}
    assert {"animals-Fox", "QuaterniusWolf", "easy_enemies-Rat"} <= kinds["mammal"]
    stag = {c.motion: c.priority for c in _real_clips() if c.asset_id == "QuaterniusStag"}
    assert stag["galloping"] == stag["walking"] == 0 < stag["eating"] < stag["standing idle"] < stag["dying"]


def test_names_nobody_listed_still_read_as_words():
    unknown = describe("zoo-PurpleGiraffe", "Armature|Moonwalk")
    assert unknown.captions[0] == "a purple giraffe moonwalking" and unknown.kind == "other"
    assert describe("animals-Deer", "Walk_Backwards").captions[0] == "a deer walking backwards"  # not 'reversing'
    assert describe("tank-Tank", "Tank_Backwards").captions[0] == "a tank reversing"  # the name before it dropped
    assert [gerund(v) for v in ("dance", "swim", "jump", "fly", "open", "moonwalk")] == [
        "dancing", "swimming", "jumping", "flying", "opening", "moonwalking"]
    assert [article(w) for w in ("alpaca", "unicorn", "umbrella", "tank")] == ["an alpaca", "a unicorn", "an umbrella", "a tank"]
