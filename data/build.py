"""Build a data set of webdataset shards from animated assets: glTF folders, procedural assets, Objaverse.

    python -m data.build --gltf-dir ../shared/assets --procedural 12 --out shards/demo

One shard per asset (all its clips and orbits), written by its own process (a Blender crash costs one
asset) under a temporary name and renamed when complete, so a re-run skips every asset already written
(resumable). Assets are split into train/ and val/ by a hash of their id, so an asset never lands in both
splits and the split of an asset never changes when the data set grows. manifest.json lists every asset,
its split, clips, captions, licence and what happened to it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from data.assets import AssetError, Clip, asset_id_for, find_assets, list_clips
from data.atomic import atomic_path
from data.cli import Failure, UsageError, check_output, entry_point, finite_float, fraction, non_negative_int, positive_int
from data.objaverse import ObjaverseUnreachable
from data.render_blender import RenderSettings

WORKER_TIMEOUT_S = 1800  # one asset: all its clips and orbits


def split_of(asset_id: str, val_fraction: float, val_assets: frozenset[str] = frozenset()) -> str:
    """'val' or 'train' from a hash of the asset id alone, so adding assets never moves old ones."""
    if asset_id in val_assets:
        return "val"
    digest = int(hashlib.sha1(asset_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if digest < val_fraction or val_fraction == 1 else "train"


def stable_seed(*parts) -> int:
    """A seed from strings and numbers that is the same in every process and run."""
    return int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:7], 16)  # < 2**31: Cycles takes an int32


def read_licences(folder: Path) -> dict[str, dict]:
    """Licence and credit per file name from a LICENSES.md table with 'file', 'licence' and 'credit' columns."""
    table = folder / "LICENSES.md"
    if not table.is_file():
        return {}
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.read_text().splitlines() if line.startswith("|")]
    if not rows or "file" not in rows[0] or "licence" not in rows[0]:
        return {}
    head = rows[0]
    out = {}
    for row in rows[2:]:  # skip the header and the |---| line
        cells = dict(zip(head, row))
        out[cells["file"]] = {"licence": cells["licence"], "credit": cells.get("credit", ""), "source": cells.get("upstream", "")}
    return out


def plan_asset(path: Path, meta: dict) -> tuple[list[Clip] | None, str]:
    """The clips of one asset, or None and the reason it is skipped."""
    try:
        return list_clips(path, meta), ""
    except AssetError as err:
        return None, str(err)


# ----------------------------------------------------------------------------- the per-asset worker


def render_asset(job: dict) -> dict:
    """Render every clip and orbit of one asset and write its shard; runs in a worker process."""
    import numpy as np
    import torch

    from data import render_blender
    from data.images import motion_score
    from data.objaverse import motion_check
    from data.record import SampleRecord
    from data.shards import encode_sample, sample_key, write_shard

    settings = RenderSettings(**{**job["settings"], "threads": job["threads"]})
    samples, dropped = [], []
    for clip in job["clips"]:
        for orbit in range(job["orbits"]):
            seed = stable_seed(job["asset_id"], clip["index"], orbit)
            try:
                rendered = render_blender.render_clip(clip["path"], clip["name"], RenderSettings(**{**asdict(settings), "seed": seed}))
            except ValueError as err:  # a clip that animates nothing or is degenerate: skip it, keep the rest
                dropped.append({"clip": clip["name"], "reason": str(err)})
                continue
            ring = torch.from_numpy(np.ascontiguousarray(rendered.images[: settings.views])).permute(0, 1, 4, 2, 3).float() / 255  # [V, F, 4, H, W]
            motion = motion_check(ring[0])
            if job["motion_filter"] and not motion.keep:  # static or broken animations teach nothing about motion
                dropped.append({"clip": clip["name"], "reason": f"motion filter: {motion}"})
                continue
            provenance = {k: clip["meta"].get(k, "") for k in ("source", "licence", "credit")}
            meta = SampleRecord(
                caption=clip["caption"], times=rendered.times.tolist(), c2w=rendered.c2w.tolist(), K=rendered.K.tolist(),
                orbit_views=settings.views, asset_id=job["asset_id"], clip=clip["name"], clip_index=clip["index"],
                orbit=orbit, **provenance, extra_views=settings.extra_views, fps=rendered.fps, duration=rendered.duration,
                elevations=rendered.elevations, azimuths=rendered.azimuths, center=rendered.center, scale=rendered.scale,
                samples=settings.samples, seed=seed, motion=str(motion), motion_score=motion_score(ring),
                extras={k: v for k, v in clip["meta"].items() if k not in provenance},
            )
            samples.append(encode_sample(sample_key(job["asset_id"], clip["index"], orbit), rendered.images, meta, rendered.depth))
    if samples:
        write_shard(job["shard"], samples)
    return {"samples": len(samples), "dropped": dropped}


def run_worker(job: dict, running: set) -> dict:
    """Run `render_asset(job)` in a fresh Python process; a crash or timeout becomes an error record.

    The process is in `running` while it runs, so an interrupted build can stop it (`stop_workers`)."""
    with tempfile.TemporaryDirectory() as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"])}
        cmd = [sys.executable, "-m", "data.build", "worker", str(job_file), str(result_file)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
            running.add(proc)
            try:
                stdout, stderr = proc.communicate(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                return {"error": f"timed out after {WORKER_TIMEOUT_S} s"}
            finally:
                running.discard(proc)
        if proc.returncode != 0 or not result_file.is_file():
            tail = (stderr or stdout).strip().splitlines()[-3:]
            return {"error": f"worker exited with {proc.returncode}: {' | '.join(tail)}"}
        return json.loads(result_file.read_text())


def stop_workers(pool: ThreadPoolExecutor, running: set) -> None:
    """Cancel the jobs not started and SIGTERM the worker processes (each removes its temporary shard), so an
    interrupted build ends now rather than when the current renders do."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list(running):
        proc.terminate()


# ----------------------------------------------------------------------------- the build


def collect_sources(args) -> list[tuple[Path, dict]]:
    """(file, metadata) for every asset named on the command line."""
    sources = []
    for folder in args.gltf_dir:
        licences = read_licences(Path(folder))
        sources += [(p, {"source": f"file:{p.name}", **licences.get(p.name, {})}) for p in find_assets(folder)]
    if args.procedural:
        from data import procedural

        for path in procedural.write_assets(args.procedural, args.out / "assets" / "procedural", seed=args.seed):
            sources.append((path, {"source": "procedural", "licence": "CC0 1.0", "credit": "zoetrope4d procedural generator"}))
    if args.objaverse_ids:
        from data import objaverse

        entries = objaverse.read_entries(args.objaverse_ids)
        paths = objaverse.download(entries, args.out / "assets" / "objaverse", processes=args.workers)
        sources += [(paths[e.uid], {"caption": e.caption, "licence": e.licence, "credit": e.author, "source": e.url, "objaverse": True})
                    for e in entries if e.uid in paths]
    if not sources:
        raise SystemExit("nothing to build: give --gltf-dir, --procedural N or --objaverse-ids FILE")
    seen: dict[str, Path] = {}
    for path, _ in sources:  # a shard and its manifest entry are named by the id: two files must not share one
        first = seen.setdefault(asset_id_for(path), path)
        if first != path:
            raise SystemExit(f"{first} and {path} have the same asset id {asset_id_for(path)!r}; rename one of them")
    return sources


def write_json_atomic(path: Path, data) -> None:
    """`data` as indented JSON at `path`, which never holds half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def build(args) -> dict:
    """Render every asset not already written; returns the manifest."""
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.rglob(".*.tmp-*"):  # left by a killed run: never a complete shard, manifest or asset
        if stale.is_file():
            stale.unlink()
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"assets": {}}
    settings = RenderSettings(
        views=args.views, frames=args.frames, size=args.size, extra_views=args.extra_views, fov=args.fov,
        elevation=args.elevation, samples=args.samples, lighting=args.lighting, max_seconds=args.max_seconds,
        depth=args.depth,
    )
    record = json.loads(json.dumps({**asdict(settings), "orbits": args.orbits, "procedural_seed": args.seed}))  # as saved
    before = manifest.get("settings", {})
    if before:  # data sets built before depth existed have none
        before.setdefault("depth", False)
    changed = {k: (before[k], record[k]) for k in before.keys() & record.keys() if before[k] != record[k]}
    if changed:  # the skip-what-is-written rule would mix two data sets in one folder
        raise SystemExit(f"{args.out} was built with other settings (before, now): {changed}; build into a new --out")
    manifest["settings"] = record
    val_assets = frozenset(args.val_assets)
    threads = max(1, (os.cpu_count() or 1) // args.workers)  # Blender threads per worker process

    jobs = []
    for path, meta in collect_sources(args):
        asset_id = asset_id_for(path)
        split = split_of(asset_id, args.val_fraction, val_assets)
        shard = args.out / split / f"{asset_id}.tar"
        clips, reason = plan_asset(path, meta)
        if clips is None:
            tqdm.write(f"skip {path.name}: {reason}")
            manifest["assets"][asset_id] = {"split": split, "status": "skipped", "reason": reason}
            continue
        clips = clips[: args.max_clips] if args.max_clips else clips
        record = {"split": split, "shard": str(shard.relative_to(args.out)), "source": meta.get("source", ""),
                  "licence": meta.get("licence", ""), "credit": meta.get("credit", ""),
                  "clips": [{"name": c.name, "caption": c.caption} for c in clips]}
        if shard.is_file():
            manifest["assets"][asset_id] = {**manifest["assets"].get(asset_id, {}), **record, "status": "done"}
            continue
        clip_jobs = [{"path": str(c.path), "index": c.index, "name": c.name, "caption": c.caption, "meta": c.meta} for c in clips]
        jobs.append(({"asset_id": asset_id, "clips": clip_jobs, "orbits": args.orbits, "shard": str(shard),
                      "settings": asdict(settings), "threads": threads, "motion_filter": args.motion_filter == "on" or (args.motion_filter == "auto" and meta.get("objaverse", False))}, record))

    running: set = set()
    with ThreadPoolExecutor(args.workers) as pool, tqdm(total=len(jobs), desc="render assets", unit="asset") as bar:
        futures = {pool.submit(run_worker, job, running): (job, record, time.time()) for job, record in jobs}
        try:
            finish_jobs(futures, manifest, manifest_path, bar)
        except BaseException:  # Ctrl-C, SIGTERM: the shards written so far and the manifest stay
            stop_workers(pool, running)
            raise
    write_json_atomic(manifest_path, manifest)
    return manifest


def finish_jobs(futures: dict, manifest: dict, manifest_path: Path, bar: tqdm) -> None:
    """Record each worker's result in the manifest as it finishes, saving the manifest after every asset."""
    for future in as_completed(futures):
        job, record, start = futures[future]
        result = future.result()
        status = "error" if "error" in result else ("done" if result["samples"] else "empty")
        manifest["assets"][job["asset_id"]] = {**record, **result, "status": status, "seconds": round(time.time() - start, 2)}
        if status != "done":
            tqdm.write(f"{job['asset_id']}: {status}: {result.get('error') or result.get('dropped')}")
        write_json_atomic(manifest_path, manifest)  # after every asset, so a killed build keeps its record
        bar.update()


def parse_args(argv=None) -> argparse.Namespace:
    """The build's command line; exits with a message on impossible values."""
    p = argparse.ArgumentParser(prog="python -m data.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--gltf-dir", type=Path, action="append", default=[], help="a folder of .glb/.gltf files (repeatable)")
    p.add_argument("--procedural", type=non_negative_int, default=0, help="number of procedural assets to generate")
    p.add_argument("--objaverse-ids", type=Path, help="a file written by `python -m data.objaverse select`")
    p.add_argument("--out", type=Path, required=True, help="output folder: train/, val/, manifest.json")
    p.add_argument("--views", type=positive_int, default=4, help="orbit ring views")
    p.add_argument("--extra-views", type=non_negative_int, default=4, help="random supervision views for the reconstruction head")
    p.add_argument("--frames", type=positive_int, default=8)
    p.add_argument("--size", type=positive_int, default=64, help="image side in pixels")
    p.add_argument("--fov", type=finite_float, default=40.0)
    p.add_argument("--elevation", type=finite_float, default=None, help="fixed ring elevation in degrees (default: random in [-5, 30])")
    p.add_argument("--orbits", type=positive_int, default=1, help="orbits (camera rings) rendered per clip")
    p.add_argument("--samples", type=positive_int, default=8, help="Cycles samples per pixel")
    p.add_argument("--lighting", choices=["studio", "random"], default="random")
    p.add_argument("--max-seconds", type=finite_float, default=4.0, help="clips are cut to their first N seconds")
    p.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True,
                   help="also render Blender's Z pass and store it as depth.png beside each sample's RGBA grid")
    p.add_argument("--max-clips", type=non_negative_int, default=0, help="at most N clips per asset (0: all)")
    p.add_argument("--motion-filter", choices=["auto", "on", "off"], default="auto",
                   help="drop clips whose front view is static or broken (SSIM between frames, as Diffusion4D); "
                        "auto: only for Objaverse, whose assets nobody curated")
    p.add_argument("--val-fraction", type=fraction, default=0.2)
    p.add_argument("--val-assets", type=lambda s: s.split(","), default=[], help="comma-separated asset ids forced into val")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel Blender processes")
    p.add_argument("--seed", type=non_negative_int, default=0, help="procedural data set seed")
    args = p.parse_args(argv)
    if args.size < 8:
        raise UsageError(f"--size {args.size}: at least 8 pixels")
    if not 0 < args.fov < 180:
        raise UsageError(f"--fov {args.fov}: must be in (0, 180) degrees")
    if args.elevation is not None and not -90 < args.elevation < 90:
        raise UsageError(f"--elevation {args.elevation}: must be in (-90, 90) degrees")
    if args.max_seconds <= 0:
        raise UsageError(f"--max-seconds {args.max_seconds}: must be above 0")
    for folder in args.gltf_dir:
        if not folder.is_dir():
            raise UsageError(f"--gltf-dir {folder}: no such folder")
    if args.objaverse_ids is not None and not args.objaverse_ids.is_file():
        raise UsageError(f"--objaverse-ids {args.objaverse_ids}: no such file (write it with `python -m data.objaverse select`)")
    if not (args.gltf_dir or args.procedural or args.objaverse_ids):
        raise UsageError("nothing to build: give --gltf-dir, --procedural N or --objaverse-ids FILE")
    check_output(args.out)
    return args


@entry_point
def main(argv=None) -> None:
    """`python -m data.build [sources] --out DIR [settings]`: render what is not written yet, print the counts."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":  # internal: python -m data.build worker JOB.json RESULT.json
        result = render_asset(json.loads(Path(argv[1]).read_text()))
        Path(argv[2]).write_text(json.dumps(result))
        return
    try:
        manifest = build(parse_args(argv))
    except (AssetError, ObjaverseUnreachable) as err:
        raise Failure(str(err)) from None
    counts = {}
    for record in manifest["assets"].values():
        key = f"{record.get('split')}/{record['status']}"
        counts[key] = counts.get(key, 0) + 1
    print("assets:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
