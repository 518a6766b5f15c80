"""Generation into a PairStore (determinism, provenance, shard resume) and the quality metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from test_generators_base import toy_pairs
from test_generators_training import make_cfg

from pipeline.config import GenerationConfig
from pipeline.data.images import InputError
from pipeline.data.store import MaskStore
from pipeline.generators.generate import generate_pairs, load_generator
from pipeline.generators.losses import load_vgg19_features
from pipeline.generators.quality import diversity, mask_fidelity, realism_c2st
from pipeline.generators.training_loop import train_generator
from pipeline.hashing import file_hash

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vae_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    return train_generator(make_cfg(steps=2, use_vae=True), toy_pairs(4, 40, 40), d / "run", progress=False)


@pytest.fixture(scope="module")
def mask_store(tmp_path_factory):
    store = MaskStore(tmp_path_factory.mktemp("masks") / "store")
    masks = [m for _, m in toy_pairs(6, 40, 40, seed=3)]
    store.write_shard(0, masks[:4], [{"index": i, "source": "placement"} for i in range(4)])
    store.write_shard(1, masks[4:], [{"index": i, "source": "segmodel"} for i in range(4, 6)])
    store.finalize()
    return store


def _images(store):
    return [store[i][0] for i in range(len(store))]


def test_generation_provenance_and_determinism(vae_ckpt, mask_store, tmp_path):
    cfg = GenerationConfig(count=10, styles_per_mask=2, shard_size=4, batch_size=3, seed=5)
    store = generate_pairs(vae_ckpt, mask_store, tmp_path / "a", cfg, progress=False)
    man = store.manifest
    assert len(store) == 10 and sorted(store.completed_shards()) == [0, 1, 2]
    assert man["mask_index"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert man["style"].tolist() == [0, 1] * 5
    assert man["mask_source"].tolist() == ["placement"] * 8 + ["segmodel"] * 2
    assert set(man["generator"]) == {"spade"} and set(man["seed"]) == {5}
    assert set(man["checkpoint_sha256"]) == {file_hash(vae_ckpt, 12)}
    img, mask = store[3]
    assert img.shape == (40, 40, 1) and np.array_equal(mask, mask_store[1])
    assert not np.array_equal(store[2][0], store[3][0])  # two styles of one mask differ (VAE)
    # another batch size and shard size give the same images: each depends on (seed, mask, style) only
    other = generate_pairs(vae_ckpt, mask_store, tmp_path / "b", cfg.model_copy(update={"batch_size": 7, "shard_size": 5}), progress=False)
    for x, y in zip(_images(store), _images(other)):
        np.testing.assert_array_equal(x, y)


def test_generation_resume_skips_done_shards_and_redoes_partial(vae_ckpt, mask_store, tmp_path):
    cfg = GenerationConfig(count=8, styles_per_mask=1, shard_size=4, batch_size=4, seed=0)
    out = tmp_path / "pairs"
    reference = _images(generate_pairs(vae_ckpt, mask_store, out, cfg, progress=False))
    done_file = out / "shard_00000" / "0000000_image.png"
    stamp = done_file.stat().st_mtime_ns
    # simulate a kill inside shard 1: manifest piece missing, a half-written file left behind
    (out / "shard_00001.parquet").unlink()
    (out / "manifest.parquet").unlink()
    (out / "shard_00001" / "0000005_image.png").write_bytes(b"\x89PNG garbage")
    store = generate_pairs(vae_ckpt, mask_store, out, cfg, progress=False)
    assert done_file.stat().st_mtime_ns == stamp  # finished shard untouched
    for x, y in zip(reference, _images(store)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(InputError, match="other settings"):
        generate_pairs(vae_ckpt, mask_store, out, cfg.model_copy(update={"seed": 1}), progress=False)


def test_exported_generator_and_diversity(vae_ckpt, mask_store, tmp_path):
    gen, meta = load_generator(vae_ckpt)
    assert meta["model_name"] == "spade" and gen.z_dim > 0
    div = diversity(vae_ckpt, [mask_store[0], mask_store[1]], n_styles=3)
    assert div["stochastic"] and div["pixel_l1"] > 0 and div["feature_distance"] > 0
    det = train_generator(make_cfg(steps=1), toy_pairs(2, 32, 32), tmp_path / "det", progress=False)
    flat = diversity(det, [mask_store[0]], n_styles=2)
    assert not flat["stochastic"] and flat["pixel_l1"] == 0


def test_c2st_separates_different_sets_and_not_identical_ones():
    rng = np.random.default_rng(0)
    noise = [rng.random((48, 48, 1)).astype(np.float32) for _ in range(8)]
    noise2 = [rng.random((48, 48, 1)).astype(np.float32) for _ in range(8)]
    # "synthetic" = too smooth, the typical GAN failure: same mean, different texture
    smooth = [cv2.GaussianBlur(rng.random((48, 48)).astype(np.float32), (0, 0), 2)[..., None] for _ in range(8)]
    same = realism_c2st(noise, noise2, seed=0, crop=16, steps=80)
    diff = realism_c2st(noise, smooth, seed=0, crop=16, steps=80)
    assert diff["accuracy"] > 0.9
    assert 0.3 < same["accuracy"] < 0.7


def test_mask_fidelity_counts_matched_objects():
    true = np.zeros((10, 10), np.int32)
    true[1:4, 1:4], true[6:9, 6:9] = 1, 2
    pred = np.zeros_like(true)
    pred[1:4, 1:4] = 7  # same object, other id
    pred[0:2, 7:9] = 3  # a false positive
    pairs = [(np.zeros((10, 10, 1), np.float32), true)] * 3
    perfect = mask_fidelity(pairs, lambda imgs: [true] * len(imgs), batch_size=2)
    assert perfect["f1"] == 1.0 and perfect["n_true"] == 6
    half = mask_fidelity(pairs, lambda imgs: [pred] * len(imgs))
    assert half["precision"] == pytest.approx(0.5) and half["recall"] == pytest.approx(0.5)


def test_vgg_weights_must_be_a_local_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_vgg19_features(tmp_path / "missing.pth", torch.device("cpu"))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="not a torchvision vgg19"):
        load_vgg19_features(bad, torch.device("cpu"))
