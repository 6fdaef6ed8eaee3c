"""Render one animated glTF clip with Blender (bpy) into V views x F frames of RGBA, with exact cameras.

Runs inside a Python that can `import bpy` (the `render` extra). The build runs each asset in its own
process (`python -m data.build worker JOB.json RESULT.json`), so a Blender crash costs one asset, not the run.

What happens for a clip:
  1. import the file into an empty scene, activate the clip's action on every animated datablock;
  2. sample F times over the clip (at most `max_seconds` of it), evaluate the deformed meshes at each
     and take the union bounding box, so motion is kept (no per-frame normalisation);
  3. place the cameras: an orbit ring of V views plus optional extra supervision views, all looking at
     the box centre at a distance that fits the box's bounding sphere. Stored cameras live in the
     normalised object frame (centre at the origin, bounding-sphere radius OBJECT_RADIUS); scaling the
     scene and the camera distance together leaves images unchanged, so the object is never moved;
  4. render every view at every time with Cycles on the CPU, transparent film (alpha channel), and, unless
     `depth` is off, the view layer's Z pass: depth along each camera's z axis, written by the compositor's
     File Output node as a float32 EXR per render and read back through bpy (no extra dependency). Blender's
     depth is in the asset's own units and is scaled into the normalised object frame; background (no surface,
     Blender's 1e10) is stored as 0.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data import cameras


@dataclass
class RenderSettings:
    """How to render a clip. Angles in degrees."""

    views: int = 4  # orbit ring views (inputs of the diffusion model)
    frames: int = 8  # time samples over the clip
    size: int = 64  # square image side in pixels
    extra_views: int = 0  # random supervision views for the reconstruction head
    elevation: float | None = 15.0  # ring elevation; None draws one in elevation_range per clip
    elevation_range: tuple[float, float] = (-5.0, 30.0)  # for random ring and extra views (L4GM's range)
    fov: float = 40.0
    samples: int = 8  # Cycles samples per pixel
    max_seconds: float = 4.0  # longer clips are cut to their first max_seconds, so motion speed stays comparable
    lighting: str = "studio"  # "studio": fixed key light; "random": random key direction and strength
    engine: str = "CYCLES"  # or "BLENDER_EEVEE" (software GL here: slow)
    seed: int = 0  # azimuth offset, random elevations, lighting
    threads: int = 0  # Blender render threads; 0 lets Blender use every core
    depth: bool = True  # also render the Z pass (depth along the camera's z axis)


@dataclass
class RenderedClip:
    """A rendered clip: images uint8 [V, F, H, W, 4] (V = views + extra_views), depth and its metadata."""

    images: np.ndarray
    depth: np.ndarray | None  # float32 [V, F, H, W] along each camera's z axis, normalised units; 0: no surface
    c2w: torch.Tensor  # [V, F, 4, 4] normalised object frame, OpenCV axes
    K: torch.Tensor  # [V, 3, 3] normalised intrinsics
    times: torch.Tensor  # [F] in [0, 1]
    elevations: list[float]
    azimuths: list[float]
    fps: float
    duration: float  # seconds of the clip covered by the frames
    center: list[float]  # union bounding-box centre in glTF world units
    scale: float  # glTF world units -> normalised units


def camera_angles(settings: RenderSettings, rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Elevations and azimuths [V + extra] of the ring (evenly spaced, random offset) and the extra views."""
    low, high = settings.elevation_range
    ring_elevation = settings.elevation if settings.elevation is not None else float(rng.uniform(low, high))
    offset = float(rng.uniform(0.0, 360.0 / settings.views))
    azimuths = cameras.ring_azimuths(settings.views, offset).tolist()
    elevations = [ring_elevation] * settings.views
    elevations += rng.uniform(low, high, settings.extra_views).tolist()
    azimuths += rng.uniform(0.0, 360.0, settings.extra_views).tolist()
    return elevations, azimuths


# ----------------------------------------------------------------------------- Blender scene set-up


def _bpy():
    try:
        import bpy
    except ImportError as err:
        raise RuntimeError("Blender rendering needs bpy: pip install -e '.[render]' (Python 3.11)") from err
    return bpy


def import_clip(path: Path, clip_name: str) -> tuple[int, int, float]:
    """Import `path` into an empty scene and make `clip_name` the active animation of every datablock.

    The glTF importer makes one action per animation and datablock, keeps each as an NLA track named after
    the animation, and leaves an arbitrary one active: so each datablock gets its track's action (and slot),
    and the NLA is switched off so other clips cannot blend in. Returns (first frame, last frame, fps).
    """
    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    ranges = []
    owners = list(bpy.data.objects) + [k for k in bpy.data.shape_keys]
    for owner in owners:
        anim = owner.animation_data
        if anim is None:
            continue
        track = anim.nla_tracks.get(clip_name)
        action = track.strips[0].action if track and track.strips else None
        anim.use_nla = False
        anim.action = action
        if action is not None:
            if anim.action_slot is None and len(action.slots):  # pick the slot made for this datablock
                anim.action_slot = action.slots[0]
            ranges.append(tuple(action.frame_range))
    if not ranges:
        raise ValueError(f"{path}: no datablock is animated by clip {clip_name!r}")
    scene = bpy.context.scene
    start, end = min(r[0] for r in ranges), max(r[1] for r in ranges)
    scene.frame_start, scene.frame_end = int(math.floor(start)), int(math.ceil(end))  # the import leaves 1-250
    return start, end, scene.render.fps / scene.render.fps_base


def clip_frames(start: float, end: float, fps: float, frames: int, max_seconds: float) -> tuple[np.ndarray, float]:
    """Blender frame numbers [F] (fractional) evenly spread over the clip, and the seconds they cover."""
    end = min(end, start + max_seconds * fps)
    return np.linspace(start, end, frames), (end - start) / fps


def _set_frame(scene, frame: float) -> None:
    scene.frame_set(int(math.floor(frame)), subframe=float(frame - math.floor(frame)))


def _render_meshes():
    bpy = _bpy()
    return [ob for ob in bpy.context.scene.objects if ob.type == "MESH" and ob.visible_get() and not ob.hide_render]


def evaluated_vertices() -> np.ndarray:
    """World-space vertices [N, 3] (Blender axes) of every rendered mesh at the current frame, deformed."""
    bpy = _bpy()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    chunks = []
    for ob in _render_meshes():
        evaluated = ob.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        matrix = np.array(evaluated.matrix_world, dtype=np.float32)  # [4, 4]
        chunks.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
        evaluated.to_mesh_clear()
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError("the scene has no visible mesh to render")
    return np.concatenate(chunks)


def union_bounds(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre [3] (glTF axes) and half-diagonal of the bounding box of the meshes over all `frames`."""
    scene = _bpy().context.scene
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for frame in frames:
        _set_frame(scene, frame)
        verts = evaluated_vertices()
        lo, hi = np.minimum(lo, verts.min(0)), np.maximum(hi, verts.max(0))
    if not np.isfinite(lo).all() or not np.isfinite(hi).all():
        raise ValueError("the animated meshes have non-finite vertex positions")
    centre = cameras.blender_to_gltf_points(torch.tensor((lo + hi) / 2, dtype=torch.float32)).numpy()
    return centre, float(np.linalg.norm(hi - lo) / 2)


def setup_render(settings: RenderSettings, rng: np.random.Generator) -> None:
    """Cycles on the CPU, transparent film, neutral colour management, a grey sky and one key light."""
    bpy = _bpy()
    scene = bpy.context.scene
    scene.render.engine = settings.engine
    scene.render.resolution_x = scene.render.resolution_y = settings.size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.threads_mode = "FIXED" if settings.threads else "AUTO"
    scene.render.threads = max(1, settings.threads)
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"  # keep base colours as authored (no filmic curve)
    if settings.engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = settings.samples
        scene.cycles.use_denoising = False  # 8 samples at 64 px: denoising costs more than it gives
        scene.cycles.max_bounces = 2
        scene.cycles.seed = settings.seed
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.6, 0.6, 1.0)
    scene.world = world
    sun = bpy.data.objects.new("key", bpy.data.lights.new("key", type="SUN"))
    scene.collection.objects.link(sun)
    random_light = settings.lighting == "random"
    sun.data.energy = float(rng.uniform(1.5, 4.0)) if random_light else 2.5
    tilt, turn = (rng.uniform(20, 70), rng.uniform(0, 360)) if random_light else (45.0, 30.0)
    sun.rotation_euler = (math.radians(float(tilt)), 0.0, math.radians(float(turn)))


def _blender_camera(K: torch.Tensor):
    bpy = _bpy()
    if not (torch.allclose(K[:2, 2], torch.tensor([0.5, 0.5])) and torch.isclose(K[0, 0], K[1, 1])):
        raise ValueError("Blender rendering supports square images with a centred principal point only")
    data = bpy.data.cameras.new("view")
    data.sensor_fit = "HORIZONTAL"
    data.angle = math.radians(cameras.fov_from_intrinsics(K))
    data.clip_start, data.clip_end = 0.01, 1000.0
    ob = bpy.data.objects.new("view", data)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.scene.camera = ob
    return ob


def _depth_output(folder: Path) -> None:
    """Turn on the Z pass and a compositor File Output node that writes it to `folder` as a float32 EXR at every
    render (Blender 5's compositor node groups). The node group has no Group Output, so the saved RGBA is the
    render result as before."""
    bpy = _bpy()
    scene = bpy.context.scene
    for layer in scene.view_layers:
        layer.use_pass_z = True
    tree = bpy.data.node_groups.new("depth", "CompositorNodeTree")
    scene.compositing_node_group = tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.directory, out.file_name = str(folder) + "/", "z"
    out.format.media_type = "IMAGE"
    out.format.file_format, out.format.color_depth, out.format.exr_codec = "OPEN_EXR", "32", "ZIP"
    out.file_output_items.clear()
    out.file_output_items.new("FLOAT", "Depth")
    tree.links.new(layers.outputs["Depth"], out.inputs["Depth"])


def _read_depth(folder: Path, far: float) -> np.ndarray:
    """The depth [H, W] (Blender units, top row first) the File Output node wrote to `folder`, 0 where no surface
    (Blender writes 1e10 there, beyond the camera's far clip `far`). The file is removed, so a render that wrote
    none fails here instead of leaving a stale one to be read."""
    bpy = _bpy()
    written = list(folder.glob("*.exr"))
    if len(written) != 1:
        raise RuntimeError(f"expected one depth EXR from Blender's compositor, found {[p.name for p in written]}")
    image = bpy.data.images.load(str(written[0]))
    try:
        width, height = image.size
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
        written[0].unlink()
    depth = pixels.reshape(height, width, -1)[::-1, :, 0]  # Blender images start at the bottom row
    return np.where(np.isfinite(depth) & (depth < far), depth, 0.0).astype(np.float32)


def render_views(
    c2w_world: torch.Tensor, K: torch.Tensor, frames: np.ndarray, size: int, depth: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render cameras c2w_world [V, F, 4, 4] (glTF world units, OpenCV axes) at Blender `frames` [F].

    Returns uint8 RGBA [V, F, H, W, 4] and, when `depth`, float32 depth [V, F, H, W] in glTF world units along
    each camera's z axis (0: no surface), else None.
    """
    from PIL import Image

    bpy = _bpy()
    scene = bpy.context.scene
    camera = _blender_camera(K)
    blender_c2w = cameras.to_blender_c2w(c2w_world)  # [V, F, 4, 4]
    out = np.zeros((c2w_world.shape[0], len(frames), size, size, 4), dtype=np.uint8)
    depths = np.zeros(out.shape[:-1], dtype=np.float32) if depth else None  # [V, F, H, W]
    with tempfile.TemporaryDirectory() as tmp:
        target, depth_folder = Path(tmp) / "frame.png", Path(tmp) / "depth"
        scene.render.filepath = str(target)
        if depth:
            _depth_output(depth_folder)
        for f, frame in enumerate(frames):
            _set_frame(scene, frame)
            for v in range(c2w_world.shape[0]):
                camera.matrix_world = blender_c2w[v, f].T.tolist()  # mathutils takes rows
                bpy.ops.render.render(write_still=True)
                out[v, f] = np.asarray(Image.open(target).convert("RGBA"))
                if depth:
                    depths[v, f] = _read_depth(depth_folder, camera.data.clip_end)
    return out, depths


def render_clip(path: str | Path, clip_name: str, settings: RenderSettings) -> RenderedClip:
    """Import, normalise and render one clip; see the module docstring."""
    rng = np.random.default_rng(settings.seed)
    start, end, fps = import_clip(Path(path), clip_name)
    frames, duration = clip_frames(start, end, fps, settings.frames, settings.max_seconds)
    centre, half_diagonal = union_bounds(frames)
    if half_diagonal <= 1e-8:
        raise ValueError(f"{path}: clip {clip_name!r} has a degenerate (zero-size) bounding box")
    scale = cameras.OBJECT_RADIUS / half_diagonal

    elevations, azimuths = camera_angles(settings, rng)
    distance = cameras.fit_distance(settings.fov)
    c2w = cameras.orbit_c2w(torch.tensor(elevations), torch.tensor(azimuths), distance, settings.frames)  # [V, F, 4, 4]
    K = cameras.intrinsics_from_fov(settings.fov)  # [3, 3]
    c2w_world = c2w.clone()  # the same cameras in the asset's own units
    c2w_world[..., :3, 3] = c2w[..., :3, 3] / scale + torch.tensor(centre, dtype=torch.float32)

    setup_render(settings, rng)
    images, depth = render_views(c2w_world, K, frames, settings.size, settings.depth)
    return RenderedClip(
        images=images, depth=None if depth is None else depth * np.float32(scale), c2w=c2w, K=K.expand(len(elevations), 3, 3).clone(),
        times=torch.linspace(0.0, 1.0, settings.frames), elevations=elevations, azimuths=azimuths,
        fps=fps, duration=duration, center=centre.tolist(), scale=scale,
    )
