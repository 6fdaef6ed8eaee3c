"""Export: standard 3DGS .ply files (one per frame), the compact .splat layout of web viewers, orbit videos of 4D
Gaussians, and the mp4 writer every video of the package goes through (`write_video`).

The .ply layout is the one the reference 3DGS code writes and common splat viewers read, with colour as the
degree-0 spherical-harmonic coefficient only: x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3, all
float32; opacity stored as a logit, scales as logs, rotations as (w, x, y, z), f_dc = (colour - 0.5) / C0.
Files are written under a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from plyfile import PlyData, PlyElement

from data.atomic import atomic_path
from data.cameras import fit_distance, intrinsics_from_fov, orbit_c2w
from recon.gaussians import Gaussians
from recon.render import render

SH_C0 = 0.28209479177387814  # the degree-0 spherical harmonic, Y_0^0
_LOGIT_EPS = 1e-6  # keeps an opacity of exactly 0 or 1 finite as a logit
PLY_FIELDS = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    + [f"scale_{i}" for i in range(3)]
    + [f"rot_{i}" for i in range(4)]
)


def write_ply(path: str | Path, gaussians: Gaussians) -> Path:
    """Write one Gaussian set (batch shape [], N Gaussians) as a 3DGS .ply; returns the path."""
    if gaussians.batch_shape != ():
        raise ValueError(f"write_ply takes one Gaussian set; got batch shape {tuple(gaussians.batch_shape)} (index a frame first)")
    g = gaussians.map(lambda t: t.detach().float().cpu())
    columns = torch.cat([
        g.means,
        torch.zeros_like(g.means),  # normals: unused, kept for the layout viewers expect
        (g.colours - 0.5) / SH_C0,
        torch.logit(g.opacities, eps=_LOGIT_EPS)[:, None],
        g.scales.log(),
        g.rotations,
    ], dim=-1).numpy()  # [N, 17] in PLY_FIELDS order
    vertices = np.empty(len(columns), dtype=[(name, "f4") for name in PLY_FIELDS])
    for i, name in enumerate(PLY_FIELDS):
        vertices[name] = columns[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertices, "vertex")]).write(str(tmp))
    return Path(path)


def read_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS .ply (the layout of `write_ply`) -> Gaussians [N].

    Extra properties (such as the higher-order f_rest_*) are ignored; colours from f_dc are clamped to [0, 1].
    """
    vertex = PlyData.read(str(path))["vertex"]
    column = lambda *names: torch.from_numpy(np.stack([np.asarray(vertex[n], dtype=np.float32) for n in names], axis=-1))  # noqa: E731
    return Gaussians(
        means=column("x", "y", "z"),
        rotations=torch.nn.functional.normalize(column(*(f"rot_{i}" for i in range(4))), dim=-1),
        scales=column(*(f"scale_{i}" for i in range(3))).exp(),
        opacities=torch.sigmoid(column("opacity")[:, 0]),
        colours=(column("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5).clamp(0, 1),
    )


def splat_bytes(gaussians: Gaussians) -> bytes:
    """One Gaussian set (batch shape [], N) in the compact .splat layout web splat viewers read: 32 bytes per
    Gaussian, position and scale (standard deviations) as float32 x3, RGBA as uint8 (A = opacity), the rotation
    (w, x, y, z) as uint8 x4 mapping [-1, 1] to [0, 255] around 128."""
    if gaussians.batch_shape != ():
        raise ValueError(f"splat_bytes takes one Gaussian set; got batch shape {tuple(gaussians.batch_shape)}")
    g = gaussians.map(lambda t: t.detach().float().cpu())
    rows = np.zeros(g.num_gaussians, dtype=[("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
    rows["position"], rows["scale"] = g.means.numpy(), g.scales.numpy()
    rgba = torch.cat([g.colours, g.opacities[:, None]], -1)  # [N, 4] in [0, 1]
    rows["rgba"] = (rgba * 255).round().clamp(0, 255).byte().numpy()
    rows["rotation"] = (g.rotations * 128 + 128).round().clamp(0, 255).byte().numpy()
    return rows.tobytes()


def write_frames(directory: str | Path, gaussians: Gaussians) -> list[Path]:
    """One .ply per frame of Gaussians [F, N]: directory/frame_000.ply, ...; returns the paths."""
    if len(gaussians.batch_shape) != 1:
        raise ValueError(f"write_frames takes Gaussians [F, N]; got batch shape {tuple(gaussians.batch_shape)}")
    return [write_ply(Path(directory) / f"frame_{f:03d}.ply", gaussians.map(lambda t: t[f])) for f in range(gaussians.batch_shape[0])]


def write_orbit_video(
    path: str | Path,
    gaussians: Gaussians,
    size: int = 256,
    num_video_frames: int = 48,
    fps: int = 24,
    elevation: float = 15.0,
    fov: float = 40.0,
    background: float = 1.0,
) -> Path:
    """An mp4 in which the camera circles the object once while the animation plays through its frames.

    Args:
        gaussians: Gaussians [F, N], the frames of one clip (world units, object around the origin).
        size: square video size in pixels, even (H.264 4:2:0 needs even sizes); any size, independent of training.
        num_video_frames: video frames; video frame k shows azimuth 360 k / K at animation frame floor(k F / K).
        elevation, fov: the orbit's elevation and field of view (degrees); the distance fits the object.
    """
    if len(gaussians.batch_shape) != 1:
        raise ValueError(f"write_orbit_video takes Gaussians [F, N]; got batch shape {tuple(gaussians.batch_shape)}")
    if size % 2:
        raise ValueError(f"video size must be even (H.264 4:2:0), got {size}")
    num_frames = gaussians.batch_shape[0]
    azimuths = torch.arange(num_video_frames) * (360.0 / num_video_frames)  # [K]
    c2w = orbit_c2w(torch.full_like(azimuths, elevation), azimuths, fit_distance(fov))[:, 0].to(gaussians.means)  # [K, 4, 4]
    frame_of = (torch.arange(num_video_frames) * num_frames // num_video_frames).to(gaussians.means.device)  # [K] frame shown
    K = intrinsics_from_fov(fov).to(gaussians.means)
    with torch.no_grad():
        shown = gaussians.map(lambda t: t[frame_of])  # [K, N]: the animation frame each video frame shows
        rgb = render(shown, c2w[:, None], K, size, size, background).rgb[:, 0]  # [K, 3, H, W]
    return write_video(path, rgb, fps)


def write_video(path: str | Path, frames: torch.Tensor, fps: int) -> Path:
    """Frames [K, 3, H, W] in [0, 1] -> an H.264 mp4 of K frames (written under a temporary name, then renamed);
    the one video writer of the package."""
    pixels = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # [K, H, W, 3]
    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, list(pixels), fps=fps, codec="libx264", macro_block_size=1, quality=8)
    return Path(path)
