"""Real-mask layouts: reproducible per (seed, index), sharding and resume do not change them, labels
are clean (1..N, no sliver), mosaics keep ids unique, and touching objects stay touching, which
random placement never gives; plus the touching statistic on a hand-made label map."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label as connected_pieces

from pipeline.config import MasksConfig, ShapeBankConfig
from pipeline.errors import InputError
from pipeline.masks.placement import generate_placement_masks
from pipeline.masks.realmask import draw_realmask, generate_realmask_masks, write_realmask_masks
from pipeline.masks.shape_bank import build_shape_bank
from pipeline.masks.stats import compare_mask_stats, mask_stats, touching_neighbour_counts, touching_pairs

MIN_AREA = 6


def _blob_masks(n: int = 3, size: int = 72) -> list[np.ndarray]:
    """Dense real-looking masks: random rectangles, later ones covering earlier ones, so objects
    touch, are partly hidden, and some leftovers are tiny (slivers for the cleanup to drop)."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        for k in range(1, 25):
            y, x = rng.integers(0, size - 4, 2)
            h, w = rng.integers(3, 18, 2)
            mask[y : y + h, x : x + w] = k
        out.append(mask)
    return out


def _cfg(**kw) -> MasksConfig:
    return MasksConfig(**{"size": 48, **kw})


def test_same_seed_and_index_give_the_same_mask():
    real = _blob_masks()
    cfg = _cfg(realmask_mosaic=0.5)
    a = generate_realmask_masks(real, cfg, seed=3, indices=[0, 1, 2, 7], min_area=MIN_AREA)
    b = generate_realmask_masks(real, cfg, seed=3, indices=[7, 2], min_area=MIN_AREA)
    assert np.array_equal(a[3], b[0]) and np.array_equal(a[2], b[1])
    assert np.array_equal(draw_realmask(real, 48, 3, 7, cfg, MIN_AREA), a[3])
    assert not np.array_equal(a[0], a[1])
    other_seed = generate_realmask_masks(real, cfg, seed=4, indices=[0], min_area=MIN_AREA)
    assert not np.array_equal(a[0], other_seed[0])
    # the real masks' dtype does not matter, only their labels
    wide = [m.astype(np.int32) for m in real]
    c = generate_realmask_masks(wide, cfg, seed=3, indices=[7], min_area=MIN_AREA)
    assert np.array_equal(c[0], a[3])


@pytest.mark.parametrize("size, mosaic", [(48, 0.0), (33, 1.0)])
def test_size_dtype_and_clean_labels(size, mosaic):
    real = _blob_masks()
    masks = generate_realmask_masks(real, _cfg(size=size, realmask_mosaic=mosaic), seed=0, indices=range(25),
                                    min_area=MIN_AREA)
    assert sum(int(m.max()) for m in masks) > 25  # layouts really hold objects
    for m in masks:
        assert m.dtype == np.int32 and m.shape == (size, size)
        assert np.array_equal(np.unique(m), np.arange(int(m.max()) + 1))  # 0 and 1..N, no gap
        pieces = connected_pieces(m, background=0, connectivity=2)
        assert np.bincount(pieces.ravel())[1:].min(initial=MIN_AREA) >= MIN_AREA


def test_small_real_mask_is_padded_with_background():
    """A 20 x 20 real mask on a 64 canvas, no scale change or warp: the whole object lands inside."""
    real = [np.ones((20, 20), np.uint8)]
    cfg = _cfg(size=64, realmask_scale_jitter=0.0, realmask_elastic=0.0, realmask_mosaic=0.0)
    for m in generate_realmask_masks(real, cfg, seed=0, indices=range(5), min_area=MIN_AREA):
        assert m.max() == 1 and np.count_nonzero(m) == 400


def test_mosaic_keeps_ids_unique():
    """Every real mask is one object filling the image (id 1): a mosaic must show four objects,
    one per quadrant, none spilling over a seam."""
    real = [np.ones((40, 40), np.uint8), np.ones((30, 50), np.uint8)]
    cfg = _cfg(size=32, realmask_mosaic=1.0)
    for m in generate_realmask_masks(real, cfg, seed=0, indices=range(6), min_area=MIN_AREA):
        assert m.max() == 4
        quadrants = [m[:16, :16], m[:16, 17:], m[17:, :16], m[17:, 17:]]
        assert sorted(int(np.unique(q[q > 0])[0]) for q in quadrants) == [1, 2, 3, 4]
        assert all(len(np.unique(q[q > 0])) == 1 for q in quadrants)
        assert not m[16, :].any() and not m[:, 16].any()  # the seam gutter


def test_touching_real_objects_stay_touching_unlike_placement():
    real = np.zeros((64, 64), np.int32)
    real[16:40, 10:30] = 1
    real[16:40, 30:50] = 2  # shares a 24 px edge with object 1
    cfg = _cfg(realmask_mosaic=0.0)
    layouts = generate_realmask_masks([real], cfg, seed=0, indices=range(30), min_area=MIN_AREA)
    both = [m for m in layouts if m.max() == 2]
    assert len(both) >= 10
    assert all(len(touching_pairs(m)) == 1 for m in both)
    per_mask, _ = mask_stats(layouts, min_area=MIN_AREA)
    assert np.nanmean(per_mask["touching_pairs_per_object"]) > 0

    bank = build_shape_bank([real], ShapeBankConfig(min_area=MIN_AREA))
    placed = generate_placement_masks(bank, _cfg(overlap="none", min_objects=2), seed=0, indices=range(30))
    per_mask, per_object = mask_stats(placed, min_area=MIN_AREA)
    assert per_mask["count"].sum() >= 30
    assert np.nansum(per_mask["touching_pairs_per_object"]) == 0
    assert per_object["touching_neighbours"].sum() == 0


HAND_MADE = np.array([
    [1, 1, 0, 0, 0, 0, 5, 5],
    [1, 1, 0, 0, 0, 6, 0, 0],  # 6 touches 5 only diagonally (down-left)
    [0, 0, 2, 2, 0, 0, 0, 0],  # 2 touches 1 only diagonally (down-right)
    [0, 0, 2, 2, 3, 0, 0, 0],  # 3 touches 2 sideways
    [0, 0, 0, 0, 3, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0],
    [4, 0, 0, 0, 0, 8, 8, 0],
    [4, 7, 0, 0, 0, 9, 9, 0],  # 7 (1 px) touches 4; 9 touches 8 from below
])


def test_touching_statistic_on_a_hand_made_map():
    assert touching_pairs(HAND_MADE).tolist() == [[1, 2], [2, 3], [4, 7], [5, 6], [8, 9]]
    assert touching_neighbour_counts(HAND_MADE, np.arange(1, 10)).tolist() == [1, 2, 1, 1, 1, 1, 1, 1, 1]
    per_mask, per_object = mask_stats([HAND_MADE])
    assert per_mask["touching_pairs_per_object"].iloc[0] == pytest.approx(5 / 9)
    assert per_object["touching_neighbours"].tolist() == [1, 2, 1, 1, 1, 1, 1, 1, 1]
    # objects under min_area (6 and 7, 1 px each) are background: their contacts vanish too
    per_mask, per_object = mask_stats([HAND_MADE], min_area=2)
    assert per_mask["touching_pairs_per_object"].iloc[0] == pytest.approx(3 / 7)
    assert per_object["touching_neighbours"].tolist() == [1, 2, 1, 0, 0, 1, 1]
    empty, _ = mask_stats([np.zeros((4, 4), np.int32)])
    assert np.isnan(empty["touching_pairs_per_object"].iloc[0])  # no objects: no ratio, not 0


def test_comparison_reports_touching_metrics():
    real = _blob_masks()
    synthetic = generate_realmask_masks(real, _cfg(), seed=0, indices=range(10), min_area=MIN_AREA)
    table = compare_mask_stats(real, synthetic, 48, min_area=MIN_AREA).set_index("metric")
    for metric in ("touching_neighbours", "touching_pairs_per_object", "nn_distance", "coverage"):
        assert table.loc[metric, "n_real"] > 0 and table.loc[metric, "n_synthetic"] > 0
        assert 0 <= table.loc[metric, "ks_statistic"] <= 1
    assert table.loc["touching_neighbours", "mean_real"] > 0


def test_store_is_independent_of_shards_and_resumes(tmp_path):
    real = _blob_masks()
    cfg = _cfg(realmask_mosaic=0.5)
    one = write_realmask_masks(real, tmp_path / "one", cfg, count=11, seed=5, min_area=MIN_AREA, shard_size=4,
                               progress=False)
    two = write_realmask_masks(real, tmp_path / "two", cfg, count=11, seed=5, min_area=MIN_AREA, shard_size=3,
                               progress=False)
    direct = generate_realmask_masks(real, cfg, seed=5, indices=range(11), min_area=MIN_AREA)
    m = one.manifest
    assert list(m["index"]) == list(range(11)) and set(m["source"]) == {"realmask"} and set(m["seed"]) == {5}
    assert m["mosaic"].any() and not m["mosaic"].all()
    for i in range(11):
        assert np.array_equal(one[i], two[i]) and np.array_equal(one[i], direct[i])
        assert m["n_objects"].iloc[i] == direct[i].max()

    out = tmp_path / "one"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*")}
    (out / "shard_00001.parquet").unlink()  # a killed writer: shard 1 never finished
    (out / "shard_00001.npz").write_bytes(b"partial")
    again = write_realmask_masks(real, out, cfg, count=11, seed=5, min_area=MIN_AREA, shard_size=4,
                                 progress=False)
    assert all(np.array_equal(again[i], direct[i]) for i in range(11))
    for name, t in mtimes.items():
        if not name.startswith("shard_00001"):
            assert (out / name).stat().st_mtime_ns == t, f"{name} was rewritten"
    with pytest.raises(InputError, match="other settings"):
        write_realmask_masks(real, out, cfg, count=11, seed=6, min_area=MIN_AREA, shard_size=4,
                             progress=False)


def test_no_real_masks_is_a_user_error(tmp_path):
    with pytest.raises(InputError, match="no real training masks"):
        write_realmask_masks([], tmp_path / "s", _cfg(), count=2, seed=0, min_area=MIN_AREA, progress=False)


def test_min_objects_fills_layouts_of_a_rare_object_set():
    """One small object in one of eight real masks (a defect set): without a floor nearly every
    layout is empty; with masks.min_objects=1 every one holds the object, and the floor changes
    nothing for min_objects 0 (same masks as before)."""
    one = np.zeros((96, 96), np.int32)
    one[40:52, 30:44] = 1
    real = [one] + [np.zeros((96, 96), np.int32)] * 7
    plain = generate_realmask_masks(real, _cfg(realmask_mosaic=0.0), seed=0, indices=range(40), min_area=MIN_AREA)
    floored = generate_realmask_masks(real, _cfg(realmask_mosaic=0.0, min_objects=1), seed=0, indices=range(40),
                                      min_area=MIN_AREA)
    assert sum(m.max() > 0 for m in plain) < 10
    assert all(m.max() >= 1 for m in floored)
    again = generate_realmask_masks(real, _cfg(realmask_mosaic=0.0, min_objects=1), seed=0, indices=[7],
                                    min_area=MIN_AREA)
    assert np.array_equal(again[0], floored[7])
