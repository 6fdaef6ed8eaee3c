"""Objaverse (1.0) ingestion: pick animated objects, download them, drop static or broken motion.

Pipeline used by the data build (each step resumable on its own):

    annotations = read_annotations(path) or fetch_annotations()  # uid -> Sketchfab record
    entries = select_animated(annotations, limit=N)    # metadata filter, deterministic sample
    paths = download(entries, out_dir)                 # {uid}.glb in out_dir, failures skipped
    ... render the front view of each clip ...
    check = motion_check(front_frames)                 # 'ok' | 'static' | 'broken' | 'empty'

The `objaverse` package is an optional extra (`pip install zoetrope4d[objaverse]`) and needs the
internet: it fetches metadata and .glb files from Hugging Face into ~/.objaverse/hf-objaverse-v1.
It is imported only where used, and `download` takes its `load_objects` as a parameter so tests
and offline machines can stand in for it.

CLI:
    python -m data.objaverse select --count N --out ids.json [--annotations FILE.json[.gz]]
    python -m data.objaverse download ids.json --out DIR [--processes P]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import urllib.error
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import torch

from data.atomic import atomic_path
from data.images import composite
from data.cli import entry_point, non_negative_int, positive_int

# Objaverse's `license` values are Sketchfab slugs. The default keeps the licences that allow
# commercial use and derivatives without passing terms on: CC0 and CC-BY (credit the author).
# Excluded by default: NC (non-commercial) and ND (no derivatives; renders are derivatives),
# and SA (share-alike would bind the rendered shards); add "by-sa" to `licenses` to accept it.
DEFAULT_LICENSES = ("cc0", "by")
LICENCE_NAMES = {
    "cc0": "CC0", "by": "CC-BY", "by-sa": "CC-BY-SA", "by-nd": "CC-BY-ND",
    "by-nc": "CC-BY-NC", "by-nc-sa": "CC-BY-NC-SA", "by-nc-nd": "CC-BY-NC-ND",
}
# Cycles render time and Blender import memory grow with faces; Objaverse holds multi-million-face
# scans whose animation (if any) is rarely what we want to learn.
MAX_FACES = 200_000
CAPTION_WORDS = 12

# Diffusion4D's front-view SSIM thresholds (frame 0 against T/4 and T/2).
STATIC_SSIM = 0.95
BROKEN_SSIM = 0.4
MIN_COVERAGE = 0.005  # fraction of opaque pixels below which a frame counts as empty

_UID = re.compile(r"^[A-Za-z0-9_-]+$")  # Objaverse uids are 32 hex digits; this also bars path tricks


class ObjaverseUnreachable(RuntimeError):
    """The objaverse package could not connect to its servers (no internet, DNS, timeout)."""


@dataclasses.dataclass(frozen=True)
class ObjaverseEntry:
    """One selected object: what a shard sample needs to credit and describe it."""

    uid: str
    name: str
    licence: str  # e.g. "CC-BY" (LICENCE_NAMES)
    author: str
    caption: str  # short, lowercase, e.g. "a low poly fox running"
    url: str  # the Sketchfab page
    animation_count: int


# ----------------------------------------------------------------------------- selection


def drop_reason(annotation: Mapping, licenses: Iterable[str] = DEFAULT_LICENSES, max_faces: int = MAX_FACES) -> str | None:
    """Why an annotation record is not a usable animated object, or None when it is.

    The reason starts with one of: "not animated", "licence", "age-restricted", "faces".
    """
    if (annotation.get("animationCount") or 0) <= 0:
        return "not animated"
    licence = annotation.get("license")
    if licence not in set(licenses):
        return f"licence {licence}"
    if annotation.get("isAgeRestricted"):
        return "age-restricted"
    faces = annotation.get("faceCount")
    if faces is None or faces > max_faces:  # unknown size: cannot bound the render cost
        return f"faces {faces} > {max_faces}"
    return None


def select_animated(
    annotations: Mapping[str, Mapping],
    licenses: Iterable[str] = DEFAULT_LICENSES,
    max_faces: int = MAX_FACES,
    limit: int | None = None,
    seed: int = 0,
) -> list[ObjaverseEntry]:
    """Animated, permissively licensed, not age-restricted objects of bounded size.

    annotations: uid -> record, as `objaverse.load_annotations()` returns.
    The order is a seeded hash of the uid, so the result is a random sample that does not depend
    on the dict's order, and growing `limit` keeps the earlier picks (downloads stay reusable).
    """
    licenses = tuple(licenses)
    kept = [uid for uid, a in annotations.items() if drop_reason(a, licenses, max_faces) is None]
    kept.sort(key=lambda uid: hashlib.sha256(f"{seed}:{uid}".encode()).hexdigest())
    return [to_entry(uid, annotations[uid]) for uid in kept[:limit]]


def to_entry(uid: str, annotation: Mapping) -> ObjaverseEntry:
    """An `ObjaverseEntry` from one annotation record (no filtering)."""
    user = annotation.get("user") or {}
    return ObjaverseEntry(
        uid=uid,
        name=annotation.get("name") or "",
        licence=LICENCE_NAMES.get(annotation.get("license"), str(annotation.get("license"))),
        author=user.get("displayName") or user.get("username") or "",
        caption=make_caption(annotation.get("name") or "", annotation.get("tags") or [], annotation.get("description") or ""),
        url=annotation.get("viewerUrl") or f"https://sketchfab.com/3d-models/{uid}",
        animation_count=int(annotation.get("animationCount") or 0),
    )


# ----------------------------------------------------------------------------- captions

_HTML = re.compile(r"<[^>]*>")
_HTML_BREAK = re.compile(r"<\s*(?:br|/?p|/?div|/?li)\b[^>]*>", re.IGNORECASE)  # tags that end a line
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_FILE_EXT = re.compile(r"\.(?:fbx|glb|gltf|obj|blend|dae|max|mb|ma|c4d|3ds|stl|usdz?)\b", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # letters/digits, keeping "fox's"
_SENTENCE_END = re.compile(r"[.!?\n]")
_VERSION = re.compile(r"^(?:v\d+|\d{2,})$")  # "v2", "01", "2023": file versions, not content
# Every selected object is an animated 3D model, so these words say nothing about it.
_NOISE = {
    "3d", "model", "models", "free", "download", "sketchfab", "fbx", "glb", "gltf", "obj", "blend",
    "wip", "untitled", "animation", "animations", "animated", "anim", "rigged", "rig",
}


def _words(text: str) -> list[str]:
    """Lowercase content words of a name or sentence: no HTML, URLs, file extensions or versions."""
    text = _FILE_EXT.sub(" ", _URL.sub(" ", _HTML.sub(" ", text)))
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    return [w for w in words if w not in _NOISE and not _VERSION.match(w)]


def _first_sentence(text: str) -> str:
    """The first non-empty sentence, split after URLs and HTML are gone (their dots are no ends)."""
    text = _URL.sub(" ", _HTML.sub(" ", _HTML_BREAK.sub("\n", text)))
    return next((s for s in _SENTENCE_END.split(text) if _words(s)), "")


def make_caption(name: str, tags: Iterable[Mapping | str], description: str, max_words: int = CAPTION_WORDS) -> str:
    """A short lowercase caption, e.g. "a low poly fox running".

    From the object's name; when the name says less than two words, the description's first
    sentence follows it, and the tags stand in when both are empty. Objaverse tags are dicts with
    a 'name'; plain strings are accepted too.
    """
    words = _words(name)
    if len(words) < 2:
        words += _words(_first_sentence(description))
    if not words:
        words = [w for t in tags for w in _words(t["name"] if isinstance(t, Mapping) else t)]
    words = words[:max_words] or ["animated", "object"]
    if words[0] not in ("a", "an", "the"):
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
        words = words[:max_words]
    return " ".join(words)


# ----------------------------------------------------------------------------- motion filter


@dataclasses.dataclass(frozen=True)
class MotionCheck:
    """The motion filter's verdict on one clip and the numbers behind it (for the build's log)."""

    verdict: str  # "ok", "static", "broken" or "empty"
    ssim: tuple[float, ...]  # frame 0 against the frames at T/4 and T/2 (distinct ones)
    min_coverage: float  # smallest fraction of opaque pixels over all frames

    @property
    def keep(self) -> bool:
        return self.verdict == "ok"

    def __str__(self) -> str:
        ssim = ", ".join(f"{s:.3f}" for s in self.ssim)
        return f"{self.verdict} (ssim {ssim}; min coverage {self.min_coverage:.4f})"


def motion_check(
    frames: torch.Tensor,
    static_above: float = STATIC_SSIM,
    broken_below: float = BROKEN_SSIM,
    min_coverage: float = MIN_COVERAGE,
    background: float = 1.0,
) -> MotionCheck:
    """Classify a clip's motion from its front-view frames [F, 4, H, W] (RGBA in [0, 1], F >= 2).

    "empty" when any frame's opaque fraction (alpha > 0.5) is below `min_coverage` (the object left
    the view); "broken" (exploding, teleporting) when any SSIM is below `broken_below`; "static"
    when all are above `static_above`; otherwise "ok". Frames are composited over a flat
    `background` first, so SSIM sees the silhouette, not undefined colour under zero alpha.
    Measured at 64 px on ../shared/assets: walking/galloping clips score 0.70-0.85, small
    motions (RiggedFigure, AnimatedMorphSphere) 0.96-0.98, so curated folders skip this filter.
    (Cropping to the object's box was tried: it marks galloping animals 'broken'.)
    """
    from pytorch_msssim import ssim  # imported here: only the build needs it

    if frames.ndim != 4 or frames.shape[1] != 4 or frames.shape[0] < 2:
        raise ValueError(f"motion_check: frames must be [F >= 2, 4, H, W], got {tuple(frames.shape)}")
    frames = frames.float()
    alpha = frames[:, 3:]  # [F, 1, H, W]
    coverage = (alpha > 0.5).flatten(1).float().mean(1)  # [F]
    rgb = composite(frames, background)  # [F, 3, H, W]
    n = frames.shape[0]
    later = sorted({n // 4, n // 2} - {0})  # [K] frame indices compared with frame 0
    scores = ssim(rgb[:1].expand(len(later), -1, -1, -1), rgb[later], data_range=1.0, size_average=False)  # [K]
    ssims = tuple(float(s) for s in scores)
    if float(coverage.min()) < min_coverage:
        verdict = "empty"
    elif min(ssims) < broken_below:
        verdict = "broken"
    elif min(ssims) > static_above:
        verdict = "static"
    else:
        verdict = "ok"
    return MotionCheck(verdict, ssims, float(coverage.min()))


# ----------------------------------------------------------------------------- download

LoadObjects = Callable[[list[str], int], Mapping[str, str]]  # objaverse.load_objects(uids, download_processes)


def _objaverse():
    """The objaverse module, or a clear error naming the extra that installs it."""
    try:
        import objaverse
    except ImportError as e:
        raise ImportError("data.objaverse needs the objaverse package: pip install 'zoetrope4d[objaverse]'") from e
    return objaverse


def _is_network_error(exc: BaseException) -> bool:
    """True for failures to connect at all; an HTTP status (e.g. 404 for one object) is not one."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror))


@contextlib.contextmanager
def _socket_timeout(seconds: float | None) -> Iterator[None]:
    """Set the default socket timeout for the block: objaverse's urlretrieve passes none and would hang forever."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _place(src: Path, dst: Path) -> None:
    """Put `src` at `dst` atomically: a hard link where the file system allows it, else a copy."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)  # no second copy of the download cache
        except OSError:
            shutil.copyfile(src, tmp)


def _unreachable(e: BaseException) -> ObjaverseUnreachable:
    """The error the CLI turns into one line instead of a traceback."""
    return ObjaverseUnreachable(f"could not reach Objaverse (no internet?): {e}")


def _fetch(uids: list[str], processes: int, load_objects: LoadObjects) -> dict[str, str]:
    """uid -> local file through `load_objects`, warning about each uid it cannot deliver.

    When a batch fails, it is retried one uid at a time so that one bad object costs only itself
    (each objaverse call re-reads its uid -> path index, a few seconds: fine for the rare failure).
    Raises ObjaverseUnreachable on a connection failure: stopping beats marking every uid as failed.
    """
    failed: dict[str, str] = {}
    try:
        got = dict(load_objects(uids, processes))
    except Exception as e:  # a pool re-raises a worker's error, sometimes wrapped: retry one by one
        if _is_network_error(e):
            raise _unreachable(e) from e
        got = {}
        for uid in uids:
            try:
                got.update(load_objects([uid], 1))
            except Exception as e_uid:
                if _is_network_error(e_uid):
                    raise _unreachable(e_uid) from e_uid
                failed[uid] = f"download failed: {e_uid!r}"
    for uid in uids:
        if uid not in got:
            warnings.warn(f"objaverse: skipping {uid}: {failed.get(uid, 'not found in Objaverse')}", stacklevel=3)
    return got


def download(
    entries: Iterable[ObjaverseEntry | str],
    out_dir: str | Path,
    processes: int = 1,
    load_objects: LoadObjects | None = None,
    batch_size: int = 64,
    timeout_s: float = 60.0,
) -> dict[str, Path]:
    """Fetch objects as `out_dir/{uid}.glb`; returns uid -> path for every object now present.

    Resumable: uids already in `out_dir` are not requested again. Objects that fail to download
    (or that `load_objects` does not return) are skipped with a warning naming the uid.
    load_objects: `objaverse.load_objects` by default (downloads into ~/.objaverse first).
    Raises ObjaverseUnreachable when the servers cannot be reached.
    """
    load_objects = load_objects or _objaverse().load_objects
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uids = list(dict.fromkeys(e if isinstance(e, str) else e.uid for e in entries))  # unique, in order
    bad = [u for u in uids if not _UID.match(u)]
    if bad:
        raise ValueError(f"download: malformed uids {bad[:5]}")
    result = {u: out_dir / f"{u}.glb" for u in uids if (out_dir / f"{u}.glb").exists()}
    todo = [u for u in uids if u not in result]
    with _socket_timeout(timeout_s):
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            got = _fetch(batch, processes, load_objects)
            for uid in batch:
                if uid in got:
                    _place(Path(got[uid]), out_dir / f"{uid}.glb")
                    result[uid] = out_dir / f"{uid}.glb"
    return result


# ----------------------------------------------------------------------------- files and CLI


def read_annotations(path: str | Path) -> dict[str, dict]:
    """uid -> annotation record from a local JSON file (or .json.gz, the format of objaverse's metadata shards)."""
    path = Path(path)
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as f:
        return json.load(f)


def fetch_annotations(uids: list[str] | None = None, timeout_s: float = 60.0) -> dict[str, dict]:
    """uid -> annotation record through the objaverse package.

    All records when `uids` is None: downloads ~160 metadata files into ~/.objaverse once and holds
    every record in memory (several GB). Raises ObjaverseUnreachable when the servers cannot be reached.
    """
    try:
        with _socket_timeout(timeout_s):
            return _objaverse().load_annotations(uids)
    except Exception as e:
        if _is_network_error(e):
            raise _unreachable(e) from e
        raise


def write_entries(entries: Iterable[ObjaverseEntry], path: str | Path) -> None:
    """Write entries as a JSON list, one object per line (diffable, readable by `read_entries`)."""
    lines = ",\n".join(json.dumps(dataclasses.asdict(e), ensure_ascii=False) for e in entries)
    Path(path).write_text(f"[\n{lines}\n]\n" if lines else "[]\n", encoding="utf-8")


def read_entries(path: str | Path) -> list[ObjaverseEntry]:
    """Entries written by `write_entries`."""
    return [ObjaverseEntry(**record) for record in json.loads(Path(path).read_text(encoding="utf-8"))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data.objaverse", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sel = sub.add_parser("select", help="pick animated objects from the annotations and write them as JSON")
    sel.add_argument("--count", type=positive_int, default=None, help="how many to keep (default: all that pass)")
    sel.add_argument("--out", type=Path, required=True)
    sel.add_argument("--annotations", type=Path, default=None, help="local JSON(.gz) of uid -> annotation instead of the objaverse package")
    sel.add_argument("--licenses", default=",".join(DEFAULT_LICENSES), help="comma-separated Sketchfab licence slugs")
    sel.add_argument("--max-faces", type=positive_int, default=MAX_FACES)
    sel.add_argument("--seed", type=non_negative_int, default=0)
    dl = sub.add_parser("download", help="download the objects listed by `select` as DIR/{uid}.glb")
    dl.add_argument("ids", type=Path, help="the JSON file that `select` wrote")
    dl.add_argument("--out", type=Path, required=True)
    dl.add_argument("--processes", type=positive_int, default=1)
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit status (2 when Objaverse cannot be reached)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "select":
            annotations = read_annotations(args.annotations) if args.annotations else fetch_annotations()
            entries = select_animated(annotations, args.licenses.split(","), args.max_faces, args.count, args.seed)
            write_entries(entries, args.out)
            print(f"selected {len(entries)} of {len(annotations)} objects -> {args.out}")
        else:
            entries = read_entries(args.ids)
            paths = download(entries, args.out, processes=args.processes)
            print(f"{len(paths)} of {len(entries)} objects in {args.out}")
    except ObjaverseUnreachable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
