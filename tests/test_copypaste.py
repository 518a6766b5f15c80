import numpy as np

from pipeline.config import GenerationConfig
from pipeline.data.store import MaskStore, PairStore
from pipeline.generators.copypaste import build_copypaste_bank, generate_copypaste_pairs


def _pairs(channels):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(3):
        img = np.full((48, 48, channels), 0.2, np.float32)
        mask = np.zeros((48, 48), np.int32)
        for k in range(1, 4):
            y, x = rng.integers(0, 38, 2)
            mask[y : y + 8, x : x + 8] = k
        img[mask > 0] = 0.9  # bright objects on a dark belt
        out.append((img, mask))
    return out


def test_copypaste_objects_get_object_texture_and_resume(tmp_path):
    bank = build_copypaste_bank(_pairs(1), tmp_path / "bank")
    masks = MaskStore(tmp_path / "masks")
    m = np.zeros((32, 32), np.uint16)
    m[4:14, 4:14] = 1
    m[18:28, 16:30] = 2
    masks.write_shard(0, [m, m, m], [{"index": i, "source": "placement"} for i in range(3)])
    masks.finalize()
    cfg = GenerationConfig(count=3, shard_size=2, styles_per_mask=2, seed=5)
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
    masks = MaskStore(tmp_path / "masks")
    m = np.zeros((20, 20), np.uint16)
    m[2:9, 2:9] = 1
    masks.write_shard(0, [m], [{"index": 0, "source": "placement"}])
    masks.finalize()
    store = generate_copypaste_pairs(bank, masks, tmp_path / "p", GenerationConfig(count=1), progress=False)
    assert store[0][0].shape == (20, 20, 3)
