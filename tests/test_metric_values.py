"""PSNR, SSIM and the memory measure against values worked out by hand or by scikit-image, not only their ranges."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from evaluation.metrics import masked_psnr, masked_ssim, measure
from recon.losses import SSIM_K, SSIM_WINDOW, psnr, ssim, ssim_map


def test_psnr_is_ten_log_of_one_over_the_mean_squared_error():
    truth = torch.zeros(2, 3, 8, 8)
    rendered = truth.clone()
    rendered[0, :, :4] = 0.2  # image 0: half its pixels 0.2 off -> MSE 0.02
    rendered[1, :, :2] = 0.4  # image 1: a quarter 0.4 off -> MSE 0.04
    per_image = psnr(rendered, truth, dim=(1, 2, 3))  # [2]
    torch.testing.assert_close(per_image, torch.tensor([10 * math.log10(1 / 0.02), 10 * math.log10(1 / 0.04)]))
    # Over the batch it is the PSNR of the mean error (MSE 0.03), not the mean of the two PSNRs (15.5 dB).
    assert psnr(rendered, truth).item() == pytest.approx(10 * math.log10(1 / 0.03), abs=1e-4)


def test_masked_psnr_counts_only_the_error_inside_the_mask():
    truth = torch.full((1, 3, 8, 8), 0.5)
    rendered = truth.clone()
    rendered[..., :, :4] += 0.3  # left half: MSE 0.09 there
    rendered[..., :2, 4:] -= 0.1  # right half: a quarter of it 0.1 off -> MSE 0.0025 over the right half
    right = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    right[..., 4:] = True
    assert masked_psnr(rendered, truth, right).item() == pytest.approx(10 * math.log10(1 / 0.0025), abs=1e-4)
    assert masked_psnr(rendered, truth, ~right).item() == pytest.approx(10 * math.log10(1 / 0.09), abs=1e-4)


@pytest.mark.parametrize("a, b", [(0.2, 0.6), (0.5, 0.5), (0.9, 0.1)])
def test_ssim_of_two_flat_images_is_their_luminance_term(a, b):
    # Flat images have no variance or covariance: the structure term is c2 / c2 = 1 and SSIM is the luminance term.
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    c1 = SSIM_K[0] ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    # float32: the variances E[x^2] - E[x]^2 of bright flat images are zero only to ~1e-7, against c2 = 9e-4.
    assert ssim(x, y).item() == pytest.approx(expected, abs=2e-4)
    torch.testing.assert_close(ssim_map(x, y), torch.full((1, 3, 6, 6), expected), atol=2e-4, rtol=0)


def _scene(size: int = 48) -> torch.Tensor:
    """A structured RGB image [3, H, W] in [0, 1]: smooth gradients, a bright square with hard edges, fine texture."""
    gen = torch.Generator().manual_seed(0)
    rows, cols = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([rows, cols, 0.5 + 0.3 * torch.sin(8 * rows + 5 * cols)])  # [3, H, W]
    image[:, size // 4 : size // 2, size // 3 : 2 * size // 3] = 0.9
    return (image + 0.05 * torch.rand(image.shape, generator=gen)).clamp(0, 1)


def _degradations(image: torch.Tensor) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    blur = torch.nn.functional.avg_pool2d(image[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    return {
        "noise": (image + 0.1 * torch.randn(image.shape, generator=gen)).clamp(0, 1),
        "blur": blur,
        "contrast": 0.5 + 0.5 * (image - 0.5),
        "shift": (image + 0.15).clamp(0, 1),
    }


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor, full: bool = False):
    """scikit-image's SSIM of RGB [3, H, W] with Wang et al.'s settings: an 11-tap Gaussian window of sigma 1.5
    (truncate 3.5), population covariances, K = (0.01, 0.03), data range 1."""
    return structural_similarity(x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy(), data_range=1.0,
                                 channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=full)


@pytest.mark.parametrize("kind", ["noise", "blur", "contrast", "shift"])
def test_ssim_of_a_degraded_image_matches_scikit_image(kind):
    truth = _scene()
    degraded = _degradations(truth)[kind]
    expected = _skimage_ssim(degraded, truth)
    assert expected < 0.97  # a real degradation, so a constant SSIM of 1 could not pass
    assert ssim(degraded[None], truth[None]).item() == pytest.approx(expected, abs=1e-4)
    assert ssim_map(degraded[None], truth[None]).mean().item() == pytest.approx(expected, abs=1e-4)


def test_masked_ssim_averages_scikit_images_map_over_the_masked_centres():
    truth = _scene()
    degraded = _degradations(truth)["noise"]
    mask = torch.zeros(1, 48, 48, dtype=torch.bool)
    mask[:, 10:30, 8:40] = True
    _, full = _skimage_ssim(degraded, truth, full=True)  # [H, W, 3]; its valid centres are those SSIM_WINDOW // 2 from the border
    r = SSIM_WINDOW // 2
    inside = mask[0, r:-r, r:-r].numpy()
    expected = full[r:-r, r:-r][inside].mean()
    assert masked_ssim(degraded, truth, mask).item() == pytest.approx(expected, abs=1e-4)
    assert abs(expected - _skimage_ssim(degraded, truth)) > 1e-3  # the mask changes the answer


def test_measure_reports_the_peak_of_the_call_not_of_the_process():
    size_mb = 256

    def allocate():
        block = np.ones(size_mb * 2**20, dtype=np.uint8)  # touched, so resident
        return int(block[::4096].sum())

    _, big = measure(torch.device("cpu"), allocate)
    _, small = measure(torch.device("cpu"), lambda: None)  # after the big call: its peak must not carry over
    assert big["peak_mb"] - small["peak_mb"] > 0.8 * size_mb
