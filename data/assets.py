"""Animated asset discovery: which files and clips exist, and their captions, without Blender.

A clip is one glTF animation of one file. Reading the glTF JSON here (pygltflib) is cheap, so the build
can plan and validate its work, and report a bad file clearly, before any Blender process starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pygltflib

GLTF_SUFFIXES = (".glb", ".gltf")
# Words that name a collection or a technique rather than the object itself.
_NOT_THE_OBJECT = {"animated", "quaternius", "rigged", "simple", "morph", "stress", "test", "skin"}


class AssetError(ValueError):
    """A file that cannot be used as an animated asset; the message names the file and the reason."""


@dataclass(frozen=True)
class Clip:
    """One animation clip of one asset file."""

    asset_id: str  # unique id of the asset, used for the train/validation split
    path: Path
    index: int  # position of the animation in the glTF file
    name: str  # the animation's name (the importer's name for unnamed ones: Anim_<i>)
    caption: str
    meta: dict = field(default_factory=dict, compare=False)  # licence, author, source, ...


def asset_id_for(path: Path) -> str:
    """A stable id from a file name: letters, digits, '-' and '_' only (webdataset keys may not hold dots)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem)


def _words(name: str) -> list[str]:
    """'QuaterniusStag' -> ['quaternius', 'stag']; 'AnimalArmature|Gallop_Jump' -> ['gallop', 'jump']."""
    name = name.split("|")[-1]
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def caption_for(asset_name: str, clip_name: str) -> str:
    """A plain caption from an asset's and a clip's names: ('QuaterniusStag', 'AnimalArmature|Gallop') -> 'a stag, gallop'."""
    noun = " ".join(w for w in _words(asset_name) if w not in _NOT_THE_OBJECT) or " ".join(_words(asset_name))
    motion = " ".join(_words(clip_name))
    if re.fullmatch(r"(anim|animation|action)? ?\d*", motion):  # unnamed clips say nothing about the motion
        return f"a {noun}"
    return f"a {noun}, {motion}"


def _load_gltf(path: Path) -> pygltflib.GLTF2:
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    if path.suffix.lower() not in GLTF_SUFFIXES:
        raise AssetError(f"{path}: not a glTF file (expected {' or '.join(GLTF_SUFFIXES)})")
    try:
        gltf = pygltflib.GLTF2().load(str(path))
    except Exception as err:  # pygltflib raises many kinds of errors on bad bytes
        raise AssetError(f"{path}: not a readable glTF file ({type(err).__name__}: {err})") from None
    if gltf is None or not gltf.asset or not gltf.asset.version:
        raise AssetError(f"{path}: not a readable glTF file (no asset header)")
    return gltf


def list_clips(path: str | Path, meta: dict | None = None) -> list[Clip]:
    """The animation clips of a glTF/GLB file, in file order.

    A caption stored by the generator in `asset.extras["caption"]` wins over one made from the names.
    Raises AssetError for a missing, unreadable or unanimated file.
    """
    path = Path(path)
    gltf = _load_gltf(path)
    if not gltf.animations:
        raise AssetError(f"{path}: the file has no animation")
    extras = gltf.asset.extras if isinstance(gltf.asset.extras, dict) else {}
    meta = {**{k: v for k, v in extras.items() if k != "params"}, **(meta or {})}
    clips = []
    for i, anim in enumerate(gltf.animations):
        name = anim.name or f"Anim_{i}"
        caption = meta.get("caption") or caption_for(path.stem, name)
        clips.append(Clip(asset_id_for(path), path, i, name, caption, meta))
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
