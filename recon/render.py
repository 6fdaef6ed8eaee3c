"""The Gaussian renderer: `gsplat.rasterization` on CUDA, a differentiable pure-torch path elsewhere.

Both paths follow gsplat's "classic" 3DGS semantics (RasterizeToPixels3DGSFwd.cu):
  * projection by gsplat's own torch reference (`_fully_fused_projection`): EWA splatting, a 0.3-pixel
    low-pass added to every 2D covariance (eps2d), Gaussians with camera depth outside (near, far) culled;
  * pixel centres at (j + 0.5, i + 0.5); alpha = min(0.999, opacity * exp(-0.5 * mahalanobis^2));
    a Gaussian with alpha < 1/255 at a pixel is skipped there;
  * front-to-back compositing sorted by the camera depth of each Gaussian's centre: weight = alpha * T,
    T the transmittance of the Gaussians in front; a pixel stops at the Gaussian that would take T to 1e-4
    or below (that Gaussian and all behind it are left out);
  * rgb = sum(weight * colour) + T_final * background; alpha = 1 - T_final;
    depth = sum(weight * z) / alpha (gsplat's "expected depth", 0 where alpha is 0).

Cameras come in the package's convention (c2w in OpenCV axes, normalised K) and reach gsplat only through
`data.cameras.to_gsplat`. Gaussians behind a camera (camera z <= near_plane), for instance when the camera
sits inside the object, are culled for that camera, as gsplat does. Zero Gaussians render the background.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from einops import rearrange
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

from data.cameras import to_gsplat
from recon.gaussians import Gaussians

ALPHA_MIN = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD
ALPHA_MAX = 0.999
T_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
EPS2D = 0.3  # gsplat's low-pass filter, pixels^2
# Gaussian-pixel pairs per chunk on the torch path: ~4M, a few hundred MB of forward temporaries (when training,
# each chunk's saved tensors, ~50 bytes a pair, live until the backward).
DEFAULT_MAX_PAIRS = 1 << 22

Backend = Literal["auto", "gsplat", "torch"]


@dataclass
class RenderOutput:
    """Rendered images, channels first like every image in the package; [..., V] = the cameras' leading dims.

    rgb: [..., V, 3, H, W] composited over the background. alpha: [..., V, 1, H, W] in [0, 1].
    depth: [..., V, 1, H, W] expected camera-z depth (world units), 0 where alpha is 0.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def _camera_inputs(gaussians: Gaussians, c2w: torch.Tensor, K: torch.Tensor, background) -> tuple[torch.Tensor, torch.Tensor]:
    """K and background broadcast to every camera, [..., V, 3, 3] and [..., V, 3]; ValueError naming what does not fit."""
    batch = gaussians.batch_shape
    if c2w.shape[-2:] != (4, 4) or c2w.shape[:-3] != batch:
        raise ValueError(f"render: c2w {tuple(c2w.shape)} must be [..., V, 4, 4] with [...] = the Gaussians' batch shape {tuple(batch)}")
    cams = c2w.shape[:-2]  # [..., V]
    try:
        K = K.to(c2w).expand(cams + (3, 3))
    except RuntimeError as err:
        raise ValueError(f"render: K {tuple(K.shape)} does not broadcast to {tuple(cams + (3, 3))}") from err
    try:
        background = torch.as_tensor(background, dtype=c2w.dtype, device=c2w.device).expand(cams + (3,))
    except RuntimeError as err:
        raise ValueError(f"render: background does not broadcast to {tuple(cams + (3,))}") from err
    return K, background


def render(
    gaussians: Gaussians,
    c2w: torch.Tensor,
    K: torch.Tensor,
    height: int,
    width: int,
    background: torch.Tensor | float = 0.0,
    backend: Backend = "auto",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
) -> RenderOutput:
    """Render each Gaussian set into its V cameras, all cameras of all sets in one batched call.

    Args:
        gaussians: Gaussians with batch shape [...] (e.g. [B, F]) and N Gaussians per set.
        c2w: [..., V, 4, 4] camera-to-world matrices, OpenCV axes; [...] must equal the Gaussians' batch shape.
        K: normalised intrinsics, broadcastable to [..., V, 3, 3].
        height, width: image size in pixels.
        background: colour under transparent pixels, broadcastable to [..., V, 3] (a float means grey).
        backend: "gsplat" (CUDA tensors only), "torch", or "auto": gsplat on CUDA, torch elsewhere.
        near_plane, far_plane: camera-z clipping range (world units).
        max_pairs: the torch path's memory bound: about this many Gaussian-pixel pairs are held at once
            (Gaussians are processed in depth order in chunks of at most max_pairs + one Gaussian's pixels).
            None renders everything in one chunk. Ignored by gsplat.

    Returns:
        RenderOutput with rgb [..., V, 3, H, W], alpha [..., V, 1, H, W], depth [..., V, 1, H, W].

    Raises ValueError for mismatched batch shapes, bad camera shapes, or the gsplat backend off CUDA.
    """
    K, background = _camera_inputs(gaussians, c2w, K, background)  # [..., V, 3, 3], [..., V, 3]
    use_gsplat = backend == "gsplat" or (backend == "auto" and c2w.is_cuda)
    if use_gsplat and not c2w.is_cuda:
        raise ValueError("render: the gsplat backend needs CUDA tensors; use backend='torch' (or 'auto') elsewhere")
    viewmats, Ks = to_gsplat(c2w, K, height, width)  # [..., V, 4, 4], [..., V, 3, 3] in pixels
    rasterize = _rasterize_gsplat if use_gsplat else _rasterize_torch
    # Sums of weight * (colour, z) [..., V, H, W, 4] and alpha [..., V, H, W, 1].
    colour_depth, alpha = rasterize(gaussians, viewmats, Ks, height, width, near_plane, far_plane, max_pairs)
    rgb = colour_depth[..., :3] + (1.0 - alpha) * background[..., None, None, :]  # [..., V, H, W, 3]
    depth = colour_depth[..., 3:] / alpha.clamp(min=1e-10)  # [..., V, H, W, 1]
    return RenderOutput(rgb=rgb.movedim(-1, -3), alpha=alpha.movedim(-1, -3), depth=depth.movedim(-1, -3))


def render_views(
    gaussians: Gaussians, c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, background: torch.Tensor | float = 0.0
) -> RenderOutput:
    """Render Gaussians [B, F, N] at the loader's camera layout: c2w [B, V, F, 4, 4], K [B, V, 3, 3].

    Returns a RenderOutput laid out like the loader's images: rgb [B, V, F, 3, H, W], alpha and depth [B, V, F, 1, H, W].
    """
    out = render(gaussians, rearrange(c2w, "b v f i j -> b f v i j"), K[:, None], height, width, background)  # [B, F, V, ...]
    return RenderOutput(**{name: t.transpose(1, 2) for name, t in vars(out).items()})


def _rasterize_gsplat(gaussians, viewmats, Ks, height, width, near_plane, far_plane, max_pairs):
    """gsplat's CUDA rasteriser: accumulated (colour, z) [..., V, H, W, 4] and alpha [..., V, H, W, 1]."""
    from gsplat import rasterization  # imported here: gsplat's CUDA extension loads on first use

    colour_depth, alpha, _ = rasterization(
        gaussians.means, gaussians.rotations, gaussians.scales, gaussians.opacities, gaussians.colours,
        viewmats, Ks, width, height, near_plane=near_plane, far_plane=far_plane, eps2d=EPS2D, render_mode="RGB+D",
    )
    return colour_depth, alpha


def _rasterize_torch(gaussians, viewmats, Ks, height, width, near_plane, far_plane, max_pairs):
    """The pure-torch path: accumulated (colour, z) [..., V, H, W, 4] and alpha [..., V, H, W, 1].

    All images are flattened into one list of I = prod([..., V]) images. Each projected Gaussian covers the
    pixel box outside which its alpha is below 1/255 (gsplat's opacity-aware box); the (Gaussian, pixel)
    pairs of a chunk of depth-sorted Gaussians are grouped per pixel and composited by `_Composite`,
    carrying each pixel's transmittance from chunk to chunk.
    """
    cams = viewmats.shape[:-2]  # [..., V]
    num_images, n = math.prod(cams), gaussians.num_gaussians
    covars, _ = _quat_scale_to_covar_preci(gaussians.rotations, gaussians.scales, compute_preci=False)  # [..., N, 3, 3]
    # Each camera projects its own copy of the means: a Gaussian at or behind a camera's near plane is culled
    # there, and is first moved to camera depth -1 so that the projection's 1 / z (infinite at the camera
    # centre) cannot turn its zero gradient into NaN.
    means = gaussians.means[..., None, :, :].expand(cams + (n, 3))  # [..., V, N, 3]
    with torch.no_grad():
        axis = viewmats[..., None, 2, :3]  # [..., V, 1, 3] the camera's z axis in world coordinates
        z = (means * axis).sum(-1) + viewmats[..., None, 2, 3]  # [..., V, N] camera depth
    means = torch.where((z > near_plane)[..., None], means, means.detach() - (z + 1.0)[..., None] * axis)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars[..., None, :, :, :].expand(cams + (n, 3, 3)), viewmats[..., None, :, :], Ks[..., None, :, :],
        width, height, eps2d=EPS2D, near_plane=near_plane, far_plane=far_plane,
    )  # one camera per copy: [..., V, 1, N, 2], [..., V, 1, N, 2], [..., V, 1, N], [..., V, 1, N, 3]
    radii, means2d, depths, conics = radii[..., 0, :, :], means2d[..., 0, :, :], depths[..., 0, :], conics[..., 0, :, :]
    opacities = gaussians.opacities[..., None, :].expand(depths.shape).reshape(-1)  # [I * N]
    features = torch.cat([gaussians.colours[..., None, :, :].expand(cams + (n, 3)), depths[..., None]], dim=-1)  # [..., V, N, 4]
    means2d, conics, features = means2d.reshape(-1, 2), conics.reshape(-1, 3), features.reshape(-1, 4)  # [I * N, ...]

    boxes = _pixel_boxes(means2d.detach(), conics.detach(), opacities.detach(), height, width)  # [I * N, 4]
    counts = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [I * N] pixels per Gaussian
    counts = torch.where(radii.reshape(-1, 2).gt(0).all(-1), counts, torch.zeros_like(counts))
    # Front to back: sort by depth within each image, images one after the other.
    order = depths.detach().reshape(num_images, n).argsort(dim=-1, stable=True)  # [I, N]
    order = (order + torch.arange(num_images, device=order.device)[:, None] * n).reshape(-1)  # [I * N]
    order = order[counts[order] > 0]  # [G] visible Gaussians, front to back per image

    accum = features.new_zeros(num_images * height * width, 5)  # [I * H * W, 5] sums of weight * (colour, z, 1)
    done = torch.zeros(num_images * height * width, dtype=torch.bool, device=accum.device)  # [I * H * W]
    for chunk in _chunks(counts[order], max_pairs):
        ids = order[chunk]  # [G_c] Gaussians of this chunk, depth-sorted
        gauss, pixel = _pairs(ids, boxes[ids], counts[ids], n, height, width)  # [M], [M] global pixel ids
        by_pixel = torch.argsort(pixel, stable=True)  # stable: keeps the depth order within each pixel
        # T behind the chunks so far (the weights telescope); 0 once a pixel is done, so it stays done.
        transmittance = (1.0 - accum[:, 4]) * ~done  # [I * H * W]
        out, cut = _Composite.apply(
            means2d, conics, opacities, features, transmittance, gauss[by_pixel], pixel[by_pixel], width, height
        )
        accum, done = accum + out, done | cut
    return accum[:, :4].reshape(cams + (height, width, 4)), accum[:, 4:].reshape(cams + (height, width, 1))


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of (Gaussian, pixel) pairs, sorted by pixel and, within a pixel, by depth.

    Inputs: per-Gaussian means2d [G, 2] (pixels), conics [G, 3], opacities [G], features [G, 4] (colour, z);
    transmittance [P] per pixel before these pairs; gauss [M], pixel [M] the pairs.
    Outputs: [P, 5], the sums of weight * (colour, z) and of weight, weight = alpha * T; [P] bool, the pixels
    whose transmittance was cut (done). The backward is written out (the classic 3DGS one): autograd through
    the per-pair ops would keep a dozen [M]-sized tensors and scatter every gather back separately.
    """

    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, transmittance, gauss, pixel, width, height):
        delta = torch.stack([pixel % width, (pixel // width) % height], dim=-1) + 0.5 - means2d[gauss]  # [M, 2] centre - mean
        a, b, c = conics[gauss].unbind(-1)  # [M] each
        dx, dy = delta.unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # [M] half the squared Mahalanobis distance
        raw = opacities[gauss] * torch.exp(-sigma)  # [M]
        live = (raw >= ALPHA_MIN) & (sigma >= 0)  # pairs in the box's corners and faint tails are skipped
        alpha = raw.clamp(max=ALPHA_MAX) * live  # [M]
        segments = _Segments(pixel)
        trans = transmittance[pixel] * torch.exp(segments.exclusive_cumsum(torch.log1p(-alpha.double()))).to(alpha)  # [M]
        counted = trans * (1.0 - alpha) > T_MIN  # [M]; a pixel is done before its T would reach T_MIN
        weight = alpha * trans * counted  # [M]
        values = torch.cat([features[gauss], torch.ones_like(weight)[:, None]], dim=-1)  # [M, 5]
        out = torch.zeros(len(transmittance), 5, dtype=weight.dtype, device=weight.device).index_add_(0, pixel, weight[:, None] * values)
        cut = torch.zeros_like(transmittance, dtype=torch.bool).index_fill_(0, pixel[live & ~counted], True)  # [P] pixels done
        ctx.save_for_backward(means2d, conics, opacities, features, transmittance, gauss, pixel, delta, raw, alpha, weight)
        ctx.segments, ctx.live = segments, live & (raw < ALPHA_MAX)  # where alpha follows opacity * exp(-sigma)
        ctx.mark_non_differentiable(cut)
        return out, cut

    @staticmethod
    def backward(ctx, grad_out, _grad_cut):
        means2d, conics, opacities, features, transmittance, gauss, pixel, delta, raw, alpha, weight = ctx.saved_tensors
        values = torch.cat([features[gauss], torch.ones_like(weight)[:, None]], dim=-1)  # [M, 5]
        grad_pair = grad_out[pixel]  # [M, 5]
        grad_value = (grad_pair * values).sum(-1)  # [M] dL/d(weight)
        weighted = weight * grad_value  # [M]
        # d weight_j / d alpha_i = -weight_j / (1 - alpha_i) for every j behind i in the same pixel.
        behind = ctx.segments.suffix_sum(weighted.double()).to(weight)  # [M]
        trans = torch.where(alpha > 0, weight / alpha.clamp(min=ALPHA_MIN), 0.0)  # [M] T of the pairs that count
        grad_alpha = (trans * grad_value - behind / (1.0 - alpha)) * ctx.live  # [M]
        grad_sigma = -grad_alpha * raw  # [M] d alpha / d sigma = -opacity * exp(-sigma)
        a, b, c = conics[gauss].unbind(-1)
        dx, dy = delta.unbind(-1)
        grads = torch.cat([
            -torch.stack([a * dx + b * dy, c * dy + b * dx], dim=-1) * grad_sigma[:, None],  # means2d: d delta = -d mean
            torch.stack([0.5 * dx * dx, dx * dy, 0.5 * dy * dy], dim=-1) * grad_sigma[:, None],  # conics
            (grad_alpha * raw / opacities[gauss].clamp(min=1e-12))[:, None],  # opacities
            weight[:, None] * grad_pair[:, :4],  # features
        ], dim=-1)  # [M, 10]
        per_gaussian = grads.new_zeros(len(opacities), 10).index_add_(0, gauss, grads)  # [G, 10]
        grad_means2d, grad_conics, grad_opacities, grad_features = per_gaussian.split([2, 3, 1, 4], dim=-1)
        # Every weight of a pixel is proportional to the transmittance it starts from.
        grad_trans = torch.zeros_like(transmittance).index_add_(0, pixel, weighted / transmittance[pixel].clamp(min=1e-12))
        return grad_means2d, grad_conics, grad_opacities[:, 0], grad_features, grad_trans, None, None, None, None


class _Segments:
    """Runs of equal values in a sorted key [M] (here: the pairs of one pixel), for segmented float64 sums.

    Float64 keeps a run's sum exact even where the running sum over millions of pairs is large.
    """

    def __init__(self, keys: torch.Tensor):
        starts = torch.ones_like(keys, dtype=torch.bool)
        starts[1:] = keys[1:] != keys[:-1]
        self.ids = torch.cumsum(starts, 0) - 1  # [M] run of each element
        self.begins = starts.nonzero()[:, 0]  # [R] first element of each run
        self.ends = torch.cat([self.begins[1:], self.begins.new_tensor([len(keys)])]) - 1  # [R] last element

    def exclusive_cumsum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the elements before each element of x [M] within its run."""
        before = torch.cumsum(x, 0) - x
        return before - before[self.begins][self.ids]

    def suffix_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the elements after each element of x [M] within its run."""
        upto = torch.cumsum(x, 0)
        return upto[self.ends][self.ids] - upto


def _pixel_boxes(means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel boxes [G, 4] = (x0, y0, x1, y1), end-exclusive and clipped to the image, outside which alpha < 1/255.

    The level set alpha = 1/255 is the ellipse d^T Sigma^-1 d = 2 ln(255 opacity), whose half-extents are
    sqrt(2 ln(255 opacity) * Sigma_xx) and likewise in y (gsplat's opacity-aware box). means2d [G, 2],
    conics [G, 3] (the inverse 2D covariance's a, b, c), opacities [G].
    """
    level = 2.0 * torch.log((opacities / ALPHA_MIN).clamp(min=1.0))  # [G], 0 where the Gaussian is invisible
    det = (conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2).clamp(min=1e-12)  # [G]
    half = torch.stack([conics[:, 2], conics[:, 0]], dim=-1) / det[:, None] * level[:, None]  # [G, 2] squared half-extents
    half = half.sqrt()
    # Pixel j (centre j + 0.5) lies within the box when |j + 0.5 - mean| <= half.
    low = torch.ceil(means2d - half - 0.5)
    high = torch.floor(means2d + half - 0.5) + 1
    size = torch.tensor([width, height], dtype=means2d.dtype, device=means2d.device)
    low = torch.minimum(torch.maximum(low, torch.zeros_like(size)), size)
    high = torch.minimum(torch.maximum(high, low), size)
    return torch.cat([low, high], dim=-1).long()  # [G, 4]


def _chunks(counts: torch.Tensor, max_pairs: int | None) -> list[slice]:
    """Consecutive slices of Gaussians with pair counts [G]: each slice starts its pairs within one block of
    `max_pairs`, so it holds at most max_pairs + one Gaussian's pixels."""
    if len(counts) == 0:
        return []
    if max_pairs is None:
        return [slice(0, len(counts))]
    block = (torch.cumsum(counts, 0) - counts) // max_pairs  # [G] the block where each Gaussian's pairs start
    bounds = [0] + list(itertools.accumulate(torch.unique_consecutive(block, return_counts=True)[1].tolist()))
    return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]


def _pairs(ids: torch.Tensor, boxes: torch.Tensor, counts: torch.Tensor, n: int, height: int, width: int):
    """Every (Gaussian, pixel) pair of the boxes [G, 4] of Gaussians `ids` [G] (flat ids image * n + gaussian).

    Returns (gaussian ids [M], global pixel ids image * H * W + y * W + x [M]), Gaussian after Gaussian.
    """
    gauss_local = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), counts)  # [M]
    starts = torch.cumsum(counts, 0) - counts  # [G]
    k = torch.arange(len(gauss_local), device=ids.device) - starts[gauss_local]  # [M] index inside the box
    box = boxes[gauss_local]  # [M, 4]
    box_width = box[:, 2] - box[:, 0]
    x = box[:, 0] + k % box_width
    y = box[:, 1] + k // box_width
    gauss = ids[gauss_local]
    return gauss, (gauss // n) * (height * width) + y * width + x
