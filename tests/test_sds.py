"""baselines/sds.py: score distillation of 4D Gaussians with the package's own prior (tiny model, CPU)."""
from __future__ import annotations

import pytest
import torch

from baselines.sds import SDSConfig, distill, load_prior, noise_bound, sds_loss

TINY = dict(num_gaussians=150, lr=5e-2, means_lr=1e-2, offsets_lr=1e-2)


@pytest.fixture(scope="module")
def prior(tiny_model):
    """The tiny model's pipeline with a random (not zero-initialised) output layer, so its velocities are not all 0."""
    pipeline = load_prior(tiny_model)
    torch.manual_seed(0)
    torch.nn.init.normal_(pipeline.transformer.final_layer.linear.weight, std=0.02)
    return pipeline


def mean(history: list[dict], key: str, part: slice) -> float:
    values = [h[key] for h in history[part]]
    return sum(values) / len(values)


def test_sds_gradient_is_x0_minus_denoised_estimate():
    x0 = torch.randn(1, 2, 3, 3, 4, 4, requires_grad=True)
    x0_hat = torch.randn(1, 2, 3, 3, 4, 4)
    sds_loss(x0, x0_hat, torch.ones(1)).backward()
    assert torch.allclose(x0.grad, (x0 - x0_hat).detach() / x0.numel())


def test_noise_bound_anneals_from_sigma_max_to_sigma_min():
    bounds = [noise_bound(s, 5, 0.9, 0.1) for s in range(5)]
    assert bounds[0] == pytest.approx(0.9) and bounds[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(bounds, bounds[1:]))


def test_sds_loss_falls_over_a_few_steps_on_a_tiny_model(prior):
    # A fixed noise level isolates the optimisation from the annealing (which moves the loss's scale on purpose).
    config = SDSConfig(iters=12, sigma_max=0.5, sigma_min=0.5, guidance=3.0, **TINY)
    history: list[dict] = []
    gaussians = distill(prior, "a red ball", config=config, history=history, progress=False)
    assert tuple(gaussians.batch_shape) == (prior.defaults.num_frames,) and gaussians.num_gaussians == 150
    assert mean(history, "sds", slice(-3, None)) < mean(history, "sds", slice(0, 3))


def test_video_to_4d_fits_the_given_view(prior):
    video = torch.rand(3, 3, 16, 16) * 0.2 + torch.tensor([0.8, 0.1, 0.1])[:, None, None]  # reddish frames
    history: list[dict] = []
    gaussians = distill(prior, "a red ball", video=video, elevation=10.0, config=SDSConfig(iters=12, **TINY), history=history, progress=False)
    assert tuple(gaussians.batch_shape) == (3,)
    assert mean(history, "photometric", slice(-3, None)) < mean(history, "photometric", slice(0, 3))


def test_zero_iterations_is_a_clear_error(prior):
    with pytest.raises(ValueError, match="at least one iteration"):
        distill(prior, "a red ball", config=SDSConfig(iters=0), progress=False)


def test_a_prior_that_cannot_take_the_mode_is_a_clear_error(prior, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="no view to distil"):
        distill(prior, "a red ball", image=torch.rand(3, 16, 16), config=SDSConfig(iters=1, views=1), progress=False)
    (tmp_path / "recon").mkdir()  # a folder with a Gaussian head but no diffusion model
    with pytest.raises(ValueError, match="no diffusion pipeline"):
        load_prior(tmp_path)
