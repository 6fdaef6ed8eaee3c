"""The 4D viewer: viewer.html played in headless Chromium from disk, and view.py serving an output folder."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import view
from conftest import canvas_pixels
from recon.export import splat_bytes, write_frames
from recon.gaussians import Gaussians
from viewer.page import MAX_FRAMES, build_page

ROOT = Path(__file__).resolve().parents[1]


def moving_ball(frames: int = 3, n: int = 1500) -> Gaussians:
    """Gaussians [F, N]: a ball of radius 0.3 coloured by direction, moving along +x by 0.3 per frame."""
    gen = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)  # [N, 3]
    shift = torch.tensor([[0.3 * f - 0.3, 0.0, 0.0] for f in range(frames)])[:, None]  # [F, 1, 3]
    return Gaussians(
        means=d * 0.3 + shift,
        rotations=torch.tensor([1.0, 0, 0, 0]).expand(frames, n, 4),
        scales=torch.full((frames, n, 3), 0.03),
        opacities=torch.full((frames, n), 0.9),
        colours=(d * 0.5 + 0.5).expand(frames, n, 3),
    )


def output_folder(path: Path, frames: int = 3) -> Path:
    """A folder laid out like infer.py's (meta.json, ply/), without a model."""
    write_frames(path / "ply", moving_ball(frames))
    (path / "meta.json").write_text(json.dumps({"prompt": "a moving ball", "frames": frames}))
    return path


def test_page_is_self_contained_and_escapes_the_title():
    page = build_page([splat_bytes(moving_ball(40).map(lambda t: t[f])) for f in range(40)], "<b>ball</b> & co", 8)
    assert "&lt;b&gt;ball&lt;/b&gt; &amp; co" in page and "<b>ball" not in page
    assert 'src="http' not in page and "import " not in page.split("<script>", 1)[0]  # nothing fetched from outside
    data = json.loads(page.split('<script type="application/json" id="frames">')[1].split("</script>")[0])
    assert len(data["frames"]) == MAX_FRAMES and data["note"] == f"showing {MAX_FRAMES} of 40 frames"
    assert data["fps"] == pytest.approx(8 * MAX_FRAMES / 40)  # the clip keeps its duration


def test_viewer_html_plays_from_disk(browser, tmp_path):
    path = tmp_path / "viewer.html"
    ball = moving_ball()
    path.write_text(build_page([splat_bytes(ball.map(lambda t: t[f])) for f in range(3)], "a moving ball", 8))
    page = browser.new_page(viewport={"width": 480, "height": 400})
    page.goto(path.as_uri())
    page.wait_for_function("window.zoetrope && (window.zoetrope.ready || window.zoetrope.error)", timeout=60_000)
    assert page.evaluate("window.zoetrope.error") is None
    page.wait_for_function("window.zoetrope.frame > 0", timeout=10_000)  # it plays on its own
    page.click("#play")  # pause
    assert page.inner_text("#play") == "Play"
    shots = []
    for frame in (0, 2):
        page.fill("#frame", str(frame))  # the slider
        page.wait_for_timeout(400)
        assert page.inner_text("#label") == f"frame {frame + 1} / 3"
        shots.append(canvas_pixels(page.locator("#stage canvas")))
    page.screenshot(path=str(tmp_path / "viewer.png"))
    for shot in shots:  # the ball covers part of the white page
        drawn = (shot.astype(int).sum(-1) < 3 * 230)  # [H, W] non-white pixels
        assert 0.02 < drawn.mean() < 0.6
    columns = [np.nonzero((s.astype(int).sum(-1) < 3 * 230).any(0))[0].mean() for s in shots]
    assert columns[1] > columns[0] + 40  # frame 2's ball is further right (+x) on screen
    page.close()


def test_view_serves_an_output_folder(tmp_path):
    folder = output_folder(tmp_path / "result")
    proc = subprocess.Popen([sys.executable, "view.py", str(folder), "--port", "0", "--no-browser"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        body = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "a moving ball" in body and "GaussianSplats3D" in body
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + "elsewhere", timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_view_rejects_bad_folders(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.txt").write_text("not a folder")
    for folder in (tmp_path / "plain", tmp_path / "nowhere", tmp_path / "notes.txt"):
        with pytest.raises(SystemExit) as exit:
            view.main([str(folder), "--no-browser"])
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and any(why in err for why in ("is not an infer.py output folder", "does not exist", "is a file, not an output folder"))
    folder = output_folder(tmp_path / "result")
    (folder / "ply" / "frame_001.ply").unlink()
    with pytest.raises(SystemExit, match=r"frame file .*frame_001.ply is missing") as exit:
        view.main([str(folder), "--no-browser"])
    assert exit.value.code != 0
