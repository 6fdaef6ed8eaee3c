"""Shared fixtures: a small real data set rendered once per test session from ../shared/assets."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

def pytest_configure(config):
    """One torch thread: tiny models run fastest on one, and two threads on a shared 2-core machine thrash
    (4-50x slower, measured here). Subprocesses (Blender workers, train.py runs) inherit the setting. The README's
    command runs one pytest-xdist worker per core instead (-n 2: 331 s against 629 s in one process)."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under .ci/run (ZOETROPE_CI=1) a skip fails the test, except for want of CUDA: CI has ../shared and the render
    extra, so a missing asset folder or bpy there is a broken set-up, not a reason to pass."""
    report = (yield).get_result()
    if os.environ.get("ZOETROPE_CI") == "1" and report.skipped and "CUDA" not in str(report.longrepr):
        report.outcome = "failed"


ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
DEMO_FILES = ["CesiumMan.glb", "BoxAnimated.glb", "AnimatedMorphCube.glb", "QuaterniusWolf.glb"]


def shared_asset(name: str) -> Path:
    """A file of ../shared/assets; skips the test where the folder is not beside the checkout."""
    path = ASSETS / name
    if not path.is_file():
        pytest.skip(f"{path} not found: tests need ../shared beside the checkout")
    return path


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory) -> Path:
    """A data set built by `python -m data.build` from four real assets (one clip each, 4 ring views +
    2 extra views, 4 frames, 32x32): train/ holds three assets, val/ holds QuaterniusWolf."""
    pytest.importorskip("bpy")
    from data import build

    out = tmp_path_factory.mktemp("shards")
    src = out / "src"  # the source files, kept so tests can rebuild
    src.mkdir()
    for name in DEMO_FILES + ["LICENSES.md"]:
        shutil.copy(shared_asset(name), src / name)
    build.main([
        "--gltf-dir", str(src), "--out", str(out), "--views", "4", "--extra-views", "2", "--frames", "4",
        "--size", "32", "--samples", "4", "--max-clips", "1", "--val-fraction", "0", "--val-assets", "QuaterniusWolf",
        "--elevation", "10", "--workers", "2",
    ])
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A model folder laid out like the shipped one, with random tiny weights: 2 views x 3 frames at 16x16."""
    import torch

    from model.pipeline import MultiViewVideoPipeline
    from model.presets import build_dit, build_scheduler
    from model.sampling import PipelineDefaults
    from model.text import TextEncoder
    from recon.head import build_head

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    encoder = TextEncoder()
    defaults = PipelineDefaults(num_views=2, num_frames=3, height=16, width=16)
    MultiViewVideoPipeline(build_dit("tiny", text_dim=encoder.dim), build_scheduler("tiny"), encoder, defaults).save_pretrained(folder / "diffusion")
    build_head("tiny").save_pretrained(folder / "recon")
    return folder


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; the README's test command installs it
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu",
    "--use-gl=swiftshader", "--enable-unsafe-swiftshader",  # WebGL on the CPU (SwiftShader): the splat viewer needs it
    "--disable-background-networking", "--disable-component-update",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (the system one, driven by playwright; no browser download)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def canvas_pixels(locator) -> "np.ndarray":
    """A screenshot of one element (a canvas, an iframe) as RGB [H, W, 3] uint8."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))
