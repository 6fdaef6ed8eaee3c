"""One training entry point for both stages, on accelerate: one CPU process, two CPU processes, N GPUs.

    python train.py diffusion --preset tiny --data shards/demo/train --val-data shards/demo/val --out runs/dit
    python train.py recon --preset cpu-small --data shards/demo/train --out runs/recon --steps 2000
    accelerate launch --config_file configs/accelerate/1node-8gpu.yaml train.py diffusion --preset base ...

Every option is on the command line (`python train.py diffusion --help`); a preset sets the model size and
the training defaults, options override them. Data stream from webdataset shards split by node and worker
in webdataset, never through `accelerator.prepare` (which would split them again and drop data).
Checkpoints (`save_state`: weights, optimiser, LR schedule, EMA, RNG) are written to a temporary folder and
renamed, the last `keep_last` kept; `--resume latest` continues exactly where the last one stopped.
The EMA weights are exported with `save_pretrained` to OUT/model, the folder infer.py loads.
"""


from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from data.atomic import atomic_folder, replace_folder
from data.cameras import canonical_ring
from data.cli import UsageError, check_output, entry_point
from data.images import composite
from data.preview import grid_image
from data.stream import Subset, make_loader, resolve_shards
from model.diffusion import Objective, diffusion_loss
from model.pipeline import MultiViewVideoPipeline
from model.presets import build_dit, build_scheduler, get_preset
from model.sampling import PipelineDefaults
from model.text import TextEncoder
from recon.head import HEAD_PRESETS, GaussianHead4D, build_head, finer_stride_weights
from recon.losses import LossWeights, load_lpips, recon_loss
from recon.render import render


STAGES = ("diffusion", "recon")


@dataclass
class TrainConfig:
    """Training options. Model sizes come from the preset; everything else is set here."""

    preset: str = "tiny"  # model preset: tiny (tests), cpu-small (the shipped default), base (GPU nodes)
    data: str = "shards/demo/train"  # training shards: a folder of .tar files, a brace pattern or a glob
    val_data: str = ""  # held-out shards for validation (empty: no validation)
    out: str = "runs/default"  # run folder: checkpoints/, model/, samples/, logs
    steps: int = 1000  # optimiser steps
    batch_size: int = 4  # samples per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    lr: float = 3e-4  # peak learning rate
    warmup: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient-norm clipping
    mixed_precision: str = "auto"  # no | bf16 | fp16 | auto (bf16 where the GPU has it, else no)
    grad_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    ema_decay: float = 0.999
    prediction: Literal["sample", "velocity"] = "sample"  # diffusion stage: the network predicts the clean image (sample, JiT) or the velocity
    init_from: str = ""  # start from the weights of this exported model folder instead of random ones (not on --resume)
    camera_conditioning: bool = False  # diffusion stage: each view's camera embedding in the adaLN modulation (model/dit.py)
    motion_conditioning: bool = False  # diffusion stage: condition on the clip's motion score (data/images.py)
    output_refiner: bool = False  # diffusion stage: a residual convolution over the predicted image, across patch borders
    canonical_ring: bool = False  # diffusion stage: turn each sample's cameras so view 0 sits at azimuth 0 (data/cameras.py)
    hull_prior: bool = False  # recon stage: Gaussian depths start at the input silhouettes' visual hull (recon/hull.py)
    hull_agreement: float = 0.0  # recon stage, with --hull-prior: frames whose views agree less leave the hull out
    hull_dropout: float = 0.0  # recon stage, with --hull-prior: the share of samples trained without the hull
    stride: int = 0  # recon stage: one Gaussian per stride x stride pixels (0: the preset's); may be finer than --init-from's
    views: int = 0  # ring views per sample (0: the preset's)
    extra_views: int = 0  # extra supervision views per sample (recon stage)
    loss: LossWeights = field(default_factory=LossWeights)  # recon stage: --loss.depth, --loss.outside, --loss.mse, ...
    frames: int = 0  # frames per sample (0: the preset's)
    num_workers: int = 2  # data loader workers per process
    resampled: bool = True  # draw shards with replacement (off: each process reads its own shards in turn)
    save_every: int = 500  # checkpoint every N steps (and at the end)
    keep_last: int = 3  # checkpoints kept
    val_every: int = 500  # validation every N steps
    sample_every: int = 500  # write a sample grid / render comparison every N steps
    log_every: int = 10  # metrics to TensorBoard and metrics.jsonl every N steps
    max_nonfinite: int = 20  # stop after this many non-finite losses in a row
    resume: str = ""  # "", "latest", or a checkpoint folder
    stop_at: int = 0  # stop at this step after saving a checkpoint (to fit a job's time slot); 0: run to --steps
    seed: int = 0
    audit: bool = False  # each process writes OUT/audit-rank<R>.txt: the sample keys it trained on, then a weights checksum


# Training defaults of each preset (a model preset of the same name sets the sizes).
TRAIN_PRESETS: dict[str, dict] = {
    "tiny": dict(steps=20, batch_size=2, lr=1e-3, warmup=2, save_every=10, val_every=10, sample_every=10, log_every=1, num_workers=0),
    "cpu-small": dict(steps=3000, batch_size=4, lr=3e-4, warmup=100, save_every=250, val_every=250, sample_every=250),
    "base": dict(steps=60000, batch_size=4, lr=1e-4, warmup=1000, save_every=2000, val_every=2000, sample_every=2000, num_workers=8),
}


# ----------------------------------------------------------------------------- checkpoints

EMA_FILE = "ema.safetensors"  # the EMA weights in a checkpoint folder, beside accelerate's save_state


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints in `out`, oldest first (a folder appears under its final name only when complete)."""
    return sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(accelerator: Accelerator, out: Path, step: int, state: dict, ema: dict[str, torch.Tensor], keep_last: int) -> Path:
    """`save_state` and the EMA weights into a temporary folder, then rename: a crash mid-write leaves the previous
    checkpoint intact. The EMA goes to ema.safetensors rather than through `register_for_checkpointing`, which
    accelerate would pickle and load back with weights_only=False."""
    final = out / "checkpoints" / f"step-{step:07d}"
    tmp = out / "checkpoints" / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        for stale in (out / "checkpoints").glob(".tmp-step-*"):  # of this save, or of a killed run
            shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_file(ema, str(tmp / EMA_FILE))
            (tmp / "train_state.json").write_text(json.dumps(state, indent=1))
            replace_folder(tmp, final)
    except BaseException:  # Ctrl-C, SIGTERM, a full disk: no half checkpoint left behind
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        for old in checkpoints(out)[:-keep_last]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def find_resume(resume: str, out: Path) -> Path | None:
    """The checkpoint folder `--resume` names; UsageError with a clear message when there is none."""
    if not resume:
        return None
    if resume == "latest":
        found = checkpoints(out)
        if not found:
            raise UsageError(f"--resume latest: {out / 'checkpoints'} holds no complete checkpoint")
        return found[-1]
    path = Path(resume)
    if not (path / "train_state.json").is_file():
        raise UsageError(f"--resume {resume}: not a checkpoint folder (no train_state.json)")
    return path


def ema_tensors(ema: EMAModel, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The EMA weights keyed by the model's parameter names (EMAModel keeps them in `parameters()` order)."""
    return {name: shadow.detach().cpu().contiguous() for (name, _), shadow in zip(model.named_parameters(), ema.shadow_params)}


def load_ema(ema: EMAModel, model: torch.nn.Module, checkpoint: Path, ema_step: int) -> None:
    """Restore the EMA weights and its step count (which sets its warm-up decay) from a checkpoint folder."""
    if not (checkpoint / EMA_FILE).is_file():
        raise SystemExit(f"--resume {checkpoint}: no {EMA_FILE} (checkpoints from before it existed cannot be resumed)")
    saved = load_file(checkpoint / EMA_FILE)
    for (name, _), shadow in zip(model.named_parameters(), ema.shadow_params):
        shadow.copy_(saved[name])
    ema.optimization_step = ema_step


MODEL_FIELDS = ("preset", "views", "extra_views", "frames", "prediction", "camera_conditioning", "motion_conditioning",
                "output_refiner", "hull_prior", "stride")  # what a checkpoint's weights depend on


def check_compatible(saved: dict, stage: str, cfg: TrainConfig) -> None:
    """UsageError when a checkpoint was made by another stage or model configuration."""
    current = {"stage": stage, **{k: getattr(cfg, k) for k in MODEL_FIELDS}}
    defaults = TrainConfig()  # a field added after the checkpoint was saved had its default then
    before = {"stage": saved["stage"], **{k: saved["config"].get(k, getattr(defaults, k)) for k in MODEL_FIELDS}}
    if current != before:
        diff = {k: (before[k], current[k]) for k in current if current[k] != before[k]}
        raise UsageError(f"the checkpoint does not match this configuration (saved, now): {diff}")


def load_weights(model: torch.nn.Module, folder: str, adapt=None) -> None:
    """Copy the safetensors weights of an exported model folder (or of a pipeline folder's transformer/) into `model`.

    Every tensor must match by name and shape; options that change no weight (such as `prediction`) may differ,
    which is how a velocity-trained model is continued as an x0-predicting one. Modules that an option adds with a
    zero-initialised output (the model's `ZERO_INIT_MODULES`) may be missing: the model then starts as the saved one.
    `adapt`, a function of the weights {name: tensor}, reshapes them first (a head continued at a finer stride).
    """
    path = Path(folder) / "transformer" if (Path(folder) / "transformer").is_dir() else Path(folder)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise UsageError(f"--init-from {folder}: no .safetensors weights in {path}")
    weights = {name: tensor for file in files for name, tensor in load_file(file).items()}
    weights = adapt(weights) if adapt else weights
    added = tuple(f"{name}." for name in getattr(model, "ZERO_INIT_MODULES", ()))
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # differently shaped tensors
        raise UsageError(f"--init-from {folder}: the weights do not fit this model: {str(error).strip().splitlines()[-1].strip()}")
    missing = [key for key in missing if not key.startswith(added)]
    if missing or unexpected:
        raise UsageError(f"--init-from {folder}: the weights do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}")


# ----------------------------------------------------------------------------- options


STAGE_HELP = {
    "diffusion": "the multiview-video diffusion transformer (flow matching); exports OUT/model, the diffusion/ folder infer.py loads",
    "recon": "the feed-forward 4D Gaussian head; exports OUT/model, the recon/ folder infer.py loads",
}
POSITIVE = ("steps", "batch_size", "grad_accum", "save_every", "keep_last", "val_every", "sample_every", "log_every", "max_nonfinite")


def top_parser() -> argparse.ArgumentParser:
    """`python train.py --help`: the stages, and where each stage's options are listed."""
    stages = "\n".join(f"  {name:<10} {text}" for name, text in STAGE_HELP.items())
    return argparse.ArgumentParser(
        prog="python train.py", usage="python train.py {diffusion,recon} [--preset NAME] [options]",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"stages:\n{stages}\n\neach stage's options (with the preset's defaults): python train.py diffusion --help, "
               f"python train.py recon --help\npresets: {', '.join(TRAIN_PRESETS)} (--preset NAME; default tiny)")


def parse_args(argv: list[str]) -> tuple[str, TrainConfig]:
    """`STAGE [--preset NAME] [options]` -> (stage, config with the preset's defaults under the options)."""
    if not argv:
        raise UsageError(f"give a stage: python train.py {{{','.join(STAGES)}}} [options] (python train.py --help)")
    if argv[0] in ("-h", "--help"):
        top_parser().print_help()
        raise SystemExit(0)
    if argv[0] not in STAGES:
        raise UsageError(f"unknown stage {argv[0]!r}; choose one of {', '.join(STAGES)} (python train.py --help)")
    stage, rest = argv[0], argv[1:]
    # The preset picks the defaults the other options override, so it is read before the full parse
    # (both `--preset NAME` and `--preset=NAME`).
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default="tiny")
    preset = first.parse_known_args(rest)[0].preset
    if preset not in TRAIN_PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
    cfg = stage_options(stage, TrainConfig(preset=preset, **TRAIN_PRESETS[preset]), rest)
    for name in POSITIVE:
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("lr", "min_lr_ratio", "weight_decay", "clip", "ema_decay"):
        if not math.isfinite(getattr(cfg, name)) or getattr(cfg, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number of at least 0, got {getattr(cfg, name)}")
    if min(cfg.views, cfg.extra_views, cfg.frames, cfg.warmup, cfg.num_workers, cfg.stop_at, cfg.seed) < 0:
        raise UsageError("--views, --extra-views, --frames, --warmup, --num-workers, --stop-at and --seed must be 0 or more")
    return stage, cfg


def stage_options(stage: str, default: TrainConfig, rest: list[str]) -> TrainConfig:
    """The stage's options parsed by tyro; its boxed error report becomes one UsageError line."""
    report = io.StringIO()
    try:
        with contextlib.redirect_stderr(report):
            return tyro.cli(TrainConfig, default=default, args=rest, prog=f"python train.py {stage}")
    except SystemExit as exit:
        if not exit.code:
            raise
        lines = [line.strip("│|╭╮╰╯─-+ \t") for line in report.getvalue().splitlines()]
        lines = [line for line in lines if line][1:]  # the first is the box's title, e.g. "Value error"
        raise UsageError(f"{lines[0] if lines else 'bad options'} (python train.py {stage} --help)") from None


def check_config(stage: str, cfg: TrainConfig) -> Path | None:
    """UsageError for options that name nothing usable, before accelerate or a model starts; returns the checkpoint
    --resume names (None without --resume)."""
    for option, share in (("--hull-agreement", cfg.hull_agreement), ("--hull-dropout", cfg.hull_dropout)):
        if not 0.0 <= share <= 1.0:
            raise UsageError(f"{option} {share}: a share, between 0 and 1")
    patch = HEAD_PRESETS.get(cfg.preset, {}).get("patch_size", 0)
    if cfg.stride < 0 or (cfg.stride and patch % cfg.stride):
        raise UsageError(f"--stride {cfg.stride}: one Gaussian per stride x stride pixels; a divisor of the head's "
                         f"patch size {patch} (0: the preset's)")
    for option, shards in (("--data", cfg.data), ("--val-data", cfg.val_data)):
        try:
            resolve_shards(shards) if shards else None
        except ValueError as err:
            raise UsageError(f"{option}: {err} (python -m data.build writes shards; see the README's Data section)") from None
    check_output(Path(cfg.out))
    if cfg.init_from and not Path(cfg.init_from).is_dir():
        raise UsageError(f"--init-from {cfg.init_from}: no such folder (an exported model, e.g. runs/dit/model)")
    resume_from = find_resume(cfg.resume, Path(cfg.out))
    if resume_from is not None:
        check_compatible(json.loads((resume_from / "train_state.json").read_text()), stage, cfg)
    return resume_from


# ----------------------------------------------------------------------------- the two stages


class DiffusionStage:
    """The multiview-video diffusion model: flow-matching loss, sample grids, pipeline export."""

    name = "diffusion"

    def __init__(self, cfg: TrainConfig, device: torch.device):
        grid = get_preset(cfg.preset).grid
        views, frames = cfg.views or grid.num_views, cfg.frames or grid.num_frames
        self.preset = cfg.preset
        self.text_encoder = TextEncoder().to(device)
        self.model = build_dit(cfg.preset, text_dim=self.text_encoder.dim, prediction=cfg.prediction,
                               camera_conditioning=cfg.camera_conditioning, motion_conditioning=cfg.motion_conditioning,
                               output_refiner=cfg.output_refiner)
        self.scheduler = build_scheduler(cfg.preset)  # training state: never set_timesteps on this one
        self.objective = Objective()
        self.null_text = self.text_encoder([""])  # [1, L, D_text]
        self.subset = Subset(views=views, extra_views=0, frames=frames)
        self.defaults = PipelineDefaults(num_views=views, num_frames=frames, height=grid.height, width=grid.width,
                                         canonical_ring=cfg.canonical_ring)

    def load(self, model, folder: str) -> None:
        """--init-from: the weights of an exported pipeline folder's transformer (or a transformer folder)."""
        load_weights(model, folder)

    def loss(self, model, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """The flow-matching loss of one batch (model/diffusion.py) and no extra metrics."""
        text = self.text_encoder(batch["caption"])  # [B, L, D_text]
        if self.defaults.canonical_ring:
            batch = {**batch, "c2w": canonical_ring(batch["c2w"])}  # [B, V, F, 4, 4], the pipeline's ring
        return diffusion_loss(model, self.scheduler, batch, text, self.null_text, self.objective, generator), {}

    def pipeline(self, model):
        """A MultiViewVideoPipeline around `model` with this stage's scheduler and text encoder (previews, export)."""
        return MultiViewVideoPipeline(model, build_scheduler(self.preset), self.text_encoder, self.defaults)

    def preview(self, model, batch: dict, path: Path) -> None:
        """Generated views x frames for the batch's first caption (text-to-4D), above the ground truth."""
        H, W = batch["images"].shape[-2:]
        out = self.pipeline(model)(batch["caption"][0], height=H, width=W, num_inference_steps=10, progress=False,
                                   generator=torch.Generator().manual_seed(0))
        rgba = batch["images"][0].cpu()  # [V, F, 4, H, W]
        grid_image(torch.cat([out.images, composite(rgba, 1.0)])).save(path)  # truth [V, F, 3, H, W] over white

    def export(self, model, path: Path) -> None:
        """The whole pipeline folder (transformer, scheduler, pipeline.json), the folder infer.py loads as diffusion/."""
        self.pipeline(model).save_pretrained(path)


def recon_head(cfg: TrainConfig) -> GaussianHead4D:
    """The untrained head `cfg` asks for: its preset with the hull prior and stride options (stride 0: the preset's)."""
    stride = {"stride": cfg.stride} if cfg.stride else {}
    return build_head(cfg.preset, hull_prior=cfg.hull_prior, hull_agreement=cfg.hull_agreement, **stride)


class ReconStage:
    """The 4D Gaussian head: photometric loss at input and supervision views, render comparisons, export."""

    name = "recon"

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.views = cfg.views or 4
        self.model = recon_head(cfg)
        self.hull_dropout = cfg.hull_dropout
        self.subset = Subset(views=self.views, extra_views=cfg.extra_views, frames=cfg.frames or None)
        self.weights = cfg.loss
        lpips = load_lpips() if cfg.loss.lpips > 0 else None  # None, with a warning, where LPIPS is not installed
        self.lpips = None if lpips is None else lpips.to(device)

    def load(self, model, folder: str) -> None:
        """--init-from: the weights of an exported head. A head given the hull prior that was trained without it starts
        its Gaussians at the hull's depths (its depth outputs were offsets from the middle plane, not from the hull);
        a head at a finer stride starts with copies of the saved head's Gaussians (`recon.head.finer_stride_weights`)."""
        config = Path(folder) / "config.json"
        saved = json.loads(config.read_text()) if config.is_file() else {}
        saved_stride, stride = saved.get("stride", model.config.stride), model.config.stride
        if saved_stride % stride:
            raise UsageError(f"--init-from {folder}: its head has one Gaussian per {saved_stride} pixels; it can be "
                             f"continued at a stride that divides {saved_stride}, not at --stride {stride}")
        factor = saved_stride // stride
        adapt = None if factor == 1 else partial(finer_stride_weights, factor=factor,
                                                 decoder_channels=model.config.decoder_channels)
        load_weights(model, folder, adapt)
        if model.config.hull_prior and not saved.get("hull_prior"):
            model.reset_depth_output()

    def loss(self, model, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        # The hull is dropped only while training: validation scores the head as it is used.
        return recon_loss(model, batch, num_input_views=self.views, weights=self.weights, lpips_fn=self.lpips,
                          hull_dropout=self.hull_dropout if model.training else 0.0)

    def preview(self, model, batch: dict, path: Path) -> None:
        """Renders of the predicted Gaussians at every view of frame 0 (top) above the ground truth (bottom)."""
        images, c2w, K = batch["images"][:1], batch["c2w"][:1], batch["K"][:1]  # [1, V, F, ...]
        H, W = images.shape[-2:]
        gaussians = model(composite(images[:, : self.views], 1.0), c2w[:, : self.views], K[:, : self.views])  # [1, F, N]
        first = gaussians.map(lambda t: t[:, :1])  # [1, 1, N]
        rendered = render(first, c2w[:, None, :, 0], K[:, None], H, W, 1.0).rgb[0, 0]  # [V, 3, H, W]
        grid_image(torch.stack([rendered.cpu(), composite(images[0, :, 0], 1.0).cpu()])).save(path)

    def export(self, model, path: Path) -> None:
        """The head's weights and config, the folder infer.py loads as recon/."""
        model.save_pretrained(path)


# ----------------------------------------------------------------------------- the loop, in the order it runs


def forever(loader):
    """Batches from `loader`, pass after pass; SystemExit if a pass yields nothing (no data for this process)."""
    while True:
        count = 0
        for batch in loader:
            count += 1
            yield batch
        if count == 0:
            raise SystemExit("the data loader yielded no batch: fewer shards than processes, or every sample was corrupt")


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors moved to `device`; other values (keys, captions) as they are."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def make_accelerator(cfg: TrainConfig, out: Path) -> Accelerator:
    """An Accelerator with the run's precision (auto: bf16 where the GPU has it), accumulation and trackers in OUT."""
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(
        gradient_accumulation_steps=cfg.grad_accum, mixed_precision=precision, cpu=not torch.cuda.is_available(),
        log_with="tensorboard", project_dir=str(out),
    )


@torch.no_grad()
def validate(stage, model, cfg: TrainConfig, accelerator: Accelerator) -> float:
    """Mean loss over one pass of the held-out shards (split between processes), with fixed noise."""
    loader = make_loader(cfg.val_data, cfg.batch_size, num_workers=0, shuffle=0,
                         subset=dataclasses.replace(stage.subset, random=False))
    generator = torch.Generator(accelerator.device).manual_seed(cfg.seed)
    total = torch.zeros(2, device=accelerator.device)  # [sum of losses, batches]
    model.eval()
    for batch in loader:
        total += torch.stack([stage.loss(model, to_device(batch, accelerator.device), generator)[0].float(), total.new_ones(())])
    model.train()
    total = accelerator.reduce(total, "sum")
    return (total[0] / total[1].clamp(min=1)).item()


def audit(out: Path, accelerator: Accelerator, lines: str) -> None:
    """Append `lines` to this rank's audit file (--audit: which samples each rank saw, the final weights' hash)."""
    with open(out / f"audit-rank{accelerator.process_index}.txt", "a") as f:
        f.write(lines)


def all_finite(accelerator: Accelerator, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every process."""
    flag = torch.isfinite(loss.detach()).float().reshape(1)
    return bool(accelerator.gather(flag).min() > 0)


class ema_weights:
    """Context manager: the model holds the EMA weights inside, its own weights again after."""

    def __init__(self, ema: EMAModel, model: torch.nn.Module):
        self.ema, self.params = ema, list(model.parameters())

    def __enter__(self):
        self.ema.store(self.params)
        self.ema.copy_to(self.params)

    def __exit__(self, *exc):
        self.ema.restore(self.params)


@dataclass
class Progress:
    """Where the loop stands: the one object the loop's state lives in. `step`, `batches` and `nonfinite` are saved in
    every checkpoint (train_state.json); the rest lasts one process's run."""

    step: int = 0  # optimiser steps taken
    batches: int = 0  # micro-batches drawn from the stream (a resume skips as many)
    nonfinite: int = 0  # optimiser steps skipped for a non-finite loss, in all
    in_row: int = 0  # ... of them in a row, up to now
    step_ok: bool = True  # every micro-batch of the step under way had a finite loss
    losses: list[float] = field(default_factory=list)  # finite losses since the last log
    last: dict = field(default_factory=dict)  # the last logged metrics and validation loss: what train() returns
    clock: float = field(default_factory=time.perf_counter)  # when the logging window began

    def saved(self) -> dict:
        """What a checkpoint keeps, to resume from."""
        return {"step": self.step, "batches": self.batches, "nonfinite": self.nonfinite}


@dataclass
class Run:
    """What one training run holds: the accelerator, the stage and its prepared model, optimiser, schedule and EMA."""

    accelerator: Accelerator
    stage: DiffusionStage | ReconStage
    model: torch.nn.Module  # as prepared (DDP-wrapped on several processes)
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    ema: EMAModel

    @property
    def net(self) -> torch.nn.Module:
        """The model without its DDP wrapper."""
        return self.accelerator.unwrap_model(self.model)


def start_run(stage_name: str, cfg: TrainConfig, resume_from: Path | None) -> Run:
    """Build the stage, optimiser, schedule and EMA, prepared by accelerate; starting weights from --init-from."""
    accelerator = make_accelerator(cfg, Path(cfg.out))
    set_seed(cfg.seed, device_specific=True)
    stage = (DiffusionStage if stage_name == "diffusion" else ReconStage)(cfg, accelerator.device)
    model = stage.model
    if cfg.init_from and resume_from is None:
        stage.load(model, cfg.init_from)
    if cfg.grad_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    # Linear warm-up from 0, then cosine decay to lr * min_lr_ratio at the last step.
    schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, cfg.warmup, cfg.steps, min_lr_rate=cfg.min_lr_ratio)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    # After prepare: DDP has broadcast rank 0's initial weights, so every rank's EMA starts from the same ones
    # (the seed is per device, so the ranks initialised differently).
    ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay)
    return Run(accelerator, stage, model, optimizer, schedule, ema)


def resume_progress(run: Run, resume_from: Path | None) -> Progress:
    """A fresh Progress, or the checkpoint's, with every weight, optimiser and schedule state restored from it."""
    if resume_from is None:
        return Progress()
    run.accelerator.load_state(str(resume_from))
    saved = json.loads((resume_from / "train_state.json").read_text())
    load_ema(run.ema, run.net, resume_from, saved["step"])
    return Progress(step=saved["step"], batches=saved["batches"], nonfinite=saved["nonfinite"])


def optimizer_step(run: Run, batch: dict, clip: float, progress: Progress) -> bool | None:
    """One micro-batch: loss, backward, and at the end of an accumulation a clipped optimiser step.

    Returns None mid-accumulation, else whether every micro-batch of the step was finite (a step with a
    non-finite loss is skipped). Finite losses go to `progress.losses` for logging.
    """
    with run.accelerator.accumulate(run.model):
        loss, _ = run.stage.loss(run.model, batch)
        finite = all_finite(run.accelerator, loss)  # every process agrees, so none waits alone in a collective
        if finite:
            run.accelerator.backward(loss)
            progress.losses.append(loss.item())
        progress.step_ok &= finite
        if not run.accelerator.sync_gradients:
            return None
        ok, progress.step_ok = progress.step_ok, True
        if ok:
            run.accelerator.clip_grad_norm_(run.model.parameters(), clip)
            run.optimizer.step()
            run.schedule.step()
        run.optimizer.zero_grad(set_to_none=True)
        return ok


def count_nonfinite(progress: Progress, limit: int, out: Path) -> None:
    """Count a skipped step; SystemExit after `limit` in a row, naming the last good checkpoint (left untouched)."""
    progress.nonfinite += 1
    progress.in_row += 1
    if progress.in_row >= limit:
        good = checkpoints(out)
        raise SystemExit(f"stopping: {progress.in_row} non-finite losses in a row at step {progress.step}; "
                         f"last good checkpoint: {good[-1] if good else 'none'} (untouched)")


def log_metrics(run: Run, cfg: TrainConfig, progress: Progress, bar: tqdm) -> None:
    """Mean loss since the last log, learning rate and throughput, to TensorBoard, OUT/metrics.jsonl and the bar."""
    seconds = time.perf_counter() - progress.clock
    samples = cfg.log_every * cfg.grad_accum * cfg.batch_size * run.accelerator.num_processes
    metrics = {"step": progress.step, "loss": float(np.mean(progress.losses)) if progress.losses else float("nan"),
               "lr": run.schedule.get_last_lr()[0], "samples_per_s": samples / max(seconds, 1e-9), "nonfinite": progress.nonfinite}
    run.accelerator.log(metrics, step=progress.step)
    if run.accelerator.is_main_process:
        with open(Path(cfg.out) / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
    bar.set_postfix(loss=f"{metrics['loss']:.4f}", samples_s=f"{metrics['samples_per_s']:.1f}")
    progress.last, progress.losses, progress.clock = metrics, [], time.perf_counter()


def after_step(run: Run, cfg: TrainConfig, progress: Progress, batch: dict, bar: tqdm) -> None:
    """Logging, validation, preview and checkpoint when the step calls for them."""
    step, out = progress.step, Path(cfg.out)
    if step % cfg.log_every == 0 or step == cfg.steps:
        log_metrics(run, cfg, progress, bar)
    if cfg.val_data and (step % cfg.val_every == 0 or step == cfg.steps):
        with ema_weights(run.ema, run.net):
            progress.last["val_loss"] = validate(run.stage, run.model, cfg, run.accelerator)
        run.accelerator.log({"val_loss": progress.last["val_loss"]}, step=step)
        bar.write(f"step {step}: val loss {progress.last['val_loss']:.4f}")
    if step % cfg.sample_every == 0 and run.accelerator.is_main_process:
        with ema_weights(run.ema, run.net):
            run.stage.preview(run.net, batch, out / "samples" / f"step-{step:07d}.png")
    if step % cfg.save_every == 0 or step in (cfg.steps, cfg.stop_at):
        state = {"stage": run.stage.name, **progress.saved(), "config": dataclasses.asdict(cfg)}
        save_checkpoint(run.accelerator, out, step, state, ema_tensors(run.ema, run.net), cfg.keep_last)


def export_ema(run: Run, cfg: TrainConfig) -> None:
    """Save the EMA weights with save_pretrained to OUT/model (temporary folder, then rename), config beside them."""
    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:
        return
    model = copy.deepcopy(run.net)
    run.ema.copy_to(model.parameters())
    with atomic_folder(Path(cfg.out) / "model") as tmp:
        run.stage.export(model, tmp)
        (tmp / "train_config.json").write_text(json.dumps({"stage": run.stage.name, **dataclasses.asdict(cfg)}, indent=1))


def train(stage_name: str, cfg: TrainConfig) -> dict:
    """Train one stage; returns the last logged metrics."""
    out = Path(cfg.out)
    resume_from = check_config(stage_name, cfg)  # clear errors now, not inside a worker
    run = start_run(stage_name, cfg, resume_from)
    progress = resume_progress(run, resume_from)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    if run.accelerator.is_main_process:
        (out / "config.json").write_text(json.dumps({"stage": stage_name, **dataclasses.asdict(cfg)}, indent=1))
    run.accelerator.init_trackers("train", config={k: str(v) for k, v in dataclasses.asdict(cfg).items()})

    # The stream restarts at a resume; skipping the batches already used makes the resumed run see what an
    # uninterrupted one would (exact resume, at the cost of decoding them again).
    loader = make_loader(cfg.data, cfg.batch_size, num_workers=cfg.num_workers, subset=run.stage.subset,
                         resampled=cfg.resampled, seed=cfg.seed + run.accelerator.process_index)
    batches = forever(loader)
    for _ in range(progress.batches):
        next(batches)

    bar = tqdm(total=cfg.steps, initial=progress.step, desc=f"train {stage_name}", disable=not run.accelerator.is_main_process)
    while progress.step < cfg.steps:
        batch = to_device(next(batches), run.accelerator.device)
        progress.batches += 1
        if cfg.audit:
            audit(out, run.accelerator, "".join(f"key {progress.step} {k}\n" for k in batch["key"]))
        ok = optimizer_step(run, batch, cfg.clip, progress)
        if ok is None:  # mid-accumulation
            continue
        if not ok:
            count_nonfinite(progress, cfg.max_nonfinite, out)
            continue
        progress.in_row, progress.step = 0, progress.step + 1
        run.ema.step(run.net.parameters())
        bar.update()
        after_step(run, cfg, progress, batch, bar)
        if progress.step == cfg.stop_at:
            bar.write(f"stopped at step {progress.step} (--stop-at); continue with --resume latest")
            run.accelerator.end_training()
            return progress.last
    bar.close()
    if cfg.audit:
        weights = b"".join(p.detach().cpu().numpy().tobytes() for p in run.net.parameters())
        audit(out, run.accelerator, f"weights {hashlib.sha1(weights).hexdigest()}\n")
    export_ema(run, cfg)
    run.accelerator.end_training()
    return progress.last


@entry_point
def main(argv: list[str] | None = None) -> None:
    """`python train.py STAGE [options]`: train, then print the last logged metrics as JSON on rank 0."""
    stage, cfg = parse_args(sys.argv[1:] if argv is None else argv)
    last = train(stage, cfg)
    if last.get("step") is not None and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(last))


if __name__ == "__main__":
    main()
