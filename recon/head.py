"""GaussianHead4D: multiview video + cameras -> one set of per-pixel 3D Gaussians per frame, in one pass (L4GM-like).

Each image (RGB plus its 6 Pluecker ray channels) is cut into patches; a transformer mixes the tokens with
spatial attention (within an image), cross-view attention (all views of one frame) and temporal attention
(the same patch of one view across frames); the tokens are unpatchified into features on a grid of "Gaussian
pixels" (the image's pixels, or every `stride`-th: L4GM predicts 128 x 128 per 256 x 256 view), and a small
convolutional decoder, which also sees the (pooled) input pixels, gives each grid pixel the raw parameters of
one Gaussian placed on that pixel's ray. Normalised intrinsics describe the coarser grid unchanged.
The Pluecker rays tell every token where it looks from, so no separate positional embedding is needed, and
temporal attention carries no time embedding: each frame's own images say which moment it shows.
With `hull_prior`, each Gaussian's depth starts where its ray enters the visual hull of the views' silhouettes
(recon/hull.py), a depth all views agree on, and the network also sees that depth; it predicts the residual.
Generated views may disagree about the object's shape, and the hull of disagreeing silhouettes is too small: a
frame whose views agree too little (`hull_agreement`) is reconstructed without the hull, as the head learns to
do when training drops the hull for some samples (`recon.losses.recon_loss`'s `hull_dropout`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange

from data.cameras import pixel_rays, plucker_rays
from data.images import object_mask
from layers.attention import Attention, grid_attention
from recon.gaussians import MAX_SCALE, MIN_SCALE, Gaussians, means_on_rays
from recon.hull import hull_depth
from recon.render import render_views

# Raw per-pixel outputs, in channel order: named sizes, split by name (never sliced by index).
RAW_CHANNELS = {"depth": 1, "offset": 3, "rotations": 4, "scales": 3, "opacities": 1, "colours": 3}
# Initial decoder biases: identity rotation; about one 64-pixel footprint (0.015 world units); opacity 0.12, since
# at the start every view's splats overlap everywhere: faint ones keep the first renders cheap and the alpha
# loss gentle (starting half opaque, a fast learning rate can cull every splat at once, which never recovers).
_INIT_SCALE = 0.015
_RAW_BIAS = {
    "rotations": [1.0, 0.0, 0.0, 0.0],
    "scales": [math.log((_INIT_SCALE - MIN_SCALE) / (MAX_SCALE - _INIT_SCALE))] * 3,  # the logit of the unit scale
    "opacities": [-2.0],
}

# Presets as data: the constructor arguments of each size.
HEAD_PRESETS: dict[str, dict] = {
    # unit tests: one Gaussian per pixel
    "tiny": dict(patch_size=8, stride=1, width=64, depth=1, heads=2, decoder_channels=16),
    # fits a 64x64 clip on a CPU in minutes: 4 views -> 4 x 32^2 = 4,096 Gaussians a frame
    "cpu-small": dict(patch_size=8, stride=2, width=128, depth=4, heads=4, decoder_channels=32),
    # GPU training at 256x256: 4 views -> 4 x 128^2 = 65,536 Gaussians a frame, as L4GM
    "base": dict(patch_size=8, stride=2, width=512, depth=12, heads=8, decoder_channels=64),
}


def build_head(preset: str, **overrides) -> GaussianHead4D:
    """A GaussianHead4D of a named preset ("tiny", "cpu-small", "base"), with any argument overridden."""
    if preset not in HEAD_PRESETS:
        raise ValueError(f"unknown head preset {preset!r}; choose from {sorted(HEAD_PRESETS)}")
    return GaussianHead4D(**{**HEAD_PRESETS[preset], **overrides})


def finer_stride_weights(weights: dict[str, torch.Tensor], factor: int, decoder_channels: int) -> dict[str, torch.Tensor]:
    """A head's weights adapted to a stride `factor` times finer (one Gaussian per s/factor instead of s pixels).

    Each of the factor x factor finer Gaussians that share a coarse Gaussian's pixels starts as a copy of it: the
    unpatch rows of its sub-pixel are repeated, and the hull tokens' kernel is repeated and divided by factor**2 so
    that it sums the same over a token. Every other weight keeps its shape, but the scales' output bias falls by
    log(factor), so each copy starts about 1/factor the size: the copies tile the coarse Gaussian's footprint instead
    of stacking on it (the scale's sigmoid is nearly exponential at the sizes heads use, far below MAX_SCALE). So a
    finer head starts from what the coarse one learnt, and training adds the detail a coarse grid cannot hold.
    """
    out = dict(weights)
    start = sum(list(RAW_CHANNELS.values())[: list(RAW_CHANNELS).index("scales")])  # the scales' first raw channel
    bias = weights["decoder.2.bias"].clone()  # [15]: the raw channels' biases
    bias[start : start + RAW_CHANNELS["scales"]] -= math.log(factor)
    out["decoder.2.bias"] = bias
    for name in ("unpatch.weight", "unpatch.bias"):
        t = weights[name]  # [(q q C), D] or [(q q C)]
        q = math.isqrt(t.shape[0] // decoder_channels)
        t = t.reshape(q, q, decoder_channels, *t.shape[1:])  # [q, q, C, ...]
        out[name] = t.repeat_interleave(factor, 0).repeat_interleave(factor, 1).flatten(0, 2)  # [(qf qf C), ...]
    if "hull_tokens.weight" in weights:
        kernel = weights["hull_tokens.weight"]  # [D, 2, q, q]
        out["hull_tokens.weight"] = kernel.repeat_interleave(factor, 2).repeat_interleave(factor, 3) / factor**2
    return out


class Block4D(nn.Module):
    """Spatial, cross-view and (optional) cross-frame attention, then an MLP; pre-norm residuals on [B, V, F, N, D]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, temporal: bool):
        super().__init__()
        layouts = ["spatial", "view"] + (["frame"] if temporal else [])  # names of layers.attention.GRID_LAYOUTS
        self.attn = nn.ModuleDict({name: Attention(dim, heads, qk_norm=False) for name in layouts})
        self.norms = nn.ModuleDict({name: nn.LayerNorm(dim) for name in layouts + ["mlp"]})
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layout, attn in self.attn.items():
            x = x + grid_attention(attn, self.norms[layout](x), layout)  # [B, V, F, N, D]
        return x + self.mlp(self.norms["mlp"](x))  # [B, V, F, N, D]


class GaussianHead4D(ModelMixin, ConfigMixin):
    """Images [B, V, F, 3, H, W] in [0, 1] with cameras -> Gaussians [B, F, V * H/s * W/s], s = stride.

    Args:
        patch_size: pixels per token side; H and W must be multiples of it.
        stride: one Gaussian per stride x stride pixels; patch_size must be a multiple of it.
        width: token width D. depth: number of blocks. heads: attention heads. mlp_ratio: MLP hidden / D.
        decoder_channels: per-pixel feature channels out of the transformer, into the pixel decoder.
        temporal_attention: False keeps the frames independent (each frame reconstructed on its own).
        depth_range: a pixel's Gaussian lies at the camera's distance to the origin +- this, along its ray.
        max_offset: largest offset of a Gaussian off its pixel ray, per axis (world units).
        hull_prior: depths start at the visual hull of the input silhouettes (recon/hull.py) instead of the object's
            middle plane, and the hull's depth and hit flag are inputs of the tokens and of the pixel decoder.
        hull_agreement: the hull is used for a frame only where at least this share of its views' object pixels
            have rays that meet the hull (true views: 0.95-1.0; the shipped diffusion model's views: 0-0.85).
    """

    # Added by an option with a zero-initialised output: a head continued with them starts as the saved one.
    ZERO_INIT_MODULES = ("hull_tokens", "hull_pixels")

    @register_to_config
    def __init__(
        self,
        patch_size: int = 8,
        stride: int = 1,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        decoder_channels: int = 32,
        temporal_attention: bool = True,
        depth_range: float = 0.6,
        max_offset: float = 0.05,
        hull_prior: bool = False,
        hull_agreement: float = 0.0,
    ):
        super().__init__()
        if patch_size % stride:
            raise ValueError(f"GaussianHead4D: patch_size {patch_size} is not a multiple of stride {stride}")
        if not 0.0 <= hull_agreement <= 1.0:
            raise ValueError(f"GaussianHead4D: hull_agreement {hull_agreement} is a share, between 0 and 1")
        in_channels = 3 + 6  # RGB + Pluecker rays
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.blocks = nn.ModuleList([Block4D(width, heads, mlp_ratio, temporal_attention) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(width)
        self.unpatch = nn.Linear(width, (patch_size // stride) ** 2 * decoder_channels)
        raw_channels = sum(RAW_CHANNELS.values())
        self.decoder = nn.Sequential(
            nn.Conv2d(decoder_channels + in_channels, decoder_channels, 3, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(decoder_channels, raw_channels, 1),
        )
        out = self.decoder[-1]
        nn.init.zeros_(out.weight)  # starts as the bias: every Gaussian on its ray at the object's middle depth
        bias = torch.cat([torch.tensor(_RAW_BIAS.get(name, [0.0] * size)) for name, size in RAW_CHANNELS.items()])
        with torch.no_grad():
            out.bias.copy_(bias)
        if hull_prior:  # 2 channels: the hull's depth relative to the middle plane, and whether the ray hit it
            self.hull_tokens = nn.Conv2d(2, width, patch_size // stride, stride=patch_size // stride)
            self.hull_pixels = nn.Conv2d(2, decoder_channels, 1)
            for layer in (self.hull_tokens, self.hull_pixels):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def reset_depth_output(self) -> None:
        """Zero the decoder's depth output, so every Gaussian starts at its base depth (the hull's, with `hull_prior`):
        for continuing a head trained without the hull, whose depth outputs are offsets from the middle plane."""
        out = self.decoder[-1]
        with torch.no_grad():
            out.weight[: RAW_CHANNELS["depth"]].zero_()
            out.bias[: RAW_CHANNELS["depth"]].zero_()

    def hull(self, images: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, off: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The visual hull's depths on the Gaussian grid: (depths [B, F, N, 1], features [(B V F), 2, H/s, W/s]).

        images [B, V, F, 3, H, W] over white, c2w [B, V, F, 4, 4], K [B, V, 1, 3, 3]; N = V * H/s * W/s. Frames whose
        views agree less than `hull_agreement`, and samples where `off` [B] is True, get the middle plane's depths
        and zero features: the head without its hull."""
        b, v, f, _, h, w = images.shape
        s, r = self.config.stride, self.config.depth_range
        masks = rearrange(object_mask(images), "b v f c h w -> b f v c h w")  # [B, F, V, 1, H, W]
        cams = rearrange(c2w, "b v f i j -> b f v i j")  # [B, F, V, 4, 4]
        intrinsics = rearrange(K.expand(-1, -1, f, -1, -1), "b v f i j -> b f v i j")  # [B, F, V, 3, 3]
        depth, hit = hull_depth(masks, cams, intrinsics, h // s, w // s, r)  # [B, F, V, h/s, w/s] each
        own = F.avg_pool2d(masks.flatten(0, 2).float(), s).reshape(hit.shape) > 0.5  # [B, F, V, h/s, w/s]
        agreement = (hit & own).sum((2, 3, 4)) / own.sum((2, 3, 4)).clamp(min=1)  # [B, F]
        use = agreement >= self.config.hull_agreement  # [B, F]
        if off is not None:
            use &= ~off[:, None]
        use = use[:, :, None, None, None]  # [B, F, 1, 1, 1]
        middle = cams[..., :3, 3].norm(dim=-1)[..., None, None]  # [B, F, V, 1, 1]
        depth = torch.where(use, depth, middle)  # [B, F, V, h/s, w/s]
        features = torch.stack([(depth - middle) / r, (hit & use).float()], dim=3)  # [B, F, V, 2, h/s, w/s]
        return (rearrange(depth, "b f v y x -> b f (v y x) 1"),
                rearrange(features, "b f v c y x -> (b v f) c y x"))

    def forward(self, images: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor, hull_off: torch.Tensor | None = None) -> Gaussians:
        """Predict per-pixel Gaussians for every frame.

        Args:
            images: [B, V, F, 3, H, W] RGB in [0, 1] (composited over a background).
            c2w: [B, V, F, 4, 4] camera-to-world, OpenCV axes.
            K: [B, V, 3, 3] normalised intrinsics.
            hull_off: [B] bool, samples to reconstruct without the hull (training's hull dropout); None: none.

        Returns:
            Gaussians with batch shape [B, F] and N = V * H/s * W/s, ordered (view, grid row, grid column).
        """
        b, v, f, _, h, w = images.shape
        p, s = self.config.patch_size, self.config.stride
        q = p // s  # Gaussian pixels per token side
        if h % p or w % p:
            raise ValueError(f"GaussianHead4D: image size {h}x{w} is not a multiple of the patch size {p}")
        if c2w.shape != (b, v, f, 4, 4) or K.shape != (b, v, 3, 3):
            raise ValueError(f"GaussianHead4D: c2w {tuple(c2w.shape)} / K {tuple(K.shape)} do not match images {tuple(images.shape)}")
        K = K[:, :, None]  # [B, V, 1, 3, 3]
        rays = plucker_rays(c2w, K, h, w)  # [B, V, F, 6, H, W]
        pixels = torch.cat([images * 2 - 1, rays], dim=3).flatten(0, 2)  # [(B V F), 9, H, W]

        tokens = self.patch_embed(pixels)  # [(B V F), D, H/p, W/p]
        base = None
        if self.config.hull_prior:
            base, hull = self.hull(images, c2w, K, hull_off)  # [B, F, N, 1], [(B V F), 2, H/s, W/s]
            tokens = tokens + self.hull_tokens(hull)  # [(B V F), D, H/p, W/p]
        tokens = rearrange(tokens, "(b v f) d y x -> b v f (y x) d", b=b, v=v, f=f)  # [B, V, F, N, D]
        for block in self.blocks:
            tokens = block(tokens)  # [B, V, F, N, D]
        feats = self.unpatch(self.norm_out(tokens))  # [B, V, F, N, q * q * C]
        feats = rearrange(feats, "b v f (y x) (qy qx c) -> (b v f) c (y qy) (x qx)", y=h // p, qy=q, qx=q)  # [(B V F), C, H/s, W/s]
        pooled = F.avg_pool2d(pixels, s)  # [(B V F), 9, H/s, W/s]
        if self.config.hull_prior:
            feats = feats + self.hull_pixels(hull)  # [(B V F), C, H/s, W/s]
        raw = self.decoder(torch.cat([feats, pooled], dim=1))  # [(B V F), 15, H/s, W/s]
        raw = rearrange(raw, "(b v f) c h w -> b f (v h w) c", b=b, v=v)  # [B, F, N, 15]
        raw = dict(zip(RAW_CHANNELS, raw.split(list(RAW_CHANNELS.values()), dim=-1)))  # name -> [B, F, N, size]

        origins, dirs = (rearrange(t, "b v f h w c -> b f (v h w) c") for t in pixel_rays(c2w, K, h // s, w // s))  # [B, F, N, 3]
        pooled_rgb = rearrange(pooled[:, :3], "(b v f) c h w -> b f (v h w) c", b=b, v=v) / 2 + 0.5  # [B, F, N, 3] in [0, 1]
        colour_prior = torch.logit(pooled_rgb, eps=0.01)  # [B, F, N, 3]
        return Gaussians.from_raw(
            means=means_on_rays(origins, dirs, raw["depth"], raw["offset"], self.config.depth_range, self.config.max_offset, base),
            rotations=raw["rotations"],
            scales=raw["scales"],
            opacities=raw["opacities"][..., 0],
            colours=raw["colours"] + colour_prior,  # a residual on the pixel's own colour
        )

    @torch.no_grad()
    def render_back(self, images: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """The Gaussians of images [V, F, 3, H, W] in [0, 1] rendered back over white at their own cameras c2w
        [V, F, 4, 4], K [V, 3, 3]: [V, F, 3, H, W]. One 3D object's views (the pipeline's reconstruction loop)."""
        device = next(self.parameters()).device
        images, c2w, K = images[None].to(device), c2w[None].to(device), K[None].to(device)  # batch of one
        gaussians = self(images, c2w, K)  # [1, F, N]
        return render_views(gaussians, c2w, K, *images.shape[-2:], background=1.0).rgb[0].clamp(0, 1)  # [V, F, 3, H, W]
