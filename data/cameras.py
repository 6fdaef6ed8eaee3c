"""Cameras and conventions: the one home of every camera formula in the package.

Conventions (see docs/DESIGN.md):
  * World: right-handed, +Y up (glTF). An object's front faces +Z.
  * Camera-to-world matrices `c2w` [..., 4, 4] in OpenCV axes: x right, y down, z forward.
  * Intrinsics `K` [..., 3, 3] normalised by image size: fx/W, fy/H, cx/W, cy/H, so they
    survive resizing. Pixel (row i, column j) has its centre at ((j + 0.5) / W, (i + 0.5) / H).
  * Orbits: azimuth 0 looks at the object's front from +Z, azimuth grows counter-clockwise seen
    from above (towards +X); elevation is positive above the equator. Angles in degrees.
  * Blender is +Z up with OpenGL camera axes (x right, y up, z backward): `to_blender_c2w`.
  * gsplat wants world-to-camera `viewmats` and pixel `Ks`: `to_gsplat`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# glTF (x, y, z) -> Blender (x, -z, y): the rotation Blender's glTF importer applies.
_GLTF_TO_BLENDER = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenCV camera axes -> OpenGL/Blender camera axes: flip y and z.
_CV_TO_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))

OBJECT_RADIUS = 0.5  # objects are normalised so their union bounding box fits a sphere of this radius


def look_at(eye: torch.Tensor, target: torch.Tensor, up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> torch.Tensor:
    """Camera-to-world matrices [..., 4, 4] (OpenCV axes) for cameras at `eye` [..., 3] looking at `target` [..., 3].

    Raises ValueError when a camera looks straight along `up` (its roll would be undefined).
    """
    eye, target = torch.broadcast_tensors(eye.float(), target.float())
    forward = F.normalize(target - eye, dim=-1)  # [..., 3] camera +z
    up_t = torch.tensor(up, dtype=eye.dtype, device=eye.device).expand_as(forward)
    right = torch.linalg.cross(forward, up_t, dim=-1)  # [..., 3] camera +x
    if (right.norm(dim=-1) < 1e-6).any():
        raise ValueError("look_at: a camera looks straight up or down (elevation of +-90 degrees); its roll is undefined")
    right = F.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)  # [..., 3] camera +y
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, down, forward, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def orbit_positions(elevations: torch.Tensor, azimuths: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Points [..., 3] on a sphere of `radius` around the origin at the given angles (degrees)."""
    e, a = torch.deg2rad(elevations.float()), torch.deg2rad(azimuths.float())
    return torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], dim=-1) * torch.as_tensor(radius)[..., None]


def orbit_c2w(elevations: torch.Tensor, azimuths: torch.Tensor, radius: float, num_frames: int = 1) -> torch.Tensor:
    """Cameras on an orbit looking at the origin, repeated over frames: c2w [V, F, 4, 4].

    elevations, azimuths: [V] degrees. Stored per frame (docs/DESIGN.md) so that moving cameras fit the same layout.
    """
    if elevations.shape != azimuths.shape or elevations.ndim != 1:
        raise ValueError(f"orbit_c2w: elevations {tuple(elevations.shape)} and azimuths {tuple(azimuths.shape)} must both be [V]")
    eye = orbit_positions(elevations, azimuths, radius)  # [V, 3]
    c2w = look_at(eye, torch.zeros_like(eye))  # [V, 4, 4]
    return c2w[:, None].expand(-1, num_frames, -1, -1).contiguous()  # [V, F, 4, 4]


def ring_azimuths(num_views: int, offset: float = 0.0) -> torch.Tensor:
    """`num_views` evenly spaced azimuths [V] in degrees, starting at `offset`."""
    return offset + torch.arange(num_views, dtype=torch.float32) * (360.0 / num_views)


def intrinsics_from_fov(fov_deg: float, aspect: float = 1.0) -> torch.Tensor:
    """Normalised intrinsics [3, 3] for a horizontal field of view (degrees), square pixels, centred principal point.

    aspect = W / H.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    fx = 0.5 / math.tan(math.radians(fov_deg) / 2)  # focal length in units of image width
    return torch.tensor([[fx, 0.0, 0.5], [0.0, fx * aspect, 0.5], [0.0, 0.0, 1.0]])


def fov_from_intrinsics(K: torch.Tensor) -> float:
    """Horizontal field of view in degrees of normalised intrinsics [3, 3]."""
    return math.degrees(2 * math.atan(0.5 / float(K[0, 0])))


def fit_distance(fov_deg: float, object_radius: float = OBJECT_RADIUS, margin: float = 1.1) -> float:
    """Camera distance at which a sphere of `object_radius` fits the field of view with `margin` to spare."""
    return margin * object_radius / math.sin(math.radians(fov_deg) / 2)


def pixel_size_at_origin(c2w: torch.Tensor, K: torch.Tensor, width: int) -> float:
    """World size of one pixel at the object's centre (the origin), averaged over cameras c2w [..., 4, 4] with
    normalised intrinsics K [..., 3, 3] of images `width` pixels wide: the finest detail those views resolve there."""
    distance = c2w[..., :3, 3].norm(dim=-1).mean()
    return float(distance / (K[..., 0, 0].mean() * width))


def denormalize_intrinsics(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel intrinsics [..., 3, 3] from normalised ones [..., 3, 3]."""
    scale = torch.tensor([width, height, 1.0], dtype=K.dtype, device=K.device)
    return K * scale[:, None]


def normalize_intrinsics(K_pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised intrinsics [..., 3, 3] from pixel ones [..., 3, 3]."""
    scale = torch.tensor([width, height, 1.0], dtype=K_pixels.dtype, device=K_pixels.device)
    return K_pixels / scale[:, None]


def roll_intrinsics(K: torch.Tensor, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """Normalised intrinsics [..., 3, 3] of an image rolled by (dy, dx) pixels: the principal point moves with the
    content, so every moved pixel keeps its ray (what wraps round the edge does not)."""
    shift = torch.tensor([dx / width, dy / height], dtype=K.dtype, device=K.device)
    rolled = K.clone()
    rolled[..., :2, 2] += shift
    return rolled


def pixel_rays(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel ray origins and unit directions in world space, both [..., H, W, 3].

    c2w: [..., 4, 4]; K: [..., 3, 3] normalised, broadcastable against c2w's leading dims.
    """
    dtype, device = c2w.dtype, c2w.device
    v, u = torch.meshgrid(
        (torch.arange(height, dtype=dtype, device=device) + 0.5) / height,
        (torch.arange(width, dtype=dtype, device=device) + 0.5) / width,
        indexing="ij",
    )  # [H, W] each, normalised pixel centres
    K = K.to(dtype)
    fx, fy, cx, cy = (K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2])
    x = (u - cx[..., None, None]) / fx[..., None, None]  # [..., H, W]
    y = (v - cy[..., None, None]) / fy[..., None, None]  # [..., H, W]
    dirs_cam = torch.stack(torch.broadcast_tensors(x, y, torch.ones_like(x)), dim=-1)  # [..., H, W, 3]
    rot = c2w[..., None, None, :3, :3]  # [..., 1, 1, 3, 3]
    dirs = F.normalize((rot @ dirs_cam[..., None])[..., 0], dim=-1)  # [..., H, W, 3]
    origins = c2w[..., None, None, :3, 3].expand_as(dirs)  # [..., H, W, 3]
    return origins, dirs


def plucker_rays(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel Pluecker rays [..., 6, H, W]: unit direction d then moment o x d (channels first, like an image).

    c2w: [..., 4, 4]; K: [..., 3, 3] normalised. The moment makes the ray independent of where its origin
    sits along it, so the encoding depends on the ray alone.
    """
    # Ray geometry stays fp32 under autocast (bf16 rotations would bend rays by ~0.5% and mix dtypes in the cross).
    # The device type is spelled out because "meta" (FLOP counting, tests) has no autocast of its own.
    with torch.autocast("cuda" if c2w.is_cuda else "cpu", enabled=False):
        origins, dirs = pixel_rays(c2w.float(), K.float(), height, width)  # [..., H, W, 3] each
        rays = torch.cat([dirs, torch.linalg.cross(origins, dirs, dim=-1)], dim=-1)  # [..., H, W, 6]
    return rays.movedim(-1, -3)  # [..., 6, H, W]


def project_points(points: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points [..., N, 3] into cameras c2w [..., 4, 4], K [..., 3, 3] (normalised).

    Returns (uv [..., N, 2] in normalised image coordinates, x to the right and y down, [0, 1] inside the
    image; depth [..., N] along the camera's z axis, positive in front of it).
    """
    w2c = torch.linalg.inv(c2w)  # [..., 4, 4]
    # einsum, not a batch of N 3x3 matmuls: four times faster on the millions of points of a visual hull (recon/hull.py)
    cam = torch.einsum("...ij,...nj->...ni", w2c[..., :3, :3], points) + w2c[..., None, :3, 3]  # [..., N, 3]
    depth = cam[..., 2]  # [..., N]
    pix = torch.einsum("...ij,...nj->...ni", K, cam / depth[..., None])  # [..., N, 3]
    return pix[..., :2], depth


def to_gsplat(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """gsplat's camera arguments: world-to-camera `viewmats` [..., 4, 4] and pixel `Ks` [..., 3, 3].

    gsplat also uses OpenCV camera axes, so only the inversion and the pixel scale differ.
    """
    return torch.linalg.inv(c2w), denormalize_intrinsics(K, height, width)


def to_blender_c2w(c2w: torch.Tensor) -> torch.Tensor:
    """Blender camera matrices [..., 4, 4] (world +Z up, camera looking down its -z) from ours."""
    world = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
    world[:3, :3] = _GLTF_TO_BLENDER.to(c2w)
    return world @ c2w @ _CV_TO_GL.to(c2w)


def from_blender_c2w(c2w_blender: torch.Tensor) -> torch.Tensor:
    """Our c2w [..., 4, 4] from Blender camera matrices [..., 4, 4]; the inverse of `to_blender_c2w`."""
    world = torch.eye(4, dtype=c2w_blender.dtype, device=c2w_blender.device)
    world[:3, :3] = _GLTF_TO_BLENDER.to(c2w_blender).T
    return world @ c2w_blender @ _CV_TO_GL.to(c2w_blender)


def gltf_to_blender_points(points: torch.Tensor) -> torch.Tensor:
    """Points [..., 3] from glTF/world axes to Blender's world axes."""
    return points @ _GLTF_TO_BLENDER.to(points).T


def blender_to_gltf_points(points: torch.Tensor) -> torch.Tensor:
    """Points [..., 3] from Blender's world axes to glTF/world axes."""
    return points @ _GLTF_TO_BLENDER.to(points)


def rotate_about_up(c2w: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Cameras c2w [..., 4, 4] moved around the world's +Y axis by `degrees` (scalar or [...]), as an orbit's azimuth grows."""
    a = torch.deg2rad(torch.as_tensor(degrees, dtype=c2w.dtype, device=c2w.device))
    c, s = torch.cos(a), torch.sin(a)
    rot = torch.zeros(a.shape + (4, 4), dtype=c2w.dtype, device=c2w.device)
    rot[..., 0, 0], rot[..., 0, 2], rot[..., 2, 0], rot[..., 2, 2] = c, s, -s, c
    rot[..., 1, 1] = rot[..., 3, 3] = 1.0
    return rot @ c2w


def camera_azimuth(c2w: torch.Tensor) -> torch.Tensor:
    """The orbit azimuth [...] in degrees, in (-180, 180], of cameras c2w [..., 4, 4] (from their positions)."""
    eye = c2w[..., :3, 3]  # [..., 3]
    return torch.rad2deg(torch.atan2(eye[..., 0], eye[..., 2]))


def canonical_ring(c2w: torch.Tensor) -> torch.Tensor:
    """Cameras c2w [..., V, F, 4, 4] turned about +Y so that view 0 (at its first frame) sits at azimuth 0.

    Turning every camera of a sample together is a symmetry of the renders: the images stay the same and the
    object turns the other way. A ring turned so shows the model the same cameras in every sample (the ring
    the pipeline generates on), so its rays say which view of the ring a token belongs to, however the data
    placed the ring.
    """
    return rotate_about_up(c2w, -camera_azimuth(c2w[..., 0, 0, :, :])[..., None, None])
