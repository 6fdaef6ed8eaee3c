"""The benchmark's results: rows (one per clip, task, method, budget and seed), the results file that records how
they were made, the summary tables (mean and spread per method and budget, per-asset means), where SDS reaches the
feed-forward quality, and the plot of quality against seconds.

A results file (JSON) holds the command, the commit, the machine, the date and every row; the CSV beside it the
same rows. `benchmark.py report FILE...` regenerates every table and the plot from such files, so each number in
the README traces back to a run that can be repeated.
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import platform
import shlex
import subprocess
from itertools import product
from datetime import datetime, timezone
from pathlib import Path

from data.atomic import atomic_path

TRUTH_COLUMNS = ("psnr", "psnr_masked", "ssim", "ssim_masked", "flicker_error")  # against Blender renders
# coverage: the share of the held-out views the result draws on (no truth needed), so text-to-4D, which the caption
# alone cannot pin down, shows at least whether each method drew an object where no CLIP weights are at hand
COLUMNS = (*TRUTH_COLUMNS, "coverage", "consistency_psnr", "clip_score", "lpips", "seconds", "peak_mb")
ROW_KEYS = ("key", "asset", "task", "method", "iters", "seed")  # iters: SDS iterations (None for other methods)
QUALITY = ("psnr", "ssim", "psnr_masked")  # plotted against seconds
LABELS = {"psnr": "PSNR (dB)", "psnr_masked": "masked PSNR (dB)", "ssim": "SSIM", "ssim_masked": "masked SSIM",
          "flicker_error": "flicker error", "coverage": "coverage", "consistency_psnr": "consistency (dB)",
          "clip_score": "CLIP score", "lpips": "LPIPS", "seconds": "seconds", "peak_mb": "peak MB"}
FEED_FORWARD, EMPTY = "feed_forward", "empty_render"
Group = tuple[str, str, "int | None"]  # (task, method, iters)


# ----------------------------------------------------------------------------- the results file


def provenance(argv: list[str]) -> dict:
    """How a run was made: the command (argv: the script and its arguments), the commit (and whether tracked files had
    changes), the machine (with its load when the run started: the machine may be shared) and the date."""
    root = Path(__file__).resolve().parents[1]
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True).stdout.strip()  # noqa: E731
    try:
        commit, dirty = git("rev-parse", "HEAD") or "unknown", bool(git("status", "--porcelain", "--untracked-files=no"))
    except OSError:  # no git on this machine
        commit, dirty = "unknown", False
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    machine = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "python": platform.python_version(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "load_average_at_start": load_average()}
    return {"command": shlex.join(["python", *argv]), "commit": commit, "dirty": dirty, "machine": machine,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def load_average() -> list[float] | None:
    """The machine's 1-, 5- and 15-minute load averages (None where the OS has none): on a shared machine the
    seconds of a run depend on them."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_results(out: Path, about: dict, rows: list[dict]) -> None:
    """out/results.json (about + rows; NaN as null) and out/results.csv (the rows)."""
    plain = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps({**about, "rows": plain}, indent=1) + "\n")
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*ROW_KEYS, *COLUMNS])
        writer.writeheader()
        writer.writerows(plain)


def row_key(row: dict) -> tuple:
    """What makes a results row one measurement: its clip, task, method, budget and seed (ROW_KEYS)."""
    return tuple(row[k] for k in ROW_KEYS)


def read_results(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """(the files' headers without rows, their rows with null read back as NaN). A row of the same clip, task, method,
    budget and seed as an earlier file's (two runs that both scored the feed-forward model or the empty render on a
    clip) is left out, and counted in its file's header as "repeated". ValueError for a file that is not one."""
    headers, rows, seen = [], [], set()
    for path in paths:
        try:
            results = json.loads(Path(path).read_text())
            found = results.pop("rows")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a benchmark results file (results.json with rows): {type(err).__name__}") from None
        new = [row for row in found if row_key(row) not in seen]
        seen |= {row_key(row) for row in new}
        headers.append({"file": str(path), **results, "repeated": len(found) - len(new)})
        rows += [{**dict.fromkeys(COLUMNS, math.nan),  # a column added since the file was written reads as not measured
                  **{k: math.nan if v is None and k in COLUMNS else v for k, v in row.items()}} for row in new]
    return headers, rows


# ----------------------------------------------------------------------------- summaries


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the non-NaN values (NaN where there are none; 0 spread for one)."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan, math.nan
    mean = sum(kept) / len(kept)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1)) if len(kept) > 1 else 0.0


def summarise(rows: list[dict]) -> dict[Group, dict]:
    """Per (task, method, iters): n (rows: clips x seeds), and the mean and spread (standard deviation over clips and
    seeds) of every column, as {column: (mean, std)}."""
    groups: dict[Group, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"], row["iters"]), []).append(row)
    return {group: {"n": len(members), **{c: mean_std([m[c] for m in members]) for c in COLUMNS}}
            for group, members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0))}


def crossing(summary: dict[Group, dict], task: str, method: str, metric: str = "psnr") -> str | None:
    """Where an SDS method's mean `metric` first reaches the feed-forward mean, and the speed ratio at equal quality
    (seconds interpolated on a log scale between the budgets around the crossing); or that it never does within the
    sweep. Says so when the feed-forward mean is no better than the empty render's, where reaching it means little.
    None where the task has no feed-forward row or the metric no value."""
    ff = summary.get((task, FEED_FORWARD, None))
    curve = [(iters, s) for (t, m, iters), s in summary.items() if t == task and m == method and iters is not None]
    if ff is None or not curve or math.isnan(ff[metric][0]):
        return None
    target, ff_seconds = ff[metric][0], ff["seconds"][0]
    empty = summary.get((task, EMPTY, None), {}).get(metric, (math.nan,))[0]
    caveat = (f" (the feed-forward mean is no better than the empty render's {empty:.3g} here, so a faint render reaches it)"
              if target <= empty else "")
    name = f"{task}-to-4D, {LABELS[metric]}: {method}"
    for i, (iters, s) in enumerate(curve):
        if s[metric][0] >= target:
            seconds = s["seconds"][0]
            if i:  # interpolate log(seconds) linearly in quality between the previous budget and this one
                (_, p) = curve[i - 1]
                share = (target - p[metric][0]) / (s[metric][0] - p[metric][0])
                seconds = math.exp(math.log(p["seconds"][0]) + share * (math.log(seconds) - math.log(p["seconds"][0])))
            return (f"{name} first reaches the feed-forward {target:.3g} at {iters} iterations ({s[metric][0]:.3g}, "
                    f"{s['seconds'][0]:.0f} s); equal quality after about {seconds:.0f} s, {ratio(seconds, ff_seconds)} the "
                    f"feed-forward {ff_seconds:.1f} s{caveat}")
    iters, last = curve[-1]
    best_iters, best = max(curve, key=lambda c: c[1][metric][0])
    return (f"{name} never reaches the feed-forward {target:.3g} within {iters} iterations (best {best[metric][0]:.3g} at "
            f"{best_iters}); at {iters} iterations it has taken {ratio(last['seconds'][0], ff_seconds)} the feed-forward "
            f"{ff_seconds:.1f} s, so equal quality costs more than that{caveat}")


def all_reached(summary: dict[Group, dict], task: str, method: str) -> str | None:
    """The first budget at which an SDS method's means are at least the feed-forward ones on every QUALITY measure
    together (one measure alone can be met by a faint render), or that none is within the sweep."""
    ff = summary.get((task, FEED_FORWARD, None))
    curve = [(iters, s) for (t, m, iters), s in summary.items() if t == task and m == method and iters is not None]
    if ff is None or not curve or any(math.isnan(ff[q][0]) for q in QUALITY):
        return None
    measures = ", ".join(LABELS[q] for q in QUALITY)
    for iters, s in curve:
        if all(s[q][0] >= ff[q][0] for q in QUALITY):
            return (f"{task}-to-4D: {method} is at least as good as the feed-forward on {measures} together first at "
                    f"{iters} iterations, {s['seconds'][0]:.0f} s, {ratio(s['seconds'][0], ff['seconds'][0])} the feed-forward time")
    iters, last = curve[-1]
    return (f"{task}-to-4D: {method} is not as good as the feed-forward on {measures} together at any budget up to {iters} "
            f"iterations ({last['seconds'][0]:.0f} s, {ratio(last['seconds'][0], ff['seconds'][0])} the feed-forward time)")


def ratio(seconds: float, reference: float) -> str:
    """seconds / reference as '32x' (two significant digits below 10: '0.45x', '2.5x')."""
    r = seconds / reference
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def per_asset(rows: list[dict], metric: str = "psnr") -> dict[tuple[str, str], dict[str, float]]:
    """Per (asset, task), the mean `metric` of each method and budget ("method" or "method@iters")."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for row in rows:
        name = row["method"] if row["iters"] is None else f"{row['method']}@{row['iters']}"
        cells.setdefault((row["asset"], row["task"]), {}).setdefault(name, []).append(row[metric])
    return {group: {name: mean_std(values)[0] for name, values in methods.items()} for group, methods in sorted(cells.items())}


# ----------------------------------------------------------------------------- Markdown


def cell(value: float, digits: int = 3) -> str:
    """A number for a table, or n/a where a score does not apply or was skipped (NaN)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def spread_cell(pair: tuple[float, float], digits: int) -> str:
    """mean ± std, or n/a."""
    mean, std = pair
    return "n/a" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(summary: dict[Group, dict]) -> str:
    """Mean ± standard deviation per task, method and budget; columns with no value anywhere are left out."""
    columns = [c for c in COLUMNS if any(not math.isnan(s[c][0]) for s in summary.values())]
    lines = ["| task | method | SDS iterations | n | " + " | ".join(LABELS[c] for c in columns) + " |",
             "|---|---|---|---|" + "---|" * len(columns)]
    for (task, method, iters), s in summary.items():
        digits = {c: 1 if c in ("seconds", "peak_mb") else 2 if "psnr" in c else 3 for c in columns}
        lines.append(f"| {task} | {method} | {iters if iters is not None else ''} | {s['n']} | "
                     + " | ".join(spread_cell(s[c], digits[c]) for c in columns) + " |")
    return "\n".join(lines)


def asset_table(rows: list[dict]) -> str:
    """Per asset and task, mean PSNR / masked PSNR of each method and budget."""
    psnr, masked = per_asset(rows, "psnr"), per_asset(rows, "psnr_masked")
    names = sorted({n for methods in psnr.values() for n in methods}, key=_method_order)
    lines = ["| asset | task | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (asset, task), methods in psnr.items():
        cells = [f"{cell(methods.get(n, math.nan), 2)} / {cell(masked[asset, task].get(n, math.nan), 2)}" for n in names]
        lines.append(f"| {asset} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _method_order(name: str) -> tuple:
    method, _, iters = name.partition("@")
    return ({EMPTY: 0, FEED_FORWARD: 1}.get(method, 2), method, int(iters or 0))


def tables(rows: list[dict]) -> str:
    """The summary table, where SDS reaches the feed-forward quality, and the per-asset means."""
    summary = summarise(rows)
    lines = [summary_table(summary), ""]
    for task, method in sorted({(t, m) for t, m, i in summary if i is not None}):
        # a method run on fewer clips is compared with the feed-forward (and the empty render) on those clips only
        keys = {r["key"] for r in rows if r["task"] == task and r["method"] == method}
        same = summarise([r for r in rows if r["task"] == task and r["key"] in keys and r["method"] in (method, FEED_FORWARD, EMPTY)])
        found = [crossing(same, task, method, metric) for metric in QUALITY] + [all_reached(same, task, method)]
        lines += [f"- ({len(keys)} clip{'s' if len(keys) > 1 else ''}) {text}" for text in found if text]
    return "\n".join(lines + ["", "Per asset, PSNR / masked PSNR (dB) at the held-out views:", "", asset_table(rows)])


def report(headers: list[dict], rows: list[dict]) -> str:
    """The Markdown report of results files: where they came from, the summary, the crossings, per-asset means."""
    lines = []
    for h in headers:
        m = h["machine"]
        repeated = f" ({h['repeated']} rows already in an earlier file left out)" if h.get("repeated") else ""
        lines.append(f"- `{h['command']}`{repeated}: commit {h['commit'][:10]}{' (with local changes)' if h['dirty'] else ''}, "
                     f"{h['date']}, {m['cpu']} ({m['cores']} cores, {m['torch_threads']} torch threads, load "
                     f"{m['load_average_at_start']} at start, {m.get('load_average_at_end')} at the end), torch {m['torch']}")
    lines += ["", tables(rows)]
    skipped = sorted({s for h in headers for s in h.get("skipped", [])})
    return "\n".join(lines + ([""] + skipped if skipped else []))


# ----------------------------------------------------------------------------- the README's block

# The README's comparison is generated: between these two lines, the begin line naming the results files (globs,
# relative to the README's folder) that `benchmark.py report --readme README.md` regenerates the block from.
BLOCK_BEGIN, BLOCK_END = "<!-- benchmark report of:", "<!-- end of benchmark report -->"


def block_lines(lines: list[str]) -> tuple[int, int]:
    """The indices of the block's begin and end lines; ValueError where there is no such block."""
    begin = next((i for i, line in enumerate(lines) if line.startswith(BLOCK_BEGIN)), None)
    end = next((i for i, line in enumerate(lines) if line.startswith(BLOCK_END)), None)
    if begin is None or end is None or end < begin:
        raise ValueError(f"no generated block: a line starting {BLOCK_BEGIN!r} ... and, after it, a line {BLOCK_END!r}")
    return begin, end


def readme_files(text: str, root: Path) -> list[Path]:
    """The results files the README's block is made from: its begin line's globs expanded (sorted) under `root`.
    ValueError where the README has no block, or a glob matches nothing."""
    lines = text.splitlines()
    begin = lines[block_lines(lines)[0]]
    files = []
    for pattern in begin.removeprefix(BLOCK_BEGIN).removesuffix("-->").split():
        matched = sorted(glob.glob(str(root / pattern)))
        if not matched:
            raise ValueError(f"the README's block names {pattern}, which matches no file under {root}")
        files += [Path(m) for m in matched]
    return files


def with_readme_block(text: str, block: str) -> str:
    """`text` with everything between the block's begin and end lines replaced by `block`."""
    lines = text.splitlines(keepends=True)
    begin, end = block_lines(lines)
    return "".join(lines[: begin + 1]) + block + "\n" + "".join(lines[end:])


# ----------------------------------------------------------------------------- the plot


def plot(summary: dict[Group, dict], path: Path) -> None:
    """PSNR, SSIM and masked PSNR at the held-out views against seconds per clip (log axis), one panel each: a line
    through the budgets of each SDS method, the feed-forward point, error bars of one standard deviation, and the
    empty render as a dotted line. Tasks without ground truth (text) have nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for (t, m, _), s in summary.items() if m != EMPTY and not math.isnan(s["psnr"][0])})
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(5 * len(QUALITY), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = sorted({m for _, m, _ in summary if m != EMPTY}, key=lambda m: (m != FEED_FORWARD, m))
    for ax, metric in zip(axes[0], QUALITY):
        for (task, marker), (i, method) in product(zip(tasks, "osD^v"), enumerate(methods)):
            points = [(s["seconds"], s[metric], iters) for (t, m, iters), s in summary.items() if t == task and m == method]
            if not points or all(math.isnan(q[0]) for _, q, _ in points):
                continue
            x, y = [p[0][0] for p in points], [p[1][0] for p in points]
            ax.errorbar(x, y, xerr=[p[0][1] for p in points], yerr=[p[1][1] for p in points], marker=marker, capsize=3,
                        color=colours[i % len(colours)], linestyle="-" if len(points) > 1 else "none", label=f"{method} ({task})")
            for seconds, quality, iters in points:
                if iters is not None:
                    ax.annotate(str(iters), (seconds[0], quality[0]), textcoords="offset points", xytext=(4, -10), fontsize=7)
        for task, style in zip(tasks, (":", "-.", "--")):
            empty = summary.get((task, EMPTY, None))
            if empty and not math.isnan(empty[metric][0]):
                ax.axhline(empty[metric][0], color="grey", linestyle=style, linewidth=1, label=f"empty render ({task})")
        ax.set(xscale="log", xlabel="seconds per clip (log)", ylabel=LABELS[metric], title=LABELS[metric])
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Held-out views: feed-forward against SDS (labels: SDS iterations; bars: one std over clips and seeds)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
