"""data.atomic: a failed write or move never leaves half a file, and never loses the previous version."""
from __future__ import annotations

import pytest

from data.atomic import atomic_folder, atomic_path, replace_folder


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "clip.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".mp4" and tmp.name.startswith(".")
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "first" and [p.name for p in target.parent.iterdir()] == ["clip.mp4"]


def test_replace_folder_swaps_and_restores_the_old_folder_when_the_move_fails(tmp_path):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "a.txt").write_text("old")
    new.mkdir()
    (new / "a.txt").write_text("new")
    replace_folder(new, out)
    assert (out / "a.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "missing", out)  # the move fails: the previous folder is put back
    assert (out / "a.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_folder_replaces_when_complete_and_leaves_the_old_one_on_failure(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("writer failed")
    assert (out / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_folder_follows_the_umask_and_tidies_what_killed_writers_left(tmp_path):
    import os

    old_mask = os.umask(0o027)
    try:
        with atomic_folder(tmp_path / "run") as tmp:
            (tmp / "a.txt").write_text("new")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700
    dead = 2**22 + 12345  # above the kernel's largest process id: no such process
    (tmp_path / f".run.tmp-{dead}-abc").mkdir()  # a SIGKILLed writer's half folder
    (tmp_path / f".out.old-{dead}").mkdir()  # a writer SIGKILLed between its two renames: out is missing
    (tmp_path / f".out.old-{dead}" / "a.txt").write_text("previous")
    (tmp_path / f".run.tmp-{os.getpid()}-xyz").mkdir()  # a live writer's: kept
    with atomic_folder(tmp_path / "run") as tmp:
        (tmp / "a.txt").write_text("newer")
    with atomic_folder(tmp_path / "out") as tmp:
        assert (tmp_path / "out" / "a.txt").read_text() == "previous"  # put back before anything else
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".run.tmp-{os.getpid()}-xyz", "out", "run"]
    with pytest.raises(NotADirectoryError):
        with atomic_folder(tmp_path / "run" / "a.txt"):
            pass
    assert (tmp_path / "run" / "a.txt").read_text() == "newer"
