"""The shipped default model (pretrained/zoetrope4d-cpu-small) draws what the prompt asks for.

Guards against shipping broken or mismatched weights: each prompt must give a compact object of the prompt's
colour on white, and the head's Gaussians must explain the generated views better than an empty render does.
The path is infer.py's and benchmark.py's (infer.feed_forward: pipeline -> head), re-rendered at the generated cameras. 6 denoising steps keep it
to seconds; the colours and the margin over an empty render hardly change from 6 to 20.
"""
from __future__ import annotations

import pytest
import torch

from benchmark import render_at
from infer import DEFAULT_MODEL, feed_forward, load_models
from recon.losses import psnr


@pytest.fixture(scope="module")
def shipped():
    return load_models(DEFAULT_MODEL, torch.device("cpu"))


def red(c):  # mean object colour [3] -> how much red leads
    return c[0] - c[1:].max()


def teal(c):
    return c[1:].min() - c[0]


def purple(c):
    return torch.stack([c[0], c[2]]).min() - c[1]


@pytest.mark.parametrize("prompt, lead", [
    ("a red ball bouncing high", red),
    ("a large teal fish swimming", teal),
    ("a purple two-legged figure walking fast", purple),
])
def test_shipped_model_draws_the_prompts_object(shipped, prompt, lead):
    pipeline, head = shipped
    d = pipeline.defaults
    result, gaussians = feed_forward(pipeline, head, prompt, views=d.num_views, frames=d.num_frames, elevation=0.0,
                                     steps=6, seed=0, progress=False)  # Generation, Gaussians [F, N]
    images = result.images  # [V, F, 3, H, W]
    drawn = images.min(dim=2).values < 0.8  # [V, F, H, W]: not background white
    assert 0.01 < drawn.float().mean() < 0.4, "expected one compact object on white"
    colour = images.permute(0, 1, 3, 4, 2)[drawn].mean(dim=0)  # [3]
    assert lead(colour) > 0.15, f"{prompt!r} drew mean colour {colour.tolist()}"

    rendered = render_at(gaussians.map(lambda t: t[None]), result.c2w[None], result.K[None], images.shape[-2:])[0]  # [V, F, 3, H, W]
    empty = torch.ones_like(images)
    assert psnr(rendered, images) > psnr(empty, images) + 3.0  # dB: the Gaussians hold the object
