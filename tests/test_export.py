import imageio.v3 as iio
import pytest
import torch
from plyfile import PlyData

from recon.export import PLY_FIELDS, SH_C0, read_ply, write_frames, write_orbit_video, write_ply
from recon.gaussians import Gaussians
from recon.synthetic import sphere_scene


def _gaussians(n=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen) * 0.3,
        rotations=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=torch.rand(n, 3, generator=gen) * 0.05 + 0.005,
        opacities=torch.rand(n, generator=gen) * 0.98 + 0.01,
        colours=torch.rand(n, 3, generator=gen),
    )


def test_ply_write_read_round_trip(tmp_path):
    g = _gaussians()
    back = read_ply(write_ply(tmp_path / "g.ply", g))
    for name in ("means", "rotations", "scales", "opacities", "colours"):
        assert torch.allclose(getattr(back, name), getattr(g, name), atol=1e-6), name
    assert [p.name for p in tmp_path.iterdir()] == ["g.ply"]  # written atomically: no temporary left behind


def test_ply_uses_the_standard_3dgs_layout(tmp_path):
    g = _gaussians(5)
    vertex = PlyData.read(str(write_ply(tmp_path / "g.ply", g)))["vertex"]
    assert [p.name for p in vertex.properties] == PLY_FIELDS
    assert all(p.val_dtype in ("f4", "float32", "float") for p in vertex.properties)
    assert torch.allclose(torch.tensor(vertex["opacity"]), torch.logit(g.opacities), atol=1e-5)  # logit
    assert torch.allclose(torch.tensor(vertex["scale_0"]), g.scales[:, 0].log(), atol=1e-5)  # log
    assert torch.allclose(torch.tensor(vertex["f_dc_1"]), (g.colours[:, 1] - 0.5) / SH_C0, atol=1e-5)
    assert torch.allclose(torch.tensor(vertex["rot_0"]), g.rotations[:, 0], atol=1e-6)  # w first


def test_write_frames_writes_one_ply_per_frame(tmp_path):
    frames = sphere_scene(3, num_spheres=2, points_per_sphere=10)  # [F, N]
    paths = write_frames(tmp_path, frames)
    assert [p.name for p in paths] == ["frame_000.ply", "frame_001.ply", "frame_002.ply"]
    assert torch.allclose(read_ply(paths[2]).means, frames.means[2])
    with pytest.raises(ValueError, match="one Gaussian set"):
        write_ply(tmp_path / "x.ply", frames)


def test_orbit_video_decodes_with_the_right_frame_count_and_size(tmp_path):
    frames = sphere_scene(4, num_spheres=3, points_per_sphere=60)  # [F, N]
    path = write_orbit_video(tmp_path / "orbit.mp4", frames, size=48, num_video_frames=12, fps=12)
    video = iio.imread(path)  # decoded through imageio-ffmpeg
    assert video.shape == (12, 48, 48, 3)
    assert video.std() > 5  # not a blank video: the spheres are there
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.mp4"]
    with pytest.raises(ValueError, match="even"):
        write_orbit_video(tmp_path / "odd.mp4", frames, size=47)

