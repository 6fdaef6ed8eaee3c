"""data/objaverse.py against a local stand-in for Objaverse.

tests/fixtures/objaverse/annotations.json: nine annotation records in Objaverse 1.0's format
(Sketchfab fields), mixing licences, static and animated objects, one age-restricted, one huge.
tests/fixtures/objaverse/objects.json: uid -> a real animated glTF file in ../shared/assets, the
stand-in for what `objaverse.load_objects` would have downloaded.
"""
import json
import socket
import urllib.error
from pathlib import Path

import pytest
import torch

from data import objaverse as ov

FIXTURE = Path(__file__).parent / "fixtures" / "objaverse"
ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"

FOX, ROBOT, JELLY = "3b1f5c0e2a7d4c9e8f6a2b1c4d5e6f70", "7e0d9c8b6a5f4e3d2c1b0a9f8e7d6c5b", "c4a3e2f1d0b94a8c7e6f5d4c3b2a1908"
SPARROW = "f0e1d2c3b4a54f6e7d8c9b0a1f2e3d4c"
DROPPED = {  # uid -> the start of its drop reason under the default filter
    "0a9b8c7d6e5f40a1b2c3d4e5f6a7b8c9": "not animated",
    "d1e2f3a4b5c64d7e8f9a0b1c2d3e4f5a": "licence by-nc",
    "e5f6a7b8c9d04e1f2a3b4c5d6e7f8a9b": "licence by-nd",
    SPARROW: "licence by-sa",
    "a8b7c6d5e4f34a2b1c0d9e8f7a6b5c4d": "age-restricted",
    "b2c3d4e5f6a74b8c9d0e1f2a3b4c5d6e": "faces",
}


@pytest.fixture(scope="module")
def annotations():
    return ov.read_annotations(FIXTURE / "annotations.json")


class FakeObjaverse:
    """`objaverse.load_objects` over local files: uid -> path in ../shared/assets; records every request."""

    def __init__(self, fail=(), offline=False):
        if not ASSETS.is_dir():
            pytest.skip(f"shared assets not found at {ASSETS}")
        self.files = {uid: str(ASSETS / name) for uid, name in json.loads((FIXTURE / "objects.json").read_text()).items()}
        self.fail, self.offline, self.requests = set(fail), offline, []

    def __call__(self, uids, download_processes=1):
        self.requests.append(list(uids))
        if self.offline:
            raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))
        if self.fail & set(uids):  # like a multiprocessing pool: one failure sinks the batch
            raise urllib.error.HTTPError("https://huggingface.co/x.glb", 500, "Server Error", None, None)
        return {uid: self.files[uid] for uid in uids if uid in self.files}  # unknown uids: silently absent


def test_selection_keeps_animated_permissive_bounded_objects(annotations):
    entries = ov.select_animated(annotations)
    assert sorted(e.uid for e in entries) == sorted([FOX, ROBOT, JELLY])
    for uid, reason in DROPPED.items():
        assert ov.drop_reason(annotations[uid]).startswith(reason), uid
    fox = next(e for e in entries if e.uid == FOX)
    assert (fox.licence, fox.author, fox.url, fox.animation_count) == ("CC-BY", "PolyFox Studio", f"https://sketchfab.com/3d-models/{FOX}", 2)
    robot = next(e for e in entries if e.uid == ROBOT)
    assert (robot.licence, robot.author) == ("CC0", "mechbuilder")  # no display name: the username


def test_selection_options_and_deterministic_sampling(annotations):
    assert SPARROW in {e.uid for e in ov.select_animated(annotations, licenses=("cc0", "by", "by-sa"))}
    assert FOX not in {e.uid for e in ov.select_animated(annotations, max_faces=10_000)}
    full = [e.uid for e in ov.select_animated(annotations, seed=3)]
    shuffled = dict(reversed(list(annotations.items())))
    assert [e.uid for e in ov.select_animated(shuffled, seed=3)] == full  # independent of dict order
    assert [e.uid for e in ov.select_animated(annotations, limit=2, seed=3)] == full[:2]  # growing limit keeps picks


def test_captions_are_short_lowercase_and_clean(annotations):
    captions = {e.uid: e.caption for e in ov.select_animated(annotations)}
    assert captions == {FOX: "a low poly fox running", ROBOT: "a dancing robot", JELLY: "a jellyfish swimming slowly"}
    long = ov.make_caption("Octopus", [], "<b>Very</b> " * 30 + "long. See www.example.com")
    assert long.startswith("an octopus very very") and len(long.split()) == ov.CAPTION_WORDS
    assert ov.make_caption("", [{"name": "Cat"}, {"name": "walk_cycle"}], "https://cat.example.com") == "a cat walk cycle"
    assert ov.make_caption("", [], "") == "an animated object"


def _square_clip(step: int, frames: int = 8, size: int = 64) -> torch.Tensor:
    """A red 20 px square moving right by `step` px a frame on a transparent background: [F, 4, H, W]."""
    clip = torch.zeros(frames, 4, size, size)
    for f in range(frames):
        x = 10 + step * f
        clip[f, :, 20:40, x : x + 20] = torch.tensor([0.8, 0.2, 0.1, 1.0])[:, None, None]
    return clip


def test_motion_filter_verdicts():
    assert ov.motion_check(_square_clip(step=0)).verdict == "static"
    moving = ov.motion_check(_square_clip(step=3))
    assert moving.keep and all(0.4 < s < 0.95 for s in moving.ssim) and len(moving.ssim) == 2
    noise = torch.rand(8, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    noise[:, 3] = 1.0
    assert ov.motion_check(noise).verdict == "broken"
    gone = _square_clip(step=3)
    gone[-1, 3] = 0.0  # the object left the view in the last frame
    empty = ov.motion_check(gone)
    assert empty.verdict == "empty" and empty.min_coverage == 0.0 and "empty" in str(empty)
    assert ov.motion_check(_square_clip(step=3), static_above=0.5).verdict == "static"  # thresholds configurable
    with pytest.raises(ValueError):
        ov.motion_check(torch.zeros(1, 4, 64, 64))


def test_download_copies_resumes_and_skips_failures(tmp_path, annotations):
    entries = ov.select_animated(annotations)
    fake = FakeObjaverse()
    paths = ov.download(entries, tmp_path, load_objects=fake)
    assert set(paths) == {FOX, ROBOT, JELLY}
    for uid, path in paths.items():
        assert path == tmp_path / f"{uid}.glb" and path.read_bytes() == Path(fake.files[uid]).read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind

    again = FakeObjaverse()
    assert ov.download(entries, tmp_path, load_objects=again) == paths and again.requests == []  # resumable

    broken = FakeObjaverse(fail={SPARROW})
    missing = "ffffffffffffffffffffffffffffffff"
    with pytest.warns(UserWarning) as record:
        got = ov.download([FOX, SPARROW, missing, JELLY], tmp_path / "b", load_objects=broken)
    assert set(got) == {FOX, JELLY}
    messages = " ".join(str(w.message) for w in record)
    assert SPARROW in messages and "download failed" in messages and missing in messages
    assert broken.requests[0] == [FOX, SPARROW, missing, JELLY] and [SPARROW] in broken.requests  # batch, then one by one


def test_download_offline_raises_clear_error(tmp_path):
    with pytest.raises(ov.ObjaverseUnreachable, match="no internet"):
        ov.download([FOX], tmp_path, load_objects=FakeObjaverse(offline=True))


def test_cli_select_and_download(tmp_path, monkeypatch, capsys):
    ids = tmp_path / "ids.json"
    assert ov.main(["select", "--count", "2", "--out", str(ids), "--annotations", str(FIXTURE / "annotations.json")]) == 0
    records = json.loads(ids.read_text())
    assert len(records) == 2 and {r["uid"] for r in records} <= {FOX, ROBOT, JELLY}
    assert {"uid", "caption", "licence", "author", "url"} <= set(records[0])
    assert ov.read_entries(ids) == ov.select_animated(ov.read_annotations(FIXTURE / "annotations.json"), limit=2)

    objaverse = pytest.importorskip("objaverse")
    monkeypatch.setattr(objaverse, "load_objects", FakeObjaverse(offline=True))  # no network in tests
    assert ov.main(["download", str(ids), "--out", str(tmp_path / "glbs")]) == 2
    assert "could not reach Objaverse (no internet?)" in capsys.readouterr().err
    monkeypatch.setattr(objaverse, "load_objects", FakeObjaverse())
    assert ov.main(["download", str(ids), "--out", str(tmp_path / "glbs")]) == 0
    assert sorted(p.name for p in (tmp_path / "glbs").iterdir()) == sorted(f"{r['uid']}.glb" for r in records)
