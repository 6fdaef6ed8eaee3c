"""The Gaussian type: one set of 3D Gaussians per frame, with named fields and the activations in one place.

Conventions: world units (objects fit a sphere of radius `data.cameras.OBJECT_RADIUS`), rotations as unit
quaternions in (w, x, y, z) order (gsplat's and the 3DGS .ply's), scales as standard deviations along the
rotated axes, opacities and colours in [0, 1]. Leading "batch" dims are free, e.g. [B, F] for B clips of F frames.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F

# Bounds of the scale activation (world units). The largest is a fifth of the object radius: bigger splats
# only blur, and every Gaussian's footprint is paid for in the CPU renderer's pixel-pair count.
MIN_SCALE = 1e-3
MAX_SCALE = 0.1
_EPS = 1e-6  # keeps the inverse activations finite at the ends of their ranges


@dataclass
class Gaussians:
    """A batch of Gaussian sets: every field has leading dims [...] (say [B, F]) and N Gaussians per set.

    Fields:
        means: [..., N, 3] centres in world units.
        rotations: [..., N, 4] unit quaternions (w, x, y, z).
        scales: [..., N, 3] standard deviations along the rotated axes, world units, > 0.
        opacities: [..., N] in [0, 1].
        colours: [..., N, 3] RGB in [0, 1].

    Construction checks shapes and values: a NaN or infinite entry raises ValueError naming the field.
    Zero Gaussians (N = 0) are valid and render as the background.
    """

    means: torch.Tensor
    rotations: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colours: torch.Tensor

    def __post_init__(self) -> None:
        lead = self.means.shape[:-1]  # [..., N]
        expected = {"means": lead + (3,), "rotations": lead + (4,), "scales": lead + (3,), "opacities": lead, "colours": lead + (3,)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(
                    f"Gaussians.{name} has shape {tuple(value.shape)}; expected {tuple(shape)} (from means {tuple(self.means.shape)})"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"Gaussians.{name} holds NaN or infinite values")

    @property
    def batch_shape(self) -> torch.Size:
        """The leading dims [...] shared by every field."""
        return self.means.shape[:-2]

    @property
    def num_gaussians(self) -> int:
        """N, the number of Gaussians per set."""
        return self.means.shape[-2]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Gaussians:
        """A new Gaussians with `fn` applied to every field, e.g. `g.map(lambda t: t[:, 0])` picks frame 0 of [B, F]."""
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def smoothed(self, sigma: float) -> Gaussians:
        """Every Gaussian widened by an isotropic 3D Gaussian of standard deviation `sigma` (world units).

        Covariance R S^2 R^T + sigma^2 I keeps the rotations and widens each axis to sqrt(s^2 + sigma^2). Opacities fall
        by (det(S^2) / det(S^2 + sigma^2 I))^(1/4): between keeping them (splats grow, thin parts swell) and keeping
        each splat's 3D integral (the power 1/2 of Mip-Splatting's 3D filter, which fades the head's small splats to a
        haze); the quarter power scored best seen at 4 times the views' resolution
        (benchmarks/results/2026-12-03-smoothing). Gaussians made from views of one resolution and seen at a higher
        one show the gaps between them as a grid of dots; a sigma under one input pixel's world size fills the gaps.
        """
        if not sigma >= 0:
            raise ValueError(f"smoothing sigma must be 0 or more (world units), got {sigma}")
        scales = (self.scales.square() + sigma**2).sqrt()  # [..., N, 3]
        keep = (self.scales / scales).prod(-1).sqrt()  # [..., N] (det ratio)^(1/4)
        return Gaussians(self.means, self.rotations, scales, self.opacities * keep, self.colours)

    @classmethod
    def from_raw(
        cls,
        means: torch.Tensor,
        rotations: torch.Tensor,
        scales: torch.Tensor,
        opacities: torch.Tensor,
        colours: torch.Tensor,
    ) -> Gaussians:
        """Gaussians from unconstrained network outputs: the one home of the activations.

        Args:
            means: [..., N, 3] world positions, used as they are (see `means_on_rays` for the head's placement).
            rotations: [..., N, 4] any non-zero quaternions (w, x, y, z); normalised.
            scales: [..., N, 3] raw; a sigmoid maps them into [MIN_SCALE, MAX_SCALE].
            opacities: [..., N] raw; sigmoid.
            colours: [..., N, 3] raw; sigmoid.
        """
        return cls(
            means=means,
            rotations=F.normalize(rotations, dim=-1),
            scales=MIN_SCALE + (MAX_SCALE - MIN_SCALE) * torch.sigmoid(scales),
            opacities=torch.sigmoid(opacities),
            colours=torch.sigmoid(colours),
        )

    def to_raw(self) -> dict[str, torch.Tensor]:
        """The inverse of `from_raw`: unconstrained tensors such that `Gaussians.from_raw(**g.to_raw())` ~ g.

        Values at the ends of their ranges are pulled in by 1e-6 so that the logits stay finite.
        """
        unit_scale = (self.scales - MIN_SCALE) / (MAX_SCALE - MIN_SCALE)
        return {
            "means": self.means,
            "rotations": self.rotations,
            "scales": torch.logit(unit_scale, eps=_EPS),
            "opacities": torch.logit(self.opacities, eps=_EPS),
            "colours": torch.logit(self.colours, eps=_EPS),
        }


def means_on_rays(
    origins: torch.Tensor,
    directions: torch.Tensor,
    raw_depth: torch.Tensor,
    raw_offset: torch.Tensor,
    depth_range: float,
    max_offset: float,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel Gaussian centres [..., 3]: a bounded depth along each pixel's ray plus a small bounded offset.

    The depth is a base depth +- `depth_range` (tanh). The base is the camera's distance to the world origin (where
    objects are centred), so the prediction starts on the object's middle plane and cannot run off behind the
    camera, or a given one (the visual hull's, recon/hull.py). The offset (tanh, at most `max_offset` per axis,
    world units) lets a splat leave its ray slightly.

    Args:
        origins: [..., 3] ray origins (camera centres). directions: [..., 3] unit ray directions.
        raw_depth: [..., 1]; raw_offset: [..., 3], both unconstrained.
        base: [..., 1] base depths along the rays, or None for the camera's distance to the origin.
    """
    base = origins.norm(dim=-1, keepdim=True) if base is None else base  # [..., 1]
    depth = base + depth_range * torch.tanh(raw_depth)  # [..., 1]
    return origins + depth * directions + max_offset * torch.tanh(raw_offset)  # [..., 3]
