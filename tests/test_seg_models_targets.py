"""Model factory, training targets and post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.seg_data import FAST_ENCODER, touching_squares

from pipeline.data.images import InputError
from pipeline.io import save_torch
from pipeline.segmentation.models import create_model
from pipeline.segmentation.postprocess import instances_from_probs
from pipeline.segmentation.targets import make_target, n_target_channels


@pytest.mark.parametrize("arch", ["Unet", "Linknet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_factory_builds_any_arch_and_channel_count(arch, channels):
    model = create_model(arch, FAST_ENCODER, channels, 2).eval()
    with torch.no_grad():
        out = model(torch.rand(1, channels, 64, 96))
    assert out.shape == (1, 2, 64, 96)


def test_factory_resnet18_and_local_encoder_weights(tmp_path):
    source = create_model("linknet", "resnet18", 1, 1)
    save_torch(tmp_path / "enc.pt", source.encoder.state_dict())
    model = create_model("Unet", "resnet18", 1, 2, encoder_weights=tmp_path / "enc.pt")
    for name, tensor in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor)
    with pytest.raises(InputError, match="not found"):
        create_model("Unet", "resnet18", 1, 2, encoder_weights=tmp_path / "missing.pt")
    with pytest.raises(InputError, match="shape mismatch"):
        create_model("Unet", "resnet18", 3, 2, encoder_weights=tmp_path / "enc.pt")
    with pytest.raises(InputError, match="unknown architecture"):
        create_model("NoSuchNet", "resnet18", 1, 1)


def test_boundary_target_separates_touching_objects():
    mask = touching_squares()
    target = make_target(mask, "boundary")
    assert target.shape == (n_target_channels("boundary"), 40, 40)
    fg, edge = target
    assert edge[20, 19] == 1 and edge[20, 20] == 1  # one boundary pixel on each side of the contact
    assert fg[20, 19] == 0 and fg[20, 18] == 1 and fg.sum() + edge.sum() == (mask > 0).sum()
    assert make_target(mask, "binary").shape == (1, 40, 40)


def test_watershed_splits_touching_squares_binary_merges_them():
    mask = touching_squares()
    boundary_probs = make_target(mask, "boundary")  # perfect network output
    split = instances_from_probs(boundary_probs, "boundary", min_object_area=8)
    assert split.max() == 2
    assert np.array_equal(split > 0, mask > 0)  # boundary pixels are given back to their objects
    assert len(np.unique(split[mask == 1])) == 1 and len(np.unique(split[mask == 2])) == 1
    merged = instances_from_probs(make_target(mask, "binary"), "binary")
    assert merged.max() == 1


def test_small_objects_are_dropped():
    probs = np.zeros((1, 20, 20), np.float32)
    probs[0, 2:4, 2:4] = 1  # 4 px
    probs[0, 10:16, 10:16] = 1  # 36 px
    labels = instances_from_probs(probs, "binary", min_object_area=8)
    assert labels.max() == 1 and labels[12, 12] == 1 and labels.dtype == np.int32


def test_auto_min_area_follows_training_objects():
    import numpy as np

    from pipeline.config import Config
    from pipeline.segmentation.postprocess import auto_min_area, resolve_min_area

    m = np.zeros((100, 100), np.int32)
    m[:20, :20] = 1  # 400 px
    m[50:70, 50:70] = 2
    assert auto_min_area([m]) == 100
    assert auto_min_area([np.zeros((5, 5), np.int32)]) == 8
    cfg = resolve_min_area(Config(), [m])
    assert cfg.evaluation.min_object_area == 100 and Config().evaluation.min_object_area == "auto"
