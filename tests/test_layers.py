"""layers.attention: the grid layouts mix exactly the tokens they name; the head's variant (no qk-norm) differs only there."""
import pytest
import torch

from layers.attention import GRID_LAYOUTS, Attention, grid_attention

B, V, F, N, D = 2, 3, 4, 5, 8


def reached(layout: str) -> torch.Tensor:
    """Bool [B, V, F, N]: which outputs change when token (0, 1, 2, 3) of the input changes."""
    torch.manual_seed(0)
    attn = Attention(D, num_heads=2).eval()
    x = torch.randn(B, V, F, N, D)
    poked = x.clone()
    poked[0, 1, 2, 3] += 1.0
    with torch.no_grad():
        return (grid_attention(attn, poked, layout) - grid_attention(attn, x, layout)).abs().amax(-1) > 1e-6


@pytest.mark.parametrize("layout", sorted(GRID_LAYOUTS))
def test_each_layout_mixes_only_its_own_tokens(layout):
    b, v, f, n = torch.meshgrid(*(torch.arange(s) for s in (B, V, F, N)), indexing="ij")
    expected = {
        "spatial": (b == 0) & (v == 1) & (f == 2),  # the other tokens of the same image
        "view": (b == 0) & (f == 2),  # every token of every view of the same frame
        "frame": (b == 0) & (v == 1) & (n == 3),  # the same token position of the same view, every frame
    }[layout]
    assert torch.equal(reached(layout), expected)


def test_qk_norm_off_is_plain_attention():
    torch.manual_seed(0)
    plain, normed = Attention(D, 2, qk_norm=False), Attention(D, 2)
    normed.load_state_dict(plain.state_dict(), strict=False)  # the same projections; only the norms differ
    x = torch.randn(B, N, D) * 4
    q, k, v = plain.to_q(x), *plain.to_kv(x).chunk(2, -1)
    split = lambda t: t.unflatten(-1, (2, D // 2)).transpose(1, 2)  # [B, H, N, Dh]
    expected = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (D // 2) ** 0.5, -1) @ split(v)  # [B, H, N, Dh]
    expected = plain.to_out(expected.transpose(1, 2).flatten(2))  # [B, N, D]
    assert torch.allclose(plain(x), expected, atol=1e-5)
    assert not torch.allclose(normed(x), expected, atol=1e-3)  # qk-norm rescales the logits
