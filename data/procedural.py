"""Procedural animated 3D assets, written as animated glTF 2.0 binaries (.glb).

The assets go through the same Blender ingestion path as real glTF files, so the training data can be
grown without downloads. Every asset is drawn from a seeded numpy Generator (sizes, proportions, colours,
speeds, motion amplitudes), carries exactly one animation clip of 1-3 s, and a caption made from its
parameters ("a small red ball bouncing", "a blue four-legged animal walking fast").

Conventions: glTF's (+Y up, the object's front faces +Z, metres, roughly unit size, standing on y = 0 or,
for things that fly or swim, centred at y = 0.5). Keyframes are sampled at FPS per second with LINEAR
interpolation. The captions travel in the file: `asset.extras` holds
{"caption", "captions" (the caption first, then shorter phrasings), "family", "params", "generator": "zoetrope4d.procedural"}.

Families (FAMILIES): quadruped (walk), biped (walk), bird (flap), fish (swim), snake (slither) are skinned
meshes driven by a joint hierarchy; ball (bounce, squash and stretch), top (spin with precession),
plant (grow) and box (open) animate node translation/rotation/scale.

Public API:
    FAMILIES: dict[str, Callable[[np.random.Generator], ProceduralAsset]]
    ProceduralAsset(name, family, caption, captions, clip, params, gltf); .to_bytes() -> bytes; .save(path)
    make_asset(index: int, seed: int = 0, family: str | None = None) -> ProceduralAsset
    write_assets(n: int, out_dir, seed: int = 0) -> list[Path]
    python -m data.procedural --count 12 --out DIR --seed 0
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pygltflib

from data.atomic import atomic_path
from data.cli import check_output, entry_point, non_negative_int

FPS = 24  # keys per second: Blender's importer maps glTF seconds onto frames at the scene's 24 fps
GENERATOR = "zoetrope4d.procedural"

# Colour words used in captions -> linear RGB base colour factors.
COLOURS = {
    "red": (0.80, 0.05, 0.04), "orange": (0.90, 0.30, 0.02), "yellow": (0.90, 0.72, 0.05),
    "green": (0.08, 0.50, 0.08), "blue": (0.04, 0.18, 0.80), "purple": (0.35, 0.06, 0.55),
    "pink": (0.95, 0.35, 0.50), "white": (0.85, 0.85, 0.85), "black": (0.03, 0.03, 0.03),
    "grey": (0.30, 0.30, 0.30), "brown": (0.30, 0.14, 0.05), "teal": (0.02, 0.45, 0.40),
}
# Colours that never appear in captions.
EYE, BEAK, SKIN, GOLD = (0.01, 0.01, 0.01), (0.95, 0.45, 0.02), (0.80, 0.55, 0.40), (0.85, 0.60, 0.10)
POT, SOIL, FLOWER_CENTRE = (0.55, 0.20, 0.08), (0.08, 0.04, 0.02), (0.95, 0.80, 0.10)
LEAF_GREENS = {"green": (0.08, 0.50, 0.08), "dark green": (0.02, 0.22, 0.04), "lime": (0.35, 0.75, 0.05)}

X_AXIS, Y_AXIS, Z_AXIS = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------
# Geometry: triangle meshes as numpy arrays


@dataclass
class Mesh:
    """A triangle mesh, optionally bound to a skin (at most 4 joints a vertex, as glTF allows)."""

    positions: np.ndarray  # [P, 3] float32
    normals: np.ndarray  # [P, 3] float32, unit length
    triangles: np.ndarray  # [T, 3] int, counter-clockwise seen from outside
    joints: np.ndarray | None = None  # [P, 4] skin joint indices
    weights: np.ndarray | None = None  # [P, 4] float32, rows sum to 1

    def transform(self, matrix: np.ndarray) -> Mesh:
        """This mesh moved by an affine 4x4 `matrix` (normals by its inverse transpose)."""
        linear = matrix[:3, :3]
        normals = self.normals @ np.linalg.inv(linear)  # row vectors: n @ L^-1 == (L^-T n)^T
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        triangles = self.triangles[:, ::-1] if np.linalg.det(linear) < 0 else self.triangles  # mirrors flip winding
        return dataclasses.replace(self, positions=self.positions @ linear.T + matrix[:3, 3], normals=normals, triangles=triangles)

    def bind(self, joint: int) -> Mesh:
        """This mesh rigidly bound to one skin joint."""
        joints = np.zeros((len(self.positions), 4), np.uint8)
        joints[:, 0] = joint
        weights = np.zeros((len(self.positions), 4), np.float32)
        weights[:, 0] = 1.0
        return dataclasses.replace(self, joints=joints, weights=weights)

    @staticmethod
    def concat(meshes: list[Mesh]) -> Mesh:
        """One mesh holding all of `meshes` (all bound to a skin, or none)."""
        offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
        skinned = meshes[0].joints is not None
        return Mesh(
            positions=np.concatenate([m.positions for m in meshes]),
            normals=np.concatenate([m.normals for m in meshes]),
            triangles=np.concatenate([m.triangles + o for m, o in zip(meshes, offsets)]),
            joints=np.concatenate([m.joints for m in meshes]) if skinned else None,
            weights=np.concatenate([m.weights for m in meshes]) if skinned else None,
        )


def translation(t) -> np.ndarray:
    """4x4 translation by t [3]."""
    m = np.eye(4)
    m[:3, 3] = t
    return m


def scaling(s) -> np.ndarray:
    """4x4 scaling by s [3] (or a scalar)."""
    return np.diag([*np.broadcast_to(np.asarray(s, float), (3,)), 1.0])


def rotation(axis, degrees: float) -> np.ndarray:
    """4x4 rotation by `degrees` about `axis` [3] (right-handed)."""
    x, y, z, w = quat(axis, math.radians(degrees))
    m = np.eye(4)
    m[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return m


def place(at, axis=Y_AXIS, degrees: float = 0.0, scale=1.0) -> np.ndarray:
    """4x4 matrix that scales, then rotates by `degrees` about `axis`, then moves to `at` (glTF's TRS order)."""
    return translation(at) @ rotation(axis, degrees) @ scaling(scale)


def _lathe_section(profile: np.ndarray, segments: int, arc: tuple[float, float]) -> Mesh:
    """A smooth-shaded surface of revolution about +Y of one polyline `profile` [R, 2] of (radius, y)."""
    tangent = np.gradient(profile, axis=0)  # [R, 2]
    normal_2d = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)  # outward when the profile runs bottom to top
    normal_2d /= np.linalg.norm(normal_2d, axis=1, keepdims=True)
    theta = 2 * np.pi * np.linspace(arc[0], arc[1], segments + 1)  # [S+1], the seam is duplicated
    sin, cos = np.sin(theta)[None], np.cos(theta)[None]  # [1, S+1], angle 0 on +Z, growing towards +X

    def revolve(rad, y):  # [R] each -> [R, S+1, 3]
        return np.stack(np.broadcast_arrays(rad[:, None] * sin, y[:, None], rad[:, None] * cos), axis=-1)

    positions = revolve(profile[:, 0], profile[:, 1]).reshape(-1, 3)
    normals = revolve(normal_2d[:, 0], normal_2d[:, 1]).reshape(-1, 3)
    ring, seg = np.meshgrid(np.arange(len(profile) - 1), np.arange(segments), indexing="ij")
    a = (ring * (segments + 1) + seg).ravel()  # lower-left corner of each quad
    b, c, d = a + 1, a + segments + 1, a + segments + 2  # lower-right, upper-left, upper-right
    triangles = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])  # [T, 3]
    edges = positions[triangles[:, 1:]] - positions[triangles[:, :1]]  # [T, 2, 3]
    triangles = triangles[np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1) > 1e-12]  # drop slivers at r = 0
    return Mesh(positions.astype(np.float32), normals.astype(np.float32), triangles)


def lathe(sections: list, segments: int = 24, arc: tuple[float, float] = (0.0, 1.0)) -> Mesh:
    """A surface of revolution about +Y.

    sections: polylines of (radius, y) points, each running bottom to top with the outside on its right;
    each is shaded smoothly and consecutive sections meet at sharp edges. arc: the part of a full turn.
    """
    return Mesh.concat([_lathe_section(np.asarray(s, float), segments, arc) for s in sections])


def sphere(radius: float = 1.0, rings: int = 12, segments: int = 24) -> Mesh:
    """A UV sphere centred at the origin, its poles on Y."""
    phi = np.linspace(-np.pi / 2, np.pi / 2, rings + 1)
    return lathe([np.stack([radius * np.cos(phi), radius * np.sin(phi)], 1)], segments)


def ellipsoid(radii, at=(0.0, 0.0, 0.0), rings: int = 12, segments: int = 24) -> Mesh:
    """An axis-aligned ellipsoid with semi-axes `radii` [3] centred at `at` [3]."""
    return sphere(1.0, rings, segments).transform(place(at, scale=radii))


def capsule(radius: float, length: float, rings: int = 8, segments: int = 12) -> Mesh:
    """A capsule along +Y from y = 0 to y = length (caps included), with `rings` rings along its side for skinning."""
    phi = np.linspace(-np.pi / 2, 0, 5)
    bottom = np.stack([radius * np.cos(phi), radius + radius * np.sin(phi)], 1)  # [5, 2]
    side = np.stack([np.full(rings - 1, radius), np.linspace(radius, length - radius, rings + 1)[1:-1]], 1)
    top = np.stack([radius * np.cos(-phi[::-1]), length - radius + radius * np.sin(-phi[::-1])], 1)
    return lathe([np.concatenate([bottom, side, top])], segments)


def cylinder(radius: float, height: float, segments: int = 24) -> Mesh:
    """A capped cylinder along +Y from y = 0 to y = height."""
    return lathe([[(0, 0), (radius, 0)], [(radius, 0), (radius, height)], [(radius, height), (0, height)]], segments)


def cone(radius: float, height: float, segments: int = 24) -> Mesh:
    """A capped cone along +Y, its base at y = 0 and its apex at y = height."""
    return lathe([[(0, 0), (radius, 0)], [(radius, 0), (0, height)]], segments)


def spindle(length: float, radius: float, head: float, tail: float, rings: int = 16, segments: int = 16) -> Mesh:
    """A body of revolution along +Y from its tail (y = 0) to its head (y = length), `radius` at its widest.

    The radius goes as u^tail (1 - u)^head along u in [0, 1]: smaller exponents give a blunter end.
    """
    u = np.linspace(0, 1, rings + 1)
    r = u**tail * (1 - u) ** head
    return lathe([np.stack([radius * r / r.max(), length * u], 1)], segments)


def box(size) -> Mesh:
    """An axis-aligned box of `size` [3] centred at the origin, flat-shaded."""
    half = np.asarray(size, float) / 2
    faces = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is right-handed, so u x v = +axis
            corners = np.zeros((4, 3))
            corners[:, axis] = sign
            corners[:, u], corners[:, v] = [-1, 1, 1, -1], [-1, -1, 1, 1]
            if sign < 0:
                corners = corners[::-1]  # keep the face counter-clockwise seen from outside
            normal = np.zeros((4, 3))
            normal[:, axis] = sign
            faces.append(Mesh((corners * half).astype(np.float32), normal.astype(np.float32), np.array([[0, 1, 2], [0, 2, 3]])))
    return Mesh.concat(faces)


# ----------------------------------------------------------------------------------------------------
# Rotations as glTF quaternions (x, y, z, w)


def quat(axis, angle) -> np.ndarray:
    """Quaternions [..., 4] for rotations by `angle` [...] radians about the unit-normalised `axis` [3]."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    half = np.asarray(angle, float)[..., None] / 2
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b [..., 4] (apply b first, then a)."""
    (ax, ay, az, aw), (bx, by, bz, bw) = np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


# ----------------------------------------------------------------------------------------------------
# Clip timing and captions


def cycle_times(period: float, target: float = 2.0) -> tuple[np.ndarray, float]:
    """Key times [K] (s) covering a whole number of cycles, 1-3 s in all and about `target` s; and the period used.

    The period is snapped to whole frames so that every cycle starts on a key (a loop lands exactly).
    """
    frames = max(2, round(period * FPS))
    low, high = math.ceil(FPS / frames), (3 * FPS) // frames
    cycles = min(max(round(target * FPS / frames), low), high)
    return np.arange(cycles * frames + 1) / FPS, frames / FPS


def clip_times(duration: float) -> np.ndarray:
    """Key times [K] (s) from 0 to `duration` at FPS."""
    return np.arange(round(duration * FPS) + 1) / FPS


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Ease-in-out ramp from 0 to 1 over x in [0, 1], clamped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A parameter drawn uniformly, rounded so that `params` describes the asset exactly."""
    return round(float(rng.uniform(low, high)), 3)


def _pick(rng: np.random.Generator, names) -> str:
    return str(names[rng.integers(len(names))])


def _grade(value: float, low: float, high: float, words: tuple[str, str]) -> str:
    """words[0] below `low`, words[1] above `high`, nothing in between."""
    return words[0] if value < low else words[1] if value > high else ""


def _pace(speed: float) -> str:
    """The caption's speed word for a speed factor around 1."""
    return _grade(speed, 0.85, 1.3, ("slowly", "fast"))


def _sentence(*words: str) -> str:
    """An indefinite noun phrase from the non-empty words: ("orange", "ball") -> "an orange ball"."""
    text = " ".join(w for w in words if w)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _captions(size: str, colour: str, subject: str, adverb: str) -> list[str]:
    """The full caption first ("a small red ball bouncing high"), then shorter ones a person might write as well:
    without the size and speed words, without the colour, the subject alone."""
    phrasings = [_sentence(size, colour, subject, adverb), _sentence(colour, subject), _sentence(size, subject, adverb), _sentence(subject)]
    return list(dict.fromkeys(phrasings))


# ----------------------------------------------------------------------------------------------------
# The glTF document


@dataclass
class ProceduralAsset:
    """One generated asset: its glTF document, caption and the parameters it was drawn with."""

    name: str
    family: str
    caption: str  # the full caption, captions[0]
    captions: tuple[str, ...]  # phrasings of the caption, the full one first
    clip: str  # the name of its one animation
    params: dict
    gltf: pygltflib.GLTF2 = field(repr=False)

    def to_bytes(self) -> bytes:
        """The .glb file's bytes."""
        return b"".join(self.gltf.save_to_bytes())

    def save(self, path) -> Path:
        """Write the asset as a .glb file at `path`."""
        Path(path).write_bytes(self.to_bytes())
        return Path(path)


_COMPONENT = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE,
              np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT, np.dtype(np.uint32): pygltflib.UNSIGNED_INT}
_TYPE = {(): pygltflib.SCALAR, (3,): pygltflib.VEC3, (4,): pygltflib.VEC4, (4, 4): pygltflib.MAT4}


class _Builder:
    """Builds one glTF document: one binary buffer, meshes, nodes, at most one skin and one animation clip.

    Skin joints are nodes made with `joint`, placed by world position at bind time with no rotation, so a
    joint's inverse bind matrix is a translation. Every animation channel shares the clip's key `times`.
    """

    def __init__(self, times: np.ndarray):
        self.gltf = pygltflib.GLTF2(scene=0, scenes=[pygltflib.Scene(nodes=[])])
        self.blob = bytearray()
        self.times = times.astype(np.float32)  # [K] seconds
        self.joints: list[int] = []  # skin joint index -> node index
        self.bind_positions: list[np.ndarray] = []  # skin joint index -> world position [3] at bind time
        self.channels: list[tuple[int, str, np.ndarray]] = []  # (node, path, values [K, 3 or 4])

    def accessor(self, array: np.ndarray, target: int | None = None, bounds: bool = False) -> int:
        """Append `array` [N, ...] to the buffer as one accessor; `bounds` adds the min/max glTF wants on POSITION and times."""
        array = np.ascontiguousarray(array)
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=array.nbytes, target=target))
        self.blob += array.tobytes() + bytes(-array.nbytes % 4)  # the next view starts 4-byte aligned
        flat = array.reshape(len(array), -1)
        self.gltf.accessors.append(pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=_COMPONENT[array.dtype], count=len(array),
            type=_TYPE[array.shape[1:]],
            min=flat.min(0).tolist() if bounds else None, max=flat.max(0).tolist() if bounds else None))
        return len(self.gltf.accessors) - 1

    def material(self, name: str, rgb, roughness: float = 0.6) -> int:
        """A plain coloured material (base colour factor, no textures)."""
        pbr = pygltflib.PbrMetallicRoughness(baseColorFactor=[*map(float, rgb), 1.0], metallicFactor=0.0, roughnessFactor=roughness)
        self.gltf.materials.append(pygltflib.Material(name=name, pbrMetallicRoughness=pbr))
        return len(self.gltf.materials) - 1

    def mesh(self, name: str, parts: list[tuple[Mesh, int]]) -> int:
        """A glTF mesh with one primitive per (mesh, material) part."""
        primitives = []
        for part, material in parts:
            attributes = pygltflib.Attributes(
                POSITION=self.accessor(part.positions.astype(np.float32), pygltflib.ARRAY_BUFFER, bounds=True),
                NORMAL=self.accessor(part.normals.astype(np.float32), pygltflib.ARRAY_BUFFER))
            if part.joints is not None:
                attributes.JOINTS_0 = self.accessor(part.joints.astype(np.uint8), pygltflib.ARRAY_BUFFER)
                attributes.WEIGHTS_0 = self.accessor(part.weights.astype(np.float32), pygltflib.ARRAY_BUFFER)
            index_type = np.uint16 if len(part.positions) < 65536 else np.uint32
            indices = self.accessor(part.triangles.astype(index_type).ravel(), pygltflib.ELEMENT_ARRAY_BUFFER)
            primitives.append(pygltflib.Primitive(attributes=attributes, indices=indices, material=material))
        self.gltf.meshes.append(pygltflib.Mesh(name=name, primitives=primitives))
        return len(self.gltf.meshes) - 1

    def node(self, name: str, parent: int | None = None, **fields) -> int:
        """A node (fields: mesh, skin, translation, rotation, scale); a scene root unless `parent` is given."""
        fields = {k: (np.asarray(v, float).tolist() if k in ("translation", "rotation", "scale") else v) for k, v in fields.items()}
        self.gltf.nodes.append(pygltflib.Node(name=name, **fields))
        index = len(self.gltf.nodes) - 1
        children = self.gltf.scenes[0].nodes if parent is None else self.gltf.nodes[parent].children
        children.append(index)
        return index

    def joint(self, name: str, parent: int | None, position) -> int:
        """A skin joint (index into the skin) at world `position` [3], child of skin joint `parent`."""
        position = np.asarray(position, float)
        offset = position if parent is None else position - self.bind_positions[parent]
        self.joints.append(self.node(name, None if parent is None else self.joints[parent], translation=offset))
        self.bind_positions.append(position)
        return len(self.joints) - 1

    def chain(self, name: str, parent: int | None, start, end, n: int) -> list[int]:
        """`n` joints evenly spaced from world `start` towards `end` (exclusive), each the child of the one before."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        bones: list[int] = []
        for k in range(n):
            bones.append(self.joint(f"{name}{k}", bones[-1] if bones else parent, start + (end - start) * k / n))
        return bones

    def bind_chain(self, mesh: Mesh, bones: list[int]) -> Mesh:
        """`mesh` skinned to a chain of joints: each vertex blends the two bones nearest along the chain.

        A bone's influence peaks halfway between its joint and the next, so the surface bends smoothly at joints.
        """
        if len(bones) == 1:
            return mesh.bind(bones[0])
        start = self.bind_positions[bones[0]]
        direction = self.bind_positions[bones[-1]] - start
        direction /= np.linalg.norm(direction)
        along = np.array([(self.bind_positions[bone] - start) @ direction for bone in bones])  # [J]
        mids = np.append((along[:-1] + along[1:]) / 2, along[-1] + (along[-1] - along[-2]) / 2)  # [J]
        u = np.interp((mesh.positions - start) @ direction, mids, np.arange(len(bones)))  # [P] in [0, J - 1]
        k = np.minimum(u.astype(int), len(bones) - 2)
        blend = (u - k).astype(np.float32)
        joints = np.zeros((len(u), 4), np.uint8)
        joints[:, 0], joints[:, 1] = np.asarray(bones)[k], np.asarray(bones)[k + 1]
        weights = np.zeros((len(u), 4), np.float32)
        weights[:, 0], weights[:, 1] = 1 - blend, blend
        return dataclasses.replace(mesh, joints=joints, weights=weights)

    def skinned_mesh(self, name: str, parts: list[tuple[Mesh, int]]) -> int:
        """A mesh node deformed by all joints made so far; the parts must be bound (`Mesh.bind`, `bind_chain`)."""
        inverse_bind = np.tile(np.eye(4, dtype=np.float32), (len(self.joints), 1, 1))  # [J, 4, 4]
        inverse_bind[:, :3, 3] = -np.asarray(self.bind_positions)
        ibm = self.accessor(inverse_bind.transpose(0, 2, 1).copy())  # glTF matrices are column-major
        self.gltf.skins.append(pygltflib.Skin(name=name, joints=list(self.joints), inverseBindMatrices=ibm, skeleton=self.joints[0]))
        return self.node(name, mesh=self.mesh(name, parts), skin=len(self.gltf.skins) - 1)

    def animate(self, node: int, path: str, values: np.ndarray) -> None:
        """One channel of the clip: `values` [K, 3] (translation, scale) or [K, 4] (rotation) at the clip's times."""
        values = np.asarray(values, np.float32)
        if path == "rotation":  # q and -q are one rotation: keep consecutive keys on one side so slerp takes the short way
            signs = np.cumprod(np.where(np.sum(values[1:] * values[:-1], axis=1) < 0, -1.0, 1.0))
            values = values * np.concatenate([[1.0], signs])[:, None].astype(np.float32)
        self.channels.append((node, path, values))

    def finish(self, family: str, clip: str, captions: list[str], params: dict) -> ProceduralAsset:
        """The ProceduralAsset holding this document, its one animation named `clip` and the captions in `asset.extras`."""
        times = self.accessor(self.times, bounds=True)
        samplers, channels = [], []
        for node, path, values in self.channels:
            samplers.append(pygltflib.AnimationSampler(input=times, output=self.accessor(values), interpolation=pygltflib.ANIM_LINEAR))
            target = pygltflib.AnimationChannelTarget(node=node, path=path)
            channels.append(pygltflib.AnimationChannel(sampler=len(samplers) - 1, target=target))
        self.gltf.animations.append(pygltflib.Animation(name=clip, samplers=samplers, channels=channels))
        self.gltf.buffers.append(pygltflib.Buffer(byteLength=len(self.blob)))
        self.gltf.set_binary_blob(bytes(self.blob))
        params = {k: round(v, 4) if isinstance(v, float) else v for k, v in params.items()}  # derived sizes too
        extras = {"caption": captions[0], "captions": captions, "family": family, "params": params, "generator": GENERATOR}
        self.gltf.asset = pygltflib.Asset(version="2.0", generator=GENERATOR, extras=extras)
        return ProceduralAsset(name=family, family=family, caption=captions[0], captions=tuple(captions), clip=clip, params=params, gltf=self.gltf)


# ----------------------------------------------------------------------------------------------------
# Shared creature parts


def _limb(b: _Builder, name: str, parent: int, top, length: float, radius: float) -> tuple[list[int], Mesh]:
    """A two-bone limb (upper, lower) hanging straight down from world `top` [3]: its joints and its skinned capsule."""
    top = np.asarray(top, float)
    bones = b.chain(name, parent, top, top - (0, length, 0), 2)
    mesh = capsule(radius, length + radius).transform(translation(top - (0, length, 0)))
    return bones, b.bind_chain(mesh, bones)


def _swing_limb(b: _Builder, bones: list[int], phase: np.ndarray, swing: float, bend: float, length: float) -> np.ndarray:
    """Walk-cycle keys for a limb made by `_limb`: the upper bone swings about X by swing * sin(phase), the lower
    bends most mid-swing. Returns how far [K] the foot reaches below the limb's top, to keep feet on the ground."""
    hip, knee = swing * np.sin(phase), bend * 0.5 * (1 - np.cos(phase))  # [K] each
    b.animate(b.joints[bones[0]], "rotation", quat(X_AXIS, hip))
    b.animate(b.joints[bones[1]], "rotation", quat(X_AXIS, knee))
    return 0.5 * length * (np.cos(hip) + np.cos(hip + knee))


def _eyes(centre, radius: float, spread: float) -> Mesh:
    """Two small eyes on the front (+Z) of a head of `radius` at `centre` [3], `spread` radians apart from the midline."""
    offsets = radius * np.array([[side * math.sin(spread), 0.25, math.cos(spread)] for side in (-1, 1)])  # [2, 3]
    return Mesh.concat([sphere(radius * 0.18, 6, 8).transform(translation(np.asarray(centre) + offset)) for offset in offsets])


# ----------------------------------------------------------------------------------------------------
# Families: each draws its parameters from `rng` and builds one asset


def quadruped(rng: np.random.Generator) -> ProceduralAsset:
    """A four-legged animal (body, neck, head, ears, tail, 4 two-bone skinned legs) trotting in place."""
    colour = _pick(rng, ["brown", "grey", "black", "white", "orange", "blue", "red", "yellow"])
    size, speed = _uniform(rng, 0.75, 1.3), _uniform(rng, 0.6, 1.6)
    body_len, body_r = size * _uniform(rng, 0.7, 1.0), size * _uniform(rng, 0.11, 0.16)
    leg_len, leg_r = size * _uniform(rng, 0.28, 0.45), body_r * _uniform(rng, 0.25, 0.38)
    head_r, swing, bend = body_r * _uniform(rng, 0.6, 0.8), _uniform(rng, 0.3, 0.6), _uniform(rng, 0.3, 0.7)
    times, period = cycle_times(1.1 / speed)
    phase = 2 * np.pi * times / period  # [K]

    b = _Builder(times)
    fur, eye = b.material(colour, COLOURS[colour]), b.material("eye", EYE, 0.2)
    centre = np.array([0.0, leg_len + 0.5 * body_r, 0.0])
    root = b.joint("body", None, centre)
    head = b.joint("head", root, centre + (0, 0.4 * body_r, body_len / 2 - 0.3 * body_r))  # at the base of the neck
    tail = b.joint("tail", root, centre + (0, 0.3 * body_r, -body_len / 2 + 0.2 * body_r))
    head_at = centre + (0, 1.4 * body_r, body_len / 2 + 0.3 * body_r)
    neck_at = (b.bind_positions[head] + head_at) / 2
    parts = [
        ellipsoid((body_r, body_r, body_len / 2), centre).bind(root),
        sphere(1.0, 8, 16).transform(place(neck_at, X_AXIS, 35, (0.5 * body_r, 0.9 * body_r, 0.5 * body_r))).bind(head),
        sphere(head_r, 10, 20).transform(translation(head_at)).bind(head),
        ellipsoid((0.5 * head_r, 0.45 * head_r, 0.6 * head_r), head_at + (0, -0.25 * head_r, 0.8 * head_r), 8, 16).bind(head),  # snout
        cone(0.2 * body_r, 0.5 * body_len).transform(place(b.bind_positions[tail], X_AXIS, -60)).bind(tail),  # up and back
    ]
    ear = cone(0.3 * head_r, 0.6 * head_r)
    parts += [ear.transform(place(head_at + head_r * np.array([x * 0.5, 0.7, -0.1]), Z_AXIS, -20 * x)).bind(head) for x in (1, -1)]
    reach = []  # [4][K]
    for side, x in (("l", 1), ("r", -1)):
        for end, z, offset in (("front", 1, 0.0), ("back", -1, np.pi)):
            hip = (x * 0.6 * body_r, leg_len, z * (body_len / 2 - 0.8 * body_r))
            bones, leg = _limb(b, f"{end}_{side}_leg", root, hip, leg_len, leg_r)
            parts.append(leg)
            trot = offset + (np.pi if x < 0 else 0.0)  # diagonal legs move together
            reach.append(_swing_limb(b, bones, phase + trot, swing, bend, leg_len))
    b.skinned_mesh("animal", [(Mesh.concat(parts), fur), (_eyes(head_at, head_r, 0.5).bind(head), eye)])
    b.animate(b.joints[root], "translation", centre + np.outer(np.max(reach, axis=0) - leg_len, Y_AXIS))  # lowest foot on y = 0
    b.animate(b.joints[head], "rotation", quat(X_AXIS, 0.12 * np.sin(2 * phase)))
    b.animate(b.joints[tail], "rotation", quat(Y_AXIS, 0.5 * np.sin(phase)))

    params = dict(colour=colour, size=size, speed=speed, body_length=body_len, leg_length=leg_len, swing=swing, knee_bend=bend)
    captions = _captions(_grade(size, 0.9, 1.15, ("small", "large")), colour, "four-legged animal walking", _pace(speed))
    return b.finish("quadruped", "walk", captions, params)


def biped(rng: np.random.Generator) -> ProceduralAsset:
    """A two-legged figure (torso, head, skinned two-bone arms and legs) walking in place, arms swinging."""
    colour = _pick(rng, ["red", "blue", "green", "yellow", "purple", "orange", "white", "teal"])
    size, speed = _uniform(rng, 0.8, 1.25), _uniform(rng, 0.6, 1.6)
    leg_len, torso_len, torso_r = size * _uniform(rng, 0.35, 0.5), size * _uniform(rng, 0.3, 0.42), size * _uniform(rng, 0.09, 0.14)
    head_r, limb_r, swing = size * _uniform(rng, 0.08, 0.11), torso_r * _uniform(rng, 0.3, 0.42), _uniform(rng, 0.3, 0.6)
    times, period = cycle_times(1.2 / speed)
    phase = 2 * np.pi * times / period  # [K]

    b = _Builder(times)
    shirt, trousers = b.material(colour, COLOURS[colour]), b.material("trousers", np.asarray(COLOURS[colour]) * 0.35)
    skin, eye = b.material("skin", SKIN), b.material("eye", EYE, 0.2)
    pelvis = b.joint("pelvis", None, (0, leg_len, 0))
    head_at = np.array([0, leg_len + torso_len + 0.8 * head_r, 0])
    body = [capsule(torso_r, torso_len + 0.3 * torso_r).transform(translation((0, leg_len - 0.3 * torso_r, 0))).bind(pelvis)]
    legs, reach = [], []  # reach: [2][K]
    for side, x, offset in (("l", 1, 0.0), ("r", -1, np.pi)):
        bones, leg = _limb(b, f"leg_{side}", pelvis, (x * 0.5 * torso_r, leg_len, 0), leg_len, limb_r)
        legs.append(leg)
        reach.append(_swing_limb(b, bones, phase + offset, swing, 1.5 * swing, leg_len))
        shoulder = (x * (torso_r + limb_r), leg_len + torso_len - limb_r, 0)
        bones, arm = _limb(b, f"arm_{side}", pelvis, shoulder, 0.9 * torso_len, 0.8 * limb_r)
        body.append(arm)
        b.animate(b.joints[bones[0]], "rotation", quat(X_AXIS, -0.8 * swing * np.sin(phase + offset)))  # against the legs
        b.animate(b.joints[bones[1]], "rotation", quat(X_AXIS, -0.3 - 0.2 * np.cos(phase + offset)))  # elbows bend forward
    b.skinned_mesh("figure", [(Mesh.concat(body), shirt), (Mesh.concat(legs), trousers),
                              (sphere(head_r).transform(translation(head_at)).bind(pelvis), skin),
                              (_eyes(head_at, head_r, 0.4).bind(pelvis), eye)])
    b.animate(b.joints[pelvis], "translation", np.outer(np.max(reach, axis=0), Y_AXIS))  # the lowest foot on y = 0

    params = dict(colour=colour, size=size, speed=speed, leg_length=leg_len, torso_length=torso_len, swing=swing)
    captions = _captions(_grade(size, 0.95, 1.1, ("short", "tall")), colour, "two-legged figure walking", _pace(speed))
    return b.finish("biped", "walk", captions, params)


def bird(rng: np.random.Generator) -> ProceduralAsset:
    """A bird hovering at y = 0.5 and flapping skinned two-bone wings, its body bobbing against the beat."""
    colour = _pick(rng, ["red", "blue", "yellow", "black", "white", "green", "pink", "grey"])
    size, speed = _uniform(rng, 0.75, 1.2), _uniform(rng, 0.6, 1.6)
    body_len, body_r = size * _uniform(rng, 0.4, 0.55), size * _uniform(rng, 0.09, 0.13)
    span, chord, flap = size * _uniform(rng, 0.3, 0.45), body_len * _uniform(rng, 0.35, 0.5), _uniform(rng, 0.5, 0.9)
    head_r = body_r * _uniform(rng, 0.6, 0.8)
    times, period = cycle_times(0.5 / speed)
    phase = 2 * np.pi * times / period  # [K]

    b = _Builder(times)
    feathers, beak, eye = b.material(colour, COLOURS[colour]), b.material("beak", BEAK), b.material("eye", EYE, 0.2)
    centre = np.array([0.0, 0.5, 0.0])
    root = b.joint("body", None, centre)
    head_at = centre + (0, 0.7 * body_r, body_len / 2)
    parts = [ellipsoid((body_r, 0.9 * body_r, body_len / 2), centre).bind(root),
             sphere(head_r).transform(translation(head_at)).bind(root),
             cone(body_r, 0.4 * body_len).transform(place(centre - (0, 0, 0.35 * body_len), X_AXIS, -100, (1, 1, 0.2))).bind(root)]  # tail
    for side, x in (("l", 1), ("r", -1)):
        shoulder = centre + (x * 0.6 * body_r, 0.4 * body_r, 0.05 * body_len)
        bones = b.chain(f"wing_{side}", root, shoulder, shoulder + (x * span, 0, 0), 2)
        along_x = rotation(Z_AXIS, -90)  # the sphere's rings (along Y) now run along the wing, so it bends smoothly
        wing = sphere(1.0, 12, 12).transform(place(shoulder + (x * span / 2, 0, 0), scale=(span / 2, 0.015 * size, chord / 2)) @ along_x)
        parts.append(b.bind_chain(wing, bones))
        b.animate(b.joints[bones[0]], "rotation", quat(Z_AXIS, x * flap * np.sin(phase)))  # +Z lifts the +X wing
        b.animate(b.joints[bones[1]], "rotation", quat(Z_AXIS, x * 0.5 * flap * np.sin(phase - 0.8)))  # the tip lags
    bill = cone(0.35 * head_r, head_r).transform(place(head_at + (0, -0.1 * head_r, 0.8 * head_r), X_AXIS, 90))
    b.skinned_mesh("bird", [(Mesh.concat(parts), feathers), (bill.bind(root), beak), (_eyes(head_at, head_r, 0.7).bind(root), eye)])
    b.animate(b.joints[root], "translation", centre - np.outer(0.05 * size * np.sin(phase), Y_AXIS))

    params = dict(colour=colour, size=size, speed=speed, wing_span=2 * span, flap=flap)
    captions = _captions(_grade(size, 0.9, 1.1, ("small", "large")), colour, "bird flapping its wings", _pace(speed))
    return b.finish("bird", "flap", captions, params)


def _undulate(b: _Builder, bones: list[int], phase: np.ndarray, amplitude: float, wavelength: float, growth: float) -> None:
    """A travelling wave along a spine: bone k yaws by amplitude * (1 + growth * k) * sin(phase - k * wavelength)."""
    for k, bone in enumerate(bones):
        b.animate(b.joints[bone], "rotation", quat(Y_AXIS, amplitude * (1 + growth * k) * np.sin(phase - k * wavelength)))


def fish(rng: np.random.Generator) -> ProceduralAsset:
    """A fish hovering at y = 0.5, its skinned body swimming with a wave that grows towards the tail."""
    colour = _pick(rng, ["orange", "yellow", "blue", "red", "teal", "pink", "grey", "purple"])
    size, speed = _uniform(rng, 0.75, 1.25), _uniform(rng, 0.6, 1.6)
    length, height = size * _uniform(rng, 0.6, 0.85), _uniform(rng, 0.14, 0.24)
    width, amplitude = _uniform(rng, 0.35, 0.6), _uniform(rng, 0.08, 0.2)
    times, period = cycle_times(0.8 / speed)
    phase = 2 * np.pi * times / period  # [K]

    b = _Builder(times)
    scales, fins = b.material(colour, COLOURS[colour], 0.4), b.material("fins", np.asarray(COLOURS[colour]) * 0.5)
    eye = b.material("eye", EYE, 0.2)
    centre, half, h = np.array([0.0, 0.5, 0.0]), length / 2, height * length
    bones = b.chain("spine", None, centre + (0, 0, 0.2 * half), centre - (0, 0, half), 5)
    on_z = rotation(X_AXIS, 90)  # lathe axis +Y -> +Z (head to the front)
    body = spindle(length, h, head=0.45, tail=0.9).transform(translation(centre - (0, 0, half)) @ scaling((width, 1, 1)) @ on_z)
    tail = cone(0.8 * h, 0.35 * length).transform(translation(centre - (0, 0, half + 0.25 * length)) @ scaling((0.12, 1, 1)) @ on_z)
    dorsal = cone(0.25 * length, 0.8 * h).transform(place(centre + (0, 0.7 * h, 0), scale=(0.1, 1, 1)))
    head_at = centre + (0, 0.15 * h, 0.55 * half)
    b.skinned_mesh("fish", [(b.bind_chain(body, bones), scales), (b.bind_chain(Mesh.concat([tail, dorsal]), bones), fins),
                            (_eyes(head_at, 0.55 * width * h, 1.35).bind(bones[0]), eye)])
    _undulate(b, bones, phase, amplitude, wavelength=0.8, growth=0.5)

    params = dict(colour=colour, size=size, speed=speed, length=length, height=height, amplitude=amplitude)
    captions = _captions(_grade(size, 0.9, 1.1, ("small", "large")), colour, "fish swimming", _pace(speed))
    return b.finish("fish", "swim", captions, params)


def snake(rng: np.random.Generator) -> ProceduralAsset:
    """A snake lying on y = 0, its long skinned body slithering with a travelling sideways wave."""
    colour = _pick(rng, ["green", "brown", "black", "yellow", "red", "grey", "teal", "orange"])
    size, speed = _uniform(rng, 0.8, 1.2), _uniform(rng, 0.6, 1.6)
    length, radius, amplitude = size * _uniform(rng, 1.0, 1.4), size * _uniform(rng, 0.04, 0.06), _uniform(rng, 0.25, 0.45)
    times, period = cycle_times(1.2 / speed)
    phase = 2 * np.pi * times / period  # [K]

    b = _Builder(times)
    scales, eye = b.material(colour, COLOURS[colour], 0.4), b.material("eye", EYE, 0.2)
    half = length / 2
    bones = b.chain("spine", None, (0, radius, 0.8 * half), (0, radius, -half), 8)
    body = spindle(length, radius, head=0.12, tail=0.5, rings=40, segments=12).transform(place((0, radius, -half), X_AXIS, 90))
    head_at = np.array([0, 1.1 * radius, half])
    head = ellipsoid(1.6 * radius * np.array([1, 0.7, 1.3]), head_at, 8, 16)
    b.skinned_mesh("snake", [(b.bind_chain(Mesh.concat([body, head]), bones), scales),
                             (_eyes(head_at, 1.6 * radius, 0.8).bind(bones[0]), eye)])
    _undulate(b, bones, phase, amplitude, wavelength=0.9, growth=0.0)

    params = dict(colour=colour, size=size, speed=speed, length=length, radius=radius, amplitude=amplitude)
    captions = _captions(_grade(length, 1.05, 1.5, ("short", "long")), colour, "snake slithering", _pace(speed))
    return b.finish("snake", "slither", captions, params)


def ball(rng: np.random.Generator) -> ProceduralAsset:
    """A ball bouncing in place with squash on contact and stretch in flight (node translation and scale)."""
    colour = _pick(rng, list(COLOURS))
    radius, height = _uniform(rng, 0.1, 0.25), _uniform(rng, 0.4, 0.9)
    speed, squash = _uniform(rng, 0.7, 1.4), _uniform(rng, 0.15, 0.35)
    times, period = cycle_times((0.4 + 0.5 * height) / speed)

    b = _Builder(times)
    mesh = b.mesh("ball", [(sphere(radius, 16, 32).transform(translation((0, radius, 0))), b.material(colour, COLOURS[colour], 0.3))])
    node = b.node("ball", mesh=mesh)  # its origin at the ball's bottom, so squashing keeps it on the ground
    u = (times / period) % 1.0  # [K] position within a bounce, contact at 0
    contact = np.exp(-((np.minimum(u, 1 - u) / 0.1) ** 2))  # 1 at contact, 0 in flight
    stretch_y = 1 - squash * contact + 0.6 * squash * np.abs(1 - 2 * u) * (1 - contact)  # vertical speed ~ |1 - 2u|
    squeeze = 1 / np.sqrt(stretch_y)  # keep the volume
    b.animate(node, "translation", np.outer(4 * height * u * (1 - u), Y_AXIS))  # a parabola per bounce
    b.animate(node, "scale", np.stack([squeeze, stretch_y, squeeze], axis=1))

    params = dict(colour=colour, radius=radius, height=height, speed=speed, squash=squash)
    captions = _captions(_grade(radius, 0.14, 0.21, ("small", "big")), colour, "ball bouncing", _grade(height, 0.55, 0.75, ("low", "high")))
    return b.finish("ball", "bounce", captions, params)


def top(rng: np.random.Generator) -> ProceduralAsset:
    """A striped spinning top on its tip, spinning about its axis while the tilted axis precesses and nods."""
    colour, stripe = _pick(rng, ["red", "blue", "green", "yellow", "purple", "orange"]), _pick(rng, ["white", "black", "yellow"])
    radius, height, stripes = _uniform(rng, 0.25, 0.4), _uniform(rng, 0.45, 0.7), int(rng.integers(3, 6))
    spin, precession, tilt = _uniform(rng, 1.0, 3.0), _uniform(rng, 0.3, 0.8), _uniform(rng, 0.1, 0.3)
    times = clip_times(_uniform(rng, 1.5, 3.0))

    b = _Builder(times)
    shoulder, rim, handle_r = 0.45 * height, 0.1 * height, 0.12 * radius
    rim_arc = [(radius * (0.8 + 0.2 * math.cos(a)), shoulder + rim * math.sin(a)) for a in np.linspace(0, np.pi / 2, 5)]
    body = [[(0, 0), (radius, shoulder)], rim_arc, [rim_arc[-1], (handle_r, shoulder + rim)]]  # cone, rounded rim, flat top
    materials = [b.material(colour, COLOURS[colour], 0.3), b.material(stripe, COLOURS[stripe], 0.3)]
    # Stripes as wedges of alternating colour: without them a spin about a symmetric body would be invisible.
    parts = [(lathe(body, 8, (k / (2 * stripes), (k + 1) / (2 * stripes))), materials[k % 2]) for k in range(2 * stripes)]
    parts.append((cylinder(handle_r, height - shoulder - rim, 12).transform(translation((0, shoulder + rim, 0))), materials[0]))
    node = b.node("top", mesh=b.mesh("top", parts))  # its origin at the tip, the point it spins on
    lean = tilt * (1 + 0.3 * np.sin(2 * np.pi * 3 * times / times[-1]))  # [K] nutation: the tilt nods
    turn = 2 * np.pi * precession * times  # [K] the azimuth the axis leans towards
    spin_about_axis = quat(Y_AXIS, 2 * np.pi * spin * times - turn)  # net spin rate `spin` once the precession is added
    b.animate(node, "rotation", quat_mul(quat(Y_AXIS, turn), quat_mul(quat(X_AXIS, lean), spin_about_axis)))

    params = dict(colour=colour, stripe=stripe, radius=radius, height=height, stripes=stripes, spin=spin, precession=precession, tilt=tilt)
    captions = _captions("", f"{colour} and {stripe}", "toy top spinning", _grade(spin, 1.5, 2.4, ("slowly", "fast")))
    return b.finish("top", "spin", captions, params)


def plant(rng: np.random.Generator) -> ProceduralAsset:
    """A plant in a pot: the stem grows up, leaves unfold along it as it passes them, a flower opens at the end."""
    leaf_colour, flower = _pick(rng, list(LEAF_GREENS)), _pick(rng, ["red", "yellow", "pink", "purple", "white", "orange", "blue"])
    height, leaves, leaf_len = _uniform(rng, 0.5, 0.95), int(rng.integers(3, 7)), _uniform(rng, 0.18, 0.3)
    pot_r, pot_h, duration = _uniform(rng, 0.12, 0.18), _uniform(rng, 0.12, 0.2), _uniform(rng, 1.5, 3.0)
    times = clip_times(duration)
    growth = 0.02 + 0.98 * smoothstep(times / (0.8 * duration))  # [K] stem height fraction; never 0 (singular scale)

    b = _Builder(times)
    green = b.material(leaf_colour, LEAF_GREENS[leaf_colour])
    pot = lathe([[(0, 0), (0.75 * pot_r, 0)], [(0.75 * pot_r, 0), (pot_r, pot_h)], [(pot_r, pot_h), (0.9 * pot_r, pot_h)]])
    b.node("pot", mesh=b.mesh("pot", [(pot, b.material("pot", POT)), (cylinder(0.92 * pot_r, 0.9 * pot_h), b.material("soil", SOIL, 0.9))]))
    stem = b.node("stem", mesh=b.mesh("stem", [(cylinder(0.02, height, 8), green)]), translation=(0, pot_h, 0))
    b.animate(stem, "scale", np.stack([0.5 + 0.5 * growth, growth, 0.5 + 0.5 * growth], axis=1))
    leaf_mesh = b.mesh("leaf", [(ellipsoid((leaf_len / 2, 0.008, 0.22 * leaf_len), (leaf_len / 2, 0, 0), 6, 12), green)])  # base at 0
    for k, at in enumerate(np.linspace(0.2, 0.85, leaves)):
        pose = quat_mul(quat(Y_AXIS, math.radians(137.5 * k)), quat(Z_AXIS, math.radians(30)))  # phyllotaxis, tilted up
        leaf = b.node(f"leaf{k}", mesh=leaf_mesh, rotation=pose)
        unfold = 0.01 + 0.99 * smoothstep((growth - at) / 0.15)  # [K] opens once the stem has passed it
        b.animate(leaf, "translation", np.outer(pot_h + at * height * growth, Y_AXIS))
        b.animate(leaf, "scale", np.repeat(unfold[:, None], 3, axis=1))
    petal = ellipsoid((0.07, 0.01, 0.035), (0.07, 0, 0), 6, 10).transform(rotation(Z_AXIS, 30))  # tilted up: a cup
    petals = Mesh.concat([petal.transform(rotation(Y_AXIS, 60 * k)) for k in range(6)])
    blossom = [(petals, b.material(flower, COLOURS[flower])), (sphere(0.035, 6, 10), b.material("centre", FLOWER_CENTRE))]
    head = b.node("flower", mesh=b.mesh("flower", blossom))
    b.animate(head, "translation", np.outer(pot_h + height * growth, Y_AXIS))
    b.animate(head, "scale", np.repeat(0.01 + 0.99 * smoothstep((times / duration - 0.65) / 0.3)[:, None], 3, axis=1))

    params = dict(leaf_colour=leaf_colour, flower=flower, height=height, leaves=leaves, leaf_length=leaf_len, duration=duration)
    captions = _captions(_grade(height, 0.65, 0.8, ("short", "tall")), leaf_colour, f"plant with {_sentence(flower, 'flower')} growing",
                         _grade(duration, 2.0, 2.6, ("fast", "slowly")))
    return b.finish("plant", "grow", captions, params)


def chest(rng: np.random.Generator) -> ProceduralAsset:
    """An open-topped box whose lid swings open about a hinge along its back edge (node rotation)."""
    colour = _pick(rng, ["brown", "red", "blue", "green", "purple", "black", "grey"])
    width, depth, height = _uniform(rng, 0.5, 0.9), _uniform(rng, 0.35, 0.6), _uniform(rng, 0.25, 0.5)
    opening, duration = _uniform(rng, 80, 120), _uniform(rng, 1.0, 2.5)
    times = clip_times(duration)

    b = _Builder(times)
    wall = 0.03
    sides = [((width, wall, depth), (0, wall / 2, 0)),  # floor
             ((width, height, wall), (0, height / 2, (depth - wall) / 2)), ((width, height, wall), (0, height / 2, -(depth - wall) / 2)),
             ((wall, height, depth), ((width - wall) / 2, height / 2, 0)), ((wall, height, depth), (-(width - wall) / 2, height / 2, 0))]
    wood = b.material(colour, COLOURS[colour])
    b.node("box", mesh=b.mesh("box", [(Mesh.concat([box(s).transform(translation(at)) for s, at in sides]), wood)]))
    lid = box((width + wall, wall, depth + wall)).transform(translation((0, wall / 2, depth / 2)))  # from the hinge forwards
    latch = box((0.15 * width, 0.1 * height, wall)).transform(translation((0, -0.02 * height, depth + wall)))
    hinge = b.node("lid", mesh=b.mesh("lid", [(lid, wood), (latch, b.material("latch", GOLD, 0.3))]), translation=(0, height, -depth / 2))
    angle = -math.radians(opening) * smoothstep((times / duration - 0.1) / 0.75)  # negative about X lifts the front edge
    b.animate(hinge, "rotation", quat(X_AXIS, angle))

    params = dict(colour=colour, width=width, depth=depth, height=height, opening_degrees=opening, duration=duration)
    size = _grade(width * depth * height, 0.08, 0.16, ("small", "large"))
    captions = _captions(size, colour, "box opening", _grade(duration, 1.4, 2.1, ("quickly", "slowly")))
    return b.finish("box", "open", captions, params)


FAMILIES: dict[str, Callable[[np.random.Generator], ProceduralAsset]] = {
    "quadruped": quadruped, "biped": biped, "bird": bird, "fish": fish, "snake": snake,
    "ball": ball, "top": top, "plant": plant, "box": chest,
}


# ----------------------------------------------------------------------------------------------------
# Entry points


def _family_of(index: int, family: str | None) -> str:
    if family is None:
        return list(FAMILIES)[index % len(FAMILIES)]
    if family not in FAMILIES:
        raise ValueError(f"unknown procedural family {family!r}; known families: {', '.join(FAMILIES)}")
    return family


def make_asset(index: int, seed: int = 0, family: str | None = None) -> ProceduralAsset:
    """The asset number `index` of data set `seed`: the same (seed, index, family) always gives the same bytes.

    family: one of FAMILIES; by default the families take turns by index. Raises ValueError for an unknown family.
    """
    family = _family_of(index, family)
    asset = FAMILIES[family](np.random.default_rng([seed, index]))
    return dataclasses.replace(asset, name=f"proc-{family}-{index:05d}")


def write_assets(n: int, out_dir, seed: int = 0) -> list[Path]:
    """Write assets 0..n-1 of data set `seed` as `proc-{family}-{index:05d}.glb` files into `out_dir`.

    Files already there are kept (so an interrupted run resumes); each new file appears atomically, written
    under a temporary name in the same folder and renamed. Returns the n paths. Raises ValueError if n < 0.
    """
    if n < 0:
        raise ValueError(f"asset count must be >= 0, got {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n):
        path = out_dir / f"proc-{_family_of(index, None)}-{index:05d}.glb"
        if not path.exists():
            with atomic_path(path) as tmp:
                make_asset(index, seed).save(tmp)
        paths.append(path)
    return paths


@entry_point
def main(argv: list[str] | None = None) -> None:
    """CLI: write procedural assets and print one line per file with its caption."""
    parser = argparse.ArgumentParser(prog="python -m data.procedural", description="Write procedural animated glTF assets (.glb).")
    parser.add_argument("--count", type=non_negative_int, default=12, help="number of assets; the families take turns")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="data set seed")
    args = parser.parse_args(argv)
    check_output(args.out)
    for path in write_assets(args.count, args.out, args.seed):
        print(f"{path}\t{pygltflib.GLTF2.load(path).asset.extras['caption']}")  # read back, as the ingestion does


if __name__ == "__main__":
    main()
