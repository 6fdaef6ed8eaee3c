"""Any method's 4D Gaussians as files, for `benchmark.py score` (and `compare --save-gaussians`, which writes them).

The naming rule: one folder per held-out clip, named by its sample key (asset__cNNN__oNN, as `benchmark.py compare`
prints them), holding one standard 3DGS .ply per animation frame, frame_000.ply to frame_<F-1>.ply (recon.export's
layout, which infer.py writes into ply/ and most 3DGS code reads and writes):

    DIR/QuaterniusStag__c000__o00/frame_000.ply ... frame_007.ply

The Gaussians live in the clip's normalised object frame (inside the sphere of radius 0.5 about the origin, +Y up),
turned about +Y so that the given front view (the clip's ring view 0) is seen from azimuth 0, a camera on +Z at the
clip's elevation, looking at the origin: where infer.py and the SDS baselines put the view they are given. Frames
may hold different numbers of Gaussians.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch
from plyfile import PlyParseError

from recon.export import read_ply, write_frames
from recon.gaussians import Gaussians


def clip_folder(root: Path, key: str) -> Path:
    """The folder of one clip's frames."""
    return Path(root) / key


def write_clip(root: Path, key: str, gaussians: Gaussians) -> None:
    """Gaussians [F, N] of one clip -> root/key/frame_NNN.ply."""
    write_frames(clip_folder(root, key), gaussians.map(lambda t: t.detach().cpu()))


def read_clip(root: Path, key: str, frames: int) -> Gaussians:
    """root/key/frame_000.ply ... -> Gaussians [F, N], frames with fewer Gaussians padded with transparent ones.
    ValueError, naming the file and the rule, for a missing folder, a wrong number of frames or a malformed file."""
    folder = clip_folder(root, key)
    if not folder.is_dir():
        raise ValueError(f"{folder} not found: --gaussians holds one folder per held-out clip, named by its key, "
                         f"with frame_000.ply ... frame_{frames - 1:03d}.ply")
    found = sorted(p.name for p in folder.glob("*.ply"))
    expected = [f"frame_{f:03d}.ply" for f in range(frames)]
    if found != expected:
        raise ValueError(f"{folder} holds {len(found)} .ply file(s) ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); "
                         f"the clip has {frames} frames: frame_000.ply ... frame_{frames - 1:03d}.ply")
    sets = []
    for name in expected:
        try:
            sets.append(read_ply(folder / name))
        except (PlyParseError, OSError, ValueError, KeyError) as err:
            raise ValueError(f"{folder / name} is not a 3DGS .ply (x y z, f_dc_0..2, opacity, scale_0..2, rot_0..3): "
                             f"{type(err).__name__}: {err}") from None
    return stack_frames(sets)


def stack_frames(sets: list[Gaussians]) -> Gaussians:
    """Gaussian sets [N_f] -> Gaussians [F, max N_f], the smaller sets padded with transparent Gaussians."""
    most = max(g.num_gaussians for g in sets)
    pad = lambda t, fill: torch.cat([t, torch.full((most - len(t), *t.shape[1:]), fill)])  # noqa: E731
    padded = [Gaussians(means=pad(g.means, 0.0), rotations=pad(g.rotations, 0.5), scales=pad(g.scales, 1e-3),
                        opacities=pad(g.opacities, 0.0), colours=pad(g.colours, 1.0)) for g in sets]
    return Gaussians(**{f.name: torch.stack([getattr(g, f.name) for g in padded]) for f in fields(Gaussians)})
