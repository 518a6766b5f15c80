"""Filtering and re-sampling of synthetic pairs, in the spirit of FreeMask (Yang et al., NeurIPS 2023).

Why: a synthetic image does not always show what its mask says (an object rendered faintly, two
particles fused, texture where the mask has background). Pretraining on such pairs teaches the
network to find objects that are not there or to miss ones that are; the pretrained arms of the
study over-predict (many more predicted objects than the real-only model at equal recall), and
every extra object costs F1. A segmenter trained on real pairs only is the judge that needs no
extra labels: where it agrees with a pair's mask, image and mask fit together.

Two steps, kept apart so a score table can be looked at (or re-used with another keep fraction)
without running the network again:

* :func:`score_pairs` runs the real-only segmenter on every pair of a :class:`PairStore` and
  records per pair the object F1 / precision / recall against the pair's mask (the project's
  matching, :mod:`pipeline.evaluation.matching`), the mean per-pixel BCE of the segmenter's outputs
  against the pair's training target (:mod:`pipeline.segmentation.targets`), and layout
  indicators (object count, coverage, density, fraction of objects touching another).
* :func:`filter_pairs` writes a *new* PairStore with the best ``keep_fraction`` of the pairs by
  fidelity (ties: lower pixel loss), optionally adding copies of the hardest kept layouts (dense,
  touching objects) so they make up a larger share of what pretraining sees, plus a
  ``filtering.json`` summary. The source store is never modified.

FreeMask's second idea, ignoring single hard *pixels* in the loss, is not implemented: the
segmentation crops, augmentation and loss have no ignore label (docs/generators.md says what
adding one would take).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Config
from ..data.images import to_internal_image
from ..data.store import PairStore, shard_ranges
from ..device import autocast, configure, pick_device
from ..errors import InputError
from ..evaluation.matching import match_instances
from ..hashing import json_hash
from ..io import read_json, write_json
from ..segmentation.postprocess import POSTPROCESS_KEYS, instances_for_config
from ..segmentation.targets import make_target, pixel_bce
from ..segmentation.training import (
    TILE,
    is_channels_last,
    load_segmentation_model,
    normalize,
    predict_probabilities,
)

SUMMARY_FILE, PLAN_FILE = "filtering.json", "filter_plan.json"
# Columns of the source manifest that describe where a pair's file lies in *that* store; the
# filtered store writes its own, and keeps the source's index as ``source_index``.
_STORE_COLUMNS = ("index", "shard", "image", "mask")
_SCORE_COLUMNS = ("fidelity", "f1", "precision", "recall", "pixel_loss", "n_objects", "n_pred",
                  "coverage", "objects_per_kpx", "touching_fraction")


def layout_indicators(mask: np.ndarray) -> dict:
    """How hard a mask's layout is to segment: object count, foreground coverage, objects per 1000
    pixels (density), and the fraction of objects that touch another object (4-connectivity).

    Touching objects are what the boundary target and the watershed exist for, and dense layouts
    hold most of them; both are where a segmenter merges or splits objects."""
    mask = np.asarray(mask)
    ids = np.unique(mask)
    ids = ids[ids != 0]
    n = int(ids.size)
    touching: set[int] = set()
    for a, b in ((mask[:, :-1], mask[:, 1:]), (mask[:-1, :], mask[1:, :])):
        contact = (a != b) & (a > 0) & (b > 0)
        touching.update(np.unique(a[contact]).tolist())
        touching.update(np.unique(b[contact]).tolist())
    return {
        "n_objects": n,
        "coverage": float(np.count_nonzero(mask)) / max(1, mask.size),
        "objects_per_kpx": 1000.0 * n / max(1, mask.size),
        "touching_fraction": len(touching) / n if n else 0.0,
    }


def _batchable(shape: tuple[int, ...]) -> bool:
    """Images :func:`predict_probabilities` would neither pad nor tile: a stacked forward pass
    gives them the same outputs (the model is in eval mode, so no batch statistics)."""
    return shape[0] % 32 == 0 and shape[1] % 32 == 0 and shape[0] <= TILE and shape[1] <= TILE


@torch.inference_mode()
def batch_probabilities(
    model: torch.nn.Module, images: list[np.ndarray], device: torch.device, amp: bool = True
) -> list[np.ndarray]:
    """Sigmoid outputs ``C x H x W`` per image, as :func:`predict_probabilities` gives them, with
    images of one batchable shape in a single forward pass (synthetic stores hold 128 x 128 images:
    one pass per image would spend most CPU time on per-call overhead). Other images go one by one."""
    out: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for j, image in enumerate(images):
        if _batchable(image.shape):
            by_shape.setdefault(image.shape, []).append(j)
        else:
            out[j] = predict_probabilities(model, image, device, amp)
    for js in by_shape.values():
        x = torch.from_numpy(np.ascontiguousarray(np.stack([images[j] for j in js]).transpose(0, 3, 1, 2)))
        if is_channels_last(model):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(normalize(x.to(device)))
        probs = torch.sigmoid(logits.float()).cpu().numpy()
        for j, p in zip(js, probs):
            out[j] = p
    return out  # type: ignore[return-value]


def _fidelity(f1: float, n_true: int, n_pred: int) -> float:
    """Object F1, except that an empty mask with no predicted object is a perfect agreement (the
    matching convention scores that 0, which would rank faithful empty pairs last)."""
    return 1.0 if n_true == 0 and n_pred == 0 else f1


def score_pairs(
    segmenter_ckpt: Path,
    pair_dir: Path,
    cfg: Config,
    batch_size: int = 16,
    progress: bool = True,
    postprocess: dict | None = None,
) -> pd.DataFrame:
    """One row per pair of the PairStore at ``pair_dir``, in store order.

    ``segmenter_ckpt``: a checkpoint written by training (``best.pt`` of the real-only arm).
    ``postprocess``: the thresholds and ``min_object_area`` that arm was tuned with (its
    ``metrics.json`` holds them under these names); None uses ``cfg.evaluation`` (an ``auto``
    minimum area there falls back to 8 px, see :func:`instances_for_config`). Matching uses
    ``cfg.evaluation.iou_threshold``; inference follows ``cfg.runtime`` (device, threads,
    precision) and ``cfg.segmentation.amp``.

    Columns: ``row`` (position in the store), ``index`` (the store's pair index), the source's
    ``generator`` and ``mask_source`` where present, ``fidelity`` (see :func:`_fidelity`), ``f1``,
    ``precision``, ``recall``, ``tp``, ``n_pred``, ``pixel_loss`` (:func:`pixel_bce`), and
    :func:`layout_indicators` (``n_objects``, ``coverage``, ``objects_per_kpx``, ``touching_fraction``).
    """
    from tqdm.auto import tqdm

    store = _open_store(pair_dir)
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: must be at least 1")
    configure(cfg.runtime)
    device = pick_device(cfg.runtime.device)
    model, meta = load_segmentation_model(segmenter_ckpt, device)
    kind, channels = meta["target"], int(meta["in_channels"])
    ev = cfg.evaluation
    if postprocess:
        ev = ev.model_copy(update={k: postprocess[k] for k in POSTPROCESS_KEYS if postprocess.get(k) is not None})
    manifest = store.manifest
    carried = [c for c in ("generator", "mask_source") if c in manifest]
    rows = []
    bar = tqdm(total=len(store), desc="score pairs", unit="pair", disable=not (progress and cfg.runtime.progress))
    for start in range(0, len(store), batch_size):
        positions = range(start, min(start + batch_size, len(store)))
        pairs = [store[i] for i in positions]
        images = [to_internal_image(img, channels, pair_dir / str(manifest.iloc[i]["image"]))
                  for i, (img, _) in zip(positions, pairs)]
        probs_list = batch_probabilities(model, images, device, cfg.segmentation.amp)
        for i, (_, mask), probs in zip(positions, pairs, probs_list):
            pred = instances_for_config(probs, kind, ev)
            m = match_instances(mask, pred, ev.iou_threshold)
            layout = layout_indicators(mask)
            rows.append({
                "row": i,
                "index": int(manifest.iloc[i]["index"]),
                **{c: manifest.iloc[i][c] for c in carried},
                "fidelity": _fidelity(m.f1, m.n_true, m.n_pred),
                "f1": m.f1, "precision": m.precision, "recall": m.recall, "tp": m.tp, "n_pred": m.n_pred,
                "pixel_loss": pixel_bce(probs, make_target(mask, kind)),
                **layout,
            })
        bar.update(len(pairs))
    bar.close()
    return pd.DataFrame(rows)


def _open_store(pair_dir: Path) -> PairStore:
    pair_dir = Path(pair_dir)
    if not (pair_dir / "manifest.parquet").is_file():
        raise InputError(f"{pair_dir}: not a finished synthetic pair store (no manifest.parquet)")
    return PairStore(pair_dir)


def hardness(scores: pd.DataFrame) -> pd.Series:
    """Layout hardness of each row relative to the others: the mean of its percentile ranks in
    density (``objects_per_kpx``) and in ``touching_fraction``; in (0, 1], higher = harder.

    Ranks, not raw values: density and touching live on unrelated scales, and a rank says "harder
    than most pairs of this store" whatever the set's object sizes are."""
    return 0.5 * (scores["objects_per_kpx"].rank(pct=True) + scores["touching_fraction"].rank(pct=True))


def plan_filtering(scores: pd.DataFrame, keep_fraction: float, hard_oversample: float = 0.0) -> pd.DataFrame:
    """Which source rows the filtered store holds, in its order: the kept rows in source order, then
    the extra copies of hard layouts. Columns: ``row``, ``copy`` (0 = the kept pair itself,
    1, 2, ... = extra copies), ``hardness`` (among the kept pairs) and ``hard`` (in the pool copied from).

    * kept: the ``round(keep_fraction * n)`` pairs (at least 1) with the highest ``fidelity``; ties
      go to the lower ``pixel_loss``, then to the earlier row, so the choice is deterministic.
    * over-sampling: ``round(hard_oversample * kept)`` extra copies, taken in turn from the *hard
      pool* (kept pairs whose :func:`hardness` among the kept ones is above its median), hardest
      first; when there are more copies than pool pairs the turn starts again. With 1.0 the store
      doubles and the hard half of it makes up about 3/4 of the pairs instead of 1/2. Layouts that
      are all equally hard have an empty pool: no copies are added.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise InputError(f"keep_fraction={keep_fraction}: must be in (0, 1]")
    if hard_oversample < 0.0:
        raise InputError(f"hard_oversample={hard_oversample}: must be at least 0")
    n = len(scores)
    if n == 0:
        raise InputError("no scored pairs to filter")
    n_keep = max(1, min(n, int(round(keep_fraction * n))))
    ranked = scores.sort_values(["fidelity", "pixel_loss", "row"], ascending=[False, True, True], kind="mergesort")
    kept = ranked.head(n_keep).sort_values("row").copy()
    kept["hardness"] = hardness(kept).to_numpy()
    kept["hard"] = kept["hardness"] > kept["hardness"].median()
    plan = kept[["row", "hardness", "hard"]].assign(copy=0)
    n_extra = int(round(hard_oversample * n_keep))
    pool = kept[kept["hard"]].sort_values(["hardness", "fidelity", "row"], ascending=[False, False, True], kind="mergesort")
    if n_extra and len(pool):
        turns = np.arange(n_extra)
        extra = pool.iloc[turns % len(pool)][["row", "hardness", "hard"]].assign(copy=turns // len(pool) + 1)
        plan = pd.concat([plan, extra], ignore_index=True)
    return plan[["row", "copy", "hardness", "hard"]].reset_index(drop=True)


def _check_scores(store: PairStore, scores: pd.DataFrame, pair_dir: Path) -> None:
    needed = ("row", "index", "fidelity", "pixel_loss", "objects_per_kpx", "touching_fraction")
    missing = [c for c in needed if c not in scores]
    if missing:
        raise InputError(f"scores for {pair_dir}: missing column(s) {', '.join(missing)}; make them with score_pairs")
    same = len(scores) == len(store) and np.array_equal(scores["row"].to_numpy(), np.arange(len(store))) and \
        np.array_equal(scores["index"].to_numpy(), store.manifest["index"].to_numpy())
    if not same:
        raise InputError(f"scores do not belong to {pair_dir} ({len(scores)} scored rows, {len(store)} pairs); "
                         "score this store")


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def filter_pairs(
    pair_dir: Path,
    scores: pd.DataFrame,
    out_dir: Path,
    keep_fraction: float,
    hard_oversample: float = 0.0,
    shard_size: int = 256,
) -> PairStore:
    """Write the filtered (and optionally re-sampled) PairStore at ``out_dir`` and return it.

    ``scores``: :func:`score_pairs` of the store at ``pair_dir`` (checked to belong to it). Which
    pairs are kept and copied is :func:`plan_filtering`. Images and masks are read from the source
    and re-written unchanged (8-bit images survive the round trip exactly). Manifest columns: the
    new ``index``, ``source_index`` and ``source_row`` (where the pair came from), ``copy``, the
    pair's scores and ``hardness``, and the source's provenance columns (``generator``,
    ``mask_source``, ``checkpoint``, ``seed``, ``style``, ...). ``out_dir/filtering.json`` summarises
    the choice. Sharded and resumable like every store; a folder holding another filtering is refused.
    """
    pair_dir, out_dir = Path(pair_dir), Path(out_dir)
    if out_dir.resolve() == pair_dir.resolve():
        raise InputError(f"{out_dir}: the filtered store must go to a new folder, not the source store")
    if shard_size < 1:
        raise InputError(f"shard_size={shard_size}: must be at least 1")
    source = _open_store(pair_dir)
    _check_scores(source, scores, pair_dir)
    scores = scores.reset_index(drop=True)
    plan = plan_filtering(scores, keep_fraction, hard_oversample)

    plan_id = {"source": str(pair_dir.resolve()), "source_pairs": len(source), "shard_size": shard_size,
               "plan": json_hash(plan[["row", "copy"]].to_numpy().tolist())}
    if (out_dir / PLAN_FILE).is_file() and read_json(out_dir / PLAN_FILE) != plan_id:
        raise InputError(f"{out_dir}: folder holds another filtering (other source, scores or settings); use another folder")
    out = PairStore(out_dir)
    write_json(out_dir / PLAN_FILE, plan_id)

    manifest = source.manifest
    provenance = [c for c in manifest.columns if c not in _STORE_COLUMNS]
    score_cols = [c for c in _SCORE_COLUMNS if c in scores and c not in provenance]
    done = out.completed_shards()
    for k, start, stop in shard_ranges(len(plan), shard_size):
        if k in done:
            continue
        images, masks, rows = [], [], []
        for new_index in range(start, stop):
            step = plan.iloc[new_index]
            r = int(step["row"])
            image, mask = source[r]
            images.append(image)
            masks.append(mask)
            rows.append({
                "index": new_index,
                "source_index": int(manifest.iloc[r]["index"]),
                "source_row": r,
                "copy": int(step["copy"]),
                **{c: manifest.iloc[r][c] for c in provenance},
                **{c: scores.iloc[r][c] for c in score_cols},
                "hardness": float(step["hardness"]),
            })
        out.write_shard(k, images, masks, rows)
    out.finalize()
    write_json(out_dir / SUMMARY_FILE, filtering_summary(pair_dir, scores, plan, keep_fraction, hard_oversample))
    return out


def filtering_summary(pair_dir: Path, scores: pd.DataFrame, plan: pd.DataFrame, keep_fraction: float,
                      hard_oversample: float) -> dict:
    """What ``filtering.json`` holds: counts, the score thresholds the cut fell at, and the mean
    scores before and after (kept pairs once; and as written, with the copies)."""
    kept = scores.iloc[plan.loc[plan["copy"] == 0, "row"].to_numpy()]
    written = scores.iloc[plan["row"].to_numpy()]
    removed = scores.drop(index=kept.index)
    worst_kept = kept.sort_values(["fidelity", "pixel_loss"], ascending=[True, False]).iloc[0]
    summary = {
        "source": str(pair_dir),
        "pairs_in": len(scores),
        "kept": len(kept),
        "removed": len(removed),
        "copies_added": int((plan["copy"] > 0).sum()),
        "pairs_out": len(plan),
        "keep_fraction": keep_fraction,
        "kept_fraction": len(kept) / len(scores),
        "hard_oversample": hard_oversample,
        "hard_pool": int(plan.loc[plan["copy"] == 0, "hard"].sum()),
        "ranking": "fidelity (object F1 of the real-only segmenter vs the pair's mask) desc, pixel_loss asc, row asc",
        "thresholds": {
            "min_fidelity_kept": float(worst_kept["fidelity"]),
            "pixel_loss_at_cut": float(worst_kept["pixel_loss"]),
            "max_fidelity_removed": float(removed["fidelity"].max()) if len(removed) else None,
        },
        "mean_fidelity": {"before": _mean(scores["fidelity"]), "kept": _mean(kept["fidelity"]),
                          "removed": _mean(removed["fidelity"]), "written": _mean(written["fidelity"])},
        "mean_pixel_loss": {"before": _mean(scores["pixel_loss"]), "kept": _mean(kept["pixel_loss"]),
                            "removed": _mean(removed["pixel_loss"]), "written": _mean(written["pixel_loss"])},
        "mean_touching_fraction": {"before": _mean(scores["touching_fraction"]),
                                   "written": _mean(written["touching_fraction"])},
    }
    if "generator" in scores:
        summary["by_generator"] = {
            str(g): {"pairs_in": int((scores["generator"] == g).sum()), "kept": int((kept["generator"] == g).sum()),
                     "mean_fidelity_before": _mean(scores.loc[scores["generator"] == g, "fidelity"])}
            for g in sorted(scores["generator"].astype(str).unique())
        }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
