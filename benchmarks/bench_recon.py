"""Reconstruction benchmark: renderer speed, head forward time per preset, and the one-clip fitting run.

    python -m benchmarks.bench_recon [--data shards/demo/train --clip CesiumMan] [--seconds 240] [--parts render head fit]

render: milliseconds per rendered frame (forward only) for 4k, 16k and 65k random Gaussians at 64x64 and
        256x256, on this CPU (the torch path) and, where CUDA is available, with gsplat.
head:   forward milliseconds per clip (4 views x 4 frames, 64x64) for each preset.
fit:    trains a fresh cpu-small head on ONE clip for --seconds and reports PSNR on its 4 input views, on the
        supervision views it was trained against but never given, and on held-out views used by nothing.
        The clip comes from the data pipeline's shards (--data, --clip) or, without --data, a synthetic clip
        of moving spheres (recon/synthetic.py). Goals: >= 25 dB input, >= 20 dB views not given.
Prints figures; asserts nothing (the test suite holds a shorter fitting run with a lower bar).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from data.cameras import OBJECT_RADIUS, fit_distance, intrinsics_from_fov, orbit_c2w
from data.stream import Subset, make_dataset
from recon.gaussians import Gaussians
from recon.head import HEAD_PRESETS, build_head
from data.images import composite
from recon.losses import psnr
from recon.overfit import fit_clip, view_psnr
from recon.render import render
from recon.synthetic import held_out_views, input_views, supervision_views, synthetic_clip

NUM_INPUT = 4  # orbit-ring views given to the head


def _timed(fn, repeats: int) -> float:
    """Milliseconds per call of fn() (after one warm-up call), synchronising CUDA around the timing."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / repeats


def random_gaussians(n: int, device: torch.device, seed: int = 0) -> Gaussians:
    """n random Gaussians inside the object sphere, sized like a 64x64 head's per-pixel splats."""
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians.from_raw(
        means=(torch.rand(n, 3, generator=gen) - 0.5) * OBJECT_RADIUS * 1.5,
        rotations=torch.randn(n, 4, generator=gen),
        scales=torch.randn(n, 3, generator=gen) - 2.5,
        opacities=torch.randn(n, generator=gen),
        colours=torch.randn(n, 3, generator=gen),
    )
    return g.map(lambda t: t.to(device))


def bench_render() -> None:
    c2w = orbit_c2w(torch.tensor([15.0]), torch.tensor([30.0]), fit_distance(40.0))[:, 0]  # [1, 4, 4]
    K = intrinsics_from_fov(40.0)
    backends = [("torch", torch.device("cpu"))] + ([("gsplat", torch.device("cuda"))] if torch.cuda.is_available() else [])
    print(f"\nrender (forward, one 1-camera frame; cpu = {torch.get_num_threads()} threads)")
    print(f"{'backend':<8} {'Gaussians':>9} {'64x64 ms':>9} {'256x256 ms':>11}")
    for backend, device in backends:
        for n in (4096, 16384, 65536):
            g = random_gaussians(n, device)
            cams = c2w.to(device), K.to(device)
            ms = [_timed(lambda: render(g, *cams, size, size, backend=backend), 3 if device.type == "cpu" else 20) for size in (64, 256)]
            print(f"{backend:<8} {n:>9} {ms[0]:>9.1f} {ms[1]:>11.1f}")


def bench_head() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    clip = synthetic_clip(*input_views(NUM_INPUT), num_frames=4, size=64)
    images, c2w, K = (clip[k].to(device) for k in ("images", "c2w", "K"))
    print(f"\nhead forward per clip (4 views x 4 frames, 64x64, {device.type})")
    print(f"{'preset':<10} {'params':>10} {'Gaussians/frame':>16} {'ms':>8}")
    for preset in HEAD_PRESETS:
        head = build_head(preset).to(device).eval()
        with torch.no_grad():
            ms = _timed(lambda: head(images[:, :, :, :3], c2w, K), 3)
            n = head(images[:, :, :, :3], c2w, K).num_gaussians
        print(f"{preset:<10} {sum(p.numel() for p in head.parameters()):>10,} {n:>16,} {ms:>8.1f}")


def load_clip(data: str | None, clip: str, frames: int) -> tuple[tuple[dict, dict], str]:
    """((training views: the ring then supervision views, held-out views), a description) of one clip.

    Shards hold 4 ring views then 4 extra views: the first 2 extras supervise, the last 2 are held out.
    """
    if data is None:
        views = [torch.cat(parts) for parts in zip(input_views(NUM_INPUT), supervision_views(), held_out_views())]
        sample = synthetic_clip(*views, num_frames=frames, size=64)
        return _split(sample, NUM_INPUT + 4), "synthetic moving spheres"
    dataset = make_dataset(data, batch_size=1, subset=Subset(views=NUM_INPUT, extra_views=4, frames=frames, random=False), shuffle=0)
    for sample in dataset:
        if clip in sample["key"][0]:
            return _split(sample, NUM_INPUT + 2), f"{sample['key'][0]} ({sample['caption'][0]})"
    raise SystemExit(f"no clip matching {clip!r} in {data}")


def _split(sample: dict, num_train: int) -> tuple[dict, dict]:
    """The first `num_train` views and the rest, as two loader-format dicts."""
    pick = lambda views: {k: sample[k][:, views] for k in ("images", "c2w", "K")} | {"times": sample["times"]}  # noqa: E731
    return pick(slice(0, num_train)), pick(slice(num_train, None))


def bench_fit(data: str | None, clip: str, seconds: float, frames: int) -> None:
    (train, held), name = load_clip(data, clip, frames)
    torch.manual_seed(0)
    head = build_head("cpu-small")
    print(f"\nfit: cpu-small on one clip, {name}: {frames} frames, 64x64, {NUM_INPUT} input views, "
          f"{train['images'].shape[1] - NUM_INPUT} supervision views, {held['images'].shape[1]} held-out views")
    history = fit_clip(head, train, NUM_INPUT, seconds=seconds, log_every=25)
    seen, unseen = view_psnr(head, train, train, NUM_INPUT), view_psnr(head, train, held, NUM_INPUT)
    print(f"{len(history)} steps in {history[-1]['seconds']:.0f} s ({torch.get_num_threads()} CPU threads)")
    for label, values, note in (
        ("input views      ", seen[:NUM_INPUT], ""),
        ("supervision views", seen[NUM_INPUT:], "  (in the loss, never given)"),
        ("held-out views   ", unseen, "  (used by nothing)"),
    ):
        print(f"PSNR {label} {values.mean():.2f} dB  {[round(v, 1) for v in values.tolist()]}{note}")
    empty = psnr(torch.ones_like(train["images"][:, :, :, :3]), composite(train["images"], 1.0))
    print(f"(reference: an empty, all-background render of the training views scores {empty:.2f} dB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["render", "head", "fit"], choices=["render", "head", "fit"])
    p.add_argument("--data", default=None, help="shards of the data pipeline; without it the fit uses a synthetic clip")
    p.add_argument("--clip", default="CesiumMan", help="a substring of the clip's key in --data")
    p.add_argument("--seconds", type=float, default=240.0, help="training time of the fit")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared 2-core machine)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, GPU: {gpu}")
    if "render" in args.parts:
        bench_render()
    if "head" in args.parts:
        bench_head()
    if "fit" in args.parts:
        bench_fit(args.data, args.clip, args.seconds, args.frames)


if __name__ == "__main__":
    main()
