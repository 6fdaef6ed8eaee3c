"""Builds viewer.html: the frames of one result as splat scenes, with play/pause, a frame slider, the speed and
mouse orbit and zoom, in one file with no outside references (it must work from file:// with no server)."""
from __future__ import annotations

import base64
import functools
import html
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MAX_FRAMES = 32  # GaussianSplats3D draws at most 32 scenes at once; longer clips are shown at evenly spaced frames


class ViewerError(ValueError):
    """A folder that cannot be viewed; the message says why."""


class NotAnOutputFolder(ViewerError):
    """The folder does not exist or is not an infer.py output folder."""


def build_page(splats: list[bytes], title: str, fps: float) -> str:
    """The viewer page for frames given as .splat data (`recon.export.splat_bytes`, one per frame, F >= 1)
    played at `fps` frames per second at 1x speed; `title` names the result (HTML-escaped here)."""
    if not splats:
        raise ViewerError("no frames to show")
    picks = np.linspace(0, len(splats) - 1, min(len(splats), MAX_FRAMES)).round().astype(int)
    note = "" if len(picks) == len(splats) else f"showing {len(picks)} of {len(splats)} frames"
    frames = {"fps": fps * len(picks) / len(splats), "note": note,
              "frames": [base64.b64encode(splats[i]).decode("ascii") for i in picks]}
    template, bundle = static_files()
    page = template
    for key, value in {"title": html.escape(title), "count": str(len(picks)), "last": str(len(picks) - 1),
                       "frames": json.dumps(frames).replace("</", "<\\/")}.items():
        page = page.replace("{{" + key + "}}", value)
    return page.replace("{{bundle}}", bundle)  # last: the bundle is not searched


@functools.cache
def static_files() -> tuple[str, str]:
    """The page template and the ~1 MB splat-renderer bundle, read once per process (the app builds a page per run)."""
    return (HERE / "template.html").read_text(), (HERE / "static" / "splats.min.js").read_text()


def output_frames(folder: Path) -> tuple[dict, list[Path]]:
    """meta.json's content and the frame files (ply/frame_NNN.ply) of an infer.py output folder.

    Raises NotAnOutputFolder for a folder without meta.json and ply/, and ViewerError naming the file when
    meta.json is unreadable or a frame that it lists is missing."""
    meta_path, ply = folder / "meta.json", folder / "ply"
    if not folder.is_dir():
        raise NotAnOutputFolder(f"{folder} is a file, not an output folder" if folder.exists() else f"{folder} does not exist")
    if not meta_path.is_file() or not ply.is_dir():
        raise NotAnOutputFolder(f"{folder} is not an infer.py output folder (it needs meta.json and ply/)")
    try:
        meta = json.loads(meta_path.read_text())
        count = int(meta["frames"])
    except (ValueError, KeyError, TypeError) as err:
        raise ViewerError(f"{meta_path} is unreadable or lacks the frame count: {err}") from None
    paths = [ply / f"frame_{f:03d}.ply" for f in range(count)]
    for path in paths:
        if not path.is_file():
            raise ViewerError(f"frame file {path} is missing ({count} frames listed in meta.json)")
    return meta, paths


def page_for_folder(folder: Path, default_fps: float = 8.0) -> str:
    """The viewer page of an infer.py output folder, read from its .ply files (see `output_frames`)."""
    from recon.export import read_ply, splat_bytes

    meta, paths = output_frames(folder)
    return build_page([splat_bytes(read_ply(p)) for p in paths], meta.get("prompt", folder.name), meta.get("fps", default_fps))
