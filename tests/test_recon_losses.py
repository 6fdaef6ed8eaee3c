import logging
import sys

import pytest
import torch

from recon.head import build_head
from recon.losses import LossWeights, composite, depth_loss, image_loss, load_lpips, outside_loss, psnr, recon_loss, ssim
from recon.refine import temporal_smoothness
from recon.render import RenderOutput
from recon.synthetic import input_views, synthetic_clip


def test_ssim_of_identical_images_is_one_and_noise_lowers_it():
    x = torch.rand(2, 3, 3, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)) < 0.9


def test_composite_puts_rgba_over_the_background():
    rgba = torch.tensor([0.2, 0.4, 0.6, 0.25]).view(4, 1, 1).expand(4, 2, 2)
    expected = torch.tensor([0.2, 0.4, 0.6]) * 0.25 + torch.tensor([1.0, 0.0, 0.5]) * 0.75
    assert torch.allclose(composite(rgba, torch.tensor([1.0, 0.0, 0.5])), expected.view(3, 1, 1).expand(3, 2, 2))


def test_image_loss_of_a_perfect_render_is_zero():
    target = torch.rand(2, 4, 16, 16)
    perfect = RenderOutput(rgb=composite(target, 1.0), alpha=target[:, 3:], depth=torch.zeros(2, 1, 16, 16))
    loss, metrics = image_loss(perfect, target, 1.0, LossWeights())
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and metrics["psnr"] >= 99


def test_psnr_per_view():
    x = torch.zeros(2, 10)
    y = torch.stack([torch.full((10,), 0.1), torch.full((10,), 0.01)])
    assert torch.allclose(psnr(x, y, dim=-1), torch.tensor([20.0, 40.0]))


def test_lpips_is_optional_and_says_why_it_is_missing(caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # as on a machine without the package or its weights
    with caplog.at_level(logging.WARNING):
        assert load_lpips() is None
    assert "LPIPS unavailable" in caplog.text


def test_recon_loss_trains_the_head_end_to_end():
    torch.manual_seed(0)
    elevations, azimuths = input_views(3)
    batch = synthetic_clip(elevations, azimuths, num_frames=2, size=16)
    head = build_head("tiny")
    loss, metrics = recon_loss(head, batch, num_input_views=2)  # the third view is supervision only
    loss.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert set(metrics) >= {"mse", "ssim", "alpha", "psnr"}
    with pytest.raises(ValueError, match="input views"):
        recon_loss(head, batch, num_input_views=4)


def test_depth_loss_is_zero_for_the_true_depth_and_positive_otherwise():
    alpha = torch.zeros(2, 1, 8, 8)
    alpha[..., 2:6, 2:6] = 1.0  # the object: 16 pixels per image
    truth = torch.where(alpha > 0.5, torch.rand(2, 1, 8, 8) + 1.0, torch.zeros(()))  # [2, 1, 8, 8], 0: no surface
    assert depth_loss(truth, truth, alpha).item() == 0.0
    assert depth_loss(truth + 0.25 * (alpha > 0.5), truth, alpha).item() == pytest.approx(0.25)  # L1 inside
    assert depth_loss(truth - 0.1, truth, alpha).item() == pytest.approx(0.1)
    assert depth_loss(truth + 5.0 * (alpha < 0.5), truth, alpha).item() == 0.0  # outside the silhouette is not scored
    hole = alpha.clone()
    hole[0] = 0.0  # the render covers nothing in the first image: with its alpha given, only the second one counts
    assert depth_loss(truth + 0.25 * (torch.arange(2) == 1).view(2, 1, 1, 1), truth, alpha, hole).item() == pytest.approx(0.25)


def test_outside_loss_is_zero_for_the_true_silhouette_and_positive_for_an_offset_copy():
    alpha = torch.zeros(1, 1, 16, 16)
    alpha[..., 4:8, 4:8] = 1.0
    assert outside_loss(alpha, alpha).item() == 0.0
    ghost = (alpha + torch.roll(alpha, shifts=6, dims=-1)).clamp(max=1)  # the object plus a copy beside it
    assert outside_loss(ghost, alpha).item() == pytest.approx(16 / 256)


def test_recon_loss_with_geometry_terms_trains_and_needs_depth():
    torch.manual_seed(0)
    batch = synthetic_clip(*input_views(3), num_frames=2, size=16)
    head = build_head("tiny")
    weights = LossWeights(depth=1.0, outside=1.0)
    loss, metrics = recon_loss(head, batch, num_input_views=2, weights=weights)
    plain, _ = recon_loss(head, batch, num_input_views=2)
    assert metrics["depth"] > 0 and metrics["outside"] > 0
    assert loss.item() == pytest.approx(plain.item() + metrics["depth"] + metrics["outside"], rel=1e-5)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="needs true depth"):
        recon_loss(head, {k: v for k, v in batch.items() if k != "depth"}, num_input_views=2, weights=weights)


def test_temporal_smoothness_ignores_shared_corrections_and_penalises_jitter():
    reference = torch.randn(3, 10, 3)  # [F, N, 3]
    assert temporal_smoothness(reference + torch.tensor([0.1, 0.0, -0.2]), reference) < 1e-12
    jitter = reference.clone()
    jitter[1] += 0.1
    assert temporal_smoothness(jitter, reference) > 0
