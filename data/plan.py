"""Which clips of which assets a data set holds: the split, the choice of clips and the balance of kinds (no Blender).

An asset goes to validation when a held-out pattern names it, else by a hash of its id (so the split of an asset never
changes when the data set grows). Of an asset's clips, those that show the same motion count once, and the rest are
taken by priority (data.captions: the signature motion first, death last), each priority's clips rotated by the
asset's place among its kind so that the assets of one kind show different motions. Balancing gives every kind of
the training split the same budget of samples (clip-orbits), filled round-robin over the kind's assets: a first clip
each, then more clips, then more orbits, so that 41 fish get one clip each while 11 mammals get several.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from data.assets import AssetError, Clip, asset_id_for, list_clips


@dataclass
class Source:
    """One asset file and what is known of it before it is read."""

    path: Path
    meta: dict  # licence, credit, source; a caption for downloaded and generated assets
    val_fraction: float  # the share of its kind of source held out by hash


@dataclass
class PlannedAsset:
    """One asset as the data set will hold it."""

    asset_id: str
    source: Source
    split: str  # "train" or "val"
    kind: str  # data.captions kinds; "procedural <family>"
    clips: list[Clip]  # the clips to render, in order
    orbits: list[int]  # camera rings per clip


def split_of(asset_id: str, val_fraction: float, val_assets=()) -> str:
    """'val' when a pattern of `val_assets` (ids or shell-style globs) names the asset, else from a hash of its id
    alone, so that adding assets never moves old ones."""
    if any(fnmatchcase(asset_id, pattern) for pattern in val_assets):
        return "val"
    digest = int(hashlib.sha1(asset_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if digest < val_fraction or val_fraction == 1 else "train"


def choose_clips(clips: list[Clip], rotation: int = 0) -> list[Clip]:
    """An asset's clips in the order a build takes them: one per motion (the first in the file), by priority, each
    priority's clips rotated by `rotation`."""
    first: dict[str, Clip] = {}
    for clip in clips:
        first.setdefault(clip.motion, clip)
    unique, ordered = list(first.values()), []
    for priority in sorted({clip.priority for clip in unique}):
        group = [clip for clip in unique if clip.priority == priority]
        turn = rotation % len(group)
        ordered += group[turn:] + group[:turn]
    return ordered


def allocate(counts: list[int], budget: int | None, max_clips: int, max_orbits: int) -> list[list[int]]:
    """Camera rings per clip for assets of `counts` clips each (max_clips 0: no cap).

    Without a budget every asset gets min(count, max_clips) clips x max_orbits. With a budget of samples: one clip
    each (never fewer, even past the budget), then the second clip of each asset, the third, ... up to max_clips, then
    a second orbit for each asset's first clip, its second clip, ... up to max_orbits, while the budget lasts.
    """
    caps = [min(n, max_clips) if max_clips else n for n in counts]
    if budget is None:
        return [[max_orbits] * cap for cap in caps]
    plan = [[1] if cap else [] for cap in caps]
    used = sum(map(len, plan))
    for nth in range(2, max(caps, default=0) + 1):
        for rings, cap in zip(plan, caps):
            if used < budget and len(rings) < min(cap, nth):
                rings.append(1)
                used += 1
    for orbit in range(2, max_orbits + 1):
        for position in range(max(caps, default=0)):
            for rings in plan:
                if used < budget and position < len(rings):
                    rings[position] = orbit
                    used += 1
    return plan


def plan_assets(sources: list[Source], val_assets=(), samples_per_kind: int = 0, max_clips: int = 0,
                orbits: int = 1) -> tuple[list[PlannedAsset], dict[str, tuple[str, Path, str]]]:
    """The planned assets, in source order, and the skipped ones ({asset id: (split, file, reason)}).

    samples_per_kind > 0 balances the training split (see `allocate`; validation assets get one orbit per clip, up
    to max_clips clips: they are measured, not balanced); 0 gives every asset min(clips, max_clips) x orbits.
    """
    groups: dict[tuple[str, str], list[tuple[int, str, Source, list[Clip]]]] = {}
    skipped = {}
    for order, source in enumerate(sources):
        asset_id = asset_id_for(source.path)
        split = split_of(asset_id, source.val_fraction, val_assets)
        try:
            clips = list_clips(source.path, source.meta)
        except AssetError as err:  # corrupt, unanimated: recorded, never stops the build
            skipped[asset_id] = (split, source.path, str(err))
            continue
        groups.setdefault((split, clips[0].kind), []).append((order, asset_id, source, clips))
    planned = []
    for (split, kind), members in groups.items():
        chosen = [choose_clips(clips, rotation) for rotation, (*_, clips) in enumerate(members)]
        balanced = samples_per_kind > 0
        budget = samples_per_kind if balanced and split == "train" else None
        rings = allocate([len(c) for c in chosen], budget, max_clips, 1 if balanced and split == "val" else orbits)
        for (order, asset_id, source, _), clips, asset_rings in zip(members, chosen, rings):
            planned.append((order, PlannedAsset(asset_id, source, split, kind, clips[: len(asset_rings)], asset_rings)))
    return [asset for _, asset in sorted(planned, key=lambda pair: pair[0])], skipped
