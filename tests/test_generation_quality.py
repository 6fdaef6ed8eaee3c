"""Issue 14's design changes: camera modulation, motion conditioning, the output refiner, reconstruction in the
sampling loop, and the measures that show them (silhouette IoU, motion ratio, patch-seam ratio)."""
import json

import pytest
import torch

from data.images import motion_score
from evaluation.metrics import coverage, masked_consistency, motion_ratio, patch_seam_ratio, silhouette_iou
from model.dit import MultiViewVideoDiT, OutputRefiner
from model.pipeline import MultiViewVideoPipeline, RenderLoop
from model.sampling import PipelineDefaults, Sampling
from model.presets import build_dit, build_scheduler
from model.text import TextEncoder
from recon.head import build_head
from test_model import TINY, make_inputs, make_model, randomize_, run

NEW_FLAGS = dict(camera_conditioning=True, motion_conditioning=True, output_refiner=True)


# ----------------------------------------------------------------------------- the transformer's new options


def test_new_options_start_as_the_model_without_them():
    old = make_model()
    torch.manual_seed(1)
    new = MultiViewVideoDiT(**TINY, **NEW_FLAGS).eval()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert missing and all(key.startswith(MultiViewVideoDiT.ZERO_INIT_MODULES) for key in missing) and not unexpected
    inputs = make_inputs(V=3)
    torch.testing.assert_close(run(new, dict(inputs, motion=torch.tensor([0.02]))), run(old, inputs), rtol=1e-5, atol=1e-5)


def test_model_saved_without_the_options_loads_and_runs_bit_identically(tmp_path):
    model, inputs = make_model(), make_inputs()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for flag in NEW_FLAGS:  # as written before the options existed
        config.pop(flag)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = MultiViewVideoDiT.from_pretrained(tmp_path).eval()
    assert not any(loaded.config[flag] for flag in NEW_FLAGS)
    torch.testing.assert_close(run(loaded, inputs), run(model, inputs), rtol=0, atol=0)


def test_camera_modulation_keeps_view_permutation_equivariance():
    model, inputs = make_model(camera_conditioning=True), make_inputs(V=3)
    perm = torch.tensor([2, 0, 1])
    permuted = {k: v[:, perm] if k in ("sample", "cond_images", "cond_mask", "c2w", "K") else v for k, v in inputs.items()}
    torch.testing.assert_close(run(model, permuted), run(model, inputs)[:, perm], rtol=1e-4, atol=1e-4)


def test_camera_modulation_makes_each_view_depend_on_its_own_camera_without_rays_or_attention():
    """With cross-view attention off, a view still changes when only its camera moves (not through the rays alone:
    the modulation reads the camera position)."""
    plain, modulated = make_model(cross_view=False), make_model(cross_view=False, camera_conditioning=True)
    inputs = make_inputs(V=2)
    moved = dict(inputs, c2w=inputs["c2w"].clone())
    moved["c2w"][:, 1, :, :3, 3] *= 1.5  # view 1's camera backs away along its own ray: same rays' directions
    gap = lambda m: (run(m, moved)[:, 1] - run(m, inputs)[:, 1]).abs().mean()
    assert gap(modulated) > 1.5 * gap(plain)
    torch.testing.assert_close(run(modulated, moved)[:, 0], run(modulated, inputs)[:, 0])  # view 0 untouched


def test_motion_condition_changes_the_output_and_is_required():
    model, inputs = make_model(motion_conditioning=True), make_inputs()
    still, moving = run(model, dict(inputs, motion=torch.tensor([0.0]))), run(model, dict(inputs, motion=torch.tensor([0.03])))
    assert (still - moving).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="motion-conditioned: pass motion"):
        run(model, inputs)


def test_output_refiner_reads_across_patch_borders():
    """The linear patch decoder writes each 8x8 patch from its own token; the refiner's convolutions see a pixel's
    neighbours on the other side of a patch border, so they can join the patches' edges."""
    refiner = OutputRefiner()
    randomize_(refiner, seed=0)
    images = torch.rand(1, 3, 16, 16)  # [M, 3, H, W]
    nudged = images.clone()
    nudged[..., :, 7] += 1.0  # the last column of the first patch (p = 8)
    with torch.no_grad():
        change = (refiner(nudged) - refiner(images)).abs().sum(dim=(0, 1, 2))  # [W]
    assert change[8] > 0 and change[9] > 0 and change[11] == 0  # two columns into the next patch, no further


# ----------------------------------------------------------------------------- pipeline: motion and the loop


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    encoder = TextEncoder(max_length=16)
    transformer = build_dit("tiny", text_dim=encoder.dim, motion_conditioning=True).eval()
    randomize_(transformer, seed=0)
    head = build_head("tiny").eval()
    randomize_(head, seed=1)
    defaults = PipelineDefaults(num_views=2, num_frames=2, height=16, width=16)
    return MultiViewVideoPipeline(transformer, build_scheduler("tiny"), encoder, defaults), head


def generate(pipe, reconstruct=None, **sampling):
    """A 4-step generation; `sampling` names Sampling's fields (motion=, loop_start=, ...)."""
    return pipe("a hopping frog", num_inference_steps=4, generator=torch.Generator().manual_seed(0), progress=False,
                reconstruct=reconstruct, sampling=Sampling(**sampling))


def test_pipeline_motion_changes_the_result(parts):
    pipe, _ = parts
    assert not torch.allclose(generate(pipe, motion=0.0).images, generate(pipe, motion=0.04).images, atol=1e-3)


def consistency(gen, head) -> float:
    """PSNR of the head's re-renders against the generated views (what the benchmark's consistency measures)."""
    from recon.losses import psnr
    return psnr(head.render_back(gen.images, gen.c2w, gen.K), gen.images).item()


def test_reconstruction_in_the_loop_makes_the_views_agree_with_their_gaussians(parts):
    pipe, head = parts
    off = generate(pipe)
    on = generate(pipe, reconstruct=head.render_back, loop_start=0.0, loop_blend=1.0)
    assert consistency(on, head) > consistency(off, head) + 1.0
    rendered = generate(pipe, reconstruct=head.render_back, loop_start=0.0, loop_blend=1.0, loop_output="render")
    assert consistency(rendered, head) > consistency(on, head)


def test_loop_that_never_starts_or_blends_nothing_changes_nothing(parts):
    pipe, head = parts
    off = generate(pipe).images
    torch.testing.assert_close(generate(pipe, reconstruct=head.render_back, loop_start=1.0).images, off, rtol=0, atol=0)
    torch.testing.assert_close(generate(pipe, reconstruct=head.render_back, loop_start=0.0, loop_blend=0.0).images, off,
                               rtol=1e-4, atol=1e-4)


def test_loop_runs_only_in_its_window_of_steps(parts):
    pipe, head = parts
    calls = []  # one entry per reconstruction the loop asks for
    def counting(images, c2w, K):
        calls.append(1)
        return head.render_back(images, c2w, K)
    windowed = generate(pipe, reconstruct=counting, loop_start=0.25, loop_end=0.75)  # of 4 steps: the 2nd and 3rd
    assert len(calls) == 2
    assert not torch.allclose(windowed.images, generate(pipe).images, atol=1e-4)
    assert [i for i in range(20) if RenderLoop(head.render_back, 0.5, 1.0, 0.8).runs_at(i, 20)] == list(range(10, 16))
    empty = generate(pipe, reconstruct=counting, loop_start=0.5, loop_end=0.5).images  # a window of no steps
    assert len(calls) == 2
    torch.testing.assert_close(empty, generate(pipe).images, rtol=0, atol=0)


@pytest.mark.parametrize("bad, message", [
    (dict(motion=-0.1), "motion must be a finite score"), (dict(motion=float("inf")), "motion must be a finite score"),
    (dict(loop_blend=1.5), r"loop_blend must be in \[0, 1\]"), (dict(loop_start=-0.2), r"loop_start must be in \[0, 1\]"),
    (dict(loop_blend=float("nan")), r"loop_blend must be in \[0, 1\]"), (dict(loop_output="mesh"), "loop_output must be one of"),
    (dict(loop_end=1.5), r"loop_end must be in \[0, 1\]"), (dict(loop_start=0.5, loop_end=0.25), "loop_end 0.25 comes before"),
])
def test_bad_sampling_values_are_clear_errors(parts, bad, message):
    with pytest.raises(ValueError, match=message):
        generate(parts[0], **bad)


# ----------------------------------------------------------------------------- measures


def test_motion_score_is_zero_for_a_still_clip_and_positive_for_a_moving_one():
    still = torch.rand(2, 1, 4, 8, 8).expand(2, 5, 4, 8, 8)  # [V, F, 4, H, W], every frame the same
    moving = still.clone()
    moving[:, 2:, :3] = 1 - moving[:, 2:, :3]
    assert motion_score(still) == 0.0 and motion_score(moving) > 0.05 and motion_score(still[:, :1]) == 0.0


def test_silhouette_iou_rewards_the_right_shape_and_punishes_empty_views():
    alpha = torch.zeros(1, 16, 16)
    alpha[:, 4:12, 2:8] = 1
    drawn = torch.where(alpha > 0.5, torch.tensor(0.2), torch.tensor(1.0)).expand(3, 16, 16)  # the shape over white
    wrong = drawn.flip(-1)  # the same shape, mirrored: no overlap
    assert silhouette_iou(drawn, alpha) == 1.0 and silhouette_iou(wrong, alpha) == 0.0
    assert silhouette_iou(torch.ones(3, 16, 16), alpha) == 0.0 and coverage(torch.ones(3, 16, 16)) == 0.0


def test_motion_ratio_compares_motion_with_the_truth():
    truth = torch.rand(4, 3, 8, 8)  # [F, 3, H, W]
    half = truth[:1] + 0.5 * (truth - truth[:1])  # every change halved
    assert motion_ratio(half, truth) == pytest.approx(0.5, rel=1e-4) and motion_ratio(truth, truth) == pytest.approx(1.0)


def test_seam_ratio_is_one_for_smooth_images_and_high_for_patch_fragments():
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = torch.stack([x, y, x * y])  # [3, H, W]
    patches = smooth.clone()
    patches += torch.rand(3, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2) * 0.5  # a constant per 8x8 patch
    assert patch_seam_ratio(smooth, 8) == pytest.approx(1.0, rel=0.05) and patch_seam_ratio(patches, 8) > 3


def test_masked_consistency_gives_an_empty_generation_nothing():
    white = torch.ones(2, 3, 16, 16)
    assert masked_consistency(white, white) == 0.0
    thing = white.clone()
    thing[:, :, 4:10, 4:10] = 0.3
    assert masked_consistency(thing, thing) == 100.0 and masked_consistency(white, thing) < 10


def test_camera_sensitivity_reports_turns_against_new_noise(tiny_model):
    from benchmarks.camera_sensitivity import sensitivity

    rows = sensitivity(str(tiny_model / "diffusion"), sigmas=(0.5,))
    assert len(rows) == 1 and rows[0]["new_noise"] > 0 and rows[0]["turn_90"] >= 0 and rows[0]["turn_180"] >= 0
