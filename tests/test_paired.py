"""evaluation.paired: clip-by-clip comparison of two eval.json summaries."""
import json
import math

import pytest

from evaluation import paired


def summary(model: str, values: dict[str, float], seam: float = 2.0) -> dict:
    """An eval.json-like summary whose clips have video-to-4D PSNR `values` {key: dB} and one seam ratio."""
    return {"model": model, "per_clip": [{"key": key, "video_to_4d": {"psnr": v, "seam_ratio": seam}} for key, v in values.items()]}


CLIPS = {"stag__c000__o00": 15.0, "stag__c001__o00": 16.0, "frog__c000__o00": 20.0, "tank__c000__o00": 18.0}


def test_gain_count_and_interval_of_a_uniform_improvement():
    base, new = summary("v3", CLIPS), summary("v4", {k: v + 1.0 for k, v in CLIPS.items()}, seam=1.5)
    row = paired.compare(base, new, "video_to_4d", "psnr", 1)
    assert row["gain"] == pytest.approx(1.0) and row["better"] == 4 and row["clips"] == 4
    assert row["interval"] == pytest.approx((1.0, 1.0))
    assert row["base"] == pytest.approx(17.25) and row["new"] == pytest.approx(18.25)
    seam = paired.compare(base, new, "video_to_4d", "seam_ratio", -1)  # lower is better: a fall counts as a gain
    assert seam["gain"] == pytest.approx(0.5) and seam["better"] == 4


def test_one_clip_carrying_the_mean_shows_as_a_wide_interval_and_a_low_count():
    new = dict(CLIPS, frog__c000__o00=30.0)  # +10 dB on one asset, the others unchanged
    row = paired.compare(summary("v3", CLIPS), summary("v4", new), "video_to_4d", "psnr", 1)
    assert row["gain"] == pytest.approx(2.5) and row["better"] == 1
    low, high = row["interval"]
    assert low == pytest.approx(0.0) and high > 2.5  # resampling assets: some draws leave the frog out


def test_nan_values_are_left_out_and_a_missing_measure_gives_no_row():
    new = summary("v4", dict(CLIPS, tank__c000__o00=math.nan))
    assert paired.compare(summary("v3", CLIPS), new, "video_to_4d", "psnr", 1)["clips"] == 3
    assert paired.compare(summary("v3", CLIPS), new, "text_to_4d", "silhouette_iou", 1) is None


def test_different_clip_sets_are_refused_with_a_clear_error(tmp_path, capsys):
    fewer = summary("v4", {k: v for k, v in CLIPS.items() if k != "frog__c000__o00"})
    with pytest.raises(ValueError, match="scored on different clips"):
        paired.compare(summary("v3", CLIPS), fewer, "video_to_4d", "psnr", 1)
    files = [tmp_path / "v3" / "eval.json", tmp_path / "v4" / "eval.json"]
    for path, s in zip(files, (summary("v3", CLIPS), fewer)):
        path.parent.mkdir()
        path.write_text(json.dumps(s))
    with pytest.raises(SystemExit):
        paired.main([str(p) for p in files])
    assert "different clips" in capsys.readouterr().err


def test_the_command_prints_a_row_per_measure_found_named_by_the_results_folder(tmp_path, capsys):
    files = [tmp_path / "v3" / "eval.json", tmp_path / "v3-shifted" / "eval.json"]
    for path, s in zip(files, (summary("same/model", CLIPS), summary("same/model", {k: v - 0.5 for k, v in CLIPS.items()}))):
        path.parent.mkdir()
        path.write_text(json.dumps(s))
    paired.main([str(p) for p in files])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| video_to_4d")]
    assert len(rows) == 2 and "| v3-shifted |" in rows[0] and "-0.500" in rows[0] and "0 of 4" in rows[0]


def test_variant_means_average_each_variant_and_count_the_clips_it_wins_against_its_base():
    rows = [{"a": {"psnr": 20.0, "ssim": 0.8}, "b": {"psnr": 21.0, "ssim": 0.7}},
            {"a": {"psnr": 22.0, "ssim": 0.9}, "b": {"psnr": 21.5, "ssim": 0.9}}]
    means = paired.variant_means(rows, "a")
    assert means["b"] == ({"psnr": 21.25, "ssim": pytest.approx(0.8)}, 1) and means["a"][1] == 0  # never above itself
    by_name = paired.variant_means(rows, lambda name: "b")  # the base may depend on the variant
    assert by_name["a"][1] == 1 and by_name["b"][1] == 0
