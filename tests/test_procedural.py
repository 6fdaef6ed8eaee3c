import numpy as np
import pygltflib
import pytest

from data import procedural as proc

# The word each family's caption must use for its motion.
MOTION_WORDS = {
    "quadruped": "walking", "biped": "walking", "bird": "flapping", "fish": "swimming", "snake": "slithering",
    "ball": "bouncing", "top": "spinning", "plant": "growing", "box": "opening",
}
GROUNDED = {"quadruped", "biped", "snake", "ball", "top", "plant", "box"}  # rest on y = 0 (glTF up)

_NUMPY = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_BYTE: np.uint8,
          pygltflib.UNSIGNED_SHORT: np.uint16, pygltflib.UNSIGNED_INT: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _read(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """An accessor's data [count, width] from a .glb loaded with pygltflib (tightly packed views)."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    data = np.frombuffer(gltf.binary_blob(), _NUMPY[accessor.componentType], offset=view.byteOffset + (accessor.byteOffset or 0),
                         count=accessor.count * _WIDTH[accessor.type])
    return data.reshape(accessor.count, -1)


@pytest.mark.parametrize("family", list(proc.FAMILIES))
def test_every_family_writes_a_valid_animated_glb_with_a_caption_naming_its_motion(family, tmp_path):
    asset = proc.make_asset(3, seed=7, family=family)
    path = asset.save(tmp_path / "asset.glb")
    assert path.stat().st_size < 200_000
    gltf = pygltflib.GLTF2.load(path)

    extras = gltf.asset.extras
    assert extras["generator"] == "zoetrope4d.procedural" and extras["family"] == family
    assert extras["caption"] == asset.caption and MOTION_WORDS[family] in asset.caption.split()
    assert extras["params"] == asset.params

    for mesh in gltf.meshes:
        for primitive in mesh.primitives:
            accessor = gltf.accessors[primitive.attributes.POSITION]
            positions = _read(gltf, primitive.attributes.POSITION)
            np.testing.assert_allclose(accessor.min, positions.min(0), atol=1e-6)
            np.testing.assert_allclose(accessor.max, positions.max(0), atol=1e-6)
            np.testing.assert_allclose(np.linalg.norm(_read(gltf, primitive.attributes.NORMAL), axis=1), 1.0, atol=1e-4)
            assert _read(gltf, primitive.indices).max() < len(positions)
            if primitive.attributes.JOINTS_0 is not None:
                np.testing.assert_allclose(_read(gltf, primitive.attributes.WEIGHTS_0).sum(1), 1.0, atol=1e-5)
                assert _read(gltf, primitive.attributes.JOINTS_0).max() < len(gltf.skins[0].joints)

    (animation,) = gltf.animations
    assert animation.name == asset.clip
    for sampler in animation.samplers:
        times = gltf.accessors[sampler.input]
        assert times.min == [0.0] and 1.0 <= times.max[0] <= 3.0
        assert gltf.accessors[sampler.output].count == times.count
    assert all(channel.target.node < len(gltf.nodes) for channel in animation.channels)


def test_same_seed_and_index_give_identical_bytes_and_other_seeds_differ():
    for family in proc.FAMILIES:
        first = proc.make_asset(5, seed=1, family=family)
        assert first.to_bytes() == proc.make_asset(5, seed=1, family=family).to_bytes()
        other = proc.make_asset(5, seed=2, family=family)
        assert other.params != first.params and other.to_bytes() != first.to_bytes()


def test_families_take_turns_by_index_and_names_carry_the_index():
    names = list(proc.FAMILIES)
    for index in range(len(names) + 2):
        asset = proc.make_asset(index)
        assert asset.family == names[index % len(names)] and asset.name == f"proc-{asset.family}-{index:05d}"


def test_write_assets_names_files_by_family_and_index_and_keeps_existing_ones(tmp_path):
    paths = proc.write_assets(3, tmp_path, seed=0)
    assert [p.name for p in paths] == [f"proc-{name}-{i:05d}.glb" for i, name in enumerate(list(proc.FAMILIES)[:3])]
    paths[1].write_bytes(b"kept")
    assert proc.write_assets(3, tmp_path, seed=0) == paths
    assert paths[1].read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary files left


def test_cli_prints_one_line_with_its_caption_per_file(tmp_path, capsys):
    proc.main(["--count", "2", "--out", str(tmp_path), "--seed", "4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for index, line in enumerate(lines):
        path, caption = line.split("\t")
        assert path.endswith(f"{index:05d}.glb") and caption == proc.make_asset(index, seed=4).caption


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="known families: quadruped"):
        proc.make_asset(0, family="dragon")
    with pytest.raises(ValueError, match=">= 0"):
        proc.write_assets(-1, "unused")


def _world_vertices(bpy, frame: int) -> np.ndarray:
    """Evaluated (skinned, animated) world-space vertices [P, 3] of every mesh object at `frame`, Blender axes."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    clouds = []
    # visible_get() skips the importer's bone-shape "Icosphere" (a hidden collection named glTF_not_exported).
    for obj in sorted((o for o in scene.objects if o.type == "MESH" and o.visible_get()), key=lambda o: o.name):
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        co = np.empty(3 * len(mesh.vertices))
        mesh.vertices.foreach_get("co", co)
        matrix = np.array(evaluated.matrix_world)
        clouds.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
        evaluated.to_mesh_clear()
    return np.concatenate(clouds)


@pytest.mark.blender
@pytest.mark.parametrize("family", list(proc.FAMILIES))
def test_every_family_imports_into_blender_and_its_geometry_moves(family, tmp_path):
    bpy = pytest.importorskip("bpy")
    path = proc.make_asset(0, seed=3, family=family).save(tmp_path / f"{family}.glb")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    (action,) = bpy.data.actions
    start, end = (int(round(f)) for f in action.frame_range)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = start, end  # the importer leaves the scene at 1-250
    assert end - start >= 24  # at least 1 s at 24 fps

    clouds = np.stack([_world_vertices(bpy, frame) for frame in range(start, end + 1, 2)])  # [frames, P, 3]
    assert np.isfinite(clouds).all()
    low, high = clouds.reshape(-1, 3).min(0), clouds.reshape(-1, 3).max(0)  # union bounding box over the clip
    assert 0.3 < (high - low).max() < 2.5  # roughly unit size
    moved = np.linalg.norm(clouds - clouds[0], axis=-1).max()  # largest move of a vertex away from its first pose
    assert moved > 0.05 * (high - low).max()  # a static asset gives 0
    if family in GROUNDED:  # Blender's +Z is glTF's +Y (up): resting on the floor, never sinking through it
        assert abs(low[2]) < 0.02
