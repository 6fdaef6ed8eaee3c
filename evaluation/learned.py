"""Scores that need pretrained networks: CLIP score and LPIPS where their weights are on this machine; FVD never.

Nothing is downloaded: CLIP is read with `local_files_only`, LPIPS through recon.losses.load_lpips. Whatever is
missing is skipped, and `LearnedMetrics.skipped` says why, so a table never silently lacks a column. FVD is always
skipped: its I3D network is distributed only as pickled or TorchScript checkpoints (which this project does not
load from untrusted files), and a Frechet distance over the handful of clips a CPU benchmark scores would be noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

DEFAULT_CLIP = "openai/clip-vit-base-patch32"  # the CLIP of 4D-fy's and Consistent4D's CLIP scores
FVD_SKIPPED = ("FVD skipped: I3D weights exist only as pickled/TorchScript checkpoints (not loaded from untrusted files), "
               "and a Frechet distance over a few clips is not meaningful")


@dataclass
class LearnedMetrics:
    """The scorers that could be loaded (None where not) and one message per skipped score."""

    clip_model: torch.nn.Module | None = None
    clip_processor: object | None = None
    lpips: torch.nn.Module | None = None
    skipped: list[str] = field(default_factory=list)

    def score(self, rendered: torch.Tensor, truth: torch.Tensor | None, caption: str) -> dict[str, float]:
        """The available scores of renders [..., 3, H, W] in [0, 1] (against truth [..., 3, H, W] for LPIPS)."""
        out = {"clip_score": float("nan"), "lpips": float("nan")}
        if self.clip_model is not None:
            out["clip_score"] = clip_score(self.clip_model, self.clip_processor, rendered.reshape(-1, *rendered.shape[-3:]), caption)
        if self.lpips is not None and truth is not None:
            out["lpips"] = lpips_distance(self.lpips, rendered, truth)
        return out


def load_learned_metrics(clip: str = DEFAULT_CLIP) -> LearnedMetrics:
    """CLIP (a local folder or an id already in the Hugging Face cache) and LPIPS where available; FVD skipped."""
    from recon.losses import load_lpips
    from transformers import CLIPModel, CLIPProcessor

    metrics = LearnedMetrics(skipped=[FVD_SKIPPED])
    try:
        metrics.clip_model = CLIPModel.from_pretrained(clip, local_files_only=True).eval().requires_grad_(False)
        metrics.clip_processor = CLIPProcessor.from_pretrained(clip, local_files_only=True)
    except (OSError, ValueError) as err:
        metrics.clip_model = None
        metrics.skipped.append(f"CLIP score skipped: no local weights for {clip!r} ({type(err).__name__})")
    metrics.lpips = load_lpips()
    if metrics.lpips is None:
        metrics.skipped.append("LPIPS skipped: the lpips package or its VGG weights are not installed")
    return metrics


@torch.no_grad()
def clip_score(model, processor, images: torch.Tensor, caption: str) -> float:
    """CLIP score of images [N, 3, H, W] in [0, 1] against a caption: 100 x the mean cosine similarity, floored at 0."""
    inputs = processor(text=[caption], images=list(images.float().cpu()), return_tensors="pt", padding=True, do_rescale=False)
    image = _projected(model.get_image_features(pixel_values=inputs["pixel_values"]))  # [N, E]
    text = _projected(model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))  # [1, E]
    return (100 * (image @ text.T).clamp(min=0)).mean().item()


def _projected(features) -> torch.Tensor:
    """Unit-length CLIP embeddings [N, E]: transformers 5 returns them as the output's pooler_output, 4 as a tensor."""
    features = getattr(features, "pooler_output", features)
    return torch.nn.functional.normalize(features, dim=-1)


@torch.no_grad()
def lpips_distance(fn: torch.nn.Module, rendered: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean LPIPS of images [..., 3, H, W] in [0, 1] (the network takes [-1, 1])."""
    flat = lambda x: x.reshape(-1, *x.shape[-3:]).float().cpu() * 2 - 1  # noqa: E731
    return fn(flat(rendered), flat(truth)).mean().item()
