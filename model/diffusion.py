"""Flow matching over the views x frames grid: tasks, conditioning masks, noise and the training loss.

Objective: flow matching (rectified flow), x_t = (1 - sigma) x0 + sigma eps, the model returns the velocity
v = eps - x0 (whether its network predicts v or x0, see model/dit.py), the loss is the MSE to v (JiT's "v-loss"),
and diffusers' FlowMatchEulerDiscreteScheduler samples it. Chosen over epsilon- and v-prediction
on DDPM schedules because
  * the path ends in pure noise at sigma = 1 (zero terminal SNR). Our images are mostly flat white background;
    DDPM's schedules leave a trace of the image's mean brightness in their "pure noise", so sampling from real noise
    goes wrong exactly there (Lin et al. 2024, "Common diffusion noise schedules are flawed");
  * the velocity has the same scale at every noise level, so one unweighted MSE trains them all;
  * straight paths sample well in 20-30 Euler steps, which matters at CPU speed; and SD3/Flux use it, so their
    recipes carry over: the logit-normal noise-level density used here and the resolution `shift` of the scheduler
    (presets set it: more noise at higher resolution, since neighbouring pixels share more of the signal).

Conditioning: a task per sample (text-, image-, video-to-4D) says which frames are given. Given frames enter the
model clean, both in the noisy channel and in the conditioning channel with its mask; the sampler writes them
back after every step, so their velocity is never used, and the loss counts only the frames to generate (counting
the given ones would dilute the image- and video-to-4D losses with a trivial target).
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from data.images import composite
from model.text import TextStates


class Task(enum.IntEnum):
    TEXT = 0  # nothing given
    IMAGE = 1  # view 0, frame 0 given
    VIDEO = 2  # view 0, all frames given


@dataclass(frozen=True)
class Objective:
    """Training-time choices of the loss; the noise schedule itself is the scheduler's (its config is saved)."""

    task_probs: tuple[float, float, float] = (0.4, 0.3, 0.3)  # P(text-, image-, video-to-4D) for each sample
    text_dropout: float = 0.1  # P(caption -> empty prompt): trains the unconditional branch of classifier-free guidance
    shared_noise: float = 0.0  # share of the noise variance common to the frames of a view (0: independent frames)
    logit_std: float = 1.0  # spread of SD3's logit-normal noise-level density (mid noise levels drawn most often)

    def __post_init__(self):
        if len(self.task_probs) != len(Task) or min(self.task_probs) < 0 or abs(sum(self.task_probs) - 1) > 1e-6:
            raise ValueError(f"task_probs must be {len(Task)} non-negative numbers summing to 1, got {self.task_probs}")
        if not 0.0 <= self.shared_noise <= 1.0:
            raise ValueError(f"shared_noise must be in [0, 1], got {self.shared_noise}")


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) samples drawn on the generator's device, so one CPU generator seeds CUDA runs too."""
    return torch.rand(shape, generator=generator, device=generator.device if generator is not None else "cpu").to(device)


def to_model_rgb(images: torch.Tensor) -> torch.Tensor:
    """RGBA [..., 4, H, W] in [0, 1] -> RGB over a white background [..., 3, H, W] in [-1, 1]."""
    return composite(images, 1.0) * 2 - 1


def from_model_rgb(x: torch.Tensor) -> torch.Tensor:
    """Model RGB in [-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def sample_tasks(
    batch_size: int, probs: tuple[float, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """A `Task` per sample, [B] long, drawn with probabilities `probs` (one per Task)."""
    edges = torch.tensor(probs, dtype=torch.float64).cumsum(0)[:-1].to(device)  # [len(Task) - 1]
    return torch.searchsorted(edges, _uniform((batch_size,), generator, device).double(), right=True)


def condition_mask(tasks: torch.Tensor, num_views: int, num_frames: int) -> torch.Tensor:
    """Which frames are given, bool [B, V, F], for tasks [B]: view 0 frame 0 (IMAGE), view 0 all frames (VIDEO)."""
    given = torch.zeros(len(tasks), num_views, num_frames, dtype=torch.bool, device=tasks.device)
    given[:, 0, 0] = tasks != Task.TEXT
    given[:, 0, 1:] = (tasks == Task.VIDEO)[:, None]
    return given


def sample_noise(
    shape: tuple[int, ...], shared: float, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Unit Gaussian noise [B, V, F, C, H, W] whose frames share a fraction `shared` of their variance within a view.

    eps = sqrt(shared) * eps_view + sqrt(1 - shared) * eps_frame keeps unit variance; a shared component steadies the
    object across frames (ShapeGen4D). Training and sampling must use the same `shared`.
    """
    B, V, F = shape[:3]
    per_view = randn_tensor((B, V, 1, *shape[3:]), generator=generator, device=device, dtype=dtype)  # [B, V, 1, C, H, W]
    per_frame = randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)  # [B, V, F, C, H, W]
    return shared**0.5 * per_view + (1 - shared) ** 0.5 * per_frame


def sample_noise_levels(
    scheduler: FlowMatchEulerDiscreteScheduler,
    batch_size: int,
    logit_std: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise levels sigma [B] in (0, 1] and the matching model timesteps [B], from the scheduler's training table.

    Draws u from a logit-normal density (SD3) and looks it up in the scheduler's (shifted) table, as diffusers'
    flow-matching training scripts do. The scheduler must be in its training state (never `set_timesteps`).
    """
    if len(scheduler.timesteps) != scheduler.config.num_train_timesteps:
        raise ValueError("the scheduler has been set up for sampling (set_timesteps); train with a fresh one")
    u = torch.sigmoid(randn_tensor((batch_size,), generator=generator, device=device) * logit_std)  # [B] in (0, 1)
    index = (u * scheduler.config.num_train_timesteps).long().clamp(max=scheduler.config.num_train_timesteps - 1).cpu()
    return scheduler.sigmas[index].to(device), scheduler.timesteps[index].to(device)


def drop_text(text: TextStates, null_text: TextStates, p: float, generator: torch.Generator | None) -> TextStates:
    """Replace each prompt's states [B, L, D] by the empty prompt's [1, L, D] with probability p (CFG training)."""
    if text.states.shape[1:] != null_text.states.shape[1:]:
        raise ValueError(
            f"text states {tuple(text.states.shape)} and empty-prompt states {tuple(null_text.states.shape)} differ in length or width"
        )
    drop = _uniform((len(text.states),), generator, text.states.device) < p  # [B]
    states = torch.where(drop[:, None, None], null_text.states.to(text.states), text.states)  # [B, L, D]
    return TextStates(states, torch.where(drop[:, None], null_text.mask.to(text.mask), text.mask))


def diffusion_loss(
    model: torch.nn.Module,
    scheduler: FlowMatchEulerDiscreteScheduler,
    batch: Mapping[str, torch.Tensor],
    text: TextStates,
    null_text: TextStates,
    objective: Objective = Objective(),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flow-matching loss (scalar) of one batch in the data loader's format.

    batch: images [B, V, F, 4, H, W] RGBA in [0, 1]; c2w [B, V, F, 4, 4]; K [B, V, 3, 3]; times [B, F]; motion [B]
    (data.images.motion_score, read by motion-conditioned models only).
    text: the captions' TextStates [B, L, D_text]; null_text: the empty prompt's [1, L, D_text].
    A task per sample picks the given frames; the MSE to the velocity counts only the frames to generate.
    """
    x0 = to_model_rgb(batch["images"])  # [B, V, F, 3, H, W]
    B, V, F = x0.shape[:3]
    given = condition_mask(sample_tasks(B, objective.task_probs, generator, x0.device), V, F)  # [B, V, F]
    text = drop_text(text, null_text, objective.text_dropout, generator)  # [B, L, D_text]
    sigmas, timesteps = sample_noise_levels(scheduler, B, objective.logit_std, generator, x0.device)  # [B] each
    noise = sample_noise(x0.shape, objective.shared_noise, generator, x0.device, x0.dtype)  # [B, V, F, 3, H, W]
    sigma = sigmas.to(x0)[:, None, None, None, None, None]  # [B, 1, 1, 1, 1, 1]
    keep = given[..., None, None, None]  # [B, V, F, 1, 1, 1]
    x_t = torch.where(keep, x0, (1 - sigma) * x0 + sigma * noise)  # [B, V, F, 3, H, W], given frames clean
    velocity = model(
        x_t, timesteps, cond_images=x0, cond_mask=given, c2w=batch["c2w"], K=batch["K"], times=batch["times"],
        text_states=text.states, text_mask=text.mask, motion=batch.get("motion"),
    )  # [B, V, F, 3, H, W]
    weight = (~keep).to(x0).expand_as(x0)  # [B, V, F, 3, H, W], 1 on the frames to generate
    return ((velocity.float() - (noise - x0).float()) ** 2 * weight).sum() / weight.sum().clamp(min=1)
