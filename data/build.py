"""Build a data set of webdataset shards from animated assets: glTF folders, procedural assets, Objaverse.

    python -m data.build --gltf-dir ../shared/assets --procedural 12 --out shards/demo

One shard per asset (its chosen clips and orbits), written by its own process (a Blender crash costs one asset)
under a temporary name and renamed when complete, so a re-run skips every asset already written (resumable).
Which assets go to train/ and val/, which of their clips are rendered and how many orbits each gets is planned
first, without Blender (data/plan.py: split by asset, clips by priority, kinds balanced with --samples-per-kind).
manifest.json lists every asset, its split, kind, clips, captions, licence and what happened to it: a corrupt or
animation-less file is skipped with a message and recorded there, never stopping the build.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data import render_blender
from data.assets import AssetError, Clip, asset_id_for, find_assets
from data.atomic import atomic_path
from data.cli import Failure, UsageError, check_output, entry_point, finite_float, fraction, non_negative_int, positive_int
from data.images import motion_score
from data.objaverse import ObjaverseUnreachable, motion_check
from data.plan import PlannedAsset, Source, plan_assets, split_of
from data.record import SampleRecord
from data.render_blender import RenderSettings
from data.shards import encode_sample, sample_key, write_shard

WORKER_TIMEOUT_S = 1800  # one asset: all its clips and orbits
__all__ = ["BuildConfig", "build", "main", "split_of"]  # split_of lived here before data/plan.py; callers still import it


@dataclass
class BuildConfig:
    """What to build and how: the command line's options, typed (`parse_args` gives their meaning in its help)."""

    out: Path
    settings: RenderSettings  # the image settings of every clip
    gltf_dirs: list[Path] = field(default_factory=list)
    procedural: int = 0  # procedural assets to generate
    objaverse_ids: Path | None = None  # a file written by `python -m data.objaverse select`
    orbits: int = 1  # camera rings per clip (with samples_per_kind: the most per clip)
    max_clips: int = 0  # clips per asset at most (0: all)
    samples_per_kind: int = 0  # training samples per kind at most (0: no balancing)
    motion_filter: str = "auto"  # "auto" (Objaverse only), "on", "off"
    val_fraction: float = 0.2  # share held out by hash
    gltf_val_fraction: float | None = None  # the same for --gltf-dir files (None: val_fraction)
    val_assets: tuple[str, ...] = ()  # asset ids or glob patterns held out for validation
    workers: int = 2  # parallel Blender processes
    seed: int = 0  # procedural data set seed
    plan_only: bool = False  # print the plan, render nothing


def stable_seed(*parts) -> int:
    """A seed from strings and numbers that is the same in every process and run."""
    return int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:7], 16)  # < 2**31: Cycles takes an int32


def read_licences(folder: Path) -> dict[str, dict]:
    """Licence, credit and upstream per file name from the folder's LICENSES.md: a table with a 'file' column and
    'licence', 'credit' and 'upstream' ones, or, where those are missing, the licence a title such as
    '# Quaternius animated assets (CC0 1.0)' names for every file (the title's words as the credit)."""
    table = folder / "LICENSES.md"
    if not table.is_file():
        return {}
    lines = table.read_text().splitlines()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    if not rows or "file" not in rows[0]:
        return {}
    title = re.fullmatch(r"#\s*(.+?)\s*\(([^)]+)\)\s*", lines[0]) if lines else None
    credit, licence = title.groups() if title else ("", "")
    out = {}
    for row in rows[2:]:  # skip the header and the |---| line
        cells = dict(zip(rows[0], row))
        entry = {"licence": cells.get("licence") or licence, "credit": cells.get("credit") or credit, "source": cells.get("upstream", "")}
        out[cells["file"]] = {k: v for k, v in entry.items() if v}
    return out


@dataclass
class AssetJob:
    """One asset's work for a worker process: its clips, the camera rings of each, rendered into one shard."""

    asset_id: str
    shard: Path
    clips: list[Clip]
    orbits: list[int]  # per clip
    settings: RenderSettings  # with the worker's thread count
    motion_filter: bool  # drop clips whose front view is static or broken

    def to_json(self) -> str:
        clips = [{**asdict(clip), "path": str(clip.path)} for clip in self.clips]
        return json.dumps({"asset_id": self.asset_id, "shard": str(self.shard), "clips": clips, "orbits": self.orbits,
                           "settings": asdict(self.settings), "motion_filter": self.motion_filter})

    @classmethod
    def from_json(cls, text: str) -> AssetJob:
        data = json.loads(text)
        clips = [Clip(**{**c, "path": Path(c["path"]), "captions": tuple(c["captions"])}) for c in data["clips"]]
        return cls(data["asset_id"], Path(data["shard"]), clips, data["orbits"], RenderSettings(**data["settings"]), data["motion_filter"])


# ----------------------------------------------------------------------------- the per-asset worker


def render_sample(job: AssetJob, clip: Clip, orbit: int) -> dict:
    """The encoded sample of `clip` seen from orbit number `orbit`; ValueError for a clip that cannot be used."""
    settings = replace(job.settings, seed=stable_seed(job.asset_id, clip.index, orbit))
    rendered = render_blender.render_clip(clip.path, clip.name, settings)
    ring = torch.from_numpy(np.ascontiguousarray(rendered.images[: settings.views])).permute(0, 1, 4, 2, 3).float() / 255  # [V, F, 4, H, W]
    motion = motion_check(ring[0])
    if job.motion_filter and not motion.keep:  # static or broken animations teach nothing about motion
        raise ValueError(f"motion filter: {motion}")
    provenance = {k: clip.meta.get(k, "") for k in ("source", "licence", "credit")}
    record = SampleRecord(
        caption=clip.caption, captions=list(clip.captions), kind=clip.kind, times=rendered.times.tolist(),
        c2w=rendered.c2w.tolist(), K=rendered.K.tolist(), orbit_views=settings.views, asset_id=job.asset_id,
        clip=clip.name, clip_index=clip.index, orbit=orbit, **provenance, extra_views=settings.extra_views,
        fps=rendered.fps, duration=rendered.duration, elevations=rendered.elevations, azimuths=rendered.azimuths,
        center=rendered.center, scale=rendered.scale, samples=settings.samples, seed=settings.seed, motion=str(motion),
        motion_score=motion_score(ring), extras={k: v for k, v in clip.meta.items() if k not in provenance},
    )
    return encode_sample(sample_key(job.asset_id, clip.index, orbit), rendered.images, record, rendered.depth)


def render_asset(job: AssetJob) -> dict:
    """Render every clip and orbit of one asset and write its shard; runs in a worker process. Returns the number of
    samples written and the clips dropped, with the reason (a clip that animates nothing, is degenerate or static)."""
    samples, dropped = [], []
    for clip, orbits in zip(job.clips, job.orbits):
        for orbit in range(orbits):
            try:
                samples.append(render_sample(job, clip, orbit))
            except ValueError as err:  # skip this clip-orbit, keep the rest
                dropped.append({"clip": clip.name, "orbit": orbit, "reason": str(err)})
    if samples:
        write_shard(job.shard, samples)
    return {"samples": len(samples), "dropped": dropped}


def run_worker(job: AssetJob, running: set) -> dict:
    """Run `render_asset(job)` in a fresh Python process; a crash or timeout becomes an error record. The result
    carries the seconds the process took.

    The process is in `running` while it runs, so an interrupted build can stop it (`stop_workers`)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(job.to_json())
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, job.settings.threads))}
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
        return {**json.loads(result_file.read_text()), "seconds": round(time.monotonic() - start, 2)}


def stop_workers(pool: ThreadPoolExecutor, running: set) -> None:
    """Cancel the jobs not started and SIGTERM the worker processes (each removes its temporary shard), so an
    interrupted build ends now rather than when the current renders do."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list(running):
        proc.terminate()


# ----------------------------------------------------------------------------- the build


def collect_sources(config: BuildConfig) -> list[Source]:
    """Every asset file the configuration names, with what is known of it."""
    sources = []
    gltf_val = config.val_fraction if config.gltf_val_fraction is None else config.gltf_val_fraction
    for folder in config.gltf_dirs:
        licences = read_licences(Path(folder))
        sources += [Source(p, {"source": f"file:{p.name}", **licences.get(p.name, {})}, gltf_val) for p in find_assets(folder)]
    if config.procedural:
        from data import procedural

        meta = {"source": "procedural", "licence": "CC0 1.0", "credit": "zoetrope4d procedural generator"}
        paths = procedural.write_assets(config.procedural, config.out / "assets" / "procedural", seed=config.seed)
        sources += [Source(path, dict(meta), config.val_fraction) for path in paths]
    if config.objaverse_ids:
        from data import objaverse

        entries = objaverse.read_entries(config.objaverse_ids)
        paths = objaverse.download(entries, config.out / "assets" / "objaverse", processes=config.workers)
        sources += [Source(paths[e.uid], {"caption": e.caption, "licence": e.licence, "credit": e.author, "source": e.url,
                                          "objaverse": True}, config.val_fraction) for e in entries if e.uid in paths]
    if not sources:
        raise SystemExit("nothing to build: give --gltf-dir, --procedural N or --objaverse-ids FILE")
    seen: dict[str, Path] = {}
    for source in sources:  # a shard and its manifest entry are named by the id: two files must not share one
        first = seen.setdefault(asset_id_for(source.path), source.path)
        if first != source.path:
            raise SystemExit(f"{first} and {source.path} have the same asset id {asset_id_for(source.path)!r}; rename one of them")
    return sources


def write_json_atomic(path: Path, data) -> None:
    """`data` as indented JSON at `path`, which never holds half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def settings_record(config: BuildConfig) -> dict:
    """What makes two builds one data set, as the manifest saves it: image settings, orbits and the plan's caps."""
    return json.loads(json.dumps({**asdict(config.settings), "orbits": config.orbits, "procedural_seed": config.seed,
                                  "max_clips": config.max_clips, "samples_per_kind": config.samples_per_kind}))


def open_manifest(config: BuildConfig) -> dict:
    """The manifest of the output folder (a new one if there is none); SystemExit if it was built with other settings."""
    path = config.out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {"assets": {}}
    before, now = manifest.get("settings", {}), settings_record(config)
    if before:  # data sets built before depth existed have none
        before.setdefault("depth", False)
    changed = {k: (before[k], now[k]) for k in before.keys() & now.keys() if before[k] != now[k]}
    if changed:  # the skip-what-is-written rule would mix two data sets in one folder
        raise SystemExit(f"{config.out} was built with other settings (before, now): {changed}; build into a new --out")
    manifest["settings"] = now
    return manifest


def asset_record(asset: PlannedAsset) -> dict:
    """An asset's manifest entry as planned (the worker adds what happened)."""
    meta = asset.source.meta
    return {"split": asset.split, "kind": asset.kind, "shard": f"{asset.split}/{asset.asset_id}.tar",
            "source": meta.get("source", ""), "licence": meta.get("licence", ""), "credit": meta.get("credit", ""),
            "clips": [{"name": c.name, "caption": c.caption, "captions": list(c.captions), "orbits": n}
                      for c, n in zip(asset.clips, asset.orbits)]}


def plan_jobs(config: BuildConfig, manifest: dict) -> list[tuple[AssetJob, dict]]:
    """Plan the data set into the manifest (skipped, written and planned assets) and return the jobs still to run,
    the longest first, so that the workers finish together."""
    planned, skipped = plan_assets(collect_sources(config), config.val_assets, config.samples_per_kind, config.max_clips, config.orbits)
    for asset_id, (split, path, reason) in skipped.items():
        tqdm.write(f"skip {path.name}: {reason}")
        manifest["assets"][asset_id] = {"split": split, "status": "skipped", "reason": reason}
    threads = max(1, (os.cpu_count() or 1) // config.workers)  # Blender threads per worker process
    jobs = []
    for asset in planned:
        record = asset_record(asset)
        if (config.out / record["shard"]).is_file():
            manifest["assets"][asset.asset_id] = {**manifest["assets"].get(asset.asset_id, {}), **record, "status": "done"}
            continue
        manifest["assets"][asset.asset_id] = {**record, "status": "planned"}
        motion_filter = config.motion_filter == "on" or (config.motion_filter == "auto" and asset.source.meta.get("objaverse", False))
        jobs.append((AssetJob(asset.asset_id, config.out / record["shard"], asset.clips, asset.orbits,
                              replace(config.settings, threads=threads), motion_filter), record))
    return sorted(jobs, key=lambda job: -sum(job[0].orbits))


def build(config: BuildConfig) -> dict:
    """Render every planned asset not already written; returns the manifest (with config.plan_only: only the plan)."""
    config.out.mkdir(parents=True, exist_ok=True)
    for stale in config.out.rglob(".*.tmp-*"):  # left by a killed run: never a complete shard, manifest or asset
        if stale.is_file():
            stale.unlink()
    manifest = open_manifest(config)
    jobs = plan_jobs(config, manifest)
    if config.plan_only:
        return manifest
    manifest_path = config.out / "manifest.json"
    write_json_atomic(manifest_path, manifest)
    running: set = set()
    with ThreadPoolExecutor(config.workers) as pool, tqdm(total=len(jobs), desc="render assets", unit="asset") as bar:
        futures = {pool.submit(run_worker, job, running): (job, record) for job, record in jobs}
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
        job, record = futures[future]
        result = future.result()
        status = "error" if "error" in result else ("done" if result["samples"] else "empty")
        manifest["assets"][job.asset_id] = {**record, **result, "status": status}
        if status != "done" or result["dropped"]:
            tqdm.write(f"{job.asset_id}: {status}: {result.get('error') or result.get('dropped')}")
        write_json_atomic(manifest_path, manifest)  # after every asset, so a killed build keeps its record
        bar.update()


def summary(manifest: dict) -> str:
    """Two lines: assets per split and status; samples per split and kind (written ones, or planned where not yet)."""
    counts, samples = {}, {}
    for record in manifest["assets"].values():
        key = f"{record.get('split')}/{record['status']}"
        counts[key] = counts.get(key, 0) + 1
        if record["status"] in ("done", "planned"):
            n = record.get("samples", sum(c.get("orbits", 1) for c in record.get("clips", [])))
            per_kind = samples.setdefault(record["split"], {})
            per_kind[record.get("kind", "")] = per_kind.get(record.get("kind", ""), 0) + n
    lines = ["assets: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    for split, per_kind in sorted(samples.items()):
        kinds = ", ".join(f"{kind or '?'} {n}" for kind, n in sorted(per_kind.items()))
        lines.append(f"samples {split}: {sum(per_kind.values())} ({kinds})")
    return "\n".join(lines)


def parse_args(argv=None) -> BuildConfig:
    """The build's command line as a BuildConfig; exits with a message on impossible values."""
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
    p.add_argument("--orbits", type=positive_int, default=1, help="orbits (camera rings) rendered per clip; with --samples-per-kind, the most per clip")
    p.add_argument("--samples", type=positive_int, default=8, help="Cycles samples per pixel")
    p.add_argument("--lighting", choices=["studio", "random"], default="random")
    p.add_argument("--max-seconds", type=finite_float, default=4.0, help="clips are cut to their first N seconds")
    p.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True,
                   help="also render Blender's Z pass and store it as depth.png beside each sample's RGBA grid")
    p.add_argument("--max-clips", type=non_negative_int, default=0,
                   help="at most N clips per asset (0: all); clips showing the same motion count once, the signature motion first")
    p.add_argument("--samples-per-kind", type=non_negative_int, default=0,
                   help="balance the training split: at most N clip-orbits per kind (mammal, fish, robot, ..., each procedural "
                        "family), filled round-robin: a clip of every asset, then more clips, then more orbits (0: no balancing)")
    p.add_argument("--motion-filter", choices=["auto", "on", "off"], default="auto",
                   help="drop clips whose front view is static or broken (SSIM between frames, as Diffusion4D); "
                        "auto: only for Objaverse, whose assets nobody curated")
    p.add_argument("--val-fraction", type=fraction, default=0.2, help="share of assets held out for validation, by a hash of the id")
    p.add_argument("--gltf-val-fraction", type=fraction, default=None,
                   help="the same for --gltf-dir files (default: --val-fraction); 0 holds out only --val-assets")
    p.add_argument("--val-assets", type=lambda s: tuple(filter(None, s.split(","))), default=(),
                   help="comma-separated asset ids or glob patterns forced into val")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel Blender processes")
    p.add_argument("--seed", type=non_negative_int, default=0, help="procedural data set seed")
    p.add_argument("--plan-only", action="store_true", help="print the plan (assets and samples per split and kind), render nothing")
    return config_from(p.parse_args(argv))


def config_from(args: argparse.Namespace) -> BuildConfig:
    """The BuildConfig of parsed arguments; UsageError for values argparse's types cannot refuse alone."""
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
    settings = RenderSettings(
        views=args.views, frames=args.frames, size=args.size, extra_views=args.extra_views, fov=args.fov,
        elevation=args.elevation, samples=args.samples, lighting=args.lighting, max_seconds=args.max_seconds, depth=args.depth,
    )
    return BuildConfig(
        out=args.out, settings=settings, gltf_dirs=args.gltf_dir, procedural=args.procedural, objaverse_ids=args.objaverse_ids,
        orbits=args.orbits, max_clips=args.max_clips, samples_per_kind=args.samples_per_kind, motion_filter=args.motion_filter,
        val_fraction=args.val_fraction, gltf_val_fraction=args.gltf_val_fraction, val_assets=args.val_assets,
        workers=args.workers, seed=args.seed, plan_only=args.plan_only,
    )


@entry_point
def main(argv=None) -> None:
    """`python -m data.build [sources] --out DIR [settings]`: render what is not written yet, print the counts."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":  # internal: python -m data.build worker JOB.json RESULT.json
        result = render_asset(AssetJob.from_json(Path(argv[1]).read_text()))
        Path(argv[2]).write_text(json.dumps(result))
        return
    config = parse_args(argv)
    try:
        manifest = build(config)
    except (AssetError, ObjaverseUnreachable) as err:
        raise Failure(str(err)) from None
    print(("plan (nothing rendered):\n" if config.plan_only else "") + summary(manifest))


if __name__ == "__main__":
    main()
