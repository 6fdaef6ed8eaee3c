"""What a pipeline call uses when not told otherwise, and what one call asks instead.

Kept apart from pipeline.py (which imports diffusers, seconds of start-up) so that infer.py can check its options
before loading anything heavy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

SAMPLERS = ("stochastic", "ode")
LOOP_OUTPUTS = ("sample", "render")


@dataclass
class PipelineDefaults:
    """Saved with the pipeline: what a call uses when not told otherwise. Match the renders the model learnt from."""

    num_views: int = 4
    num_frames: int = 8
    height: int = 64
    width: int = 64
    fov_deg: float = 40.0  # horizontal field of view; the camera distance follows from data.cameras.fit_distance
    shared_noise: float = 0.0  # as in training (model.diffusion.Objective.shared_noise)
    sampler: str = "stochastic"  # "stochastic" or "ode"; see MultiViewVideoPipeline._denoise
    motion: float = 0.016  # motion score asked of motion-conditioned models (data.images; the training clips' mean)
    # Classifier-free guidance on the prompt (1: off, and one network pass a step instead of two): `guidance` for text-
    # and image-to-4D, `video_guidance` when a video is given, which pins down the object far more than its caption.
    guidance: float = 3.0
    video_guidance: float = 3.0
    # Motion guidance (model.pipeline.Guidance): above 1, each step is steered away from the model's prediction for a
    # still clip (every frame at time 0), so objects move more; 1 is off (one network row fewer).
    motion_guidance: float = 1.0
    # Reconstruction in the loop (`_denoise`): at the steps from fraction `loop_start` (1: never) to before `loop_end`,
    # each clean-image prediction is blended `loop_blend` of the way towards the renders of its 3D reconstruction;
    # `loop_output` "render" returns the renders of the final reconstruction instead of the last sample. Ending
    # before the last steps lets the model clear the faint haze the renders leave around the object.
    loop_start: float = 1.0
    loop_end: float = 1.0
    loop_blend: float = 1.0
    loop_output: str = "sample"
    # Patch shifting (MultiViewVideoPipeline._denoise): alternate steps see the images moved by half a patch, the last
    # quarter of the steps averages both grids, so the 8x8 patches leave no seams in one place (a quarter more time).
    patch_shift: bool = False
    # Trained on rings turned so that view 0 sits at azimuth 0 (train.py --canonical-ring, data.cameras.canonical_ring):
    # the model generates on that ring and the returned cameras are turned to the azimuth asked for.
    canonical_ring: bool = False

    def __post_init__(self):
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("loop_output", self.loop_output, LOOP_OUTPUTS)
        for name in ("loop_start", "loop_end", "loop_blend"):
            if not 0.0 <= getattr(self, name) <= 1.0:  # also refuses NaN
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.loop_end < self.loop_start:
            raise ValueError(f"loop_end {self.loop_end} comes before loop_start {self.loop_start}: the loop would never run")
        for name in ("guidance", "video_guidance"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not 0.0 <= self.motion_guidance < float("inf"):
            raise ValueError(f"motion_guidance must be a finite number >= 0 (1: off), got {self.motion_guidance}")
        if not 0.0 <= self.motion < float("inf"):
            raise ValueError(f"motion must be a finite score >= 0 (about 0.016 for a walk), got {self.motion}")


@dataclass(frozen=True)
class Sampling:
    """The sampling options of one call (PipelineDefaults' fields of the same names); None keeps the saved default.
    The one list of them: infer.py, app.py and benchmark.py pass one of these."""

    sampler: str | None = None
    motion: float | None = None
    loop_start: float | None = None
    loop_end: float | None = None
    loop_blend: float | None = None
    loop_output: str | None = None
    patch_shift: bool | None = None
    guidance: float | None = None
    video_guidance: float | None = None
    motion_guidance: float | None = None

    def over(self, defaults: PipelineDefaults) -> PipelineDefaults:
        """`defaults` with every option set here in place of its value; ValueError on a bad one."""
        return replace(defaults, **{k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def of(cls, source) -> Sampling:
        """Every option as `source` has it, read by name: a PipelineDefaults (what a call resolved, to record) or the
        parsed command line of infer.py or benchmark.py (None where an option was not given)."""
        return cls(**{name: getattr(source, name) for name in asdict(cls())})


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ValueError unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
