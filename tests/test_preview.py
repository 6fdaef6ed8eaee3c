import numpy as np
import pytest
from PIL import Image

from data import preview
from data.record import SampleRecord
from data.shards import encode_sample, write_shard


@pytest.mark.blender
def test_contact_sheet_shows_one_labelled_grid_per_sample(demo_shards, tmp_path):
    out = tmp_path / "sheet.png"
    preview.main([str(demo_shards / "train"), str(demo_shards / "val"), "--out", str(out), "--columns", "2"])
    sheet = Image.open(out)
    tile_w, tile_h = 4 * 32, 6 * 32 + preview.LABEL_HEIGHT  # 4 frames wide, 6 views high, plus the caption
    assert sheet.size == (2 * tile_w + preview.GAP, 2 * tile_h + preview.GAP)  # 4 samples in 2 rows
    pixels = sheet.convert("L").crop((0, preview.LABEL_HEIGHT, tile_w, tile_h)).getextrema()
    assert pixels[0] < 150  # something darker than the checkerboard: an object is drawn


def test_contact_sheet_takes_a_few_samples_per_shard_and_the_ring_views_only(tmp_path):
    images = np.zeros((6, 2, 8, 8, 4), np.uint8)  # [V (4 ring + 2 extra), F, H, W, 4]
    record = SampleRecord(caption="x", times=[0.0, 1.0], c2w=np.tile(np.eye(4), (6, 2, 1, 1)).tolist(),
                          K=np.tile(np.eye(3), (6, 1, 1)).tolist(), orbit_views=4)
    for shard in ("a", "b"):
        write_shard(tmp_path / f"{shard}.tar", [encode_sample(f"{shard}{i}", images, record) for i in range(3)])
    sheet = preview.contact_sheet([tmp_path], max_samples=12, columns=1, per_shard=2, views=4)
    assert sheet.size == (2 * 8, 4 * (4 * 8 + preview.LABEL_HEIGHT) + 3 * preview.GAP)  # 2 of each shard, 4 views high
    assert preview.contact_sheet([tmp_path], columns=1).size[1] == 6 * (6 * 8 + preview.LABEL_HEIGHT) + 5 * preview.GAP


def test_contact_sheet_of_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no shards found"):
        preview.main([str(tmp_path), "--out", str(tmp_path / "x.png")])
