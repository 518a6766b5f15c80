"""Batched mask -> image generation into a :class:`PairStore`, shard by shard, resumable.

The EMA generator is exported for inference (discriminators dropped, spectral norm folded into
plain weights, channels_last, bf16 autocast on CUDA, optional ``torch.compile``). Output ``i`` uses
mask ``(i // styles) % len(masks)`` and style ``i % styles`` (+ ``styles`` per wrap-around of the
masks); its style vector comes from a private
``torch.Generator`` seeded by (seed, mask index, style), so every image is reproducible on its own,
independent of batch size, shard size or resume points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..config import GenerationConfig, GeneratorConfig
from ..data.store import MaskStore, PairStore, shard_ranges
from ..device import autocast, pick_device
from ..errors import InputError
from ..hashing import file_hash
from ..io import load_user_torch, read_json, write_json
from .base import mask_to_input
from .registry import create_generator


def load_generator(checkpoint: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """(inference module ``forward(mask_input, z) -> image in [-1, 1]``, checkpoint metadata)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: generator checkpoint not found")
    st = load_user_torch(checkpoint, "generator checkpoint")  # any file: one line, never a traceback
    try:
        gcfg = GeneratorConfig.model_validate({**st["generator_cfg"], "vgg_weights": None})  # VGG: training only
        model = create_generator(st["model_name"], int(st["in_mask_channels"]), int(st["out_channels"]), gcfg)
        model.load_state_dict(st["model"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise InputError(f"{checkpoint}: not a generator checkpoint of this pipeline ({type(e).__name__})") from None
    model.load_state_dict(st["ema"], strict=False)  # generate with the EMA weights
    gen = model.export_generator().to(device).to(memory_format=torch.channels_last)
    meta = {k: st[k] for k in ("model_name", "out_channels", "step", "finished")}
    return gen, meta


def style_vector(z_dim: int, seed: int, mask_index: int, style: int) -> torch.Tensor:
    seq = np.random.SeedSequence([seed, mask_index, style]).generate_state(2, dtype=np.uint64)
    gen = torch.Generator().manual_seed(int(seq[0] % (2**63)))
    return torch.randn(z_dim, generator=gen)


@torch.inference_mode()
def _run(gen: nn.Module, masks: list[np.ndarray], zs: torch.Tensor | None, device: torch.device, amp: bool) -> list[np.ndarray]:
    x = mask_to_input(torch.from_numpy(np.stack(masks)).long()).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        out = gen(x, zs.to(device) if zs is not None else None).float()
    arr = ((out + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arr]


def generate_pairs(
    checkpoint: Path,
    masks: MaskStore,
    out_dir: Path,
    cfg: GenerationConfig,
    device: torch.device | None = None,
    progress: bool = True,
) -> PairStore:
    """Write ``cfg.count`` synthetic (image, mask) pairs; finished shards of a previous call are kept."""
    from tqdm.auto import tqdm

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    device = device or pick_device("auto")
    n_masks = len(masks)
    if n_masks == 0:
        raise InputError(f"{masks.root}: mask store is empty")
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: generator checkpoint not found")
    sha = file_hash(checkpoint, 12)
    info = {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha,
        "masks": str(masks.root),
        "mask_count": n_masks,
        "count": cfg.count,
        "seed": cfg.seed,
        "styles_per_mask": cfg.styles_per_mask,
        "shard_size": cfg.shard_size,
    }
    info_path = out_dir / "generation.json"
    if info_path.is_file():
        old = read_json(info_path)
        # paths may move; what the pairs are made of may not (count: finished shards would be
        # passed off as another count; mask_count: absent from files of earlier versions)
        diff = [f"{k} {old.get(k)} -> {info[k]}" for k in info
                if k not in ("checkpoint", "masks") and (k in old or k != "mask_count") and old.get(k) != info[k]]
        if diff:
            raise InputError(f"{info_path}: folder holds pairs made with other settings ({', '.join(diff)}); use another --out")

    done = PairStore(out_dir).completed_shards() if out_dir.is_dir() else set()
    todo = [s for s in shard_ranges(cfg.count, cfg.shard_size) if s[0] not in done]
    if todo:  # a file that is no checkpoint is refused before anything is written
        gen, meta = load_generator(checkpoint, device)
    store = PairStore(out_dir)
    write_json(info_path, info)
    if todo:
        if cfg.compile:
            gen = torch.compile(gen)
        z_dim = int(getattr(gen, "z_dim", 0))
        manifest = masks.manifest
        sources = manifest["source"].astype(str).tolist() if "source" in manifest else ["unknown"] * n_masks
        styles = cfg.styles_per_mask
        bar = tqdm(total=sum(b - a for _, a, b in todo), disable=not progress, desc="generate", unit="img")
        for k, start, stop in todo:
            images, out_masks, rows = [], [], []
            for b0 in range(start, stop, cfg.batch_size):
                idx = list(range(b0, min(b0 + cfg.batch_size, stop)))
                mids = [(i // styles) % n_masks for i in idx]
                # style number keeps growing when the masks wrap around, so reuse gets new styles
                sts = [i % styles + styles * (i // (styles * n_masks)) for i in idx]
                batch_masks = [masks[m] for m in mids]
                by_shape: dict[tuple[int, int], list[int]] = {}
                for j, m in enumerate(batch_masks):
                    by_shape.setdefault(m.shape, []).append(j)
                results: list[np.ndarray | None] = [None] * len(idx)
                for js in by_shape.values():
                    zs = torch.stack([style_vector(z_dim, cfg.seed, mids[j], sts[j]) for j in js]) if z_dim else None
                    for j, img in zip(js, _run(gen, [batch_masks[j] for j in js], zs, device, True)):
                        results[j] = img
                for j, i in enumerate(idx):
                    images.append(results[j])
                    out_masks.append(batch_masks[j])
                    rows.append({
                        "index": i,
                        "mask_index": mids[j],
                        "mask_source": sources[mids[j]],
                        "generator": meta["model_name"],
                        "checkpoint": str(checkpoint),
                        "checkpoint_sha256": sha,
                        "seed": cfg.seed,
                        "style": sts[j],
                    })
                bar.update(len(idx))
            store.write_shard(k, images, out_masks, rows)
        bar.close()
    store.finalize()
    return store
