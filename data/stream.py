"""Streaming reader: webdataset shards -> batches of multiview-video clips.

Pipeline: shard list (shuffled, split by node, then by worker) -> tar samples -> sample shuffle ->
decode -> choose views and frames -> batches. Optional resampling draws shards with replacement for
endless training streams. A corrupt or truncated sample is skipped with a warning and counted in
`SKIPPED` (per process); it never stops a run.

Do not pass these loaders through `accelerator.prepare()`: accelerate would shard the stream a second
time and silently drop data (accelerate issue 3547). Splitting by node happens here, in webdataset.
"""
from __future__ import annotations

import glob
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import braceexpand
import torch
import webdataset as wds

from data.images import motion_score
from data.shards import decode_sample

log = logging.getLogger(__name__)


class SkipCounter:
    """A webdataset error handler that warns, counts and carries on."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: Exception) -> bool:
        self.count += 1
        log.warning("skipping a corrupt sample (%d so far): %s: %s", self.count, type(exn).__name__, exn)
        return True  # continue with the next sample


SKIPPED = SkipCounter()


def resolve_shards(spec: str | Path | list) -> list[str]:
    """Shard URLs from a folder (its *.tar files), a brace pattern ('shards/train-{000..009}.tar'), a glob, or a list.

    Local paths must exist; remote URLs (with '://' or 'pipe:') are passed through. Raises ValueError when
    nothing is found, naming what was asked for.
    """
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    urls: list[str] = []
    for item in map(str, specs):
        for url in braceexpand.braceexpand(item):
            if "://" in url or url.startswith("pipe:"):
                urls.append(url)
            elif Path(url).is_dir():
                urls += sorted(str(p) for p in Path(url).glob("*.tar") if not p.name.startswith("."))  # not a shard being written
            else:
                urls += sorted(glob.glob(url))
    if not urls:
        raise ValueError(f"no shards found at {spec!r} (expected a folder of .tar files, a brace pattern or a glob)")
    return urls


@dataclass
class Subset:
    """Which views and frames of a stored clip to keep.

    Stored clips hold an orbit ring (the first `meta.orbit_views` views) then extra views.
    `views` ring views are taken evenly spaced around the ring (a random starting view when `random`),
    then `extra_views` extra views (random ones when `random`), then `frames` consecutive frames
    (a random window when `random`) whose times are renormalised to [0, 1]. None keeps all. The caption is one of
    the sample's phrasings (`SampleRecord.captions`), drawn when `random`, else the canonical one.
    """

    views: int | None = None
    extra_views: int | None = None
    frames: int | None = None
    random: bool = True


def _pick(total: int, wanted: int | None, what: str) -> int:
    if wanted is None:
        return total
    if not 0 < wanted <= total:
        raise ValueError(f"asked for {wanted} {what}, the sample has {total}")
    return wanted


def choose_subset(sample: dict, subset: Subset, rng: random.Random) -> dict:
    """Apply `subset` to a decoded sample (see `Subset`); returns a new sample dict."""
    meta = sample["meta"]  # a data.record.SampleRecord
    ring = meta.orbit_views
    extras = sample["images"].shape[0] - ring
    V = _pick(ring, subset.views, "ring views")
    E = 0 if subset.extra_views == 0 else _pick(extras, subset.extra_views, "extra views")
    F_all = sample["images"].shape[1]
    F = _pick(F_all, subset.frames, "frames")

    start = rng.randrange(ring) if subset.random else 0
    view_idx = [(start + round(i * ring / V)) % ring for i in range(V)]
    extra_idx = list(range(ring, ring + extras))
    view_idx += rng.sample(extra_idx, E) if subset.random else extra_idx[:E]
    f0 = rng.randrange(F_all - F + 1) if subset.random else 0

    views, frames = torch.tensor(view_idx), slice(f0, f0 + F)
    times = sample["times"][frames]
    span = (times[-1] - times[0]).clamp_min(1e-8)
    chosen = {
        **sample,
        "images": sample["images"][views, frames],  # [V+E, F, 4, H, W]
        "c2w": sample["c2w"][views, frames],  # [V+E, F, 4, 4]
        "K": sample["K"][views],  # [V+E, 3, 3]
        "times": (times - times[0]) / span if F > 1 else torch.zeros(1),  # [F]
        # The whole stored clip's motion (data.images): stored by the build, computed for shards made before it was.
        "motion": meta.motion_score if meta.motion_score is not None else motion_score(sample["images"][:ring]),
        # One of the clip's phrasings, so the model learns words rather than one template; the canonical one when fixed.
        "caption": rng.choice(meta.captions) if subset.random else meta.caption,
    }
    if "depth" in sample:
        chosen["depth"] = sample["depth"][views, frames]  # [V+E, F, 1, H, W]
    return chosen


class _SubsetChooser:
    """`choose_subset` with a random generator made in the worker that uses it, so that nodes and
    workers draw different views and frames (a generator made here would be copied into every worker)."""

    def __init__(self, subset: Subset, seed: int) -> None:
        self.subset, self.seed, self.rng = subset, seed, None

    def __call__(self, sample: dict) -> dict:
        if self.rng is None:
            self.rng = random.Random(wds.utils.make_seed(self.seed, wds.utils.pytorch_worker_seed()))
        return choose_subset(sample, self.subset, self.rng)


def collate(samples: list[dict]) -> dict:
    """Stack decoded samples into a batch: images [B, V, F, 4, H, W], c2w [B, V, F, 4, 4], K [B, V, 3, 3],
    times [B, F], motion [B] (data.images.motion_score), and lists caption [B], key [B], meta [B] (each sample's
    data.record.SampleRecord, for views as stored); and depth [B, V, F, 1, H, W] (0: no surface) when every sample carries depth (shards built
    with it)."""
    shapes = {tuple(s["images"].shape) for s in samples}
    if len(shapes) > 1:
        raise ValueError(f"samples of different shapes {sorted(shapes)} cannot share a batch; choose a Subset")
    stacked = ("images", "c2w", "K", "times") + (("depth",) if all("depth" in s for s in samples) else ())
    batch = {k: torch.stack([s[k] for s in samples]) for k in stacked}
    batch["motion"] = torch.tensor([float(s.get("motion", 0.0)) for s in samples])  # [B]
    batch["caption"] = [s["caption"] for s in samples]
    batch["key"] = [s["key"] for s in samples]
    batch["meta"] = [s["meta"] for s in samples]
    return batch


def make_dataset(
    shards: str | Path | list,
    batch_size: int,
    subset: Subset = Subset(),
    shuffle: int = 64,
    resampled: bool = False,
    seed: int = 0,
    partial: bool = True,
) -> wds.DataPipeline:
    """A webdataset pipeline that yields collated batches (see `collate`).

    shuffle: sample-shuffle buffer size (0 turns shard and sample shuffling off, for evaluation).
    resampled: draw shards with replacement forever (training on many nodes); otherwise each shard is
    read once per pass, split between nodes and then between workers, so every sample is seen once.
    partial: keep a last, smaller batch.
    """
    urls = resolve_shards(shards)
    if resampled:  # seeded per node and worker (webdataset's WebDataset(resampled=True) is not seeded)
        stages = [wds.ResampledShards(urls, seed=seed, deterministic=True)]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker]
        if shuffle > 0:
            stages.append(wds.shuffle(len(urls), initial=len(urls), seed=seed))  # shard order
    stages.append(wds.tarfile_to_samples(handler=SKIPPED))
    if shuffle > 0:
        stages.append(wds.shuffle(shuffle, seed=seed))  # sample order
    stages += [
        wds.map(decode_sample, handler=SKIPPED),
        wds.map(_SubsetChooser(subset, seed), handler=SKIPPED),
        wds.batched(batch_size, collation_fn=collate, partial=partial),
    ]
    return wds.DataPipeline(*stages)


def make_loader(shards, batch_size: int, num_workers: int = 0, **kwargs) -> wds.WebLoader:
    """A `WebLoader` over `make_dataset(shards, batch_size, **kwargs)`; batching happens in the workers."""
    dataset = make_dataset(shards, batch_size, **kwargs)
    # A generator of its own: a DataLoader draws a seed at every new iterator, which would otherwise shift the
    # global torch RNG (and make a resumed run differ from an uninterrupted one).
    generator = torch.Generator().manual_seed(kwargs.get("seed", 0))
    return wds.WebLoader(dataset, batch_size=None, num_workers=num_workers, persistent_workers=num_workers > 0, generator=generator)
