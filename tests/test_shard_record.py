"""The typed shard record: every format version reads, the JSON round-trips, bad metadata is refused by name."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data import stream
from data.record import FORMAT_VERSION, SampleRecord
from data.shards import decode_sample, encode_sample

FIXTURE = Path(__file__).parent / "fixtures" / "shard-format" / "format-v2-SimpleSkin.tar"


def _record(**fields) -> SampleRecord:
    return SampleRecord(caption="a fox running", times=[0.0, 1.0], c2w=torch.eye(4).expand(1, 2, 4, 4).tolist(),
                        K=torch.eye(3)[None].tolist(), orbit_views=1, **fields)


def test_a_shard_written_before_the_typed_record_reads_with_it():
    batch = next(iter(stream.make_dataset(FIXTURE, batch_size=1, shuffle=0, subset=stream.Subset(random=False))))
    record = batch["meta"][0]
    assert isinstance(record, SampleRecord) and record.format_version == 2
    assert record.caption == "a simple skin" and record.captions == ["a simple skin"] and record.kind == ""
    assert (record.asset_id, record.clip, record.orbit_views, record.extra_views) == ("SimpleSkin", "Anim_0", 2, 1)
    assert record.licence == "CC0 1.0" and record.motion_score is not None and record.depth_unit > 0
    assert batch["images"].shape == (1, 3, 2, 4, 16, 16) and batch["depth"].shape == (1, 3, 2, 1, 16, 16)
    assert batch["images"][..., 3, :, :].amax() == 1.0 and batch["caption"] == ["a simple skin"]


def test_record_round_trips_through_a_sample_keeping_unknown_keys():
    record = _record(captions=["a fox running", "a running fox"], kind="mammal", extras={"uid": "abc", "caption": "ignored"})
    images = np.random.default_rng(0).integers(0, 256, (1, 2, 4, 4, 4), dtype=np.uint8)  # [V, F, H, W, 4]
    decoded = decode_sample(encode_sample("k", images, record))["meta"]
    assert decoded.format_version == FORMAT_VERSION and (decoded.V, decoded.F, decoded.H, decoded.W) == (1, 2, 4, 4)
    assert decoded.captions == ["a fox running", "a running fox"] and decoded.kind == "mammal" and decoded.caption == "a fox running"
    assert decoded.extras == {"uid": "abc"}  # a key that names a field never overrides it
    assert SampleRecord.from_json(decoded.to_json()) == decoded


def test_version_one_metadata_takes_defaults():
    old = json.dumps({"caption": "a stag, gallop", "times": [0.0], "c2w": [[np.eye(4).tolist()]], "K": [np.eye(3).tolist()],
                      "orbit_views": 1, "V": 1, "F": 1, "H": 8, "W": 8, "objaverse": True})
    record = SampleRecord.from_json(old)
    assert record.format_version == 1 and record.captions == ["a stag, gallop"] and record.depth_unit is None
    assert record.motion_score is None and record.extras == {"objaverse": True}


def test_bad_metadata_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=rf"format version {FORMAT_VERSION + 1}: this code reads versions 1 to {FORMAT_VERSION}"):
        SampleRecord.from_json(json.dumps({**json.loads(_record().to_json()), "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match=r"lacks \['c2w', 'K'\]"):
        SampleRecord.from_json(json.dumps({"caption": "x", "times": [0.0], "orbit_views": 1}))
    with pytest.raises(ValueError, match="must be a JSON object"):
        SampleRecord.from_json("[1, 2]")
