"""The metadata of one shard sample as a typed record: what a sample's `json` holds (the layout is in data/shards.py).

Format versions: 1 (an RGBA grid and this metadata), 2 (an optional 16-bit depth grid, `depth_unit`), 3 (`captions`:
several phrasings of the caption; `kind`: the asset's family). `SampleRecord.from_json` reads every version: a field
an older version lacks takes its default, and a key this code does not know (a licence note, an Objaverse uid, a
procedural family) is kept in `extras` and written back unchanged by `to_json`.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields

FORMAT_VERSION = 3  # 2: optional depth.png; 3: captions and kind


@dataclass
class SampleRecord:
    """One sample's metadata. Cameras and times as nested lists (JSON); `data.shards.decode_sample` makes tensors."""

    caption: str  # the canonical caption, captions[0]
    times: list  # [F] in [0, 1]
    c2w: list  # [V, F, 4, 4] OpenCV camera-to-world in the normalised object frame
    K: list  # [V, 3, 3] intrinsics normalised by the image size
    orbit_views: int  # views 0..orbit_views-1 are the orbit ring, the rest extra supervision views
    captions: list = field(default_factory=list)  # phrasings of the caption, the canonical one first ([caption] if empty)
    kind: str = ""  # the asset's family for balancing and reports ("mammal", "procedural fish"; "" before version 3)
    asset_id: str = ""
    clip: str = ""  # the animation's name in the file
    clip_index: int = 0
    orbit: int = 0
    source: str = ""
    licence: str = ""
    credit: str = ""
    extra_views: int = 0
    fps: float = 0.0
    duration: float = 0.0  # seconds of the clip the frames cover
    elevations: list = field(default_factory=list)  # [V] degrees
    azimuths: list = field(default_factory=list)  # [V] degrees
    center: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # union bounding-box centre, asset units
    scale: float = 1.0  # asset units -> normalised units
    samples: int = 0  # Cycles samples per pixel
    seed: int = 0
    motion: str = ""  # the motion filter's verdict
    motion_score: float | None = None  # data.images.motion_score of the ring views; None in shards made before it
    V: int = 0  # views, frames and image size: set by data.shards.encode_sample
    F: int = 0
    H: int = 0
    W: int = 0
    depth_unit: float | None = None  # normalised units per depth level; None without depth.png
    format_version: int = FORMAT_VERSION  # the version that wrote the sample, as read
    extras: dict = field(default_factory=dict)  # keys of no field above, kept as they were

    def __post_init__(self) -> None:
        if not self.captions:
            self.captions = [self.caption]

    def to_json(self) -> str:
        """The record as one JSON object: the fields, with `extras` spread beside them (never over a field)."""
        data = asdict(self)
        extras = data.pop("extras")
        return json.dumps({**{k: v for k, v in extras.items() if k not in data}, **data})

    @classmethod
    def from_json(cls, text: str | bytes) -> SampleRecord:
        """A record from any format version's JSON; ValueError for a newer version, a non-object or missing fields."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"sample metadata must be a JSON object, got {type(data).__name__}")
        version = data.setdefault("format_version", 1)  # version 1 did not write its number
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"sample metadata of format version {version!r}: this code reads versions 1 to {FORMAT_VERSION}")
        names = {f.name for f in fields(cls)} - {"extras"}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"sample metadata lacks {missing}")
        return cls(**{k: v for k, v in data.items() if k in names}, extras={k: v for k, v in data.items() if k not in names})
