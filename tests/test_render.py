import time

import pytest
import torch

from data import cameras as cam
from recon.gaussians import Gaussians
from recon.render import ALPHA_MAX, render

FOV, SIZE = 40.0, 32


def _camera(elevation=10.0, azimuth=30.0, radius=2.0):
    """One orbit camera: c2w [4, 4] and normalised K [3, 3]."""
    return cam.orbit_c2w(torch.tensor([elevation]), torch.tensor([azimuth]), radius)[0, 0], cam.intrinsics_from_fov(FOV)


def _gaussians(means, colours, opacities, scale=0.03):
    """Isotropic Gaussians from means [..., N, 3], colours [..., N, 3], opacities [..., N]."""
    means = torch.as_tensor(means, dtype=torch.float32)
    return Gaussians(
        means=means,
        rotations=torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(means.shape[:-1] + (4,)),
        scales=torch.full(means.shape[:-1] + (3,), scale),
        opacities=torch.as_tensor(opacities, dtype=torch.float32).expand(means.shape[:-1]),
        colours=torch.as_tensor(colours, dtype=torch.float32).expand(means.shape),
    )


def _point_on_pixel(c2w, K, row, col, depth):
    """A world point [3] on the ray through the centre of pixel (row, col) at `depth` along the ray."""
    origins, dirs = cam.pixel_rays(c2w, K, SIZE, SIZE)
    return origins[row, col] + depth * dirs[row, col]


def _random_scene(n, seed=0, batch=()):
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(*batch, n, 3, generator=gen) * 0.2,
        rotations=torch.nn.functional.normalize(torch.randn(*batch, n, 4, generator=gen), dim=-1),
        scales=torch.rand(*batch, n, 3, generator=gen) * 0.04 + 0.01,
        opacities=torch.rand(*batch, n, generator=gen) * 0.9 + 0.05,
        colours=torch.rand(*batch, n, 3, generator=gen),
    )


@pytest.mark.parametrize("opacity", [0.6, 1.0])
def test_single_gaussian_lands_on_its_projected_pixel_with_the_expected_peak(opacity):
    c2w, K = _camera()
    point = _point_on_pixel(c2w, K, row=11, col=20, depth=2.1)
    uv, _ = cam.project_points(point[None], c2w, K)
    expected_pixel = (uv[0] * SIZE - 0.5).round().long().tolist()  # (col, row)
    colour = torch.tensor([0.9, 0.4, 0.1])
    out = render(_gaussians(point[None], colour, opacity), c2w[None], K, SIZE, SIZE, background=0.0)
    alpha = out.alpha[0, 0]  # [H, W]
    row, col = divmod(int(alpha.argmax()), SIZE)
    assert [col, row] == expected_pixel == [20, 11]
    peak = min(opacity, ALPHA_MAX)  # alpha is opacity at the centre, capped at 0.999 like gsplat
    assert alpha[row, col] == pytest.approx(peak, abs=1e-4)
    assert torch.allclose(out.rgb[0, :, row, col], peak * colour, atol=1e-4)


def test_front_gaussian_covers_the_one_behind_and_swapping_depths_swaps_the_colour():
    c2w, K = _camera()
    near, far = _point_on_pixel(c2w, K, 16, 16, 1.8), _point_on_pixel(c2w, K, 16, 16, 2.3)
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    for means, front in (([near, far], red), ([far, near], blue)):
        g = _gaussians(torch.stack(means), torch.tensor([red, blue]), 1.0)
        rgb = render(g, c2w[None], K, SIZE, SIZE).rgb[0, :, 16, 16]
        assert torch.allclose(rgb, torch.tensor(front), atol=2e-3)


def test_alpha_and_depth_are_sane():
    c2w, K = _camera()
    point = _point_on_pixel(c2w, K, 8, 8, 2.0)
    out = render(_gaussians(point[None], [0.5, 0.5, 0.5], 0.8), c2w[None], K, SIZE, SIZE, background=1.0)
    _, z = cam.project_points(point[None], c2w, K)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1
    assert out.depth[0, 0, 8, 8] == pytest.approx(float(z[0]), abs=1e-5)  # expected depth = the Gaussian's camera z
    far_away = out.alpha[0, 0, 24:, 24:]
    assert (far_away == 0).all() and (out.depth[0, 0, 24:, 24:] == 0).all()
    assert torch.allclose(out.rgb[0, :, 24:, 24:], torch.ones(3, 8, 8))  # background where nothing is


def test_gradients_match_finite_differences_with_and_without_chunks():
    c2w = cam.orbit_c2w(torch.tensor([10.0, -20.0]), torch.tensor([0.0, 70.0]), 2.0)[:, 0].double()  # [2, 4, 4]
    K = cam.intrinsics_from_fov(FOV).double()
    scene = _random_scene(5, seed=1).map(lambda t: t.double().requires_grad_())

    def images(means, rotations, scales, opacities, colours, max_pairs):
        g = Gaussians(means, torch.nn.functional.normalize(rotations, dim=-1), scales, opacities, colours)
        out = render(g, c2w, K, 10, 10, background=0.3, max_pairs=max_pairs)
        return out.rgb, out.alpha, out.depth

    args = (scene.means, scene.rotations, scene.scales, scene.opacities, scene.colours)
    for max_pairs in (None, 16):  # 16 pairs per chunk: many chunks, transmittance carried between them
        assert torch.autograd.gradcheck(lambda *a: images(*a, max_pairs), args, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_gradient_descent_moves_a_gaussian_onto_its_target():
    c2w, K = _camera()
    target_point, start_point = _point_on_pixel(c2w, K, 14, 17, 2.0), _point_on_pixel(c2w, K, 17, 14, 2.0)
    target = render(_gaussians(target_point[None], [0.2, 0.8, 0.3], 0.9, scale=0.05), c2w[None], K, SIZE, SIZE, 1.0).rgb
    mean = start_point[None].clone().requires_grad_()
    opt = torch.optim.Adam([mean], lr=0.005)
    for _ in range(150):
        rgb = render(_gaussians(mean, [0.2, 0.8, 0.3], 0.9, scale=0.05), c2w[None], K, SIZE, SIZE, 1.0).rgb
        loss = (rgb - target).square().mean()
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(mean.grad).all()
        opt.step()
    uv, _ = cam.project_points(mean.detach(), c2w, K)
    uv_target, _ = cam.project_points(target_point[None], c2w, K)
    assert (uv - uv_target).norm() * SIZE < 0.1  # within a tenth of a pixel in the image
    assert (start_point - target_point).norm() > 0.1  # it travelled three pixels


def test_chunked_render_equals_one_chunk():
    c2w, K = _camera()
    scene = _random_scene(300)
    whole = render(scene, c2w[None], K, SIZE, SIZE, background=0.5, max_pairs=None)
    chunked = render(scene, c2w[None], K, SIZE, SIZE, background=0.5, max_pairs=500)
    for name in ("rgb", "alpha", "depth"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-5), name


def test_batched_cameras_match_per_camera_renders():
    scene = _random_scene(200, batch=(2,))  # [B=2, N]
    c2w = cam.orbit_c2w(torch.tensor([0.0, 20.0, -15.0]), cam.ring_azimuths(3), 2.0, num_frames=2).transpose(0, 1)  # [B, V, 4, 4]
    K = cam.intrinsics_from_fov(FOV)
    background = torch.rand(2, 3, 3)  # [B, V, 3]: a colour per image
    batched = render(scene, c2w, K, 24, 20, background)
    for b in range(2):
        for v in range(3):
            single = render(scene.map(lambda t: t[b]), c2w[b, v][None], K, 24, 20, background[b, v])
            assert torch.allclose(batched.rgb[b, v], single.rgb[0], atol=1e-6)
            assert torch.allclose(batched.depth[b, v], single.depth[0], atol=1e-5)
    assert batched.rgb.shape == (2, 3, 3, 24, 20) and batched.alpha.shape == (2, 3, 1, 24, 20)


def test_zero_gaussians_render_the_background():
    c2w, K = _camera()
    empty = _gaussians(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0))
    out = render(empty, c2w[None], K, 8, 8, background=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(out.rgb[0], torch.tensor([0.1, 0.2, 0.3])[:, None, None].expand(3, 8, 8))
    assert (out.alpha == 0).all() and (out.depth == 0).all()


def test_gaussians_behind_a_camera_inside_the_object_are_culled():
    c2w, K = _camera(radius=0.1)  # the camera sits inside the object sphere
    ahead, behind = c2w[:3, 3] + 0.5 * c2w[:3, 2], c2w[:3, 3] - 0.3 * c2w[:3, 2]  # on its optical axis
    at_camera = c2w[:3, 3]  # exactly at the camera centre: depth 0, culled too
    scene = _gaussians(torch.stack([ahead, behind, at_camera]), torch.eye(3), 0.9).map(lambda t: t.clone().requires_grad_())
    out = render(scene, c2w[None], K, SIZE, SIZE)
    only_ahead = render(scene.map(lambda t: t[:1]), c2w[None], K, SIZE, SIZE)
    assert torch.equal(out.rgb, only_ahead.rgb) and out.alpha.max() > 0.5
    out.rgb.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (scene.means, scene.scales, scene.opacities))
    assert scene.opacities.grad[1:].abs().sum() == 0  # culled Gaussians get no gradient


def test_mismatched_batch_shapes_and_bad_backends_raise():
    scene = _random_scene(10, batch=(2,))
    c2w, K = _camera()
    with pytest.raises(ValueError, match="batch shape"):
        render(scene, c2w.expand(3, 1, 4, 4), K, 8, 8)  # 3 camera sets for 2 Gaussian sets
    with pytest.raises(ValueError, match="K"):
        render(scene, c2w.expand(2, 1, 4, 4), K.expand(3, 1, 3, 3), 8, 8)
    with pytest.raises(ValueError, match="CUDA"):
        render(scene, c2w.expand(2, 1, 4, 4), K, 8, 8, backend="gsplat")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat's kernels")
def test_torch_path_matches_gsplat_on_cuda():
    device = torch.device("cuda")
    scene = _random_scene(2000, seed=3, batch=(2,)).map(lambda t: t.to(device))
    c2w = cam.orbit_c2w(torch.tensor([15.0, -5.0]), cam.ring_azimuths(2), 1.6, num_frames=2).transpose(0, 1).to(device)
    K = cam.intrinsics_from_fov(FOV).to(device)
    ours = render(scene, c2w, K, 64, 64, background=1.0, backend="torch")
    theirs = render(scene, c2w, K, 64, 64, background=1.0, backend="gsplat")
    diffs = {name: (getattr(ours, name) - getattr(theirs, name)).abs().mean().item() for name in ("rgb", "alpha", "depth")}
    print(f"\ntorch path vs gsplat, mean absolute difference: {diffs}")
    assert diffs["rgb"] < 1e-3 and diffs["alpha"] < 1e-3 and diffs["depth"] < 1e-2

    big = _random_scene(65536, seed=4).map(lambda t: t.to(device))
    one = (c2w[0, :1], K)
    render(big, *one, 256, 256, backend="gsplat")  # warm-up: kernel load
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        render(big, *one, 256, 256, backend="gsplat")
    torch.cuda.synchronize()
    print(f"gsplat, 65,536 Gaussians, 256x256: {(time.perf_counter() - start) * 100:.2f} ms per frame on {torch.cuda.get_device_name()}")


def test_smoothing_spreads_each_splat_wider_and_fainter_by_the_quarter_power_of_its_widening():
    c2w, K = _camera()
    point = _point_on_pixel(c2w, K, row=16, col=16, depth=2.0)
    splat = _gaussians(point[None], torch.ones(3), 0.8, scale=0.02)
    sigma = cam.pixel_size_at_origin(c2w, K, SIZE)  # one pixel's world size
    smooth = splat.smoothed(sigma)
    assert torch.allclose(smooth.scales, (0.02**2 + sigma**2) ** 0.5 * torch.ones(1, 3))
    kept = lambda g: g.opacities.square() * g.scales.prod(-1)  # noqa: E731  opacity^2 sqrt(det(covariance)): unchanged
    assert torch.allclose(kept(smooth), kept(splat)) and torch.equal(smooth.means, splat.means)
    before, after = (render(g, c2w[None], K, SIZE, SIZE, background=0.0).alpha[0, 0] for g in (splat, smooth))
    assert after.max() < 0.5 * before.max()  # lower at the centre...
    assert (after > 0.01).sum() > 2 * (before > 0.01).sum()  # ...and spread over more pixels
    same = splat.smoothed(0.0)
    assert torch.equal(same.scales, splat.scales) and torch.equal(same.opacities, splat.opacities)
    with pytest.raises(ValueError, match="smoothing sigma"):
        splat.smoothed(-0.01)
