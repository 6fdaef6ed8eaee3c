"""Animated asset discovery: which files and clips exist, and their captions, without Blender.

A clip is one glTF animation of one file. Only the file's JSON document is read here (for a .glb, its first chunk;
pygltflib would decode every accessor into objects, seconds per animated character), so the build can plan and
validate its work, and report a bad file clearly, before any Blender process starts.
Captions come from the file and clip names (data/captions.py) unless the file carries its own.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from data.captions import Description, describe

GLTF_SUFFIXES = (".glb", ".gltf")


class AssetError(ValueError):
    """A file that cannot be used as an animated asset; the message names the file and the reason."""


@dataclass(frozen=True)
class Clip:
    """One animation clip of one asset file."""

    asset_id: str  # unique id of the asset, used for the train/validation split
    path: Path
    index: int  # position of the animation in the glTF file
    name: str  # the animation's name (the importer's name for unnamed ones: Anim_<i>)
    caption: str  # the canonical caption, captions[0]
    captions: tuple[str, ...] = ()  # phrasings of the caption, the canonical one first
    kind: str = ""  # the asset's family, for balancing ("mammal", "procedural fish"; data.captions)
    motion: str = ""  # what the clip shows: two clips of a file with the same motion show the same thing
    priority: int = 0  # 0 the asset's signature motion ... 3 death (data.captions.Description)
    meta: dict = field(default_factory=dict, compare=False)  # licence, author, source, ...


def asset_id_for(path: Path) -> str:
    """A stable id from a file name: letters, digits, '-' and '_' only (webdataset keys may not hold dots)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem)


def _description(path: Path, clip_name: str, meta: dict) -> Description:
    """The clip's captions: the file's own (a procedural asset's, an Objaverse object's) or made from the names."""
    if not meta.get("caption"):
        return describe(path.stem, clip_name)
    captions = tuple(meta.get("captions") or [meta["caption"]])
    kind = f"procedural {meta['family']}" if meta.get("family") else "objaverse" if meta.get("objaverse") else "other"
    return Description(captions, kind, captions[0], 0)


GLB_MAGIC, GLB_JSON_CHUNK = b"glTF", 0x4E4F534A  # the binary container's magic and its JSON chunk type


def _gltf_json(path: Path) -> dict:
    """The JSON document of a .gltf file or of a .glb file's first chunk; AssetError for anything else."""
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    if path.suffix.lower() not in GLTF_SUFFIXES:
        raise AssetError(f"{path}: not a glTF file (expected {' or '.join(GLTF_SUFFIXES)})")
    data = path.read_bytes()
    try:
        if data[:4] == GLB_MAGIC:
            length, chunk_type = struct.unpack_from("<II", data, 12)  # header: magic, version, total length
            if chunk_type != GLB_JSON_CHUNK:
                raise ValueError("the first chunk is not JSON")
            data = data[20:20 + length]
        doc = json.loads(data)
    except (ValueError, struct.error) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise AssetError(f"{path}: not a readable glTF file ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict) or not doc["asset"].get("version"):
        raise AssetError(f"{path}: not a readable glTF file (no asset header)")
    return doc


def list_clips(path: str | Path, meta: dict | None = None) -> list[Clip]:
    """The animation clips of a glTF/GLB file, in file order.

    Captions stored by the generator in `asset.extras` ("caption", "captions") win over those made from the names.
    Raises AssetError for a missing, unreadable or unanimated file.
    """
    path = Path(path)
    doc = _gltf_json(path)
    if not doc.get("animations"):
        raise AssetError(f"{path}: the file has no animation")
    extras = doc["asset"].get("extras") if isinstance(doc["asset"].get("extras"), dict) else {}
    meta = {**{k: v for k, v in extras.items() if k != "params"}, **(meta or {})}
    clips = []
    for i, anim in enumerate(doc["animations"]):
        name = anim.get("name") or f"Anim_{i}"
        d = _description(path, name, meta)
        clips.append(Clip(asset_id_for(path), path, i, name, d.captions[0], d.captions, d.kind, d.motion, d.priority, meta))
    return clips


def find_assets(folder: str | Path) -> list[Path]:
    """glTF/GLB files directly inside `folder`, sorted; raises AssetError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in GLTF_SUFFIXES)
    if not files:
        raise AssetError(f"{folder}: holds no .glb or .gltf file")
    return files
