import math

import pytest
import torch

from data import cameras as cam


def test_orbit_cameras_look_at_origin_and_are_rigid():
    c2w = cam.orbit_c2w(torch.tensor([0.0, 20.0, -10.0]), cam.ring_azimuths(3), radius=2.0, num_frames=4)
    assert c2w.shape == (3, 4, 4, 4)
    rot = c2w[..., :3, :3]
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand_as(rot), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3, 4), atol=1e-5)  # right-handed
    assert torch.allclose(c2w[..., :3, 3].norm(dim=-1), torch.full((3, 4), 2.0))
    uv, depth = cam.project_points(torch.zeros(3, 4, 1, 3), c2w, cam.intrinsics_from_fov(40).expand(3, 4, 3, 3))
    assert torch.allclose(uv, torch.full_like(uv, 0.5), atol=1e-5)
    assert torch.allclose(depth, torch.full_like(depth, 2.0))


def test_front_camera_sees_up_as_up_and_x_as_right():
    c2w = cam.orbit_c2w(torch.tensor([0.0]), torch.tensor([0.0]), radius=3.0)[:, 0]  # [1, 4, 4]
    K = cam.intrinsics_from_fov(60)
    uv, _ = cam.project_points(torch.tensor([[[0.0, 0.5, 0.0], [0.5, 0.0, 0.0]]]), c2w, K[None])
    assert uv[0, 0, 1] < 0.5  # +Y (up) is above the centre: smaller row coordinate
    assert uv[0, 1, 0] > 0.5  # +X is to the right seen from the front (+Z)


def test_azimuth_90_camera_sits_on_plus_x():
    c2w = cam.orbit_c2w(torch.tensor([0.0]), torch.tensor([90.0]), radius=2.0)
    assert torch.allclose(c2w[0, 0, :3, 3], torch.tensor([2.0, 0.0, 0.0]), atol=1e-6)


def test_intrinsics_round_trip_and_fov():
    K = cam.intrinsics_from_fov(50.0)
    assert math.isclose(cam.fov_from_intrinsics(K), 50.0, rel_tol=1e-6)
    pix = cam.denormalize_intrinsics(K, 48, 64)
    assert pix[0, 2] == 32 and pix[1, 2] == 24
    assert torch.allclose(cam.normalize_intrinsics(pix, 48, 64), K)
    with pytest.raises(ValueError, match="field of view"):
        cam.intrinsics_from_fov(0.0)


def test_plucker_rays_stay_fp32_under_bf16_autocast():
    c2w = cam.orbit_c2w(torch.tensor([15.0]), cam.ring_azimuths(1), radius=2.0, num_frames=2)  # [1, 2, 4, 4]
    K = cam.intrinsics_from_fov(40)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under accelerate's mixed precision
        rays = cam.plucker_rays(c2w, K, 8, 8)  # [1, 2, 6, 8, 8]
    assert rays.dtype == torch.float32
    torch.testing.assert_close(rays, cam.plucker_rays(c2w, K, 8, 8), rtol=0, atol=0)


def test_plucker_centre_ray_points_from_camera_through_origin():
    c2w = cam.orbit_c2w(torch.tensor([15.0]), torch.tensor([40.0]), radius=2.0)[0, 0]
    rays = cam.plucker_rays(c2w, cam.intrinsics_from_fov(40), 9, 9)  # [6, 9, 9]
    d, m = rays[:3, 4, 4], rays[3:, 4, 4]
    assert torch.allclose(d, -c2w[:3, 3] / 2.0, atol=1e-5)  # centre pixel looks at the origin
    assert torch.allclose(m, torch.zeros(3), atol=1e-5)  # the ray passes through the origin: zero moment
    assert torch.allclose(rays[:3].norm(dim=0), torch.ones(9, 9), atol=1e-5)
    assert torch.allclose((rays[:3] * rays[3:]).sum(0), torch.zeros(9, 9), atol=1e-5)  # d . m = 0


def test_pixel_rays_reproject_to_their_pixel():
    c2w = cam.orbit_c2w(torch.tensor([10.0]), torch.tensor([-30.0]), radius=2.5)[0, 0]
    K = cam.intrinsics_from_fov(45)
    origins, dirs = cam.pixel_rays(c2w, K, 6, 8)
    points = (origins + 1.7 * dirs).reshape(-1, 3)
    uv, _ = cam.project_points(points, c2w, K)
    j, i = torch.meshgrid(torch.arange(8), torch.arange(6), indexing="xy")
    expected = torch.stack([(j + 0.5) / 8, (i + 0.5) / 6], dim=-1).reshape(-1, 2)
    assert torch.allclose(uv, expected, atol=1e-5)


def test_blender_conversion_round_trips_and_keeps_view_direction():
    c2w = cam.orbit_c2w(torch.tensor([25.0]), torch.tensor([70.0]), radius=2.0)[0, 0]
    blender = cam.to_blender_c2w(c2w)
    assert torch.allclose(cam.from_blender_c2w(blender), c2w, atol=1e-6)
    # A Blender camera looks down its local -z; that direction is ours (+z), moved to Blender's world.
    assert torch.allclose(-blender[:3, 2], cam.gltf_to_blender_points(c2w[:3, 2]), atol=1e-6)
    assert torch.allclose(cam.blender_to_gltf_points(cam.gltf_to_blender_points(c2w[:3, 3])), c2w[:3, 3])
    assert torch.allclose(cam.gltf_to_blender_points(torch.tensor([0.0, 1.0, 0.0])), torch.tensor([0.0, 0.0, 1.0]))


def test_gsplat_cameras_are_inverse_and_in_pixels():
    c2w = cam.orbit_c2w(torch.tensor([0.0, 30.0]), torch.tensor([0.0, 180.0]), 2.0, 2)
    viewmats, Ks = cam.to_gsplat(c2w, cam.intrinsics_from_fov(40).expand(2, 2, 3, 3), 32, 64)
    assert torch.allclose(viewmats @ c2w, torch.eye(4).expand_as(c2w), atol=1e-5)
    assert torch.allclose(Ks[..., 0, 2], torch.full((2, 2), 32.0)) and torch.allclose(Ks[..., 1, 2], torch.full((2, 2), 16.0))


def test_look_at_straight_down_is_rejected():
    with pytest.raises(ValueError, match="straight up or down"):
        cam.look_at(torch.tensor([0.0, 2.0, 0.0]), torch.zeros(3))


def test_fit_distance_keeps_sphere_inside_view():
    d = cam.fit_distance(40.0, 0.5)
    assert 0.5 / d < math.sin(math.radians(20.0))


def test_rotating_about_up_moves_along_the_orbit():
    c2w = cam.orbit_c2w(torch.tensor([20.0]), torch.tensor([30.0]), radius=2.0)[0, 0]
    moved = cam.rotate_about_up(c2w, 45.0)
    expected = cam.orbit_c2w(torch.tensor([20.0]), torch.tensor([75.0]), radius=2.0)[0, 0]
    assert torch.allclose(moved, expected, atol=1e-5)


def test_the_canonical_ring_puts_view_0_at_azimuth_0_and_keeps_the_cameras_relative_poses():
    rings = torch.stack([cam.orbit_c2w(torch.tensor([10.0, 10.0, 25.0]), torch.tensor([a, a + 120.0, a + 200.0]), 2.0, 3)
                         for a in (37.0, -150.0)])  # [B=2, V=3, F=3, 4, 4]
    turned = cam.canonical_ring(rings)  # [2, 3, 3, 4, 4]
    expected = cam.orbit_c2w(torch.tensor([10.0, 10.0, 25.0]), torch.tensor([0.0, 120.0, 200.0]), 2.0, 3)
    assert torch.allclose(turned, expected.expand_as(turned), atol=1e-5)
    relative = torch.linalg.inv(rings[:, :1]) @ rings  # [2, 3, 3, 4, 4]: every camera seen from view 0's
    assert torch.allclose(torch.linalg.inv(turned[:, :1]) @ turned, relative, atol=1e-5)
    assert torch.allclose(cam.camera_azimuth(turned[:, :, 0]), torch.tensor([0.0, 120.0, -160.0]).expand(2, 3), atol=1e-4)


def test_pixel_size_at_origin_is_the_width_a_pixel_spans_there():
    c2w = cam.orbit_c2w(torch.zeros(4), cam.ring_azimuths(4), radius=2.0, num_frames=3)  # [V, F, 4, 4]
    K = cam.intrinsics_from_fov(40.0).expand(4, 3, 3)
    expected = 2.0 * 2 * math.tan(math.radians(20.0)) / 64  # the view's width at distance 2, over 64 pixels
    assert cam.pixel_size_at_origin(c2w, K, 64) == pytest.approx(expected, rel=1e-5)
    assert cam.pixel_size_at_origin(c2w, K, 256) == pytest.approx(expected / 4, rel=1e-5)
