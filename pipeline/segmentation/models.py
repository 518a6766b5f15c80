"""Segmentation networks: any segmentation-models-pytorch architecture, never downloading weights.

Encoder weights are either absent (random init) or a local file, so runs are reproducible offline
and nothing is fetched behind the user's back.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data.images import InputError


def architectures() -> list[str]:
    import segmentation_models_pytorch as smp

    return sorted(smp.MODEL_ARCHITECTURES_MAPPING)


def create_model(
    arch: str,
    encoder: str,
    in_channels: int,
    classes: int,
    encoder_weights: str | Path | None = None,
) -> nn.Module:
    """An smp model by architecture name (case-insensitive, e.g. ``Unet``, ``Linknet``).

    ``encoder_weights`` is None or the path of a local encoder state dict (loaded with
    ``weights_only=True``); smp's download names such as ``imagenet`` are refused.
    """
    import segmentation_models_pytorch as smp

    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise InputError(f"segmentation.arch={arch}: unknown architecture; known: {', '.join(architectures())}")
    try:
        model = smp.create_model(
            arch, encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes
        )
    except KeyError:
        raise InputError(f"segmentation.encoder={encoder}: unknown encoder for smp") from None
    if encoder_weights is not None:
        load_encoder_weights(model, Path(encoder_weights))
    return model


def load_encoder_weights(model: nn.Module, path: Path) -> None:
    """Load a local encoder state dict; keys may carry an ``encoder.`` prefix (a whole-model dict)."""
    from ..io import load_user_torch

    state = load_user_torch(path, "encoder weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict of tensors")
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    own = model.encoder.state_dict()
    matched = [k for k in state if k in own]
    if not matched:
        raise InputError(f"{path}: no parameter names match the {type(model.encoder).__name__} encoder")
    bad = [k for k in matched if state[k].shape != own[k].shape]
    if bad:
        raise InputError(
            f"{path}: shape mismatch for {bad[0]} ({tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}); "
            "was it made for another encoder or channel count?"
        )
    missing = [k for k in own if k not in state]
    if missing:
        raise InputError(f"{path}: encoder weights lack {len(missing)} parameter(s), e.g. {missing[0]}")
    model.encoder.load_state_dict({k: state[k] for k in own}, strict=True)
