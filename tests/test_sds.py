"""baselines/sds.py and dg4d.py: score distillation of 4D Gaussians with the package's own prior (tiny model, CPU)."""
from __future__ import annotations

import pytest
import torch

from baselines import dg4d
from baselines.sds import Request, SDSConfig, distill, load_prior, noise_bound, sds_loss

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
    gaussians = distill(prior, Request("a red ball"), config=config, history=history, progress=False)[-1].gaussians
    assert tuple(gaussians.batch_shape) == (prior.defaults.num_frames,) and gaussians.num_gaussians == 150
    assert mean(history, "sds", slice(-3, None)) < mean(history, "sds", slice(0, 3))


def test_snapshots_at_checkpoints_are_the_run_so_far(prior):
    config = SDSConfig(iters=4, checkpoints=(1, 3), **TINY)
    snapshots = distill(prior, Request("a red ball"), config=config, progress=False)
    assert [s.iters for s in snapshots] == [1, 3, 4]
    assert 0 < snapshots[0].seconds < snapshots[1].seconds < snapshots[2].seconds
    shorter = distill(prior, Request("a red ball"), config=SDSConfig(iters=3, checkpoints=(1,), **TINY), progress=False)
    assert torch.equal(shorter[0].gaussians.means, snapshots[0].gaussians.means)  # the same seed, the same first step
    assert not torch.equal(snapshots[1].gaussians.means, snapshots[2].gaussians.means)


def test_dg4d_fits_static_gaussians_then_their_motion(prior):
    video = torch.rand(3, 3, 16, 16) * 0.2 + torch.tensor([0.8, 0.1, 0.1])[:, None, None]  # reddish frames
    video[1:, :, 4:8] = 1.0  # a band that opens after the first frame: the motion the second stage must fit
    config = SDSConfig(iters=24, static_iters=12, sigma_max=0.5, sigma_min=0.5, deform_lr=2e-2, **TINY)
    history: list[dict] = []
    snapshots = dg4d.distill(prior, Request("a red ball", video=video, elevation=10.0), config=config, history=history, progress=False)
    static, moving = history[:12], history[12:]
    assert mean(static, "photometric", slice(-3, None)) < mean(static, "photometric", slice(0, 3))  # stage 1 fits the view
    assert mean(moving, "photometric", slice(-3, None)) < mean(moving, "photometric", slice(0, 3))  # stage 2 fits the video
    final = snapshots[-1].gaussians  # [F, N]
    assert tuple(final.batch_shape) == (3,) and final.num_gaussians == 150
    assert not torch.allclose(final.means[0], final.means[2])  # the deformation moves them over time


def test_video_to_4d_fits_the_given_view(prior):
    video = torch.rand(3, 3, 16, 16) * 0.2 + torch.tensor([0.8, 0.1, 0.1])[:, None, None]  # reddish frames
    history: list[dict] = []
    snapshots = distill(prior, Request("a red ball", video=video, elevation=10.0), config=SDSConfig(iters=12, **TINY), history=history, progress=False)
    assert tuple(snapshots[-1].gaussians.batch_shape) == (3,)
    assert mean(history, "photometric", slice(-3, None)) < mean(history, "photometric", slice(0, 3))


@pytest.mark.parametrize("recipe", [distill, dg4d.distill])
def test_zero_iterations_or_checkpoints_outside_the_run_are_clear_errors(prior, recipe):
    with pytest.raises(ValueError, match="at least one iteration"):
        recipe(prior, Request("a red ball"), config=SDSConfig(iters=0), progress=False)
    with pytest.raises(ValueError, match="checkpoints must lie in"):
        recipe(prior, Request("a red ball"), config=SDSConfig(iters=3, checkpoints=(0, 5)), progress=False)


def test_a_prior_that_cannot_take_the_mode_is_a_clear_error(prior, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="no view to distil"):
        distill(prior, Request("a red ball", image=torch.rand(3, 16, 16)), config=SDSConfig(iters=1, views=1), progress=False)
    (tmp_path / "recon").mkdir()  # a folder with a Gaussian head but no diffusion model
    with pytest.raises(ValueError, match="no diffusion pipeline"):
        load_prior(tmp_path)
