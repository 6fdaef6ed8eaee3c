"""Animated mesh export: a coloured surface per frame from the Gaussians' density field, in one animated .glb.

Each frame's Gaussians define a density rho(x) = sum_i o_i exp(-(x - mu_i)^T Sigma_i^-1 (x - mu_i) / 2) and a
colour field (the same weights averaging the Gaussians' colours). The density is evaluated on a voxel grid around
the Gaussians, and marching cubes extracts the iso-surface at the level that `enclose` of the means lie above, so
the surface wraps the Gaussians' bulk and leaves out faint strays. Vertices take the colour field's value.

The .glb holds one node per frame under a root node, and one animation that shows each frame's node at its own
time (t = f / fps) through a STEP-interpolated scale (1 while shown, 0 otherwise). Blender, three.js and
<model-viewer> all play it; a viewer that ignores animations shows frame 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib
import torch
from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci

from data.atomic import atomic_path
from recon.gaussians import Gaussians

KERNEL_SIGMAS = 3.0  # a Gaussian's kernel is evaluated out to this many standard deviations (beyond: < 1.2% of its peak)
_MAX_EVALUATIONS = 1_000_000  # (Gaussian, voxel) pairs per chunk: bounds the memory of one step


@dataclass
class Grid:
    """A voxel grid of the density and colour fields; voxel (i, j, k) is centred at origin + spacing * (i, j, k).

    Fields: density [R, R, R] (x, y, z index order), colour [R, R, R, 3] RGB in [0, 1] (weighted mean of the
    Gaussians' colours), origin [3] world units, spacing (world units per voxel)."""

    density: np.ndarray
    colour: np.ndarray
    origin: np.ndarray
    spacing: float

    def sample(self, points: np.ndarray, field: np.ndarray) -> np.ndarray:
        """Trilinear samples of `field` ([R, R, R] or [R, R, R, C]) at world points [P, 3] -> [P] or [P, C]."""
        from scipy.ndimage import map_coordinates

        coords = ((points - self.origin) / self.spacing).T  # [3, P] in voxel units
        if field.ndim == 3:
            return map_coordinates(field, coords, order=1, mode="nearest")
        return np.stack([map_coordinates(field[..., c], coords, order=1, mode="nearest") for c in range(field.shape[-1])], -1)


@dataclass
class Mesh:
    """A triangle mesh: vertices [P, 3] float32 (world units), faces [T, 3] uint32 (counter-clockwise seen from
    outside), normals [P, 3] float32 unit (outward), colours [P, 3] float32 RGB in [0, 1]."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colours: np.ndarray


def density_grid(gaussians: Gaussians, resolution: int = 64) -> Grid:
    """The density and colour fields of one Gaussian set (batch shape [], N > 0) on a cubic grid.

    The grid spans the means +- 3 of their largest standard deviation plus one voxel, with `resolution` voxels
    along its longest side. Each Gaussian is evaluated only in the voxel window that holds 3 of its own standard
    deviations (Gaussians are grouped by window size), so the cost grows with the Gaussians' volume, not N x R^3.
    """
    if gaussians.batch_shape != () or gaussians.num_gaussians == 0:
        raise ValueError(f"density_grid takes one non-empty Gaussian set; got batch shape {tuple(gaussians.batch_shape)}, N={gaussians.num_gaussians}")
    g = gaussians.map(lambda t: t.detach().float().cpu())
    sigma = g.scales.max(-1).values  # [N] largest standard deviation
    reach = KERNEL_SIGMAS * sigma.max()
    low, high = g.means.min(0).values - reach, g.means.max(0).values + reach  # [3], [3]
    spacing = float((high - low).max()) / (resolution - 3)
    origin = low - spacing  # one empty voxel of margin on each side, so the surface closes
    size = (torch.ceil((high - low) / spacing).long() + 3).clamp(max=resolution)  # [3] voxels per axis
    _, precision = _quat_scale_to_covar_preci(g.rotations, g.scales, compute_covar=False)  # [N, 3, 3]
    fields = torch.zeros(int(size.prod()), 4)  # [X*Y*Z, 4]: sum w, sum w * rgb
    radius = torch.ceil(KERNEL_SIGMAS * sigma / spacing).long().clamp(1, resolution)  # [N] window radius in voxels
    bucket = 2 ** torch.ceil(torch.log2(radius.float())).long()  # [N] radius rounded up to a power of two
    for r in bucket.unique().tolist():
        ids = torch.nonzero(bucket == r)[:, 0]
        chunk = max(1, _MAX_EVALUATIONS // (2 * r + 1) ** 3)
        for part in ids.split(chunk):
            _splat_window(fields, g, precision, part, r, origin, spacing, size)
    weight = fields[:, 0].reshape(*size.tolist())  # [X, Y, Z]
    colour = (fields[:, 1:] / fields[:, :1].clamp_min(1e-12)).reshape(*size.tolist(), 3)  # [X, Y, Z, 3]
    return Grid(weight.numpy(), colour.clamp(0, 1).numpy(), origin.numpy(), spacing)


def _splat_window(fields, g: Gaussians, precision, ids, r: int, origin, spacing: float, size) -> None:
    """Adds the Gaussians `ids` [M] to `fields` [X*Y*Z, 4] over (2r+1)^3 voxel windows around their means."""
    steps = torch.arange(-r, r + 1)
    offsets = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)  # [W, 3]
    centre = torch.round((g.means[ids] - origin) / spacing).long()  # [M, 3] nearest voxel
    voxel = centre[:, None] + offsets  # [M, W, 3]
    inside = ((voxel >= 0) & (voxel < size)).all(-1)  # [M, W]
    d = origin + voxel * spacing - g.means[ids, None]  # [M, W, 3] voxel centre - mean
    mahalanobis = torch.einsum("mwi,mij,mwj->mw", d, precision[ids], d)  # [M, W]
    w = g.opacities[ids, None] * torch.exp(-0.5 * mahalanobis) * inside  # [M, W]
    flat = (voxel.clamp_min(0) * torch.tensor([size[1] * size[2], size[2], 1])).sum(-1).clamp(max=len(fields) - 1)  # [M, W]
    values = torch.cat([w[..., None], w[..., None] * g.colours[ids, None]], -1)  # [M, W, 4]
    fields.index_add_(0, flat.reshape(-1), values.reshape(-1, 4))


def extract_mesh(gaussians: Gaussians, resolution: int = 64, enclose: float = 0.9) -> Mesh:
    """A closed coloured surface around one Gaussian set (batch shape [], N > 0).

    Gaussians fainter than 1/255 (invisible in any render) are left out; with none left the mesh is empty. The iso-level is chosen so that the
    means inside the surface (denser than the level) carry `enclose` of the Gaussians' total opacity: generated
    sets hold many faint background splats, and counting Gaussians rather than opacity would wrap them too.

    Args:
        resolution: voxels along the longest side of the density grid.
        enclose: in (0, 1), the share of the total opacity whose means lie inside the surface.
    """
    from scipy.ndimage import binary_closing, binary_fill_holes
    from skimage.measure import marching_cubes

    if not 0 < enclose < 1:
        raise ValueError(f"enclose must be in (0, 1), got {enclose}")
    visible = gaussians.opacities >= 1 / 255
    if not visible.any():  # nothing to wrap: an empty mesh (its frame shows nothing), not a failed export
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    gaussians = gaussians.map(lambda t: t[visible])
    grid = density_grid(gaussians, resolution)
    at_means = grid.sample(gaussians.means.detach().cpu().numpy(), grid.density)  # [N]
    order = np.argsort(-at_means)  # densest first
    mass = np.cumsum(gaussians.opacities.detach().cpu().numpy()[order])  # [N] opacity of the densest k means
    # Half the density at the last enclosed mean: the surface passes about one standard deviation outside the
    # enclosed Gaussians rather than through their centres, which would leave a perforated skin.
    level = 0.5 * float(at_means[order][min(np.searchsorted(mass, enclose * mass[-1]), len(order) - 1)])
    level = min(max(level, 1e-6 * float(grid.density.max())), 0.999 * float(grid.density.max()))  # inside the field's range
    # Generated Gaussians lie on the visible surface, so the density is a hollow shell, perforated where the
    # faintest means fell outside. Closing small gaps and filling the cavities leaves one outer surface instead of
    # a second, inward-facing one inside.
    inside = grid.density > level
    cavities = binary_fill_holes(binary_closing(inside, iterations=2)) & ~inside
    density = np.where(cavities, 2 * level, grid.density)
    # "ascent": the density rises inward, which makes the faces wind counter-clockwise seen from outside.
    verts, faces, normals, _ = marching_cubes(density, level, spacing=(grid.spacing,) * 3, gradient_direction="ascent")
    verts = verts + grid.origin  # [P, 3] world units
    return Mesh(verts.astype(np.float32), faces.astype(np.uint32), normals.astype(np.float32), grid.sample(verts, grid.colour).astype(np.float32))


def extract_meshes(gaussians: Gaussians, resolution: int = 64, enclose: float = 0.9) -> list[Mesh]:
    """One mesh per frame of Gaussians [F, N] (see `extract_mesh`)."""
    if len(gaussians.batch_shape) != 1:
        raise ValueError(f"extract_meshes takes Gaussians [F, N]; got batch shape {tuple(gaussians.batch_shape)}")
    return [extract_mesh(gaussians.map(lambda t: t[f]), resolution, enclose) for f in range(gaussians.batch_shape[0])]


class _Blob:
    """The .glb's one binary buffer, grown accessor by accessor (each 4-byte aligned, as glTF requires)."""

    def __init__(self, gltf: pygltflib.GLTF2):
        self.gltf, self.data = gltf, bytearray()

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None,
            normalized: bool = False, bounds: bool = False) -> int:
        """Appends `array` ([count] or [count, width]) as a bufferView and an accessor; returns the accessor index."""
        self.data += b"\0" * (-len(self.data) % 4)
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.data), byteLength=array.nbytes, target=target))
        self.data += array.tobytes()
        accessor = pygltflib.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array),
                                      type=kind, normalized=normalized or None)
        if bounds:  # required on POSITION and on animation inputs
            accessor.min, accessor.max = array.reshape(len(array), -1).min(0).tolist(), array.reshape(len(array), -1).max(0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def _add_mesh(blob: _Blob, mesh: Mesh, material: int) -> int:
    """One glTF mesh (positions, normals, 8-bit vertex colours, indices); returns its index."""
    rgba = np.concatenate([np.round(mesh.colours * 255), np.full((len(mesh.colours), 1), 255)], 1).astype(np.uint8)  # [P, 4]
    attributes = pygltflib.Attributes(
        POSITION=blob.add(mesh.vertices, pygltflib.FLOAT, pygltflib.VEC3, pygltflib.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.add(mesh.normals, pygltflib.FLOAT, pygltflib.VEC3, pygltflib.ARRAY_BUFFER),
        COLOR_0=blob.add(rgba, pygltflib.UNSIGNED_BYTE, pygltflib.VEC4, pygltflib.ARRAY_BUFFER, normalized=True),
    )
    indices = blob.add(mesh.faces.reshape(-1), pygltflib.UNSIGNED_INT, pygltflib.SCALAR, pygltflib.ELEMENT_ARRAY_BUFFER)
    blob.gltf.meshes.append(pygltflib.Mesh(primitives=[pygltflib.Primitive(attributes=attributes, indices=indices, material=material)]))
    return len(blob.gltf.meshes) - 1


def write_animated_glb(path: str | Path, meshes: list[Mesh], fps: float = 8.0) -> Path:
    """One .glb playing `meshes` (one per frame, F >= 1) at `fps`: node f is shown (scale 1) from f / fps to
    (f + 1) / fps and hidden (scale 0) otherwise, by one STEP-interpolated scale animation of F + 1 keys
    (the last, at F / fps, shows frame 0 again so that a looping player holds the last frame for its full time).
    A mesh with no faces becomes a node without a mesh. Written under a temporary name and renamed."""
    if not meshes:
        raise ValueError("write_animated_glb needs at least one mesh")
    F = len(meshes)
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator="zoetrope4d recon.mesh"), scene=0)
    gltf.materials.append(pygltflib.Material(  # white, matte: COLOR_0 multiplies the base colour
        name="vertex colours", pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=1.0)))
    blob = _Blob(gltf)
    times = blob.add(np.arange(F + 1, dtype=np.float32) / fps, pygltflib.FLOAT, pygltflib.SCALAR, bounds=True)
    animation = pygltflib.Animation(name="frames")
    gltf.nodes.append(pygltflib.Node(name="frames", children=list(range(1, F + 1))))  # node 0, the root
    for f, mesh in enumerate(meshes):
        shown = np.zeros((F + 1, 3), np.float32)  # [F + 1, 3] scale per key
        shown[[f, F] if f == 0 else [f]] = 1.0
        gltf.nodes.append(pygltflib.Node(name=f"frame_{f:03d}", scale=shown[0].tolist(),
                                         mesh=_add_mesh(blob, mesh, 0) if len(mesh.faces) else None))
        animation.samplers.append(pygltflib.AnimationSampler(input=times, output=blob.add(shown, pygltflib.FLOAT, pygltflib.VEC3), interpolation="STEP"))
        animation.channels.append(pygltflib.AnimationChannel(sampler=f, target=pygltflib.AnimationChannelTarget(node=f + 1, path="scale")))
    gltf.animations.append(animation)
    gltf.scenes.append(pygltflib.Scene(nodes=[0]))
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return Path(path)
