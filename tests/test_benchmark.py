"""benchmark.py eval: scores a model folder on held-out shards."""
from __future__ import annotations

import json

import pytest

import benchmark

pytestmark = pytest.mark.blender


def test_eval_scores_every_task_on_held_out_clips(tiny_model, demo_shards, tmp_path, capsys):
    benchmark.main(["eval", "--model", str(tiny_model), "--data", str(demo_shards / "val"), "--out", str(tmp_path), "--steps", "1"])
    summary = json.loads((tmp_path / "eval.json").read_text())
    assert summary["clips"] == 1 and summary["per_clip"][0]["key"].startswith("QuaterniusWolf")
    for task in ("recon", "video_to_4d", "text_to_4d_consistency"):
        assert 0 < summary["mean"][task]["psnr"] < 60 and -1 <= summary["mean"][task]["ssim"] <= 1
    assert (tmp_path / "QuaterniusWolf__c000__o00.png").is_file()
    assert "| recon |" in capsys.readouterr().out


def test_eval_without_data_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(SystemExit, match="no shards found"):
        benchmark.main(["eval", "--model", str(tiny_model), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
