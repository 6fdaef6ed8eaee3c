"""MultiViewVideoDiT: a diffusion transformer that denoises a grid of V views x F frames of one object jointly.

Design decisions (docs/DESIGN.md has the whole picture; the choices made here):
  * Pixel space, no VAE: no pretrained image VAE can be loaded offline, and at the CPU preset's 64x64 a patch of
    8x8 RGB pixels (192 values) is no wider than the transformer, so patches are embedded and predicted directly;
    trained models predict the clean patch and return the velocity it implies (`prediction`, below).
  * Input per pixel: noisy RGB (3) + clean conditioning RGB (3) + conditioning mask (1) + Pluecker ray (6) = 13
    channels, patchified (p x p) and linearly embedded into tokens [B, V, F, N, D].
  * Positions: 2D sin-cos within an image; sin-cos of the clip's normalised frame times, so frames are ordered and
    clips of other lengths or frame rates fit. No learned per-view index: cameras enter only through the Pluecker
    rays, so permuting the views together with their cameras permutes the output.
  * Block = spatial self-attention within each image ((b v f) n d), cross-view attention over ALL tokens of all
    views of one frame ((b f) (v n) d), cross-frame attention per token over the frames of one view ((b v n) f d),
    cross-attention to text tokens, MLP. Cross-view is over all tokens rather than per pixel (SV4D's choice)
    because orbit views 90 degrees apart see a surface point at unrelated pixels: only full attention can reach the
    corresponding patch, and the Pluecker rays say which rays meet. Cross-frame is per token because a view's
    camera is (nearly) fixed over a clip, so the same token sees the same part of the object in neighbouring frames;
    larger motion is carried by the spatial attention of the layers in between, at F^2 instead of (F N)^2 cost.
  * adaLN-Zero (DiT) modulates the spatial attention and the MLP from the timestep plus the mean-pooled prompt
    (MiniLM's sentence embedding is that mean). The cross-view, cross-frame and text layers are plain pre-norm
    residuals with a zero-initialised output projection: at initialisation the model is the spatial-only model
    (cross_view=cross_frame=False) with the same weights, so a pretrained image model can be extended to 4D.
"""
from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import (
    TimestepEmbedding,
    Timesteps,
    get_1d_sincos_pos_embed_from_grid,
    get_2d_sincos_pos_embed,
)
from einops import rearrange
from torch import nn

from data.cameras import plucker_rays
from layers.attention import Attention, grid_attention

IN_CHANNELS = 3 + 3 + 1 + 6  # noisy RGB, conditioning RGB, conditioning mask, Pluecker ray
POSITION_SPAN = 16.0  # image rows/columns and clip times both span 16 units of the sin-cos ladder, at any resolution
PREDICTIONS = ("velocity", "sample")
MOTION_SCALE = 1000.0  # motion scores (~0.0-0.05) onto the sin-cos ladder's range, like SVD's motion bucket ids
SIGMA_FLOOR = 0.05  # x0-prediction: the noise level below which the implied velocity (x_t - x0) / sigma stops growing (JiT)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def camera_features(c2w: torch.Tensor, frequencies: int = 4) -> torch.Tensor:
    """Sin-cos features [..., 6 * frequencies + 1] of camera positions: the unit direction from the object's centre
    to the camera (orbit cameras look at the origin) at octave frequencies, and the log distance. c2w: [..., 4, 4]."""
    eye = c2w[..., :3, 3].float()  # [..., 3]
    distance = eye.norm(dim=-1, keepdim=True).clamp(min=1e-6)  # [..., 1]
    angles = (eye / distance)[..., None] * (2.0 ** torch.arange(frequencies, device=c2w.device)) * torch.pi  # [..., 3, K]
    return torch.cat([angles.sin().flatten(-2), angles.cos().flatten(-2), distance.log()], dim=-1)


def zero_init_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """in_dim -> dim -> dim MLP whose output starts at zero, so a model that gains it starts as the one without."""
    mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


class OutputRefiner(nn.Module):
    """A residual 3x3 convolution pair over predicted images [..., 3, H, W] (zero-initialised: starts as identity)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(0, -4)  # [M, 3, H, W]
        return images + self.conv_out(nn.functional.silu(self.conv_in(flat))).view_as(images)


def _check_shape(name: str, tensor: torch.Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {expected}")


class MultiViewVideoBlock(nn.Module):
    """One transformer block over tokens [B, V, F, N, D] (see the module docstring for the layer order and layouts)."""

    def __init__(self, dim: int, num_heads: int, text_dim: int, mlp_ratio: float, cross_view: bool, cross_frame: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.spatial_attn = Attention(dim, num_heads)
        self.view_norm = nn.LayerNorm(dim) if cross_view else None
        self.view_attn = Attention(dim, num_heads, zero_init=True) if cross_view else None
        self.frame_norm = nn.LayerNorm(dim) if cross_frame else None
        self.frame_attn = Attention(dim, num_heads, zero_init=True) if cross_frame else None
        self.text_norm = nn.LayerNorm(dim)
        self.text_attn = Attention(dim, num_heads, context_dim=text_dim, zero_init=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN_modulation[-1].weight)  # adaLN-Zero: every gate starts closed
        nn.init.zeros_(self.adaLN_modulation[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """x: [B, V, F, N, D]; c: [B, V or 1, F or 1, D] (per view and frame with camera conditioning);
        text: [B, L, D_text]; text_mask: bool [B, 1, 1, L]. Returns [B, V, F, N, D]."""
        V, F = x.shape[1:3]
        mod = self.adaLN_modulation(c)[:, :, :, None]  # [B, V or 1, F or 1, 1, 6D]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)  # [B, V or 1, F or 1, 1, D] each
        x = x + gate1 * grid_attention(self.spatial_attn, modulate(self.norm1(x), shift1, scale1), "spatial")  # [B, V, F, N, D]
        if self.view_attn is not None:
            x = x + grid_attention(self.view_attn, self.view_norm(x), "view")  # [B, V, F, N, D]
        if self.frame_attn is not None:
            x = x + grid_attention(self.frame_attn, self.frame_norm(x), "frame")  # [B, V, F, N, D]
        h = rearrange(self.text_norm(x), "b v f n d -> b (v f n) d")  # every token of the sample
        x = x + rearrange(self.text_attn(h, text, text_mask), "b (v f n) d -> b v f n d", v=V, f=F)  # [B, V, F, N, D]
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))  # [B, V, F, N, D]


class FinalLayer(nn.Module):
    """adaLN-modulated norm and a zero-initialised linear map from tokens [..., D] to pixel patches [..., p*p*C]."""

    def __init__(self, dim: int, patch_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        for layer in (self.linear, self.adaLN_modulation[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: [B, V, F, N, D]; c: [B, V or 1, F or 1, D]. Returns [B, V, F, N, p*p*C]."""
        shift, scale = self.adaLN_modulation(c)[:, :, :, None].chunk(2, dim=-1)  # [B, V or 1, F or 1, 1, D] each
        return self.linear(modulate(self.norm(x), shift, scale))


class MultiViewVideoDiT(ModelMixin, ConfigMixin):
    """Returns the flow-matching velocity [B, V, F, 3, H, W] of a noisy grid of views x frames (see model/diffusion.py).

    What the network itself outputs is `prediction`: "velocity" (eps - x0) directly, or "sample" (the clean image
    x0), turned into the velocity it implies, (x_t - x0) / sigma. "sample" is JiT's (Li and He 2025) remedy for pixel
    patches: the clean image lies near a low-dimensional manifold a narrow transformer can represent, while the noise
    in eps - x0 is 192 independent numbers per 8x8 patch that a 192-wide token cannot carry through the network, so
    velocity-trained pixel models leave per-pixel noise in their samples. Callers see a velocity either way.

    Args:
        hidden_size: transformer width D.
        depth: number of blocks.
        num_heads: attention heads (hidden_size must divide by it).
        patch_size: p; H and W must divide by it.
        text_dim: width of the text encoder's token states (384 for all-MiniLM-L6-v2).
        mlp_ratio: MLP hidden width / D.
        cross_view: build the cross-view attention layers (off: views are processed independently).
        cross_frame: build the cross-frame attention layers (off: frames are processed independently).
        prediction: "velocity" or "sample" (see above); "velocity" is the default so that configs saved before the
            option existed load as they were trained.
        num_train_timesteps: the scheduler's timestep scale, sigma = timestep / num_train_timesteps.
        camera_conditioning: add each view's camera embedding to the adaLN modulation (module docstring).
        motion_conditioning: condition on a clip's motion score; `forward` then needs `motion`.
        output_refiner: a residual convolution over the predicted image, across patch borders.
    """

    _supports_gradient_checkpointing = True
    ZERO_INIT_MODULES = ("camera_embed", "motion_embed", "refiner")  # optional; a model continued with them starts as it was

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 192,
        depth: int = 6,
        num_heads: int = 6,
        patch_size: int = 8,
        text_dim: int = 384,
        mlp_ratio: float = 4.0,
        cross_view: bool = True,
        cross_frame: bool = True,
        prediction: str = "velocity",
        num_train_timesteps: int = 1000,
        camera_conditioning: bool = False,
        motion_conditioning: bool = False,
        output_refiner: bool = False,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.gradient_checkpointing = False
        self.patch_embed = nn.Linear(IN_CHANNELS * patch_size**2, hidden_size)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, hidden_size)
        self.text_pool_embed = nn.Linear(text_dim, hidden_size)
        self.blocks = nn.ModuleList(
            MultiViewVideoBlock(hidden_size, num_heads, text_dim, mlp_ratio, cross_view, cross_frame) for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, 3 * patch_size**2)
        self.camera_embed = zero_init_mlp(camera_features(torch.eye(4)).numel(), hidden_size) if camera_conditioning else None
        self.motion_embed = TimestepEmbedding(256, hidden_size) if motion_conditioning else None
        if self.motion_embed is not None:  # zero output: a model continued with it starts as it was
            nn.init.zeros_(self.motion_embed.linear_2.weight)
            nn.init.zeros_(self.motion_embed.linear_2.bias)
        self.refiner = OutputRefiner() if output_refiner else None

    def _check_inputs(self, sample, timestep, cond_images, cond_mask, c2w, K, times, text_states, text_mask) -> None:
        if sample.ndim != 6 or sample.shape[3] != 3:
            raise ValueError(f"sample must be RGB images [B, V, F, 3, H, W], got shape {tuple(sample.shape)}")
        B, V, F, _, H, W = sample.shape
        p = self.config.patch_size
        if H % p or W % p:
            raise ValueError(f"image size {H}x{W} is not divisible by the patch size {p}")
        if c2w.ndim >= 2 and c2w.shape[1] != V:
            raise ValueError(f"cameras c2w are given for {c2w.shape[1]} views but the images have {V} views")
        if K.ndim >= 2 and K.shape[1] != V:
            raise ValueError(f"intrinsics K are given for {K.shape[1]} views but the images have {V} views")
        _check_shape("c2w", c2w, (B, V, F, 4, 4))
        _check_shape("K", K, (B, V, 3, 3))
        _check_shape("times", times, (B, F))
        _check_shape("timestep", timestep, (B,))
        _check_shape("cond_images", cond_images, tuple(sample.shape))
        _check_shape("cond_mask", cond_mask, (B, V, F))
        _check_shape("text_states", text_states, (B, text_states.shape[1], self.config.text_dim))
        _check_shape("text_mask", text_mask, tuple(text_states.shape[:2]))

    def _conditioning(self, timestep, pooled, c2w, motion, dtype) -> torch.Tensor:
        """adaLN conditioning [B, V or 1, F or 1, D]: timestep + pooled prompt (+ camera per view and frame, + motion).

        timestep: [B]; pooled: [B, D_text]; c2w: [B, V, F, 4, 4]; motion: [B] (used with motion_conditioning)."""
        c = self.time_embed(self.time_proj(timestep).to(dtype)) + self.text_pool_embed(pooled)  # [B, D]
        if self.motion_embed is not None:
            c = c + self.motion_embed(self.time_proj(motion * MOTION_SCALE).to(dtype))  # [B, D]
        c = c[:, None, None]  # [B, 1, 1, D]
        if self.camera_embed is not None:
            c = c + self.camera_embed(camera_features(c2w).to(dtype))  # [B, V, F, D]
        return c

    def _positions(self, grid_h: int, grid_w: int, times: torch.Tensor) -> torch.Tensor:
        """Sin-cos positions of patches and frame times, [B, 1, F, N, D] to add to the tokens."""
        D = self.config.hidden_size
        pos = get_2d_sincos_pos_embed(D, (grid_h, grid_w), base_size=POSITION_SPAN, device=times.device)  # [N, D]
        when = get_1d_sincos_pos_embed_from_grid(D, times.flatten() * POSITION_SPAN, dtype=torch.float32)  # [B*F, D]
        when = rearrange(when, "(b f) d -> b 1 f 1 d", b=times.shape[0])  # [B, 1, F, 1, D]
        return pos.to(when) + when  # [B, 1, F, N, D]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        *,
        cond_images: torch.Tensor,
        cond_mask: torch.Tensor,
        c2w: torch.Tensor,
        K: torch.Tensor,
        times: torch.Tensor,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        motion: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity [B, V, F, 3, H, W] of the noisy grid.

        sample: [B, V, F, 3, H, W] noisy images (given frames clean, see model/diffusion.py); timestep: [B] in
        [0, num_train_timesteps]; cond_images: [B, V, F, 3, H, W] in [-1, 1], read only where cond_mask is True;
        cond_mask: bool [B, V, F]; c2w: [B, V, F, 4, 4] OpenCV camera-to-world; K: [B, V, 3, 3] normalised;
        times: [B, F] in [0, 1]; text_states: [B, L, D_text]; text_mask: bool [B, L] (True = real token);
        motion: [B] motion scores (data.motion), required with motion_conditioning, ignored otherwise.
        """
        self._check_inputs(sample, timestep, cond_images, cond_mask, c2w, K, times, text_states, text_mask)
        if self.motion_embed is not None and (motion is None or tuple(motion.shape) != (sample.shape[0],)):
            raise ValueError(f"this model is motion-conditioned: pass motion [B], got {None if motion is None else tuple(motion.shape)}")
        B, V, F, _, H, W = sample.shape
        p = self.config.patch_size
        given = cond_mask[..., None, None, None].to(sample)  # [B, V, F, 1, 1, 1]
        rays = plucker_rays(c2w, K[:, :, None], H, W).to(sample)  # [B, V, F, 6, H, W]
        pixels = torch.cat([sample, cond_images * given, given.expand(-1, -1, -1, 1, H, W), rays], dim=3)  # [B, V, F, 13, H, W]
        patches = rearrange(pixels, "b v f c (h p) (w q) -> b v f (h w) (p q c)", p=p, q=p)  # [B, V, F, N, 13*p*p]
        x = self.patch_embed(patches)  # [B, V, F, N, D]
        x = x + self._positions(H // p, W // p, times).to(x)  # [B, V, F, N, D]
        text, mask = text_states.to(x), text_mask.to(torch.bool)  # [B, L, D_text], [B, L]
        pooled = (text * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # [B, D_text]
        c = self._conditioning(timestep, pooled, c2w, motion, x.dtype)  # [B, V or 1, F or 1, D]
        checkpointing = torch.is_grad_enabled() and self.gradient_checkpointing
        run = self._gradient_checkpointing_func if checkpointing else nn.Module.__call__  # one code path for both
        for block in self.blocks:
            x = run(block, x, c, text, mask[:, None, None])  # [B, V, F, N, D]
        out = self.final_layer(x, c)  # [B, V, F, N, 3*p*p]
        out = rearrange(out, "b v f (h w) (p q c) -> b v f c (h p) (w q)", h=H // p, p=p, q=p)  # [B, V, F, 3, H, W]
        if self.refiner is not None:
            out = self.refiner(out)  # [B, V, F, 3, H, W]
        if self.config.prediction == "velocity":
            return out
        sigma = (timestep.float() / self.config.num_train_timesteps).clamp(min=SIGMA_FLOOR)  # [B]
        return (sample - out) / sigma.to(out)[:, None, None, None, None, None]  # [B, V, F, 3, H, W], (x_t - x0) / sigma
