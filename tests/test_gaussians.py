import pytest
import torch

from recon.gaussians import MAX_SCALE, MIN_SCALE, Gaussians, means_on_rays


def _fields(batch=(2, 3), n=5):
    gen = torch.Generator().manual_seed(0)
    return {
        "means": torch.randn(*batch, n, 3, generator=gen),
        "rotations": torch.nn.functional.normalize(torch.randn(*batch, n, 4, generator=gen), dim=-1),
        "scales": torch.rand(*batch, n, 3, generator=gen) * 0.05 + 0.01,
        "opacities": torch.rand(*batch, n, generator=gen),
        "colours": torch.rand(*batch, n, 3, generator=gen),
    }


@pytest.mark.parametrize("name", ["means", "rotations", "scales", "opacities", "colours"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_raises_naming_the_field(name, bad):
    fields = _fields()
    fields[name].view(-1)[3] = bad
    with pytest.raises(ValueError, match=f"Gaussians.{name} holds NaN or infinite"):
        Gaussians(**fields)


def test_inconsistent_shapes_raise():
    fields = _fields()
    fields["opacities"] = fields["opacities"][..., :4]
    with pytest.raises(ValueError, match="Gaussians.opacities has shape"):
        Gaussians(**fields)


def test_batch_shape_count_and_map():
    g = Gaussians(**_fields(batch=(2, 3), n=5))
    assert g.batch_shape == (2, 3) and g.num_gaussians == 5
    frame0 = g.map(lambda t: t[:, 0])
    assert frame0.batch_shape == (2,) and torch.equal(frame0.colours, g.colours[:, 0])


def test_zero_gaussians_are_valid():
    g = Gaussians(**_fields(batch=(4,), n=0))
    assert g.num_gaussians == 0 and g.batch_shape == (4,)


def test_activations_respect_their_ranges_and_invert():
    gen = torch.Generator().manual_seed(1)
    raw = {"means": torch.randn(7, 3, generator=gen), "rotations": torch.randn(7, 4, generator=gen) * 3,
           "scales": torch.randn(7, 3, generator=gen) * 4, "opacities": torch.randn(7, generator=gen) * 4,
           "colours": torch.randn(7, 3, generator=gen) * 4}
    g = Gaussians.from_raw(**raw)
    assert torch.allclose(g.rotations.norm(dim=-1), torch.ones(7))
    assert (g.scales >= MIN_SCALE).all() and (g.scales <= MAX_SCALE).all()
    assert (g.opacities > 0).all() and (g.opacities < 1).all() and (g.colours > 0).all() and (g.colours < 1).all()
    again = Gaussians.from_raw(**g.to_raw())
    for name in ("means", "rotations", "scales", "opacities", "colours"):
        assert torch.allclose(getattr(again, name), getattr(g, name), atol=1e-5), name


def test_means_on_rays_stay_on_the_ray_within_the_depth_range():
    origins = torch.tensor([[0.0, 0.0, 2.0]]).expand(50, 3)
    dirs = torch.nn.functional.normalize(torch.randn(50, 3) * 0.1 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    raw_depth = torch.randn(50, 1) * 5
    means = means_on_rays(origins, dirs, raw_depth, torch.zeros(50, 3), depth_range=0.6, max_offset=0.05)
    along = ((means - origins) * dirs).sum(-1)
    assert torch.allclose(means, origins + along[:, None] * dirs, atol=1e-6)  # on the ray
    assert (along >= 2.0 - 0.6 - 1e-5).all() and (along <= 2.0 + 0.6 + 1e-5).all()
    off = means_on_rays(origins, dirs, raw_depth, torch.full((50, 3), 100.0), depth_range=0.6, max_offset=0.05)
    assert ((off - means).abs() <= 0.05 + 1e-6).all()  # the offset is bounded per axis
