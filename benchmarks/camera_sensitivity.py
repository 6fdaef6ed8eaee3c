"""How much a diffusion model's clean-image prediction depends on its cameras.

    python -m benchmarks.camera_sensitivity pretrained/zoetrope4d-cpu-small/diffusion [runs/x/model ...]

For a prompt, a noisy white grid at each of a few noise levels is denoised once with the orbit cameras, once with
every camera turned 90 and 180 degrees about +Y (each view should now show another side of the object), and once
with another noise draw. A model that uses its cameras changes its prediction under the turns about as much as
under new noise; one that ignores them draws every view from its noise alone (the shipped v3: every view the same
side-on silhouette). Prints mean |change| of the predicted clean image (model range [-1, 1]) and the ratio
turn / new noise per noise level.
"""
from __future__ import annotations

import argparse

import torch

from data.cameras import rotate_about_up
from model.diffusion import condition_mask, sample_noise
from model.pipeline import MultiViewVideoPipeline, model_conditioning

PROMPT = "a small red four-legged animal walking slowly"


def predicted_x0(pipe, c2w, K, sigma: float, seed: int, prompt: str) -> torch.Tensor:
    """The model's clean image [1, V, F, 3, H, W] for a noised white grid at noise level sigma, cameras c2w, K."""
    d = pipe.defaults
    shape = (1, d.num_views, d.num_frames, 3, d.height, d.width)
    eps = sample_noise(shape, d.shared_noise, torch.Generator().manual_seed(seed), torch.device("cpu"), torch.float32)
    x = sigma * eps + (1 - sigma)  # white (1 in model range) noised to sigma
    given = condition_mask(torch.tensor([0]), d.num_views, d.num_frames)  # text-to-4D: nothing given
    conditioning = model_conditioning(torch.zeros(shape), given, c2w, K, torch.linspace(0, 1, d.num_frames),
                                      pipe.text_encoder([prompt]), d.motion)
    with torch.no_grad():
        velocity = pipe.transformer(x, torch.tensor([sigma * pipe.scheduler.config.num_train_timesteps]), **conditioning)
    return x - sigma * velocity


def sensitivity(folder: str, prompt: str = PROMPT, sigmas=(0.9, 0.6, 0.3)) -> list[dict[str, float]]:
    """Per noise level: the mean |change| of the prediction under 90 and 180 degree camera turns and new noise."""
    pipe = MultiViewVideoPipeline.from_pretrained(folder)
    d = pipe.defaults
    c2w, K = pipe.cameras(d.num_views, d.num_frames, d.height, d.width, 15.0, d.fov_deg, None)  # [V, F, 4, 4], [V, 3, 3]
    rows = []
    for sigma in sigmas:
        ref = predicted_x0(pipe, c2w, K, sigma, 0, prompt)
        change = lambda x: (x - ref).abs().mean().item()
        rows.append({"sigma": sigma,
                     "turn_90": change(predicted_x0(pipe, rotate_about_up(c2w, 90.0), K, sigma, 0, prompt)),
                     "turn_180": change(predicted_x0(pipe, rotate_about_up(c2w, 180.0), K, sigma, 0, prompt)),
                     "new_noise": change(predicted_x0(pipe, c2w, K, sigma, 1, prompt))})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.camera_sensitivity", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="diffusion pipeline folders (a model folder's diffusion/)")
    p.add_argument("--prompt", default=PROMPT)
    args = p.parse_args(argv)
    print("| model | sigma | turn 90 | turn 180 | new noise | turn 180 / new noise |\n|---|---|---|---|---|---|")
    for folder in args.models:
        for r in sensitivity(folder, args.prompt):
            print(f"| {folder} | {r['sigma']} | {r['turn_90']:.4f} | {r['turn_180']:.4f} | {r['new_noise']:.4f} | "
                  f"{r['turn_180'] / r['new_noise']:.2f} |")


if __name__ == "__main__":
    main()
