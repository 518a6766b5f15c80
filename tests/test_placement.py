"""Random-placement masks: reproducible per (seed, index), overlap policies hold, counts follow the
real distribution, and the sharded writer resumes correctly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.config import MasksConfig, ShapeBankConfig
from pipeline.data.store import MaskStore
from pipeline.masks.placement import PlacementSampler, generate_placement_masks, write_placement_masks
from pipeline.masks.shape_bank import build_shape_bank

DISC_RADIUS = 6


def _disc_masks(n_images: int = 4, per_image: int = 10, size: int = 128) -> list[np.ndarray]:
    """Real-looking training masks: ``per_image`` equal discs each, none touching the border."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_images):
        mask = np.zeros((size, size), np.int32)
        k = 0
        while k < per_image:
            cy, cx = rng.integers(DISC_RADIUS + 2, size - DISC_RADIUS - 2, 2)
            patch = np.zeros_like(mask, np.uint8)
            cv2.circle(patch, (int(cx), int(cy)), DISC_RADIUS, 1, -1)
            if (mask[cv2.dilate(patch, np.ones((3, 3), np.uint8)) > 0] == 0).all():
                k += 1
                mask[patch > 0] = k
        out.append(mask)
    return out


@pytest.fixture(scope="module")
def disc_bank():
    return build_shape_bank(_disc_masks(), ShapeBankConfig(min_area=12))


def _cfg(**kw) -> MasksConfig:
    base = dict(size=96, overlap="touch", scale_jitter=0.0, border_truncation=False, workers=1)
    base.update(kw)
    return MasksConfig(**base)


def test_same_seed_and_index_give_the_same_mask(disc_bank):
    cfg = _cfg(border_truncation=True, scale_jitter=0.2)
    a = generate_placement_masks(disc_bank, cfg, seed=3, indices=[0, 1, 2, 7])
    b = generate_placement_masks(disc_bank, cfg, seed=3, indices=[7, 2])
    assert np.array_equal(a[3], b[0]) and np.array_equal(a[2], b[1])
    assert not np.array_equal(a[0], a[1])
    c = generate_placement_masks(disc_bank, cfg, seed=4, indices=[0])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.int32 and a[0].shape == (96, 96)


def test_store_is_independent_of_shards_and_workers(disc_bank, tmp_path):
    cfg = _cfg(border_truncation=True)
    one = write_placement_masks(disc_bank, tmp_path / "one", cfg, count=23, seed=5, shard_size=7, workers=1, progress=False)
    two = write_placement_masks(disc_bank, tmp_path / "two", cfg, count=23, seed=5, shard_size=4, workers=2, progress=False)
    assert len(one) == len(two) == 23
    m = one.manifest
    assert list(m["index"]) == list(range(23)) and set(m["source"]) == {"placement"} and set(m["seed"]) == {5}
    direct = generate_placement_masks(disc_bank, cfg, seed=5, indices=range(23))
    for i in range(23):
        assert np.array_equal(one[i], two[i]) and np.array_equal(one[i], direct[i])
        assert m["n_objects"].iloc[i] == direct[i].max()


def _object_areas(mask: np.ndarray) -> np.ndarray:
    return np.bincount(mask.ravel())[1:]


def test_overlap_none_keeps_a_gap(disc_bank):
    for mask in generate_placement_masks(disc_bank, _cfg(overlap="none"), seed=0, indices=range(20)):
        for k in range(1, mask.max() + 1):
            grown = cv2.dilate((mask == k).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            others = (mask > 0) & (mask != k)
            assert not (grown & others).any()


def test_overlap_touch_never_cuts_a_shape(disc_bank):
    """Equal discs, no jitter, no border cut: every object keeps its full area (only rotation
    resampling changes it by a few pixels), so no shape lost pixels to another."""
    full = np.pi * DISC_RADIUS**2
    masks = generate_placement_masks(disc_bank, _cfg(overlap="touch"), seed=0, indices=range(30))
    areas = np.concatenate([_object_areas(m) for m in masks])
    assert len(areas) > 100
    assert areas.min() >= 0.85 * full
    touching = sum(
        (cv2.dilate((m == k).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)[(m > 0) & (m != k)].any()
        for m in masks
        for k in range(1, m.max() + 1)
    )
    assert touching > 0  # touching is allowed and happens at this density


def test_overlap_any_respects_max_overlap(disc_bank):
    full = np.pi * DISC_RADIUS**2
    cfg = _cfg(overlap="any", max_overlap=0.3)
    areas = np.concatenate([_object_areas(m) for m in generate_placement_masks(disc_bank, cfg, seed=0, indices=range(30))])
    assert areas.min() >= (1 - 0.3) * 0.85 * full
    assert areas.min() < 0.85 * full  # some shapes really are partly hidden


def test_counts_follow_the_real_distribution(disc_bank):
    masks = generate_placement_masks(disc_bank, _cfg(size=128, overlap="any", max_overlap=1.0), seed=1, indices=range(150))
    counts = np.array([m.max() for m in masks])
    # real images: 10 objects in 128 x 128, so a 128 canvas expects Poisson(10)
    assert counts.mean() == pytest.approx(10, rel=0.12)
    assert counts.var() == pytest.approx(10, rel=0.4)
    # a canvas with a quarter of the area gets about a quarter of the objects
    small = generate_placement_masks(disc_bank, _cfg(size=64, overlap="any", max_overlap=1.0), seed=1, indices=range(150))
    assert np.mean([m.max() for m in small]) == pytest.approx(2.5, rel=0.2)


def test_min_objects_fills_masks_of_a_rare_object_set():
    """One disc in one of eight images (a defect set): most masks are empty unless a floor is set."""
    masks = _disc_masks(n_images=1, per_image=1) + [np.zeros((128, 128), np.int32)] * 7
    bank = build_shape_bank(masks, ShapeBankConfig(min_area=12))
    plain = generate_placement_masks(bank, _cfg(border_truncation=True), seed=0, indices=range(40))
    floor = generate_placement_masks(bank, _cfg(border_truncation=True, min_objects=2), seed=0, indices=range(40))
    assert np.mean([m.max() == 0 for m in plain]) > 0.5
    assert min(int(m.max()) for m in floor) >= 2
    again = generate_placement_masks(bank, _cfg(border_truncation=True, min_objects=2), seed=0, indices=[5])
    assert np.array_equal(again[0], floor[5])


def test_border_truncation_cuts_shapes_only_when_enabled(disc_bank):
    def border_objects(masks):
        return sum(len(np.unique(np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]]))) - 1 for m in masks)

    cut = generate_placement_masks(disc_bank, _cfg(border_truncation=True), seed=2, indices=range(20))
    whole = generate_placement_masks(disc_bank, _cfg(border_truncation=False), seed=2, indices=range(20))
    assert border_objects(cut) > 0 and border_objects(whole) == 0
    assert all(_object_areas(m).min() >= 12 for m in cut if m.max())  # slivers under min_area dropped


def test_resume_skips_done_shards_and_redoes_a_partial_one(disc_bank, tmp_path):
    cfg = _cfg(border_truncation=True)
    out = tmp_path / "store"
    first = write_placement_masks(disc_bank, out, cfg, count=20, seed=9, shard_size=5, workers=1, progress=False)
    reference = [first[i] for i in range(20)]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*")}
    # a killed writer: shard 2's data is garbage and its manifest piece never got written
    (out / "shard_00002.parquet").unlink()
    (out / "shard_00002.npz").write_bytes(b"partial")
    (out / "manifest.parquet").unlink()
    again = write_placement_masks(disc_bank, out, cfg, count=20, seed=9, shard_size=5, workers=1, progress=False)
    assert all(np.array_equal(again[i], reference[i]) for i in range(20))
    for name, t in mtimes.items():
        if not name.startswith("shard_00002"):
            assert (out / name).stat().st_mtime_ns == t, f"{name} was rewritten"
    assert (out / "shard_00002.npz").stat().st_size > 100
    assert len(MaskStore(out)) == 20


def test_empty_bank_is_a_user_error():
    from pipeline.data.images import InputError

    bank = build_shape_bank([np.zeros((32, 32), np.int32)])
    with pytest.raises(InputError, match="shape bank is empty"):
        PlacementSampler.from_bank(bank, _cfg())


def test_cli_writes_masks_bank_and_stats(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.data.demo import render_demo_set

    demo = render_demo_set(tmp_path / "demo", n_images=10, size=64, seed=0)
    out = tmp_path / "masks"
    args = ["masks", "--set", str(demo), "--out", str(out), "--count", "12", "--size", "48", "--seed", "1",
            "--workers", "1", "--config", "smoke", "runtime.progress=false", "--stats"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(MaskStore(out)) == 12 and MaskStore(out)[0].shape == (48, 48)
    assert (out / "shape_bank" / "bank.json").is_file()
    for name in ("mask_stats.csv", "mask_stats.png", "mask_grid.png"):
        assert (out / "stats" / name).stat().st_size > 0
    result = CliRunner().invoke(app, ["shape-bank", str(demo), str(tmp_path / "bank"), "--config", "smoke",
                                      "shape_bank.min_area=1000000"])
    assert result.exit_code == 0, result.output
    assert "shape bank: 0 shapes from" in result.output  # the positional override reached the config
    # the old -o/--override still works (hidden, deprecated), and positional overrides win over it
    result = CliRunner().invoke(app, ["shape-bank", str(demo), str(tmp_path / "bank2"), "--config", "smoke",
                                      "-o", "shape_bank.min_area=1000000", "shape_bank.min_area=1"])
    assert result.exit_code == 0, result.output
    assert "shape bank: 0 shapes" not in result.output and "shapes from" in result.output


def test_cli_refuses_an_invalid_set(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    (bad / "images" / "a.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["masks", "--set", str(bad), "--out", str(tmp_path / "o"), "--count", "2"])
    assert result.exit_code != 0
    assert "a.png" in result.output and "Traceback" not in result.output


def _paired_disc_masks(n_images: int = 4, pairs: int = 5, size: int = 128) -> list[np.ndarray]:
    """Training masks whose discs all come in touching pairs (a clustered set)."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n_images):
        mask = np.zeros((size, size), np.int32)
        k = 0
        while k < 2 * pairs:
            cy, cx = rng.integers(DISC_RADIUS + 2, size - 3 * DISC_RADIUS - 4, 2)
            patch = np.zeros_like(mask, np.uint8)
            cv2.circle(patch, (int(cx), int(cy)), DISC_RADIUS, 1, -1)
            cv2.circle(patch, (int(cx) + 2 * DISC_RADIUS + 1, int(cy)), DISC_RADIUS, 2, -1)
            if (mask[cv2.dilate(patch, np.ones((3, 3), np.uint8)) > 0] == 0).all():
                mask[patch == 1], mask[patch == 2] = k + 1, k + 2
                k += 2
        out.append(mask)
    return out


def test_bank_counts_touching_neighbours(disc_bank):
    paired = build_shape_bank(_paired_disc_masks(), ShapeBankConfig(min_area=12))
    assert (paired.shapes["touching_neighbours"] == 1).all()
    assert (disc_bank.shapes["touching_neighbours"] == 0).all()


def test_clustering_auto_copies_how_often_real_objects_touch(disc_bank):
    """A set whose objects all touch gets canvases where most objects touch; a set whose objects
    never touch gets no attaching at all (its canvases are those of clustering 0)."""
    from pipeline.masks.placement import touching_fraction

    paired = build_shape_bank(_paired_disc_masks(), ShapeBankConfig(min_area=12))
    cfg = _cfg(size=128, border_truncation=True)
    clustered = PlacementSampler.from_bank(paired, cfg)
    assert clustered.attach.min() > 0.5
    on = generate_placement_masks(paired, cfg, seed=2, indices=range(60))
    off = generate_placement_masks(paired, cfg.model_copy(update={"clustering": 0.0}), seed=2, indices=range(60))
    assert touching_fraction(on) > 0.75 > 0.4 > touching_fraction(off)
    # attaching never cuts a shape under overlap "touch": every disc keeps its full area
    inner = generate_placement_masks(paired, _cfg(size=128), seed=2, indices=range(30))
    assert touching_fraction(inner) > 0.6
    assert np.concatenate([_object_areas(m) for m in inner]).min() >= 0.85 * np.pi * DISC_RADIUS**2

    apart = PlacementSampler.from_bank(disc_bank, cfg)
    assert not apart.attach.any()
    a = generate_placement_masks(disc_bank, cfg, seed=2, indices=range(5))
    b = generate_placement_masks(disc_bank, cfg.model_copy(update={"clustering": 0.0}), seed=2, indices=range(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_clustering_is_reproducible_and_off_under_overlap_none(disc_bank):
    paired = build_shape_bank(_paired_disc_masks(), ShapeBankConfig(min_area=12))
    cfg = _cfg(size=128, clustering=0.8)
    a = generate_placement_masks(paired, cfg, seed=3, indices=[0, 4])
    b = generate_placement_masks(paired, cfg, seed=3, indices=[4])
    assert np.array_equal(a[1], b[0])
    assert PlacementSampler.from_bank(paired, _cfg(overlap="none", clustering=0.8)).attach is None
    with pytest.raises(ValueError):
        MasksConfig(clustering=1.5)
