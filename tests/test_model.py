"""MultiViewVideoDiT: the attention structure (what can see what), equivariance, checkpointing, save/load, bad input."""
import pytest
import torch

from data.cameras import intrinsics_from_fov, orbit_c2w, ring_azimuths
from layers import attention as attention_module
from layers.attention import attention
from model.dit import MultiViewVideoDiT
from model.presets import PRESETS, build_dit

TINY = dict(hidden_size=32, depth=2, num_heads=2, patch_size=4, text_dim=24)


def make_model(seed: int = 0, **flags) -> MultiViewVideoDiT:
    """A tiny model whose every weight is random, zero-initialised ones included, so every path carries signal."""
    torch.manual_seed(seed)
    model = MultiViewVideoDiT(**TINY, **flags).eval()
    randomize_(model, seed)
    return model


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Gaussian weights of unit gain (std 1/sqrt(fan-in)) and N(0, 0.5) vectors: no layer dominates the residual."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            std = param.shape[-1] ** -0.5 if param.ndim == 2 else 0.5
            param.copy_(torch.randn(param.shape, generator=gen) * std)


def make_inputs(B=1, V=2, F=2, H=16, W=16, L=5, seed=0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    elevations = torch.rand(V, generator=gen) * 30
    c2w = orbit_c2w(elevations, ring_azimuths(V, offset=10.0), radius=2.0, num_frames=F)  # [V, F, 4, 4]
    return dict(
        sample=torch.randn(B, V, F, 3, H, W, generator=gen),
        timestep=torch.rand(B, generator=gen) * 1000,
        cond_images=torch.rand(B, V, F, 3, H, W, generator=gen) * 2 - 1,
        cond_mask=torch.rand(B, V, F, generator=gen) < 0.5,
        c2w=c2w[None].repeat(B, 1, 1, 1, 1),
        K=intrinsics_from_fov(45.0).expand(B, V, 3, 3).clone(),
        times=torch.linspace(0, 1, F).expand(B, F).clone(),
        text_states=torch.randn(B, L, TINY["text_dim"], generator=gen),
        text_mask=torch.arange(L).expand(B, L) < 3,
    )


def run(model, inputs):
    inputs = dict(inputs)
    with torch.no_grad():
        return model(inputs.pop("sample"), inputs.pop("timestep"), **inputs)


def changed(inputs: dict, view=slice(None), frame=slice(None), seed=1) -> dict:
    """A copy of inputs whose images (noisy and conditioning) differ at [view, frame]."""
    gen = torch.Generator().manual_seed(seed)
    out = {k: v.clone() for k, v in inputs.items()}
    for key in ("sample", "cond_images"):
        out[key][:, view, frame] = torch.randn(out[key][:, view, frame].shape, generator=gen)
    out["cond_mask"][:, view, frame] = True
    return out


def test_output_is_a_velocity_per_pixel():
    inputs = make_inputs(B=2, V=3, F=2, H=16, W=12)
    assert run(make_model(), inputs).shape == (2, 3, 2, 3, 16, 12)


def test_sample_prediction_returns_the_velocity_its_clean_image_implies():
    velocity_model, inputs = make_model(), make_inputs(B=2)
    sample_model = MultiViewVideoDiT(**TINY, prediction="sample").eval()
    sample_model.load_state_dict(velocity_model.state_dict())  # the same network, its output read as x0
    x0_hat = run(velocity_model, inputs)  # [B, V, F, 3, H, W], the network's raw output
    sigma = (inputs["timestep"] / 1000).clamp(min=0.05)[:, None, None, None, None, None]  # [B, 1, 1, 1, 1, 1]
    torch.testing.assert_close(run(sample_model, inputs), (inputs["sample"] - x0_hat) / sigma)


def test_sample_prediction_floors_sigma_at_low_noise():
    model = MultiViewVideoDiT(**TINY, prediction="sample").eval()  # zero-initialised output layer: x0_hat = 0
    inputs = dict(make_inputs(), timestep=torch.zeros(1))
    torch.testing.assert_close(run(model, inputs), inputs["sample"] / 0.05)  # not an infinite velocity at t = 0


def test_unknown_prediction_is_refused():
    with pytest.raises(ValueError, match="prediction must be one of"):
        MultiViewVideoDiT(**TINY, prediction="epsilon")


def test_cross_frame_off_keeps_frames_independent():
    model, inputs = make_model(cross_frame=False), make_inputs()
    before, after = run(model, inputs), run(model, changed(inputs, frame=1))
    torch.testing.assert_close(after[:, :, 0], before[:, :, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, :, 1], before[:, :, 1], atol=1e-3)


def test_cross_view_off_keeps_views_independent():
    model, inputs = make_model(cross_view=False), make_inputs()
    before, after = run(model, inputs), run(model, changed(inputs, view=1))
    torch.testing.assert_close(after[:, 0], before[:, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 1], before[:, 1], atol=1e-3)


def test_cross_view_attention_carries_information_across_views():
    model, inputs = make_model(cross_frame=False), make_inputs()
    assert not torch.allclose(run(model, changed(inputs, view=1))[:, 0], run(model, inputs)[:, 0], atol=1e-3)


def test_cross_frame_attention_carries_information_across_frames():
    model, inputs = make_model(cross_view=False), make_inputs()
    assert not torch.allclose(run(model, changed(inputs, frame=1))[:, :, 0], run(model, inputs)[:, :, 0], atol=1e-3)


def test_both_on_reach_another_view_at_another_frame():
    model, inputs = make_model(), make_inputs()
    before, after = run(model, inputs), run(model, changed(inputs, view=1, frame=1))
    assert not torch.allclose(after[:, 0, 0], before[:, 0, 0], atol=1e-3)  # two hops: across frames, then views


def test_zero_initialised_layers_start_as_the_spatial_only_model():
    spatial = make_model(cross_view=False, cross_frame=False)
    torch.manual_seed(1)
    full = MultiViewVideoDiT(**TINY).eval()  # cross-view and cross-frame layers at their initialisation
    missing, unexpected = full.load_state_dict(spatial.state_dict(), strict=False)
    assert missing and all(".view_" in key or ".frame_" in key for key in missing) and not unexpected
    inputs = make_inputs()
    torch.testing.assert_close(run(full, inputs), run(spatial, inputs), rtol=0, atol=0)


def test_permuting_views_with_their_cameras_permutes_the_output():
    model, inputs = make_model(), make_inputs(V=3)
    perm = torch.tensor([2, 0, 1])
    permuted = {k: v[:, perm] if k in ("sample", "cond_images", "cond_mask", "c2w", "K") else v for k, v in inputs.items()}
    torch.testing.assert_close(run(model, permuted), run(model, inputs)[:, perm], rtol=1e-4, atol=1e-4)


def test_cameras_change_the_output():
    model, inputs = make_model(), make_inputs()
    moved = dict(inputs, c2w=orbit_c2w(torch.full((2,), 40.0), ring_azimuths(2, 70.0), 2.5, 2)[None])
    assert not torch.allclose(run(model, moved), run(model, inputs), atol=1e-3)


def test_conditioning_images_are_read_only_where_given():
    model, inputs = make_model(), make_inputs()
    hidden = dict(inputs, cond_images=torch.where(inputs["cond_mask"][..., None, None, None], inputs["cond_images"], 5.0))
    torch.testing.assert_close(run(model, hidden), run(model, inputs), rtol=0, atol=0)


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = make_inputs()
    grads = []
    for checkpointing in (False, True):
        model = make_model().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        args = dict(inputs)
        model(args.pop("sample"), args.pop("timestep"), **args).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[1], grads[0])


def test_save_and_load_give_identical_outputs(tmp_path):
    model, inputs = make_model(cross_frame=False), make_inputs()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = MultiViewVideoDiT.from_pretrained(tmp_path).eval()
    assert loaded.config.cross_frame is False and loaded.config.hidden_size == TINY["hidden_size"]
    torch.testing.assert_close(run(loaded, inputs), run(model, inputs), rtol=0, atol=0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i: dict(i, sample=i["sample"][..., :14], cond_images=i["cond_images"][..., :14]), "not divisible by the patch"),
        (lambda i: dict(i, c2w=i["c2w"][:, :1]), "cameras c2w are given for 1 views but the images have 2 views"),
        (lambda i: dict(i, K=i["K"][:, :1]), "intrinsics K are given for 1 views"),
        (lambda i: dict(i, c2w=i["c2w"][:, :, :1]), r"c2w has shape \(1, 2, 1, 4, 4\), expected \(1, 2, 2, 4, 4\)"),
        (lambda i: dict(i, times=i["times"][:, :1]), "times has shape"),
        (lambda i: dict(i, cond_images=i["cond_images"][:, :, :1]), "cond_images has shape"),
        (lambda i: dict(i, text_states=i["text_states"][..., :8]), "text_states has shape"),
        (lambda i: dict(i, sample=i["sample"][:, :, :, :2], cond_images=i["cond_images"][:, :, :, :2]), "RGB images"),
    ],
)
def test_bad_input_raises_value_error_saying_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        run(make_model(), change(make_inputs()))


def test_base_preset_builds_on_the_meta_device_at_its_documented_size():
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = build_dit("base")
    assert all(p.is_meta for p in model.parameters())
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6) == 209  # as README, model/presets.py and docs/DESIGN.md say
    # Each block: spatial, cross-view and cross-frame attention (4 D^2 each), the text attention (2 D^2 + 2 D text_dim),
    # the 4x MLP (8 D^2) and the adaLN modulation (6 D^2); the embeddings and biases add the last few per cent.
    size = PRESETS["base"].dit
    per_block = 28 * size.hidden_size**2 + 2 * size.hidden_size * model.config.text_dim
    assert params == pytest.approx(size.depth * per_block, rel=0.03)


def test_attention_matches_masked_softmax_reference():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=gen) for n in (5, 7, 7))
    mask = torch.arange(7).expand(2, 1, 1, 7) < torch.tensor([4, 7]).view(2, 1, 1, 1)
    logits = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(attention(q, k, v, mask), logits.softmax(-1) @ v)


def test_attention_keeps_xformers_off_cpu_tensors(monkeypatch):
    class Refuses:
        def memory_efficient_attention(self, *args):
            raise AssertionError("xformers called with CPU tensors")

    monkeypatch.setattr(attention_module, "_xformers_ops", lambda: Refuses())
    q = torch.randn(1, 2, 4, 8)
    assert attention(q, q, q).shape == (1, 2, 4, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for xformers' kernels")
def test_xformers_attention_matches_the_softmax_reference_on_cuda():
    if attention_module._xformers_ops() is None:
        pytest.skip("xformers is not installed (the gpu extra)")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for dtype, tol in ((torch.float32, 2e-3), (torch.bfloat16, 3e-2)):
        q, k, v = (torch.randn(2, 4, n, 64, generator=gen, device="cuda", dtype=dtype) for n in (300, 500, 500))
        expected = ((q.float() @ k.float().transpose(-1, -2)) / 8).softmax(-1) @ v.float()  # [B, H, Lq, Dh]
        torch.testing.assert_close(attention(q, k, v).float(), expected, atol=tol, rtol=tol)  # xformers' kernel
        mask = torch.arange(500, device="cuda") < 123  # masked calls go to SDPA
        masked = ((q.float() @ k.float().transpose(-1, -2)) / 8).masked_fill(~mask, float("-inf")).softmax(-1) @ v.float()
        torch.testing.assert_close(attention(q, k, v, mask).float(), masked, atol=tol, rtol=tol)
