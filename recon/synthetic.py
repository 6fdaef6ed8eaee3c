"""A synthetic animated clip in the data loader's batch format, for developing and testing the head without Blender.

A few shaded spheres (each a shell of small Gaussians) move on their own loops inside the object sphere
(radius `data.cameras.OBJECT_RADIUS`), rendered by this package's renderer at any cameras.
"""
from __future__ import annotations

import math

import torch

from data.cameras import OBJECT_RADIUS, fit_distance, intrinsics_from_fov, orbit_c2w, ring_azimuths
from recon.gaussians import Gaussians
from recon.render import render

FOV = 40.0  # degrees
_LIGHT = torch.tensor([0.4, 0.8, 0.45])  # world direction towards a fixed light; shading baked into colours


def input_views(num_views: int = 4, elevation: float = 15.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The orbit ring the head sees: (elevations [V], azimuths [V]) in degrees."""
    return torch.full((num_views,), elevation), ring_azimuths(num_views)


def supervision_views() -> tuple[torch.Tensor, torch.Tensor]:
    """Extra views used only as render targets in training: off the ring in elevation and azimuth."""
    return torch.tensor([40.0, -10.0, 40.0, -10.0]), torch.tensor([45.0, 135.0, 225.0, 315.0])


def held_out_views() -> tuple[torch.Tensor, torch.Tensor]:
    """Views used by nothing in training, to measure novel-view quality."""
    return torch.tensor([0.0, 25.0, 55.0]), torch.tensor([20.0, 160.0, 260.0])


def sphere_scene(num_frames: int, num_spheres: int = 5, points_per_sphere: int = 400, seed: int = 0) -> Gaussians:
    """Gaussians [F, N] of `num_spheres` shaded spheres, each moving along its own loop over the clip."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    radii = 0.08 + 0.07 * rand(num_spheres)  # [S]
    centres = (rand(num_spheres, 3) - 0.5) * 0.45  # [S, 3]
    amplitude, phase = 0.12 * rand(num_spheres, 3), 2 * math.pi * rand(num_spheres, 3)  # [S, 3] each
    times = torch.linspace(0, 1, num_frames)  # [F]
    paths = centres + amplitude * torch.sin(2 * math.pi * times[:, None, None] + phase)  # [F, S, 3]
    # Fibonacci points on the unit sphere: an even shell.
    i = torch.arange(points_per_sphere) + 0.5
    polar, azimuth = torch.acos(1 - 2 * i / points_per_sphere), math.pi * (1 + 5**0.5) * i
    normals = torch.stack([polar.sin() * azimuth.cos(), polar.cos(), polar.sin() * azimuth.sin()], dim=-1)  # [P, 3]
    hues = rand(num_spheres, 3) * 0.8 + 0.1  # [S, 3]
    shade = 0.45 + 0.55 * (normals @ torch.nn.functional.normalize(_LIGHT, dim=0)).clamp(min=0)  # [P]
    means = paths[:, :, None] + radii[:, None, None] * normals  # [F, S, P, 3]
    n = num_spheres * points_per_sphere
    spacing = radii[:, None].expand(-1, points_per_sphere).reshape(n) * math.sqrt(4 * math.pi / points_per_sphere)  # [N]
    return Gaussians(
        means=means.reshape(num_frames, n, 3),
        rotations=torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(num_frames, n, 4),
        scales=(0.6 * spacing)[None, :, None].expand(num_frames, n, 3),
        opacities=torch.full((num_frames, n), 0.95),
        colours=(hues[:, None] * shade[None, :, None]).reshape(n, 3).expand(num_frames, n, 3),
    )


def synthetic_clip(
    elevations: torch.Tensor, azimuths: torch.Tensor, num_frames: int = 4, size: int = 64, seed: int = 0, **scene
) -> dict:
    """One clip (B = 1) in the data loader's format, rendered at the given views (degrees, [V] each).

    `scene` passes num_spheres and points_per_sphere on to `sphere_scene`.

    Returns {"images": [1, V, F, 4, H, W] straight-alpha RGBA, "c2w": [1, V, F, 4, 4], "K": [1, V, 3, 3],
    "times": [1, F], "caption": [str], "depth": [1, V, F, 1, H, W] camera-z depth where alpha > 0.5, else 0}.
    """
    scene = sphere_scene(num_frames, seed=seed, **scene)  # [F, N]
    c2w = orbit_c2w(elevations, azimuths, fit_distance(FOV, OBJECT_RADIUS), num_frames)  # [V, F, 4, 4]
    K = intrinsics_from_fov(FOV).expand(len(elevations), 3, 3)  # [V, 3, 3]
    with torch.no_grad():
        out = render(scene, c2w.transpose(0, 1), K, size, size)  # [F, V, ...] over black: rgb = premultiplied colour
    rgb = out.rgb / out.alpha.clamp(min=1e-6)  # straight alpha, like a PNG
    images = torch.cat([rgb.clamp(0, 1), out.alpha], dim=2).transpose(0, 1)  # [V, F, 4, H, W]
    return {
        "images": images[None],
        "c2w": c2w[None],
        "K": K[None],
        "times": torch.linspace(0, 1, num_frames)[None],
        "caption": ["coloured spheres drifting on loops"],
        "depth": (out.depth * (out.alpha > 0.5)).transpose(0, 1)[None],  # like Blender's: 0 where there is no surface
    }
