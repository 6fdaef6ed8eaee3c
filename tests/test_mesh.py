"""recon.mesh: the density-field surface of Gaussians and the animated .glb (pygltflib round trip, Blender import)."""
from __future__ import annotations

import base64

import numpy as np
import pygltflib
import pytest
import torch

from recon.gaussians import Gaussians
from recon.mesh import density_grid, extract_mesh, extract_meshes, write_animated_glb


def shell(n: int = 3000, radius: float = 0.3, shift: float = 0.0, floaters: int = 500, seed: int = 0) -> Gaussians:
    """Opaque Gaussians on a sphere (red on top, blue below) plus faint white floaters around it, like the
    background splats a generated set holds."""
    gen = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)  # [n, 3]
    far = torch.nn.functional.normalize(torch.randn(floaters, 3, generator=gen), dim=-1) * 0.55  # [floaters, 3]
    top = (d[:, 1:2] > 0).float()  # [n, 1]
    return Gaussians(
        means=torch.cat([d * radius, far]) + torch.tensor([shift, 0.0, 0.0]),
        rotations=torch.nn.functional.normalize(torch.randn(n + floaters, 4, generator=gen), dim=-1),
        scales=torch.full((n + floaters, 3), 0.03),
        opacities=torch.cat([torch.full((n,), 0.9), torch.full((floaters,), 0.01)]),
        colours=torch.cat([top * torch.tensor([0.9, 0.1, 0.1]) + (1 - top) * torch.tensor([0.1, 0.1, 0.9]), torch.ones(floaters, 3)]),
    )


def test_density_grid_peaks_at_the_gaussians_and_averages_their_colours():
    g = shell(floaters=0)
    grid = density_grid(g, resolution=32)
    assert grid.density.shape == grid.colour.shape[:3] and max(grid.density.shape) == 32 and grid.colour.shape[-1] == 3
    on_shell, centre = grid.sample(g.means.numpy(), grid.density), grid.sample(np.zeros((1, 3)), grid.density)
    assert np.median(on_shell) > 20 * centre[0]  # a hollow ball: dense on the shell, empty inside
    top = grid.sample(np.array([[0.0, 0.3, 0.0]]), grid.colour)[0]
    assert top[0] > 0.8 and top[2] < 0.2  # the red Gaussians' colour
    with pytest.raises(ValueError, match="one non-empty Gaussian set"):
        density_grid(g.map(lambda t: t[None]))


def test_surface_wraps_the_opaque_gaussians_and_leaves_faint_floaters_out():
    g = shell()
    mesh = extract_mesh(g, resolution=48)
    v, faces = mesh.vertices, mesh.faces.astype(np.int64)
    assert v.dtype == np.float32 and faces.max() < len(v) and mesh.colours.shape == v.shape
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # closed: every edge is shared by exactly two triangles
    assert np.linalg.norm(v, axis=1).max() < 0.4  # the floaters at radius 0.55 are not wrapped
    # Every opaque mean lies just inside the surface: within two standard deviations (0.06) of a vertex.
    nearest = torch.cdist(g.means[:3000], torch.from_numpy(v)).min(1).values  # [3000]
    assert (nearest < 0.06).float().mean() > 0.95
    # Counter-clockwise seen from outside: triangle normals point away from the centre, as the vertex normals do.
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    outward = (np.cross(b - a, c - a) * (a + b + c)).sum(1)  # [T]
    assert (outward > 0).mean() > 0.95 and ((mesh.normals * v).sum(1) > 0).mean() > 0.95
    top, bottom = mesh.colours[v[:, 1] > 0.2], mesh.colours[v[:, 1] < -0.2]
    assert top[:, 0].mean() > 0.7 > top[:, 2].mean() and bottom[:, 2].mean() > 0.7 > bottom[:, 0].mean()


def test_bad_input_raises():
    with pytest.raises(ValueError, match="enclose"):
        extract_mesh(shell(), enclose=1.0)
    with pytest.raises(ValueError, match=r"\[F, N\]"):
        extract_meshes(shell())
    with pytest.raises(ValueError, match="at least one mesh"):
        write_animated_glb("unused.glb", [])


def test_invisible_gaussians_give_an_empty_frame(tmp_path):
    faint = shell(floaters=0)
    empty = extract_mesh(Gaussians(faint.means, faint.rotations, faint.scales, torch.full_like(faint.opacities, 1e-3), faint.colours), 32)
    assert empty.vertices.shape == (0, 3) and empty.faces.shape == (0, 3)
    gltf = pygltflib.GLTF2().load(str(write_animated_glb(tmp_path / "a.glb", [extract_mesh(faint, 32), empty])))
    assert gltf.nodes[1].mesh is not None and gltf.nodes[2].mesh is None and len(gltf.animations[0].channels) == 2


def moving_meshes(frames: int = 3) -> list:
    """A ball moving along +x, one mesh per frame."""
    clip = [shell(n=800, floaters=0, shift=0.2 * f, seed=f) for f in range(frames)]
    return extract_meshes(Gaussians(*(torch.stack([getattr(g, k) for g in clip]) for k in ("means", "rotations", "scales", "opacities", "colours"))), resolution=32)


def test_animated_glb_shows_each_frame_at_its_time(tmp_path):
    meshes = moving_meshes()
    path = write_animated_glb(tmp_path / "animated.glb", meshes, fps=8)
    assert [p.name for p in tmp_path.iterdir()] == ["animated.glb"]  # written atomically
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def read(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32, pygltflib.UNSIGNED_BYTE: np.uint8}[acc.componentType]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
        return np.frombuffer(blob, dtype, acc.count * width, view.byteOffset).reshape(acc.count, width)

    assert gltf.nodes[0].children == [1, 2, 3] and gltf.scenes[0].nodes == [0]
    (animation,) = gltf.animations
    assert len(animation.channels) == 3 and {s.interpolation for s in animation.samplers} == {"STEP"}
    np.testing.assert_allclose(read(animation.samplers[0].input)[:, 0], [0, 1 / 8, 2 / 8, 3 / 8])
    shown = np.stack([read(animation.samplers[c.sampler].output)[:, 0] for c in animation.channels])  # [node, key]
    assert [c.target.node for c in animation.channels] == [1, 2, 3] and {c.target.path for c in animation.channels} == {"scale"}
    np.testing.assert_array_equal(shown, [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])  # key k shows frame k (then 0 again)
    for f, mesh in enumerate(meshes):
        (primitive,) = gltf.meshes[gltf.nodes[f + 1].mesh].primitives
        np.testing.assert_array_equal(read(primitive.attributes.POSITION), mesh.vertices)
        colours = read(primitive.attributes.COLOR_0)
        assert gltf.accessors[primitive.attributes.COLOR_0].normalized and colours.shape == (len(mesh.vertices), 4)
        np.testing.assert_allclose(colours[:, :3] / 255, mesh.colours, atol=1 / 255)
        np.testing.assert_array_equal(read(primitive.indices).reshape(-1, 3), mesh.faces)
    centres = [m.vertices[:, 0].mean() for m in meshes]
    assert centres[0] + 0.15 < centres[1] < centres[2] - 0.15  # the mesh moves with the Gaussians


@pytest.mark.blender
def test_animated_glb_plays_in_blender(tmp_path):
    bpy = pytest.importorskip("bpy")
    path = write_animated_glb(tmp_path / "animated.glb", moving_meshes(), fps=8)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    scene = bpy.context.scene
    meshes = sorted((o for o in scene.objects if o.type == "MESH"), key=lambda o: o.name)
    assert len(meshes) == 3 and all(o.data.color_attributes for o in meshes)  # vertex colours came along
    start = min(a.frame_range[0] for a in bpy.data.actions)
    end = max(a.frame_range[1] for a in bpy.data.actions)
    per_frame = scene.render.fps / 8  # Blender frames per animation frame
    assert end - start >= 3 * per_frame - 1e-3  # the three frames and the hold of the last one
    shown = []
    for f in range(3):
        scene.frame_set(int(round(start + (f + 0.5) * per_frame)))
        visible = [o for o in meshes if min(o.matrix_world.to_scale()) > 0.5]
        assert len(visible) == 1 and all(max(o.matrix_world.to_scale()) < 1e-6 for o in meshes if o not in visible)
        obj = visible[0]
        shown.append(np.mean([(obj.matrix_world @ v.co).x for v in obj.data.vertices]))  # glTF +x is Blender +x
    assert shown[0] + 0.15 < shown[1] < shown[2] - 0.15  # the visible mesh moves along with frame


def test_animated_glb_plays_in_threejs(browser, tmp_path):
    """three.js's GLTFLoader (bundled in the viewer's script) loads the file and its animation shows frame f at f / fps."""
    from viewer.page import HERE

    path = write_animated_glb(tmp_path / "animated.glb", moving_meshes(), fps=8)
    page = browser.new_page()
    page.set_content(f"<script>{(HERE / 'static' / 'splats.min.js').read_text()}</script>")
    shown = page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const gltf = await new GLTFLoader().parseAsync(bytes.buffer, "");
        const mixer = new THREE.AnimationMixer(gltf.scene);
        mixer.clipAction(gltf.animations[0]).play();
        const frames = gltf.scene.children[0].children;
        return [0.01, 0.135, 0.26, 0.385].map((t) => { mixer.setTime(t); return frames.filter((n) => n.scale.x > 0.5).map((n) => n.name); })
            .concat([[gltf.animations.length, gltf.animations[0].duration]]);
    }""", base64.b64encode(path.read_bytes()).decode())
    assert shown == [["frame_000"], ["frame_001"], ["frame_002"], ["frame_000"], [1, 3 / 8]]  # then it loops
    page.close()
