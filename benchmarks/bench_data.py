"""Data pipeline benchmark: seconds per rendered clip and samples/s through the streaming loader.

    python -m benchmarks.bench_data [--assets ../shared/assets] [--clips 6] [--workers 2]

Renders `--clips` clips of the shared assets at 4 views x 8 frames, 64x64 (Cycles, 8 samples), one
Blender process, then streams the resulting shards for a few passes with 2 loader workers.
Prints figures; asserts nothing (speed goals live here, not in tests).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from data.assets import find_assets, list_clips
from data.render_blender import RenderSettings, render_clip
from data.record import SampleRecord
from data.shards import encode_sample, write_shard
from data.stream import Subset, make_loader


def bench_render(clips, settings: RenderSettings, out: Path) -> float:
    """Render each clip into its own shard; returns seconds per clip."""
    start = time.perf_counter()
    for i, clip in enumerate(clips):
        r = render_clip(clip.path, clip.name, settings)
        meta = SampleRecord(caption=clip.caption, orbit_views=settings.views, times=r.times.tolist(), c2w=r.c2w.tolist(), K=r.K.tolist())
        write_shard(out / f"{i:03d}.tar", [encode_sample(f"clip{i:03d}", r.images, meta)])
    return (time.perf_counter() - start) / len(clips)


def bench_stream(shards: Path, workers: int, passes: int, batch_size: int) -> float:
    """Samples per second through the loader (decode + subset + collate), `passes` passes over `shards`."""
    loader = make_loader(shards, batch_size, num_workers=workers, shuffle=16, subset=Subset(), resampled=True)
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not throughput
    n, start = 0, time.perf_counter()
    total = passes * len(list(shards.glob("*.tar")))
    while n < total:
        n += len(next(it)["key"])
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--passes", type=int, default=20)
    args = p.parse_args()

    clips = [list_clips(path)[0] for path in find_assets(args.assets)][: args.clips]
    settings = RenderSettings(views=4, frames=8, size=64, samples=8)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        per_clip = bench_render(clips, settings, Path(tmp))
        print(f"render: {per_clip:.2f} s per clip (4 views x 8 frames, 64x64, Cycles {settings.samples} spp, "
              f"{per_clip / 32 * 1000:.0f} ms per image, import and normalisation included), {len(clips)} clips")
        rate = bench_stream(Path(tmp), args.workers, args.passes, batch_size=4)
        print(f"stream: {rate:.0f} samples/s with {args.workers} workers (decode PNG grid + collate, batch 4)")


if __name__ == "__main__":
    main()
