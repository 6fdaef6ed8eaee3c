"""evaluation.metrics against known answers."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from evaluation.learned import load_learned_metrics
from evaluation.metrics import flicker, flicker_error, geometry_metrics, ghosting, image_metrics, masked_psnr, masked_ssim, measure
from recon.render import RenderOutput
from recon.losses import psnr, ssim, ssim_map


def grey(*shape: int, value: float = 0.5) -> torch.Tensor:
    return torch.full(shape, value)


def test_identical_images_score_the_psnr_cap_and_ssim_one():
    x = torch.rand(2, 3, 32, 32)
    everywhere = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    assert psnr(x, x).item() == pytest.approx(100.0) and masked_psnr(x, x, everywhere).item() == pytest.approx(100.0)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5) and masked_ssim(x, x, everywhere).item() == pytest.approx(1.0, abs=1e-5)


def test_a_constant_shift_of_a_tenth_is_20_db():
    x = grey(1, 3, 16, 16)
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0, abs=1e-4)
    assert masked_psnr(x + 0.1, x, torch.ones(1, 1, 16, 16, dtype=torch.bool)).item() == pytest.approx(20.0, abs=1e-4)


def test_gaussian_noise_of_std_0_05_is_about_26_db():
    x = grey(4, 3, 64, 64)
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert psnr(noisy, x).item() == pytest.approx(20 * math.log10(1 / 0.05), abs=0.1)


def test_ssim_map_averages_to_recon_losses_ssim():
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    assert ssim_map(x, y).mean().item() == pytest.approx(ssim(x, y).item(), abs=1e-5)


def test_masked_metrics_ignore_the_background():
    truth = torch.rand(1, 3, 32, 32)
    rendered = truth.clone()
    rendered[..., 24:] = 1 - truth[..., 24:]  # wrong only on the right, more than an SSIM window away from the mask
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    mask[..., :16] = True
    assert masked_psnr(rendered, truth, mask).item() == pytest.approx(100.0)
    assert masked_ssim(rendered, truth, mask).item() == pytest.approx(1.0, abs=1e-5)
    assert psnr(rendered, truth).item() < 20 and ssim(rendered, truth).item() < 0.9


def test_flicker_of_a_still_clip_is_zero_and_of_a_blinking_one_is_one():
    still = grey(2, 4, 3, 8, 8)  # [V, F, 3, H, W]
    blinking = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)] * 2)  # [F, 3, H, W]
    assert flicker(still).item() == 0 and flicker(blinking).item() == 1
    assert flicker_error(blinking, still[0]).item() == 1 and flicker_error(blinking, blinking).item() == 0


def test_image_metrics_of_a_perfect_render_over_white():
    truth = torch.cat([torch.rand(1, 3, 3, 16, 16), (torch.rand(1, 3, 1, 16, 16) > 0.5).float()], dim=2)  # RGBA [1, F, 4, H, W]
    rendered = truth[:, :, :3] * truth[:, :, 3:] + (1 - truth[:, :, 3:])  # the truth over white
    metrics = image_metrics(rendered, truth)
    assert metrics["psnr"] == pytest.approx(100.0) and metrics["psnr_masked"] == pytest.approx(100.0)
    assert metrics["flicker_error"] == pytest.approx(0.0, abs=1e-7)


def test_measure_reports_seconds_and_peak_memory():
    result, cost = measure(torch.device("cpu"), lambda n: torch.ones(n).sum().item(), 4_000_000)  # a 16 MB tensor
    assert result == 4_000_000 and cost["seconds"] >= 0 and cost["peak_mb"] > 16


def tiny_clip(folder: Path) -> Path:
    """A random CLIP small enough to build in a second, with a character-level tokenizer and a 32 px processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate([*letters, *(c + "</w>" for c in letters), "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    size = {"shortest_edge": 32}
    processor = CLIPProcessor(CLIPImageProcessor(size=size, crop_size={"height": 32, "width": 32}), tokenizer)
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(small, vocab_size=len(vocab), bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1),
                        vision_config=dict(small, image_size=32, patch_size=8), projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_clip_score_is_100_times_the_models_own_cosine(tmp_path):
    metrics = load_learned_metrics(str(tiny_clip(tmp_path)))
    assert metrics.clip_model is not None and not any("CLIP" in s for s in metrics.skipped)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    score = metrics.score(images, None, "a red fox")["clip_score"]
    inputs = metrics.clip_processor(text=["a red fox"], images=list(images), return_tensors="pt", do_rescale=False)
    with torch.no_grad():
        out = metrics.clip_model(**inputs)  # the forward pass: logits = exp(logit_scale) * cosine
    cosine = out.logits_per_image[:, 0] / metrics.clip_model.logit_scale.exp()  # [3]
    assert score == pytest.approx((100 * cosine.clamp(min=0)).mean().item(), abs=1e-4)


def test_learned_metrics_without_local_weights_are_skipped_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # as on this machine: no lpips package
    metrics = load_learned_metrics(str(tmp_path / "no-such-clip"))
    assert metrics.clip_model is None and metrics.lpips is None
    reasons = " | ".join(metrics.skipped)
    assert "CLIP score skipped" in reasons and "LPIPS skipped" in reasons and "FVD skipped" in reasons
    scores = metrics.score(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), "a fox")
    assert math.isnan(scores["clip_score"]) and math.isnan(scores["lpips"])


def _silhouette(size: int = 32) -> torch.Tensor:
    """A true RGBA [2, 4, H, W] (two views) with a soft-edged square object."""
    rgba = torch.zeros(2, 4, size, size)
    rgba[:, :, 8:20, 10:22] = 1.0
    rgba[:, 3, 7, 10:22] = 0.4  # an anti-aliased edge row
    return rgba


def test_ghosting_is_zero_for_the_truth_and_about_half_for_two_offset_copies():
    truth = _silhouette()
    alpha = truth[:, 3:]  # [2, 1, H, W]
    assert ghosting(alpha, alpha).item() == 0.0
    assert ghosting(torch.roll(alpha, 1, dims=-1), alpha).item() == 0.0  # a one-pixel shift is within the margin
    copies = (alpha + torch.roll(alpha, 10, dims=-1)).clamp(max=1)  # the object and a copy beside it, as ghosting heads draw
    assert 0.4 < ghosting(copies, alpha).item() < 0.5
    assert ghosting(torch.zeros_like(alpha), alpha).item() == 0.0  # nothing rendered: no ghost


def test_depth_error_is_zero_for_the_true_depth_and_counts_holes():
    truth = _silhouette()
    alpha = truth[:, 3:]
    depth = torch.where(alpha > 0.5, 1.5 + 0.1 * torch.rand_like(alpha), torch.zeros(()))  # [2, 1, H, W]
    exact = geometry_metrics(RenderOutput(rgb=truth[:, :3], alpha=alpha, depth=depth), truth, depth)
    assert exact == {"ghosting": 0.0, "depth_error": 0.0}
    shifted = geometry_metrics(RenderOutput(rgb=truth[:, :3], alpha=alpha, depth=depth + 0.2), truth, depth)
    assert shifted["depth_error"] == pytest.approx(0.2)
    empty = geometry_metrics(RenderOutput(rgb=truth[:, :3], alpha=0 * alpha, depth=0 * depth), truth, depth)
    assert empty["depth_error"] == pytest.approx(depth[alpha > 0.5].mean().item())  # a hole costs its whole depth
    assert "depth_error" not in geometry_metrics(RenderOutput(rgb=truth[:, :3], alpha=alpha, depth=depth), truth, None)
