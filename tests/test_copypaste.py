import cv2
import numpy as np
import pytest
from skimage.measure import label as connected_pieces

from pipeline.config import GenerationConfig
from pipeline.data.store import MaskStore, PairStore
from pipeline.errors import InputError
from pipeline.generators.copypaste import CopyPasteBank, build_copypaste_bank, generate_copypaste_pairs
from pipeline.generators.paste import blend_into
from pipeline.generators.simple_copypaste import generate_simple_copypaste_pairs

BG = 0.2


def _pairs(channels):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(3):
        img = np.full((48, 48, channels), BG, np.float32)
        mask = np.zeros((48, 48), np.int32)
        for k in range(1, 4):
            y, x = rng.integers(0, 38, 2)
            mask[y : y + 8, x : x + 8] = k
        img[mask > 0] = 0.9  # bright objects on a dark belt
        out.append((img, mask))
    return out


def _textured_pairs(n=3, side=48, square=8, seed=0):
    """Dark belt, interior squares with a random texture in 0.5..1.0 (every pixel value unique
    enough that a pasted pixel can be traced back to its source object)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((side, side, 1), BG, np.float32)
        mask = np.zeros((side, side), np.int32)
        for k, (y, x) in enumerate([(4, 4), (4, side - 4 - square), (side - 4 - square, side // 2 - square // 2)], 1):
            mask[y : y + square, x : x + square] = k
            img[y : y + square, x : x + square, 0] = rng.integers(128, 256, (square, square)) / 255.0
        out.append((img, mask))
    return out


def _mask_store(root, masks):
    store = MaskStore(root)
    store.write_shard(0, masks, [{"index": i, "source": "placement"} for i in range(len(masks))])
    store.finalize()
    return store


def _layout(size=40):
    m = np.zeros((size, size), np.int32)
    m[4:12, 4:12] = 1  # 8x8 like every bank object: scale 1, so pixels are copied exactly
    m[20:28, 22:30] = 2
    m[30:38, 6:14] = 3
    return m


def _rim(labels, px):
    """Pixels within px (Chebyshev) of a place where the label map changes."""
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    return cv2.dilate(edge.astype(np.uint8), np.ones((2 * px + 1,) * 2, np.uint8)) > 0


def test_copypaste_box_mode_keeps_the_layout_and_resumes(tmp_path):
    bank = build_copypaste_bank(_pairs(1), tmp_path / "bank")
    m = np.zeros((32, 32), np.uint16)
    m[4:14, 4:14] = 1
    m[18:28, 16:30] = 2
    masks = _mask_store(tmp_path / "masks", [m, m, m])
    cfg = GenerationConfig(count=3, shard_size=2, styles_per_mask=2, seed=5, copypaste_mode="box")
    store = generate_copypaste_pairs(bank, masks, tmp_path / "pairs", cfg, progress=False)
    assert len(store) == 6 and set(store.manifest.mask_source) == {"placement"}
    image, mask = store[0]
    assert image.shape == (32, 32, 1) and np.array_equal(mask, m)
    # object pixels carry the bright object texture; background was inpainted from the dark belt
    assert image[mask > 0].mean() > 0.8 and image[mask == 0].mean() < 0.4
    first = (tmp_path / "pairs" / "shard_00000" / "0000000_image.png").stat().st_mtime_ns
    again = generate_copypaste_pairs(bank, masks, tmp_path / "pairs", cfg, progress=False)
    assert (tmp_path / "pairs" / "shard_00000" / "0000000_image.png").stat().st_mtime_ns == first
    assert np.array_equal(PairStore(tmp_path / "pairs")[3][0], again[3][0])


def test_copypaste_rgb(tmp_path):
    bank = build_copypaste_bank(_pairs(3), tmp_path / "bank")
    m = np.zeros((20, 20), np.uint16)
    m[2:9, 2:9] = 1
    masks = _mask_store(tmp_path / "masks", [m])
    for mode in ("box", "object"):
        store = generate_copypaste_pairs(bank, masks, tmp_path / mode, GenerationConfig(count=1, copypaste_mode=mode),
                                         progress=False)
        assert store[0][0].shape == (20, 20, 3) and store[0][1].max() >= 1


def test_object_mode_mask_is_exactly_the_pasted_objects(tmp_path):
    pairs = _textured_pairs()
    bank = CopyPasteBank(build_copypaste_bank(pairs, tmp_path / "bank"))
    source_pixels = [np.sort(np.rint(img[mask == k, 0] * 255)) for img, mask in pairs for k in range(1, 4)]
    cfg = GenerationConfig(copypaste_background="inpaint", copypaste_blend="none", copypaste_rotation="rot90")
    layout = _layout()
    for i in range(4):
        image, labels = bank.render_objects(layout, np.random.default_rng([1, i]), cfg)
        assert labels.max() == 3 and set(np.unique(labels)) == {0, 1, 2, 3}
        pix = np.rint(image[:, :, 0] * 255)
        # the background is drawn first, so an empty layout with the same seed shows it bare
        bare, _ = bank.render_objects(np.zeros_like(layout), np.random.default_rng([1, i]), cfg)
        # the label map is exactly where real object pixels went
        assert np.array_equal(pix != np.rint(bare[:, :, 0] * 255), labels > 0)
        for k in range(1, 4):
            assert (labels == k).sum() == 64
            # every pixel of an output object is one source object's pixels (rotated / flipped)
            assert any(np.array_equal(np.sort(pix[labels == k]), s) for s in source_pixels)


def test_object_mode_later_pastes_occlude_and_real_background_stays_labeled(tmp_path):
    # one real image = the canvas: a 12x12 object in the middle, symmetric under the window flips
    img = np.full((32, 32, 1), BG, np.float32)
    real = np.zeros((32, 32), np.int32)
    real[10:22, 10:22] = 1
    img[real > 0] = 0.8
    bank = CopyPasteBank(build_copypaste_bank([(img, real)], tmp_path / "bank"))
    layout = np.zeros((32, 32), np.int32)
    layout[16:28, 16:28] = 1  # overlaps the real object's lower right quarter
    cfg = GenerationConfig(copypaste_background="real", copypaste_blend="none", copypaste_rotation="none")
    image, labels = bank.render_objects(layout, np.random.default_rng(0), cfg)
    pasted = labels[20, 20]
    assert pasted > 0 and np.array_equal(labels == pasted, layout == 1)
    kept = labels[12, 12]
    assert kept not in (0, pasted)
    assert np.array_equal(labels == kept, (real == 1) & (layout == 0))  # the real object, minus the occluded part
    assert labels.max() == 2


def test_feathering_changes_only_a_rim_and_poisson_falls_back_at_borders(tmp_path):
    bank = CopyPasteBank(build_copypaste_bank(_textured_pairs(), tmp_path / "bank"))
    layout = _layout()
    for background in ("inpaint", "real"):
        hard_cfg = GenerationConfig(copypaste_background=background, copypaste_blend="none")
        hard, labels = bank.render_objects(layout, np.random.default_rng(7), hard_cfg)
        for px in (1, 2):
            soft, soft_labels = bank.render_objects(
                layout, np.random.default_rng(7), hard_cfg.model_copy(update={"copypaste_blend": "feather",
                                                                              "copypaste_feather_px": px}))
            assert np.array_equal(labels, soft_labels)  # the label stays the hard mask
            changed = np.abs(soft - hard).max(axis=2) > 1e-6
            assert changed.any() and not (changed & ~_rim(labels, px)).any()
    # Poisson: used away from the canvas border (and changes only the grown mask there), refused at it
    canvas = np.full((40, 40, 1), 100.0, np.float32)
    patch = np.full((12, 12, 1), 200.0, np.float32)
    hard = np.zeros((12, 12), bool)
    hard[4:8, 4:8] = True
    assert blend_into(canvas, 14, 14, patch, hard, "poisson", 1) == "poisson"
    assert (canvas != 100).any() and (canvas[:14] == 100).all() and (canvas[:, 26:] == 100).all()
    assert blend_into(canvas.copy(), 0, 0, patch, hard, "poisson", 1) == "feather"


def test_copypaste_is_deterministic_per_index_whatever_the_sharding(tmp_path):
    bank = build_copypaste_bank(_textured_pairs(), tmp_path / "bank")
    layouts = [np.roll(_layout(), s, axis=1) for s in range(5)]
    masks = _mask_store(tmp_path / "masks", layouts)
    a = generate_copypaste_pairs(bank, masks, tmp_path / "a", GenerationConfig(shard_size=2, seed=3), progress=False)
    b = generate_copypaste_pairs(bank, masks, tmp_path / "b", GenerationConfig(shard_size=3, seed=3), progress=False)
    (tmp_path / "b" / "shard_00001.parquet").unlink()  # a killed run: shard 1 is written again on resume
    b = generate_copypaste_pairs(bank, masks, tmp_path / "b", GenerationConfig(shard_size=3, seed=3), progress=False)
    assert len(a) == len(b) == 5 and a.manifest.generator.eq("copypaste").all()
    for i in range(5):
        (ia, ma), (ib, mb) = a[i], b[i]
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)
        assert ma.max() >= 1 and set(np.unique(ma)) == set(range(ma.max() + 1))
    assert not np.array_equal(a[0][0], a[1][0])


def test_object_mode_refuses_an_old_bank(tmp_path):
    old = tmp_path / "copypaste_bank.npz"
    crop = np.full((4, 4, 1), 200, np.uint8)
    np.savez(old, crop_flat=crop.ravel(), crop_shapes=np.array([crop.shape]), mask_flat=np.ones(16, np.uint8),
             mask_shapes=np.array([(4, 4, 1)]), bg_flat=np.zeros(400, np.uint8), bg_shapes=np.array([(20, 20, 1)]))
    masks = _mask_store(tmp_path / "masks", [_layout(20)])
    with pytest.raises(InputError, match="older format"):
        generate_copypaste_pairs(old, masks, tmp_path / "p", GenerationConfig(), progress=False)
    box = generate_copypaste_pairs(old, masks, tmp_path / "p", GenerationConfig(copypaste_mode="box"), progress=False)
    assert np.array_equal(box[0][1], _layout(20))


def _simple_pairs():
    """Three 40x40 images with one 10x10 object each, a distinct flat value per image."""
    out = []
    for i in range(3):
        img = np.full((40, 40, 1), 0.1, np.float32)
        mask = np.zeros((40, 40), np.int32)
        y, x = 6 + 8 * i, 20 - 4 * i
        mask[y : y + 10, x : x + 10] = 1
        img[mask > 0] = 0.4 + 0.2 * i
        out.append((img, mask))
    return out


def test_simple_copypaste_labels_scale_and_determinism(tmp_path):
    pairs = _simple_pairs()
    lo, hi = 0.5, 1.5
    cfg = GenerationConfig(simple_cp_scale=[lo, hi], shard_size=4, copypaste_blend="none")
    store = generate_simple_copypaste_pairs(pairs, tmp_path / "a", cfg, size=40, count=10, seed=2, min_area=12,
                                            progress=False)
    frame = store.manifest
    assert len(store) == 10 and frame.generator.eq("simple_copypaste").all()
    assert {"index", "mask_index", "mask_source", "checkpoint", "seed", "style", "scale"} <= set(frame.columns)
    assert frame.scale.between(lo, hi).all() and (frame.paste_index != frame.background_index).all()
    whole = 0
    for i in range(len(store)):
        image, labels = store[i]
        n = labels.max()
        assert set(np.unique(labels)) == set(range(n + 1))  # consecutive ids
        pieces = connected_pieces(labels, background=0, connectivity=2)
        assert pieces.max() == n and np.bincount(pieces.ravel())[1:].min() >= 12  # one piece each, none tiny
        row = frame.iloc[i]
        assert row.objects_pasted == 1
        value = 0.4 + 0.2 * row.paste_index  # A's object, pasted on top, keeps its flat value inside
        inside = np.abs(image[:, :, 0] - value) < 1 / 255
        assert len(np.unique(labels[inside])) == 1 and labels[inside][0] > 0
        pasted = labels == labels[inside][0]
        side = 10 * row.scale
        assert pasted.sum() <= (side + 1) ** 2
        ys, xs = np.nonzero(pasted)
        if ys.min() > 0 and xs.min() > 0 and ys.max() < 39 and xs.max() < 39:  # not cut by the canvas edge
            assert (side - 1) ** 2 <= pasted.sum()
            whole += 1
    assert whole >= 3
    again = generate_simple_copypaste_pairs(pairs, tmp_path / "b", cfg.model_copy(update={"shard_size": 3}), size=40,
                                            count=10, seed=2, min_area=12, progress=False)
    for i in range(10):
        assert np.array_equal(store[i][0], again[i][0]) and np.array_equal(store[i][1], again[i][1])


def test_simple_copypaste_scale_option_is_checked():
    with pytest.raises(ValueError):
        GenerationConfig(simple_cp_scale=[1.5, 0.5])
    with pytest.raises(ValueError):
        GenerationConfig(simple_cp_scale=[0.0, 1.0])
