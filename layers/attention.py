"""Attention for both networks: the one function that picks a kernel, the one attention layer, and the token layouts
of a grid of views x frames (which tokens attend to each other)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@functools.cache
def _xformers_ops():
    """`xformers.ops` when importable, else None. xformers is optional: its kernels exist on CUDA only."""
    try:
        import xformers.ops
    except ImportError:
        return None
    return xformers.ops


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head scaled dot-product attention, [B, H, Lq, Dh] out.

    q: [B, H, Lq, Dh]; k, v: [B, H, Lk, Dh]; mask: bool, broadcastable to [B, H, Lq, Lk], True where a query may
    attend a key (None: all). xformers' memory-efficient kernel runs when it is importable, the tensors are on CUDA
    and there is no mask; everything else goes to `F.scaled_dot_product_attention`, which on CUDA has a
    memory-efficient kernel of its own that takes masks. The only masked call is the cross-attention to a few dozen
    text tokens, so it is the unmasked spatial, cross-view and cross-frame calls that need xformers' savings.
    """
    xops = _xformers_ops() if q.is_cuda and mask is None else None
    if xops is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    q, k, v = (rearrange(t, "b h l d -> b l h d") for t in (q, k, v))  # xformers' layout
    return rearrange(xops.memory_efficient_attention(q, k, v), "b l h d -> b h l d")


class Attention(nn.Module):
    """Multi-head attention of tokens x [B, L, D] over a context [B, S, D_ctx] (x itself when no context is given).

    With qk_norm, queries and keys are RMS-normalised per head (as in SD3 and ViT-22B): it bounds the attention
    logits, which keeps training stable at the high learning rates a small model wants and in bf16. The
    reconstruction head trains without it (its shipped weights were learnt so).
    zero_init zeroes the output projection, so the layer starts as a residual that adds nothing.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, zero_init: bool = False,
                 qk_norm: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        head_dim = dim // num_heads
        self.norm_q = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.to_out = nn.Linear(dim, dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, D]; context: [B, S, D_ctx] or None; mask: bool [B, 1, 1, S] (True = attend) or None. Returns [B, L, D]."""
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b l (h d) -> b h l d", h=self.num_heads)  # [B, H, L, Dh]
        k, v = rearrange(self.to_kv(context), "b s (two h d) -> two b h s d", two=2, h=self.num_heads)  # [B, H, S, Dh] each
        out = attention(self.norm_q(q), self.norm_k(k), v, mask)  # [B, H, L, Dh]
        return self.to_out(rearrange(out, "b h l d -> b l (h d)"))  # [B, L, D]


# Sequence layouts of a token grid [B, V, F, N, D]: which tokens attend to each other.
GRID_LAYOUTS = {
    "spatial": "(b v f) n d",  # the N tokens of one image
    "view": "(b f) (v n) d",  # every token of all views of one frame
    "frame": "(b v n) f d",  # one token position of one view across the frames
}


def grid_attention(attn: Attention, x: torch.Tensor, layout: str) -> torch.Tensor:
    """`attn` over a token grid x [B, V, F, N, D] in one of GRID_LAYOUTS; returns [B, V, F, N, D]."""
    pattern = GRID_LAYOUTS[layout]
    b, v, f, n, _ = x.shape
    seq = rearrange(x, f"b v f n d -> {pattern}")  # [batch, L, D]
    return rearrange(attn(seq), f"{pattern} -> b v f n d", b=b, v=v, f=f, n=n)  # [B, V, F, N, D]
