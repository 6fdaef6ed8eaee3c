"""MultiViewVideoPipeline: determinism, conditioning frames kept, cameras, save/load round trip, bad input."""
import dataclasses
import json

import pytest
import torch

from data.cameras import (fit_distance, intrinsics_from_fov, orbit_c2w, pixel_rays, ring_azimuths, roll_intrinsics,
                          rotate_about_up)
from evaluation.metrics import flicker, patch_seam_ratio
from model.pipeline import Guidance, MultiViewVideoPipeline, grid_offsets, model_conditioning
from model.sampling import PipelineDefaults, Sampling
from model.presets import build_dit, build_scheduler, get_preset
from model.text import TextEncoder
from test_model import randomize_

STEPS = 3


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=16)


@pytest.fixture(scope="module")
def pipe(encoder):
    torch.manual_seed(0)
    transformer = build_dit("tiny", text_dim=encoder.dim).eval()
    randomize_(transformer, seed=0)  # a trained-looking model: the output depends on every input
    grid = get_preset("tiny").grid
    defaults = PipelineDefaults(grid.num_views, grid.num_frames, grid.height, grid.width, fov_deg=45.0, shared_noise=0.3)
    return MultiViewVideoPipeline(transformer, build_scheduler("tiny"), encoder, defaults)


def generate(pipe, seed=0, sampler=None, sampling=None, **kwargs):
    kwargs = dict(dict(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(seed)), **kwargs)
    return pipe("a jumping frog", progress=False, sampling=sampling or Sampling(sampler=sampler), **kwargs)


def test_transformer_and_scheduler_must_share_the_timestep_scale(encoder):
    transformer = build_dit("tiny", text_dim=encoder.dim, num_train_timesteps=500)
    with pytest.raises(ValueError, match="reads timesteps out of 500 but the scheduler counts 1000"):
        MultiViewVideoPipeline(transformer, build_scheduler("tiny"), encoder)


def test_seeded_pipeline_is_deterministic(pipe):
    first, second, other = generate(pipe), generate(pipe), generate(pipe, seed=1)
    assert torch.equal(first.images, second.images)
    assert not torch.allclose(first.images, other.images, atol=1e-3)


def test_pipeline_returns_images_and_the_cameras_it_used(pipe):
    out = generate(pipe, num_views=3, num_frames=2, height=8, width=12, elevation=20.0, sampling=Sampling(guidance=1.0))
    assert out.images.shape == (3, 2, 3, 8, 12) and 0 <= out.images.min() and out.images.max() <= 1
    expected = orbit_c2w(torch.full((3,), 20.0), ring_azimuths(3), fit_distance(45.0), num_frames=2)
    torch.testing.assert_close(out.c2w, expected)
    torch.testing.assert_close(out.K, intrinsics_from_fov(45.0, aspect=12 / 8).expand(3, 3, 3))
    torch.testing.assert_close(out.times, torch.tensor([0.0, 1.0]))


def test_a_canonical_ring_model_generates_on_the_ring_at_azimuth_0_and_returns_cameras_turned_to_the_asked_one(pipe):
    canonical = MultiViewVideoPipeline(pipe.transformer, pipe.scheduler, pipe.text_encoder,
                                       dataclasses.replace(pipe.defaults, canonical_ring=True))
    front, turned = generate(canonical), generate(canonical, azimuth=70.0)
    assert torch.equal(front.images, turned.images)  # the model saw the same cameras
    torch.testing.assert_close(turned.c2w, rotate_about_up(front.c2w, 70.0))
    torch.testing.assert_close(turned.c2w, generate(pipe, azimuth=70.0).c2w)  # where a plain model's cameras are
    assert not torch.allclose(generate(pipe, azimuth=70.0).images, turned.images, atol=1e-3)  # a plain model sees the turn


def test_guidance_changes_the_result(pipe):
    assert not torch.allclose(generate(pipe, sampling=Sampling(guidance=1.0)).images, generate(pipe, sampling=Sampling(guidance=4.0)).images, atol=1e-3)


def test_a_video_is_guided_by_video_guidance_alone(pipe):
    video = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    off = generate(pipe, video=video, sampling=Sampling(video_guidance=1.0)).images
    torch.testing.assert_close(generate(pipe, video=video, sampling=Sampling(video_guidance=1.0, guidance=4.0)).images, off,
                               rtol=0, atol=0)  # the prompt's scale is not read
    assert not torch.allclose(generate(pipe, video=video, sampling=Sampling(video_guidance=4.0)).images, off, atol=1e-3)
    # Without a video, video_guidance is not read.
    torch.testing.assert_close(generate(pipe, sampling=Sampling(video_guidance=1.0)).images, generate(pipe).images, rtol=0, atol=0)


def test_guidance_rows_and_their_combination():
    assert Guidance(3.0, 1.0).prompts("a frog") == ["a frog", ""]
    assert Guidance(1.0, 2.0).prompts("a frog") == ["a frog", "a frog"]
    assert Guidance(3.0, 2.0).prompts("a frog") == ["a frog", "", "a frog"]
    prompt, empty, still = torch.tensor([[5.0]]), torch.tensor([[1.0]]), torch.tensor([[4.0]])
    torch.testing.assert_close(Guidance(3.0, 1.0).combine(torch.cat([prompt, empty])), torch.tensor([[13.0]]))  # 1 + 3 (5 - 1)
    torch.testing.assert_close(Guidance(1.0, 2.0).combine(torch.cat([prompt, still])), torch.tensor([[6.0]]))  # 5 + (5 - 4)
    torch.testing.assert_close(Guidance(3.0, 2.0).combine(torch.cat([prompt, empty, still])), torch.tensor([[14.0]]))


def test_the_still_row_sees_every_frame_at_time_zero(encoder):
    V, F = 2, 3
    c2w, K = MultiViewVideoPipeline.cameras(V, F, 8, 8, 10.0, 45.0, None)
    text = encoder(Guidance(3.0, 2.0).prompts("a frog"))  # [3, L, D]
    rows = model_conditioning(torch.zeros(1, V, F, 3, 8, 8), torch.zeros(1, V, F, dtype=torch.bool), c2w, K,
                              torch.linspace(0, 1, F), text, still_last=True)
    torch.testing.assert_close(rows["times"], torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]))


def test_motion_guidance_above_one_moves_the_object_more_and_one_is_off(pipe):
    flickers = [flicker(generate(pipe, sampling=Sampling(motion_guidance=m)).images).item() for m in (0.0, 1.0, 3.0)]
    assert flickers[0] < flickers[1] < flickers[2]
    torch.testing.assert_close(generate(pipe, sampling=Sampling(motion_guidance=1.0)).images, generate(pipe).images, rtol=0, atol=0)


def test_samplers_are_seeded_and_differ_after_the_first_step(pipe):
    stochastic, ode = generate(pipe, sampler="stochastic"), generate(pipe, sampler="ode")
    assert torch.equal(stochastic.images, generate(pipe, sampler="stochastic").images)  # its fresh noise is seeded too
    assert torch.equal(stochastic.images, generate(pipe).images)  # the saved default
    assert not torch.allclose(stochastic.images, ode.images, atol=1e-3)
    assert not torch.allclose(stochastic.images, generate(pipe, seed=1, sampler="stochastic").images, atol=1e-3)


def test_samplers_agree_on_a_single_step_from_pure_noise(pipe):
    # One step from sigma = 1 to 0: the ODE's x - v and the stochastic x0 = x - sigma v, re-noised to sigma 0, coincide.
    ode, stochastic = (generate(pipe, sampler=name, num_inference_steps=1) for name in ("ode", "stochastic"))
    torch.testing.assert_close(ode.images, stochastic.images)


def test_sampler_name_is_checked(pipe):
    with pytest.raises(ValueError, match=r"sampler must be one of \('stochastic', 'ode'\), got 'euler'"):
        generate(pipe, sampler="euler")


def test_image_to_4d_returns_the_given_image_at_view_0_frame_0(pipe):
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = generate(pipe, image=image)
    torch.testing.assert_close(out.images[0, 0], image, rtol=0, atol=1e-6)
    assert not torch.allclose(out.images[0, 1], image, atol=1e-2)


def test_video_to_4d_returns_the_given_video_at_view_0(pipe):
    video = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    out = generate(pipe, video=video)
    torch.testing.assert_close(out.images[0], video, rtol=0, atol=1e-6)


def test_a_rolled_image_keeps_its_rays_when_the_principal_point_moves_with_it():
    c2w = orbit_c2w(torch.tensor([20.0]), torch.tensor([30.0]), 2.0)[0, 0]  # [4, 4]
    K = intrinsics_from_fov(40.0)
    moved = roll_intrinsics(K, 2, 3, 16, 16)  # the image rolled 3 pixels right and 2 down, as shifted_velocity does
    _, rays = pixel_rays(c2w, K, 16, 16)  # [16, 16, 3]
    _, rolled = pixel_rays(c2w, moved, 16, 16)
    torch.testing.assert_close(rolled[2:, 3:], rays[:-2, :-3])  # each pixel's content sits on its own ray


def test_patch_shifting_alternates_the_grid_then_averages_both():
    schedule = [grid_offsets(i, 8, 4) for i in range(8)]
    assert schedule[:6] == [[(0, 0)], [(4, 4)]] * 3 and schedule[6:] == [[(0, 0), (4, 4)]] * 2


def test_patch_shifting_is_seeded_keeps_the_given_video_and_softens_patch_seams(pipe):
    video = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    plain = generate(pipe, video=video)
    shifted, again = (generate(pipe, video=video, sampling=Sampling(patch_shift=True)) for _ in range(2))
    assert torch.equal(shifted.images, again.images)
    torch.testing.assert_close(shifted.images[0], video, rtol=0, atol=1e-6)
    patch = pipe.transformer.config.patch_size
    assert patch_seam_ratio(shifted.images[1:], patch) < patch_seam_ratio(plain.images[1:], patch) - 0.1


def test_save_and_load_round_trip_gives_identical_outputs(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "pipeline.json").read_text())
    assert meta["text_encoder"] is None and meta["shared_noise"] == 0.3  # a reference to the encoder, not a copy
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 5_000_000
    loaded = MultiViewVideoPipeline.from_pretrained(tmp_path)
    assert loaded.defaults == pipe.defaults
    assert torch.equal(generate(loaded, image=torch.ones(3, 16, 16)).images, generate(pipe, image=torch.ones(3, 16, 16)).images)


def test_transformer_weights_are_split_into_files_of_bounded_size(pipe, tmp_path):
    pipe.save_pretrained(tmp_path, max_shard_size="20KB")
    files = sorted((tmp_path / "transformer").glob("*.safetensors"))
    assert len(files) > 1 and (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    loaded = MultiViewVideoPipeline.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.transformer.state_dict().values(), pipe.transformer.state_dict().values()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt="  "), "prompt is empty"),
        (dict(image=torch.rand(3, 8, 8)), r"image has shape \(3, 8, 8\), expected \[3, H, W\] = \(3, 16, 16\)"),
        (dict(video=torch.rand(3, 3, 16, 16)), r"video has shape \(3, 3, 16, 16\)"),
        (dict(image=torch.rand(3, 16, 16), video=torch.rand(2, 3, 16, 16)), "not both"),
        (dict(height=18), "not divisible by the patch size 4"),
        (dict(sampling=Sampling(video_guidance=float("nan"))), "video_guidance must be a finite number, got nan"),
        (dict(sampling=Sampling(motion_guidance=-0.5)), r"motion_guidance must be a finite number >= 0 \(1: off\), got -0.5"),
    ],
)
def test_bad_input_raises_value_error_saying_what_is_wrong(pipe, kwargs, message):
    kwargs = dict(dict(prompt="a frog", num_inference_steps=1, progress=False), **kwargs)
    with pytest.raises(ValueError, match=message):
        pipe(kwargs.pop("prompt"), **kwargs)


def test_missing_saved_pipeline_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="not a saved pipeline"):
        MultiViewVideoPipeline.from_pretrained(tmp_path / "nothing-here")
