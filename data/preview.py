"""Contact sheet of shards: one labelled RGBA grid (rows = views, columns = frames) per sample, for people.

    python -m data.preview shards/demo/train --out previews/demo.png --max-samples 12
    python -m data.preview 'shards/v2/train/animals-*.tar' --per-shard 2 --views 4 --out previews/mammals.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image, ImageDraw

from data.atomic import atomic_path
from data.cli import Failure, check_output, entry_point, non_negative_int, positive_int
from data.shards import decode_sample, images_to_grid
from data.stream import SKIPPED, resolve_shards

LABEL_HEIGHT = 14
GAP = 6


def _checker(height: int, width: int, cell: int = 8) -> np.ndarray:
    """A light grey checkerboard [H, W, 3] uint8, so transparent pixels read as background."""
    yy, xx = np.mgrid[:height, :width]
    return np.where(((yy // cell + xx // cell) % 2)[..., None] == 0, 235, 205).astype(np.uint8).repeat(3, -1)


def grid_image(rows: torch.Tensor) -> Image.Image:
    """Images [R, C, 3, H, W] in [0, 1] -> one grid image, R rows by C columns."""
    pixels = (rows.detach().clamp(0, 1) * 255).round().byte().permute(0, 1, 3, 4, 2).cpu().numpy()  # [R, C, H, W, 3]
    return Image.fromarray(images_to_grid(pixels))


def sample_tile(sample: dict, views: int = 0) -> Image.Image:
    """A decoded sample's RGBA grid (its first `views` views; 0: all) composited over a checkerboard, with its caption
    and key above it."""
    shown = sample["images"][:views] if views else sample["images"]
    images = (shown.permute(0, 1, 3, 4, 2).numpy() * 255).round().astype(np.uint8)  # [V, F, H, W, 4]
    grid = images_to_grid(images).astype(np.float32)  # [V*H, F*W, 4]
    alpha = grid[..., 3:] / 255
    rgb = grid[..., :3] * alpha + _checker(*grid.shape[:2]) * (1 - alpha)
    tile = Image.new("RGB", (grid.shape[1], grid.shape[0] + LABEL_HEIGHT), "white")
    tile.paste(Image.fromarray(rgb.round().astype(np.uint8)), (0, LABEL_HEIGHT))
    ImageDraw.Draw(tile).text((2, 1), f"{sample['caption']}  [{sample['key']}]", fill="black")
    return tile


def contact_sheet(shards, max_samples: int = 12, columns: int = 2, per_shard: int = 0, views: int = 0) -> Image.Image:
    """Tiles of the first `max_samples` samples of `shards` (at most `per_shard` of each shard, 0: no limit; the first
    `views` views of each, 0: all), laid out in `columns` columns."""
    tiles, taken = [], {}
    # Unreadable shards and samples are skipped with a warning (as in training), so a sheet of nothing is an error.
    for raw in wds.WebDataset(resolve_shards(shards), shardshuffle=False, empty_check=False, handler=SKIPPED):
        taken[raw["__url__"]] = taken.get(raw["__url__"], 0) + 1
        if per_shard and taken[raw["__url__"]] > per_shard:
            continue
        tiles.append(sample_tile(decode_sample(raw), views))
        if len(tiles) == max_samples:
            break
    if not tiles:
        raise ValueError(f"no readable samples in {', '.join(map(str, shards))}")
    tile_w, tile_h = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (tile_w + GAP) - GAP, rows * (tile_h + GAP) - GAP), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (tile_w + GAP), (i // columns) * (tile_h + GAP)))
    return sheet


@entry_point
def main(argv=None) -> None:
    """`python -m data.preview SHARDS... --out FILE.png`: write the contact sheet (replaced only when complete)."""
    p = argparse.ArgumentParser(prog="python -m data.preview", description=__doc__.split("\n\n")[0])
    p.add_argument("shards", nargs="+", help="shard folder(s), brace pattern(s) or .tar files")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--max-samples", type=positive_int, default=12)
    p.add_argument("--columns", type=positive_int, default=2)
    p.add_argument("--per-shard", type=non_negative_int, default=0, help="at most N samples of each shard (asset); 0: no limit")
    p.add_argument("--views", type=non_negative_int, default=0, help="show the first N views (4: the orbit ring); 0: all")
    args = p.parse_args(argv)
    check_output(args.out, folder=False)
    try:
        sheet = contact_sheet(args.shards, args.max_samples, args.columns, args.per_shard, args.views)
    except ValueError as err:  # no shards, no samples in them
        raise Failure(str(err)) from None
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {args.out} ({sheet.width}x{sheet.height}, {args.max_samples} samples at most)")


if __name__ == "__main__":
    main()
