"""The local web app: prompt (or image, or video) -> multiview video, orbit video, the 4D viewer and downloads.

    python app.py                                  # the shipped model, on http://127.0.0.1:7860/
    python app.py --model runs/my-model --port 8080 --out-root outputs/app

The model is loaded once at start-up and shared by every request; each generation runs the same job as infer.py
(`infer.generate_with`) into its own folder under --out-root, so a result can be opened later with view.py.
Bad input (an empty prompt, an unreadable upload) shows a message on the page, never a traceback.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path

import torch

import infer
from data.cli import Failure, entry_point, non_negative_int
from model.sampling import Sampling

VIEWER_HEIGHT = 480  # pixels of the embedded viewer
# The reconstruction loop for each choice of "Views of one object": None keeps the model's; on is the setting measured in
# benchmarks/results/2026-12-03-loop-window/ (with motion guidance 2 it raised text-to-4D's silhouette IoU on real
# held-out animals without the haze of a loop run to the last step; not the shipped default).
ONE_OBJECT = {None: {}, True: {"loop_start": 0.5, "loop_end": 0.8, "loop_blend": 0.5},
              False: {"loop_start": 1.0, "loop_end": 1.0}}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=infer.DEFAULT_MODEL, help="model folder (default: the shipped model)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out-root", type=Path, default=Path("outputs/app"), help="one folder per generation is written here")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: the whole network)")
    p.add_argument("--port", type=non_negative_int, default=7860)
    return p.parse_args(argv)


def folder_name(prompt: str) -> str:
    """A unique, readable folder name for one generation: time stamp plus the prompt's first words."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "result"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{time.perf_counter_ns() % 10_000:04d}-{slug}"


def viewer_iframe(page: str) -> str:
    """The viewer page embedded in the app: an iframe whose document is the page itself (no file serving)."""
    return (f'<iframe id="viewer" title="4D viewer" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width:100%;height:{VIEWER_HEIGHT}px;border:1px solid #ddd;border-radius:6px"></iframe>')


class Generator:
    """The models of one folder, loaded once, and the request handler that runs infer.py's job on them."""

    def __init__(self, model: Path, device: str, out_root: Path):
        infer.check_model_folder(model)
        self.model, self.out_root = model, out_root
        self.pipeline, self.head = infer.load_models(model, torch.device(device))

    def __call__(self, prompt, image, video, steps, guidance, seed, refine_steps, video_size, mesh, motion_guidance=None,
                 one_object=None, multiview=None, report=infer.print_stage):
        """One request -> (multiview.mp4, orbit.mp4, viewer HTML, download files, status line).

        motion_guidance: its scale (None: the model's). one_object: reconstruction in the loop on or off (`ONE_OBJECT`;
        None: the model's). refine_steps: below 0, infer.py's default for the input (`infer.refine_steps_for`).
        multiview: a multiview video to reconstruct without diffusion (infer.py --multiview).
        Raises ValueError (infer.InferError among them) on bad input, before writing anything."""
        motion = None if motion_guidance is None else float(motion_guidance)
        sampling = Sampling(guidance=float(guidance), motion_guidance=motion, **ONE_OBJECT[one_object])
        refine = None if refine_steps < 0 else int(refine_steps)
        settings = infer.Settings(views=None, frames=None, steps=int(steps), seed=int(seed), elevation=15.0,
                                  video_size=int(video_size), refine_steps=refine, sampling=sampling, mesh=bool(mesh))
        out = self.out_root / folder_name(prompt or "")
        meta = infer.generate_with(self.pipeline, self.head, self.model, prompt, out, settings,
                                   Path(image) if image else None, Path(video) if video else None,
                                   infer.Stages(total=0, report=report), Path(multiview) if multiview else None)
        zipped = shutil.make_archive(str(self.out_root / f"{out.name}-ply"), "zip", out / "ply")
        downloads = [zipped] + ([str(out / "animated.glb")] if mesh else [])
        status = f"{meta['frames']} frames x {meta['gaussians_per_frame']} Gaussians in {meta['total_seconds']:.1f} s, saved in `{out}`"
        return str(out / "multiview.mp4"), str(out / "orbit.mp4"), viewer_iframe((out / "viewer.html").read_text()), downloads, status


def build_app(generator: Generator):
    """The Gradio page: inputs and settings on the left, the results on the right."""
    import gradio as gr

    def run(*inputs, progress=gr.Progress(track_tqdm=True)):
        """The click handler: a failure leaves the results as they were and says why in the status line."""
        try:
            return generator(*inputs, report=lambda done, total, name: progress((done - 1) / total, desc=name))
        except ValueError as err:  # infer.InferError and the pipeline's checks: the user's input
            message = str(err)
        except Exception as err:  # anything else: the message on the page, the traceback in the console only
            traceback.print_exc()
            message = f"generation failed: {err}"
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"**Error:** {html.escape(message)}"

    with gr.Blocks(title="zoetrope4d") as app:
        gr.Markdown("# zoetrope4d\nA prompt (and optionally an image or a video of the front view) in; "
                    "an animated 3D object out, as 4D Gaussians and an animated mesh.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="Prompt", placeholder="a small red four-legged animal walking slowly", elem_id="prompt")
                # Plain file inputs: infer.py's own readers check the uploads and say what is wrong with them
                # (gr.Image would decode them first and fail with a bare "Error").
                image = gr.File(label="Image (optional): the front view at the first frame", file_types=["image"], type="filepath", elem_id="image")
                video = gr.File(label="Video (optional): the front view over time", file_types=["video"], type="filepath", elem_id="video")
                multiview_upload = gr.File(label="Multiview video (optional): views side by side, as multiview.mp4, "
                                           "reconstructed without diffusion", file_types=["video"], type="filepath",
                                           elem_id="multiview-input")
                with gr.Accordion("Settings", open=False):
                    steps = gr.Slider(1, 50, value=20, step=1, label="Denoising steps", elem_id="steps")
                    # The prompt's guidance; a video is sampled with the model's own video_guidance (pipeline.json).
                    guidance = gr.Slider(1.0, 10.0, value=3.0, step=0.5, label="Guidance scale (prompt and image)")
                    defaults = generator.pipeline.defaults
                    motion_guidance = gr.Slider(0.0, 4.0, value=defaults.motion_guidance, step=0.5,
                                                label="Motion guidance (1: off; 2: more motion, views agree less)")
                    one_object = gr.Checkbox(value=defaults.loop_start < 1.0, label="Views of one object (reconstruction in "
                                             "the loop; best with motion guidance 2)")
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    refine_steps = gr.Slider(-1, 200, value=-1, step=1, label=f"Refinement steps (-1: {infer.REFINE_STEPS} "
                                             "against a given video or image, none for a prompt alone; 0: off)")
                    video_size = gr.Slider(64, 512, value=256, step=32, label="Orbit video size (pixels)", elem_id="video-size")
                    mesh = gr.Checkbox(value=True, label="Animated mesh (animated.glb)")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                with gr.Row():
                    multiview = gr.Video(label="Multiview video (views side by side)", elem_id="multiview", autoplay=True, loop=True)
                    orbit = gr.Video(label="Orbit video", elem_id="orbit", autoplay=True, loop=True)
                viewer = gr.HTML(elem_id="viewer-box")
                files = gr.File(label="Downloads: the .ply files (zip) and animated.glb", file_count="multiple", elem_id="downloads")
        inputs = [prompt, image, video, steps, guidance, seed, refine_steps, video_size, mesh, motion_guidance, one_object,
                  multiview_upload]
        outputs = [multiview, orbit, viewer, files, status]
        button.click(run, inputs, outputs)
        prompt.submit(run, inputs, outputs)
    return app


@entry_point
def main(argv=None) -> None:
    """`python app.py [--model DIR] [--port N]`: load the model once, then serve the app until Ctrl+C."""
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
    start = time.perf_counter()
    try:
        generator = Generator(args.model, args.device, args.out_root)
    except (infer.InferError, OSError) as err:
        raise Failure(str(err)) from None
    import gradio as gr

    app = build_app(generator)
    print(f"model loaded, app built in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    args.out_root.mkdir(parents=True, exist_ok=True)
    app.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(args.out_root.resolve())], ssr_mode=False,
               theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"]))  # no web fonts: offline


if __name__ == "__main__":
    main()
