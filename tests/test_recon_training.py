"""Fitting runs: the head trained on ONE synthetic clip, and test-time refinement of Gaussians.

The head, trained on one clip on the CPU, reconstructs its input views and views it was never given.
The full run (64x64, 4 frames, a real clip from the data pipeline, >= 25 dB input / >= 20 dB views not given)
is benchmarks/bench_recon.py. This shorter one (32x32, 2 frames, 300 steps, about a minute on one thread)
asks for >= 22 dB on the input views and >= 20 dB on held-out views used by nothing in training, and for
both to beat an empty, all-background render by a wide margin.
"""
import pytest
import torch

from recon.head import build_head
from recon.losses import LossWeights, composite, image_loss, psnr
from recon.overfit import fit_clip, view_psnr
from recon.refine import refine
from recon.render import render_views
from recon.synthetic import held_out_views, input_views, sphere_scene, supervision_views, synthetic_clip


@pytest.mark.slow
def test_head_fits_one_clip_and_generalises_to_unseen_views():
    views = [torch.cat(parts) for parts in zip(input_views(4), supervision_views())]
    train = synthetic_clip(*views, num_frames=2, size=32)  # 4 input views, then 4 supervision views
    held = synthetic_clip(*held_out_views(), num_frames=2, size=32)
    torch.manual_seed(0)
    head = build_head("cpu-small")

    history = fit_clip(head, train, num_input_views=4, steps=300)
    seen, unseen = view_psnr(head, train, train, 4), view_psnr(head, train, held, 4)
    empty = psnr(torch.ones(3, 32, 32), composite(held["images"], 1.0))
    print(f"\n{len(history)} steps, {history[-1]['seconds']:.0f} s: input {seen[:4].mean():.2f} dB, supervision "
          f"{seen[4:].mean():.2f} dB, held-out {unseen.mean():.2f} dB (empty render {empty:.2f} dB)")
    assert history[-1]["mse"] < history[0]["mse"] / 3
    assert seen[:4].mean() >= 22.0
    assert unseen.mean() >= 20.0 and unseen.mean() >= empty + 6.0


def test_refinement_lowers_the_loss_on_the_given_views():
    elevations, azimuths = input_views(3)
    scene = dict(num_spheres=3, points_per_sphere=150)
    views = synthetic_clip(elevations, azimuths, num_frames=2, size=24, **scene)
    noisy = sphere_scene(2, **scene).map(lambda t: t[None].clone())  # [B=1, F, N], the truth before the noise
    noisy.means = noisy.means + 0.01 * torch.randn(noisy.means.shape, generator=torch.Generator().manual_seed(0))
    noisy.colours = noisy.colours * 0.6 + 0.2

    def loss(gaussians):
        rendered = render_views(gaussians, views["c2w"], views["K"], 24, 24, 1.0)
        return image_loss(rendered, views["images"], 1.0, LossWeights())[0]

    refined = refine(noisy, views, steps=30, progress=False)
    assert refined.batch_shape == noisy.batch_shape
    assert loss(refined) < 0.5 * loss(noisy)
