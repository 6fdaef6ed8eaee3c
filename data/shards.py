"""The shard sample format: one RGBA grid image, an optional depth grid, JSON metadata, and an atomic shard writer.

A sample holds `__key__` (asset/clip/orbit id), `json` (a `data.record.SampleRecord`: captions, provenance, cameras,
times, sizes) and `png`:
one lossless RGBA image whose rows are views and columns are frames, so a person can open it and see
the whole clip at a glance. Shards are webdataset tar files written under a temporary name and renamed
when complete, so a crash never leaves a half shard under the final name.

Depth (data sets built with depth, the default since format version 2) travels as `depth.png`: a 16-bit
greyscale PNG laid out like the RGBA grid (rows views, columns frames). A pixel's value q is the depth along
its camera's z axis (OpenCV, +z forward) in the normalised object frame, `q * json["depth_unit"]`; 0 means no
surface (background). The unit is the sample's largest depth / 65535, so the quantisation error is at most
half of it (about 2e-5 for these cameras). Samples without `depth.png` (older shards) decode as before.
"""
from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from data.atomic import atomic_path
from data.record import FORMAT_VERSION, SampleRecord

DEPTH_LEVELS = 65535  # the largest 16-bit depth value


def sample_key(asset_id: str, clip_index: int, orbit: int) -> str:
    """A webdataset key: no dots (webdataset splits extensions at the first dot)."""
    return f"{asset_id}__c{clip_index:03d}__o{orbit:02d}".replace(".", "-")


def images_to_grid(images: np.ndarray) -> np.ndarray:
    """uint8 [V, F, H, W, 4] -> grid [V*H, F*W, 4]: rows are views, columns are frames."""
    V, F, H, W, C = images.shape
    return images.transpose(0, 2, 1, 3, 4).reshape(V * H, F * W, C)


def grid_to_images(grid: np.ndarray, views: int, frames: int) -> np.ndarray:
    """The inverse of `images_to_grid`: grid [V*H, F*W, C] -> [V, F, H, W, C]."""
    rows, cols, C = grid.shape
    if rows % views or cols % frames:
        raise ValueError(f"a {rows}x{cols} grid does not split into {views} views x {frames} frames")
    H, W = rows // views, cols // frames
    return grid.reshape(views, H, frames, W, C).transpose(0, 2, 1, 3, 4)


def _png_bytes(grid: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_sample(key: str, images: np.ndarray, record: SampleRecord, depth: np.ndarray | None = None) -> dict:
    """A webdataset sample dict from uint8 images [V, F, H, W, 4], its record and optionally depth float
    [V, F, H, W] (normalised units, 0: no surface; see the module docstring for how it is stored). The record's
    sizes, format version and depth unit are set here."""
    V, F, H, W, _ = images.shape
    meta = replace(record, format_version=FORMAT_VERSION, V=V, F=F, H=H, W=W, depth_unit=None)
    sample = {"__key__": key, "png": _png_bytes(images_to_grid(images))}
    if depth is not None:
        if depth.shape != (V, F, H, W) or not np.isfinite(depth).all() or (depth < 0).any():
            raise ValueError(f"sample {key!r}: depth must be finite, non-negative and [V, F, H, W] = {(V, F, H, W)}, got {depth.shape}")
        unit = max(float(depth.max()), 1e-6) / DEPTH_LEVELS
        levels = np.round(depth / unit).astype(np.uint16)[..., None]  # [V, F, H, W, 1]
        sample["depth.png"] = _png_bytes(images_to_grid(levels)[..., 0])
        meta.depth_unit = unit
    sample["json"] = meta.to_json().encode()
    return sample


def _decode_depth(sample: dict, meta: SampleRecord) -> torch.Tensor:
    """Depth [V, F, 1, H, W] (normalised units, 0: no surface) of a sample's `depth.png`."""
    V, F, H, W = meta.V, meta.F, meta.H, meta.W
    grid = np.asarray(Image.open(io.BytesIO(sample["depth.png"])), dtype=np.float32)
    if grid.shape != (V * H, F * W) or meta.depth_unit is None:
        raise ValueError(f"sample {sample['__key__']!r}: depth grid {grid.shape} (unit {meta.depth_unit}) "
                         f"does not match V={V} F={F} H={H} W={W}")
    levels = grid_to_images(grid[..., None], V, F)  # [V, F, H, W, 1]
    return torch.from_numpy(levels.copy()).permute(0, 1, 4, 2, 3) * meta.depth_unit


def decode_sample(sample: dict) -> dict:
    """Tensors from a raw webdataset sample (bytes under 'json' and 'png', and 'depth.png' where present).

    Returns images [V, F, 4, H, W] float in [0, 1], c2w [V, F, 4, 4], K [V, 3, 3], times [F],
    caption (str, the canonical one), key (str), meta (a `SampleRecord`, of any format version) and, only for
    samples that carry it, depth [V, F, 1, H, W] (normalised units along each camera's z axis, 0: no surface).
    Raises ValueError when the sample is incomplete or its parts disagree, so the loader can skip it.
    """
    missing = {"json", "png"} - sample.keys()
    if missing:
        raise ValueError(f"sample {sample.get('__key__')!r} lacks {sorted(missing)}")
    meta = SampleRecord.from_json(sample["json"])
    V, F, H, W = meta.V, meta.F, meta.H, meta.W
    grid = np.asarray(Image.open(io.BytesIO(sample["png"])).convert("RGBA"))
    if grid.shape != (V * H, F * W, 4):
        raise ValueError(f"sample {sample['__key__']!r}: grid {grid.shape} does not match V={V} F={F} H={H} W={W}")
    images = torch.from_numpy(grid_to_images(grid, V, F).copy()).permute(0, 1, 4, 2, 3)  # [V, F, 4, H, W]
    c2w = torch.tensor(meta.c2w, dtype=torch.float32)
    K = torch.tensor(meta.K, dtype=torch.float32)
    times = torch.tensor(meta.times, dtype=torch.float32)
    if c2w.shape != (V, F, 4, 4) or K.shape != (V, 3, 3) or times.shape != (F,):
        raise ValueError(f"sample {sample['__key__']!r}: camera or time shapes do not match V={V} F={F}")
    decoded = {
        "images": images.float() / 255.0, "c2w": c2w, "K": K, "times": times,
        "caption": meta.caption, "key": sample["__key__"], "meta": meta,
    }
    if "depth.png" in sample:
        decoded["depth"] = _decode_depth(sample, meta)
    return decoded


def write_shard(path: str | Path, samples: list[dict]) -> Path:
    """Write encoded samples to a tar shard atomically: a temporary name in the same folder, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with wds.TarWriter(str(tmp)) as sink:
            for sample in samples:
                sink.write(sample)
        with open(tmp, "rb") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
    return path
