"""Shape bank: statistics measured right, crops kept exactly, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ShapeBankConfig
from pipeline.masks.shape_bank import ShapeBank, build_shape_bank


def _hand_made() -> np.ndarray:
    mask = np.zeros((100, 120), np.int32)
    mask[10:30, 20:40] = 1  # 20 x 20 square: area 400
    yy, xx = np.mgrid[0:100, 0:120]
    mask[(yy - 60) ** 2 + (xx - 70) ** 2 <= 15**2] = 2  # disc of radius 15
    mask[90:100, 0:30] = 3  # 10 x 30 bar on the border: aspect ratio ~3
    mask[50:52, 5:7] = 4  # 4 px: noise under min_area
    return mask


def test_statistics_of_known_shapes():
    bank = build_shape_bank([_hand_made()], ShapeBankConfig(min_area=12), image_ids=["hand"])
    sh = bank.shapes.set_index("label")
    assert list(sh.index) == [1, 2, 3]  # the 4 px speck is dropped
    assert sh.loc[1, "area"] == 400
    assert sh.loc[1, "equivalent_diameter"] == pytest.approx(np.sqrt(4 * 400 / np.pi))
    assert sh.loc[1, "aspect_ratio"] == pytest.approx(1.0, abs=0.01)
    assert sh.loc[1, "solidity"] == pytest.approx(1.0)
    assert sh.loc[1, "perimeter"] == pytest.approx(4 * 19, rel=0.05)
    disc_area = int((_hand_made() == 2).sum())
    assert sh.loc[2, "area"] == disc_area
    assert disc_area == pytest.approx(np.pi * 15**2, rel=0.03)
    assert sh.loc[2, "equivalent_diameter"] == pytest.approx(30, rel=0.02)
    assert sh.loc[2, "aspect_ratio"] == pytest.approx(1.0, abs=0.03)
    assert sh.loc[3, "aspect_ratio"] == pytest.approx(3.0, rel=0.1)
    assert list(sh["touches_border"]) == [False, False, True]
    assert (sh["image_id"] == "hand").all()
    # whole objects are drawn, border-cut ones are not; larger whole objects weigh a little more
    assert sh.loc[3, "weight"] == 0 and sh.loc[2, "weight"] > sh.loc[1, "weight"] > 1
    img = bank.images.iloc[0]
    assert img["count"] == 3
    assert img["coverage"] == pytest.approx((400 + disc_area + 300) / (100 * 120))
    assert img["density"] == pytest.approx(3 / (100 * 120))
    # crops are the tight boxes of the objects
    assert bank.crops[0].shape == (20, 20) and bank.crops[0].all()
    assert bank.crops[1].sum() == disc_area


def test_crop_rate_counts_objects_meeting_a_random_crop():
    mask = np.zeros((100, 100), np.int32)
    mask[0:10, 0:10] = 1  # top-left corner: met only by crops starting at 0..9 on both axes
    mask[45:55, 45:55] = 2  # centre: met by every 60 px crop
    bank = build_shape_bank([mask])
    rate = bank.crop_rates(60)[0]
    assert rate == pytest.approx(1.0 + (10 / 41) ** 2)
    assert bank.crop_rates(200)[0] == pytest.approx(2.0)  # image smaller than the canvas


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = [_hand_made(), np.where(rng.random((40, 50)) > 0.7, 1, 0).astype(np.int32)]
    bank = build_shape_bank(masks, ShapeBankConfig(min_area=3), image_ids=["a", "b"])
    bank.save(tmp_path / "bank")
    again = ShapeBank.load(tmp_path / "bank")
    assert len(again) == len(bank) and again.min_area == 3
    assert all(np.array_equal(x, y) and x.dtype == bool for x, y in zip(bank.crops, again.crops))
    assert again.shapes.equals(bank.shapes) and again.images.equals(bank.images)


def test_max_shapes_subsamples_but_keeps_image_counts():
    mask = np.zeros((64, 64), np.int32)
    for k in range(16):
        y, x = divmod(k, 4)
        mask[y * 16 + 2 : y * 16 + 10, x * 16 + 2 : x * 16 + 10] = k + 1
    bank = build_shape_bank([mask], ShapeBankConfig(min_area=4, max_shapes=5))
    assert len(bank) == 5 and len(bank.shapes) == 5
    assert bank.images.iloc[0]["count"] == 16
    assert bank.crop_rates(64)[0] == pytest.approx(16.0)


def test_missing_bank_is_a_user_error(tmp_path):
    from pipeline.data.images import InputError

    with pytest.raises(InputError, match="not a shape bank"):
        ShapeBank.load(tmp_path)
