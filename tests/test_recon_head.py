import math

import pytest
import torch

from data import cameras as cam
from recon.gaussians import Gaussians
from recon.head import HEAD_PRESETS, GaussianHead4D, build_head, finer_stride_weights

B, V, F, H, W = 2, 3, 2, 16, 16


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(B, V, F, 3, H, W, generator=gen)
    c2w = cam.orbit_c2w(torch.full((V,), 15.0), cam.ring_azimuths(V), 1.6, num_frames=F).expand(B, V, F, 4, 4)
    K = cam.intrinsics_from_fov(40.0).expand(B, V, 3, 3)
    return images, c2w, K


def _tiny(**overrides):
    torch.manual_seed(0)
    return build_head("tiny", **overrides).eval()


@pytest.mark.parametrize("stride", [1, 2])
def test_head_outputs_one_gaussian_per_grid_pixel_per_frame(stride):
    head = _tiny(stride=stride)
    g = head(*_inputs())
    assert isinstance(g, Gaussians)
    assert g.batch_shape == (B, F) and g.num_gaussians == V * (H // stride) * (W // stride)
    assert g.means.shape == (B, F, g.num_gaussians, 3) and g.rotations.shape == (B, F, g.num_gaussians, 4)


def test_means_start_on_their_pixel_rays():
    head = _tiny()
    images, c2w, K = _inputs()
    g = head(images, c2w, K)
    origins, dirs = cam.pixel_rays(c2w, K[:, :, None], H, W)  # [B, V, F, H, W, 3]
    origins, dirs = (t.permute(0, 2, 1, 3, 4, 5).reshape(B, F, -1, 3) for t in (origins, dirs))  # [B, F, N, 3]
    offset = g.means - origins
    along = (offset * dirs).sum(-1, keepdim=True)
    off_ray = (offset - along * dirs).norm(dim=-1)
    assert off_ray.max() < head.config.max_offset * 3**0.5  # at most the bounded offset away from the ray
    distance = origins.norm(dim=-1, keepdim=True)
    assert ((along - distance).abs() <= head.config.depth_range + 1e-5).all()  # within the depth range around the camera distance


def test_save_load_round_trip_is_identical(tmp_path):
    head = _tiny()
    head.save_pretrained(tmp_path)
    again = GaussianHead4D.from_pretrained(tmp_path).eval()
    assert again.config.width == head.config.width
    inputs = _inputs()
    with torch.no_grad():
        a, b = head(*inputs), again(*inputs)
    for name in ("means", "rotations", "scales", "opacities", "colours"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_temporal_attention_off_keeps_frames_independent():
    images, c2w, K = _inputs()
    changed = images.clone()
    changed[:, :, 1] = torch.rand_like(changed[:, :, 1])  # new content in frame 1 only
    for temporal, independent in ((False, True), (True, False)):
        head = _tiny(temporal_attention=temporal)
        # Break the zero-initialised decoder so that every input reaches the outputs.
        torch.nn.init.normal_(head.decoder[-1].weight, std=0.1)
        with torch.no_grad():
            a, b = head(images, c2w, K), head(changed, c2w, K)
        assert torch.equal(a.means[:, 0], b.means[:, 0]) == independent
        assert not torch.equal(a.means[:, 1], b.means[:, 1])


def test_presets_build_on_the_meta_device_at_the_size_their_blocks_imply_and_unknown_names_raise():
    assert set(HEAD_PRESETS) == {"tiny", "cpu-small", "base"}
    with torch.device("meta"):  # shapes only: the base head (64 M parameters) allocates nothing
        heads = {name: build_head(name) for name in HEAD_PRESETS}
    sizes = {name: sum(p.numel() for p in head.parameters()) for name, head in heads.items()}
    assert all(p.is_meta for p in heads["base"].parameters())
    assert sizes["tiny"] < sizes["cpu-small"] < sizes["base"]
    # Each block: spatial, cross-view and temporal attention (4 width^2 each) and a 4x MLP (8 width^2); the patch
    # embedding, decoder, norms and biases add the last few per cent.
    base = HEAD_PRESETS["base"]
    assert sizes["base"] == pytest.approx(base["depth"] * 20 * base["width"] ** 2, rel=0.03)
    with pytest.raises(ValueError, match="unknown head preset"):
        build_head("huge")


def test_base_preset_grid_gives_65536_gaussians_a_frame_from_four_256px_views():
    # The base preset's patch and stride (L4GM's grid), on a narrow, shallow head so that it runs on the CPU in a second.
    head = build_head("base", width=16, depth=1, heads=2, decoder_channels=4).eval()
    V, size = 4, 256
    c2w = cam.orbit_c2w(torch.full((V,), 15.0), cam.ring_azimuths(V), 1.6, num_frames=1)[None]  # [1, V, 1, 4, 4]
    with torch.no_grad():
        gaussians = head(torch.rand(1, V, 1, 3, size, size), c2w, cam.intrinsics_from_fov(40.0).expand(1, V, 3, 3))
    assert gaussians.batch_shape == (1, 1) and gaussians.num_gaussians == 65_536


def test_bad_image_sizes_and_camera_shapes_raise():
    head = _tiny()
    images, c2w, K = _inputs()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        head(images[..., :12, :12], c2w, K)
    with pytest.raises(ValueError, match="do not match"):
        head(images, c2w[:, :2], K)



def _up(t):
    """Each pixel of [..., h, w] repeated over 2 x 2: [..., 2h, 2w]."""
    return t.repeat_interleave(2, -2).repeat_interleave(2, -1)


def _finer(coarse):
    """A stride-1 tiny head started from a stride-2 one."""
    fine = build_head("tiny", stride=1, hull_prior=coarse.config.hull_prior).eval()
    fine.load_state_dict(finer_stride_weights(coarse.state_dict(), 2, coarse.config.decoder_channels))
    return fine


def _unpatched(head, inputs):
    """The per-pixel features the head's decoder is given: [(B V F), C, H/s, W/s]."""
    seen = []
    hook = head.decoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        head(*inputs)
    hook.remove()
    return seen[0][:, : head.config.decoder_channels]


def test_a_head_continued_at_a_finer_stride_starts_from_copies_of_the_coarse_gaussians():
    coarse = _tiny(stride=2)
    fine = _finer(coarse)
    inputs = _inputs()
    assert torch.allclose(_unpatched(fine, inputs), _up(_unpatched(coarse, inputs)), atol=1e-5)  # each pixel: its parent's
    scales = slice(8, 11)  # depth 1, offset 3, rotations 4, then the scales
    gap = coarse.decoder[-1].bias[scales] - fine.decoder[-1].bias[scales]
    assert torch.allclose(gap, torch.full((3,), math.log(2)))  # each copy starts smaller, tiling the parent's footprint


def test_a_finer_heads_hull_tokens_sum_the_same_over_a_token():
    coarse = _tiny(stride=2, hull_prior=True)
    torch.nn.init.normal_(coarse.hull_tokens.weight)  # as if trained: no longer zero
    hull = torch.rand(1, 2, H // 2, W // 2)  # hull depth and hit features on the coarse grid
    assert torch.allclose(_finer(coarse).hull_tokens(_up(hull)), coarse.hull_tokens(hull), atol=1e-5)
