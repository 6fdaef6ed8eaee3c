"""app.py against infer.py: start-up seconds, and generation seconds on the same settings (the app's must be within
10% of infer.py's; both run `infer.generate_with`, the app on models it loaded once at start-up).

    python -m benchmarks.bench_app                          # the shipped model, 20 steps, 2 runs each
    python -m benchmarks.bench_app --steps 5 --repeats 1

Start-up is measured from a fresh process: `python app.py` until its page answers. Generation is the wall time of
one request through the app's handler, and infer.generate's total minus its model loading (the app loads once).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a small red four-legged animal walking slowly"


def startup_seconds(model: Path) -> float:
    """Seconds from `python app.py` to its page answering."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py", "--model", str(model), "--port", str(port), "--out-root", out],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                    return time.perf_counter() - start
                except OSError:
                    time.sleep(0.2)
            raise SystemExit(f"app.py exited with code {proc.returncode}")
        finally:
            proc.terminate()
            proc.wait()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "pretrained" / "zoetrope4d-cpu-small")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    import app
    import infer

    print(f"app start-up (fresh process until the page answers): {startup_seconds(args.model):.1f} s", flush=True)
    generator = app.Generator(args.model, "cpu", Path(tempfile.mkdtemp()) / "app")
    settings = infer.Settings(views=None, frames=None, steps=args.steps, seed=0, elevation=15.0,
                              video_size=256, refine_steps=0)
    generator(PROMPT, None, None, 1, 3.0, 0, 0, 64, True)  # warm-up: first-call costs (lazy imports, kernels) hit neither side
    times = {"app": [], "infer": []}
    for i in range(args.repeats):  # alternated, so a change in the machine's load hits both alike
        start = time.perf_counter()
        generator(PROMPT, None, None, settings.steps, 3.0, settings.seed, 0, settings.video_size, True)
        times["app"].append(time.perf_counter() - start)
        meta = infer.generate(PROMPT, Path(tempfile.mkdtemp()) / "cli", args.model, settings)
        times["infer"].append(meta["total_seconds"] - meta["seconds"]["load model"])
        print(f"run {i + 1}: app {times['app'][-1]:.1f} s, infer.py {times['infer'][-1]:.1f} s (without loading)", flush=True)
    app_s, infer_s = statistics.median(times["app"]), statistics.median(times["infer"])
    print(f"generation, median of {args.repeats}, {args.steps} steps: app {app_s:.1f} s, infer.py {infer_s:.1f} s, "
          f"ratio {app_s / infer_s:.3f}")


if __name__ == "__main__":
    main()
