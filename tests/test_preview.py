import pytest
from PIL import Image

from data import preview

pytestmark = pytest.mark.blender


def test_contact_sheet_shows_one_labelled_grid_per_sample(demo_shards, tmp_path):
    out = tmp_path / "sheet.png"
    preview.main([str(demo_shards / "train"), str(demo_shards / "val"), "--out", str(out), "--columns", "2"])
    sheet = Image.open(out)
    tile_w, tile_h = 4 * 32, 6 * 32 + preview.LABEL_HEIGHT  # 4 frames wide, 6 views high, plus the caption
    assert sheet.size == (2 * tile_w + preview.GAP, 2 * tile_h + preview.GAP)  # 4 samples in 2 rows
    pixels = sheet.convert("L").crop((0, preview.LABEL_HEIGHT, tile_w, tile_h)).getextrema()
    assert pixels[0] < 150  # something darker than the checkerboard: an object is drawn


def test_contact_sheet_of_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no shards found"):
        preview.main([str(tmp_path), "--out", str(tmp_path / "x.png")])
