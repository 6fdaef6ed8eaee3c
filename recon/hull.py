"""The visual hull of one moment's views: where each pixel's ray first enters the space that every view sees as object.

A feed-forward head puts one Gaussian per pixel on its ray. When each view guesses its depths alone, the Gaussians
of different views land at different depths and, seen from a new angle, show as offset copies of the object
(ghosts). The visual hull (Laurentini 1994) is the largest shape whose silhouettes are the given ones, so the depth
at which a ray first enters it is one all views agree on. `GaussianHead4D(hull_prior=True)` starts its depths
there and learns only the residual (concavities, which no silhouette shows). The hull needs no training, so it
holds for objects the head never saw.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from data.cameras import pixel_rays, project_points


@torch.no_grad()
def hull_depth(
    masks: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, depth_range: float, samples: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth along each ray of a height x width grid per view at which the ray first enters the views' visual hull.

    Every ray is sampled at `samples` depths from the camera's distance to the origin - depth_range to + depth_range
    (where `recon.gaussians.means_on_rays` may place a Gaussian); a point is inside the hull when it projects in front
    of every camera and onto each view's mask.

    Args:
        masks: [..., V, 1, H, W] bool object masks of V views of one moment (e.g. `data.images.object_mask`).
        c2w: [..., V, 4, 4] camera-to-world (OpenCV axes). K: [..., V, 3, 3] normalised intrinsics.
        height, width: the ray grid of each view (the masks' size or a coarser one: K is normalised).
        depth_range: half the searched depth interval, world units.

    Returns:
        depth: [..., V, height, width] along the unit ray; the camera's distance to the origin where the ray misses.
        hit: [..., V, height, width] bool, whether the ray meets the hull.
    """
    *lead, v, _, H, W = masks.shape
    origins, dirs = pixel_rays(c2w, K, height, width)  # [..., V, h, w, 3] each
    distance = origins.norm(dim=-1)  # [..., V, h, w]
    depths = distance[..., None] + torch.linspace(-depth_range, depth_range, samples, device=c2w.device)  # [..., V, h, w, D]
    points = origins[..., None, :] + depths[..., None] * dirs[..., None, :]  # [..., V, h, w, D, 3]
    points = points.reshape(*lead, -1, 3)  # [..., P, 3], P = V h w D
    inside = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)  # [..., P]
    for view in range(v):
        uv, z = project_points(points, c2w[..., view, :, :], K[..., view, :, :])  # [..., P, 2], [..., P]
        mask = masks[..., view, :, :, :].reshape(-1, 1, H, W).float()  # [M, 1, H, W], M = prod(lead)
        grid = (uv * 2 - 1).reshape(mask.shape[0], -1, 1, 2)  # [M, P, 1, 2]; uv in [0, 1] -> grid_sample's [-1, 1]
        seen = F.grid_sample(mask, grid, mode="nearest", padding_mode="zeros", align_corners=False)  # [M, 1, P, 1]
        inside &= (seen.reshape(z.shape) > 0.5) & (z > 0)
    inside = inside.reshape(*depths.shape)  # [..., V, h, w, D]
    hit = inside.any(dim=-1)  # [..., V, h, w]
    first = inside.float().argmax(dim=-1, keepdim=True)  # [..., V, h, w, 1]: the first True (0 where there is none)
    depth = torch.where(hit, depths.gather(-1, first)[..., 0], distance)  # [..., V, h, w]
    return depth, hit
