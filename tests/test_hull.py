"""The visual hull (recon/hull.py) and the head's hull prior: depths from silhouettes, one surface for all views."""
import json

import pytest
import torch

import train
from data import cameras as cam
from recon.head import build_head
from recon.hull import hull_depth
from recon.losses import recon_loss

V, F, H, W = 4, 2, 32, 32
RADIUS, DISTANCE = 0.3, 1.6


def _ring(views=V):
    c2w = cam.orbit_c2w(torch.full((views,), 10.0), cam.ring_azimuths(views), DISTANCE, num_frames=F)  # [V, F, 4, 4]
    return c2w.transpose(0, 1), cam.intrinsics_from_fov(40.0).expand(F, views, 3, 3)  # [F, V, 4, 4], [F, V, 3, 3]


def _sphere_entry(c2w, K, height, width, centre=(0.0, 0.0, 0.0)):
    """Exact depth at which each pixel ray [..., h, w] enters a sphere of RADIUS (inf where it misses)."""
    origins, dirs = cam.pixel_rays(c2w, K, height, width)  # [..., h, w, 3]
    rel = origins - torch.tensor(centre)
    b = (rel * dirs).sum(-1)  # [..., h, w]
    disc = b**2 - (rel.square().sum(-1) - RADIUS**2)
    return torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.full_like(b, float("inf")))


def test_hull_of_a_sphere_meets_the_sphere_where_its_silhouettes_say():
    c2w, K = _ring()
    entry = _sphere_entry(c2w, K, H, W)  # [F, V, H, W]
    masks = torch.isfinite(entry)[:, :, None]  # [F, V, 1, H, W]
    depth, hit = hull_depth(masks, c2w, K, H, W, depth_range=0.6, samples=96)
    assert depth.shape == hit.shape == (F, V, H, W)
    assert torch.equal(hit, masks[:, :, 0] & hit)  # no ray outside a silhouette meets the hull
    centre = (slice(None), slice(None), slice(H // 2 - 2, H // 2 + 2), slice(W // 2 - 2, W // 2 + 2))
    assert hit[centre].all()
    # Around the middle of each view, the four ring silhouettes carve the hull down to the sphere's front: the first
    # sample inside lies within a pixel's footprint at the object (2 * 1.6 * tan 20 deg / 32 = 0.036) of the exact entry.
    assert (depth[centre] - entry[centre]).abs().max() < 0.036
    assert (depth[~hit] == c2w[..., :3, 3].norm(dim=-1)[..., None, None].expand(F, V, H, W)[~hit]).all()


def test_hull_follows_an_off_centre_object_that_the_middle_plane_would_miss():
    c2w, K = _ring()
    entry = _sphere_entry(c2w, K, H, W, centre=(0.25, 0.0, 0.0))
    depth, hit = hull_depth(torch.isfinite(entry)[:, :, None], c2w, K, H, W, depth_range=0.6, samples=96)
    middle = c2w[..., :3, 3].norm(dim=-1)[..., None, None]  # [F, V, 1, 1]
    errors = (depth - entry)[hit & torch.isfinite(entry)].abs()
    assert errors.median() < 0.03 < (middle - entry).abs()[torch.isfinite(entry)].median()


def test_continuing_a_head_without_the_hull_prior_starts_at_the_hull(tmp_path):
    torch.manual_seed(0)
    plain = build_head("tiny")
    with torch.no_grad():
        plain.decoder[-1].bias[0] = 2.0  # a depth output trained as an offset from the middle plane
    plain.save_pretrained(tmp_path)
    cfg = train.TrainConfig(preset="tiny", hull_prior=True)
    stage = train.ReconStage(cfg, torch.device("cpu"))
    stage.load(stage.model, str(tmp_path))
    assert stage.model.config.hull_prior and not json.loads((tmp_path / "config.json").read_text())["hull_prior"]
    assert stage.model.decoder[-1].bias[0] == 0 and stage.model.decoder[-1].weight[0].abs().sum() == 0
    assert torch.equal(stage.model.decoder[-1].bias[1:], plain.decoder[-1].bias[1:])  # the other outputs are kept
    assert stage.model.hull_tokens.weight.abs().sum() == 0  # the added inputs start switched off


def _sphere_views(shift_view: int | None = None):
    """Images [1, V, F, 3, H, W] of a red sphere over white at the ring cameras (c2w [1, V, F, 4, 4], K [1, V, 3, 3]);
    with `shift_view`, that view draws the sphere off to one side, so the views disagree about the object."""
    c2w, K = _ring()
    entry = _sphere_entry(c2w, K, H, W)  # [F, V, H, W]
    if shift_view is not None:
        entry[:, shift_view] = entry[:, shift_view].roll(W // 3, dims=-1)
    red = torch.tensor([0.8, 0.2, 0.1])[:, None, None]
    images = torch.where(torch.isfinite(entry)[:, :, None], red, torch.ones(3, H, W))  # [F, V, 3, H, W]
    return images.transpose(0, 1)[None], c2w.transpose(0, 1)[None], K[0][None]


def _depth_along_rays(head, images, c2w, K, hull_off=None):
    with torch.no_grad():
        g = head(images, c2w, K, hull_off)  # [1, F, N]
    origins, dirs = cam.pixel_rays(c2w, K[:, :, None], H, W)  # [1, V, F, H, W, 3]
    return ((g.means - origins.transpose(1, 2).reshape(1, F, -1, 3)) * dirs.transpose(1, 2).reshape(1, F, -1, 3)).sum(-1)


def test_a_fresh_hull_head_places_its_gaussians_on_the_hull_and_sees_the_hull():
    torch.manual_seed(0)
    head = build_head("tiny", hull_prior=True).eval()
    images, c2w, K = _sphere_views()
    depth, features = head.hull(images, c2w, K[:, :, None])  # [1, F, N, 1], [(V F), 2, H, W]
    # the depth output starts at zero: each Gaussian on the hull
    assert torch.allclose(_depth_along_rays(head, images, c2w, K), depth[..., 0], atol=1e-4)
    hit = features[:, 1]  # [(V F), H, W]
    assert 0 < hit.sum() < hit.numel()  # the hit flag marks the object, not the background


def test_views_that_disagree_and_dropped_samples_are_reconstructed_without_the_hull():
    torch.manual_seed(0)
    head = build_head("tiny", hull_prior=True, hull_agreement=0.9).eval()
    middle = torch.full((1, F, V * H * W), DISTANCE)
    agreeing = _sphere_views()
    assert not torch.allclose(_depth_along_rays(head, *agreeing), middle, atol=1e-3)  # on the hull
    assert torch.allclose(_depth_along_rays(head, *agreeing, hull_off=torch.tensor([True])), middle, atol=1e-4)
    disagreeing = _sphere_views(shift_view=1)
    assert torch.allclose(_depth_along_rays(head, *disagreeing), middle, atol=1e-4)  # the hull is left out
    head.register_to_config(hull_agreement=0.0)
    assert not torch.allclose(_depth_along_rays(head, *disagreeing), middle, atol=1e-3)  # used whatever the views say


def test_hull_dropout_of_one_trains_the_head_without_its_hull():
    torch.manual_seed(0)
    head = build_head("tiny", hull_prior=True).eval()
    images, c2w, K = _sphere_views()
    rgba = torch.cat([images, (images < 0.99).any(3, keepdim=True).float()], dim=3)  # [1, V, F, 4, H, W]
    batch = {"images": rgba, "c2w": c2w, "K": K}
    with torch.no_grad():
        always, _ = recon_loss(head, batch, num_input_views=V)
        dropped, _ = recon_loss(head, batch, num_input_views=V, hull_dropout=1.0)
        head.register_to_config(hull_agreement=1.1)  # never used
        never, _ = recon_loss(head, batch, num_input_views=V)
    assert dropped == never != always


def test_hull_shares_outside_zero_to_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="hull_agreement -0.1 is a share"):
        build_head("tiny", hull_prior=True, hull_agreement=-0.1)
    for option in ("--hull-agreement", "--hull-dropout"):
        with pytest.raises(SystemExit, match=f"{option} 1.5: a share, between 0 and 1"):
            train.main(["recon", "--data", "../shared/assets", "--out", str(tmp_path / "run"), option, "1.5"])


def test_validation_scores_the_head_with_its_hull_whatever_the_training_dropout():
    images, c2w, K = _sphere_views()
    batch = {"images": torch.cat([images, (images < 0.99).any(3, keepdim=True).float()], dim=3), "c2w": c2w, "K": K}
    stages = [train.ReconStage(train.TrainConfig(preset="tiny", hull_prior=True, hull_dropout=p), torch.device("cpu"))
              for p in (0.0, 1.0)]
    stages[1].model.load_state_dict(stages[0].model.state_dict())
    with torch.no_grad():
        kept, dropped = (stage.loss(stage.model.eval(), batch)[0] for stage in stages)
        trained = stages[1].loss(stages[1].model.train(), batch)[0]
    assert kept == dropped != trained
