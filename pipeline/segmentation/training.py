"""Training to a validation plateau (every phase of every arm) and whole-image inference.

One function serves every arm of the study (pipeline/segmentation/arms.py): it trains until the
validation object F1 stops improving, because a comparison taken while one arm is still climbing
measures step budgets, not data. The rule, the same for every arm and phase:

* evaluate every ``eval_every`` steps (the same cadence in every arm);
* an evaluation *improves* when its F1 is at least ``min_delta`` above the F1 of the last F1
  improvement, or when the validation loss (pixel BCE of the whole validation images against
  their targets) is at least ``min_loss_delta`` (relative) below that of the last loss
  improvement. Object F1 can stall for a thousand steps while the model is still learning: on EMPS
  the real-only model's validation F1 sat at 0.22-0.25 from step 250 to 1350 and then rose to 0.43
  by step 1850, while the training loss fell all along; an F1-only rule stopped it at step 600.
  After ``patience`` evaluations without an improvement (and not before ``min_steps``), the
  learning rate drops by ``lr_drop_factor`` (``lr_drops`` times, as ReduceLROnPlateau does),
  then training stops: ``stop_reason = "patience"``;
* ``max_steps`` is a budget, not the protocol: a phase that reaches it stops with
  ``stop_reason = "cap"``, and the verdict calls comparisons involving it inconclusive.

The learning rate warms up linearly over ``warmup_steps`` and is constant otherwise (a cosine over
the cap would tie the schedule to the budget this protocol tries to remove).

What is evaluated, selected and saved is an exponential moving average of the weights
(``segmentation.ema``, Polyak averaging; BatchNorm statistics averaged alike). At a constant
learning rate the raw weights wander: on the demo set the raw model's validation F1 jumped between
0.39 and 0.85 from one evaluation to the next, so a plateau rule on raw scores stops on noise and
selects a lucky evaluation. The average moves with the trend, not the step-to-step noise; its decay
warms up as min(ema, (1 + k) / (10 + k)) over the phase's k-th step so the random (or pretrained)
start does not linger. ``ema: 0`` evaluates the raw weights.

Model selection is by object F1 at ``evaluation.iou_threshold`` on the whole validation images (the
quantity the study reports), ties going to the later step. ``last.pt`` holds everything needed to
continue bit-for-bit (model, optimizer, step, plateau state, RNG states, best score, log), written
atomically at every evaluation and on Ctrl-C; calling the function again with the same arguments
resumes, and a finished run returns at once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import rng
from ..config import Config
from ..data.images import InputError
from ..device import autocast, configure, pick_device, precision_name
from ..hashing import json_hash
from ..io import load_torch, load_user_torch, save_torch, write_json, write_text
from .dataset import InfiniteSampler, RealPairsDataset
from .models import create_model
from .postprocess import instances_for_config
from .targets import make_target, n_target_channels, pixel_bce

# one line per evaluation (tqdm does not reach the Prefect UI; the flow forwards this logger)
progress_log = logging.getLogger("synth_pretrain.segmentation")

BEST, LAST, LOG, METRICS = "best.pt", "last.pt", "log.csv", "metrics.json"
INPUT_MEAN, INPUT_STD = 0.5, 0.25  # fixed input scaling of [0, 1] images; BN does the rest
TILE, TILE_OVERLAP = 1024, 128  # whole-image inference splits larger images into overlapping tiles


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - INPUT_MEAN) / INPUT_STD


def build_loss(target: str, loss: str) -> nn.Module:
    """Dice + BCE (or Dice + focal) on logits; multilabel for the 2-channel boundary target."""
    import segmentation_models_pytorch as smp

    mode = "binary" if n_target_channels(target) == 1 else "multilabel"
    dice = smp.losses.DiceLoss(mode, from_logits=True)
    second = smp.losses.SoftBCEWithLogitsLoss() if loss == "dice_bce" else smp.losses.FocalLoss(mode)

    class _Sum(nn.Module):
        def forward(self, logits, target):
            return dice(logits, target) + second(logits, target)

    return _Sum()


def learning_rate(base_lr: float, step: int, warmup_steps: int, drops: int, drop_factor: float) -> float:
    """Linear warm-up, then constant; each plateau drop multiplies it by ``drop_factor``."""
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    return base_lr * warm * drop_factor**drops


def model_meta(cfg: Config, in_channels: int) -> dict:
    seg = cfg.segmentation
    return {
        "arch": seg.arch,
        "encoder": seg.encoder,
        "in_channels": int(in_channels),
        "classes": n_target_channels(seg.target),
        "target": seg.target,
    }


def to_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """The model with NHWC weights (in place); inputs follow it in :func:`predict_probabilities`."""
    return model.to(memory_format=torch.channels_last) if enabled else model


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's convolution weights are NHWC (a 1-input-channel weight is both, so skip those)."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def load_segmentation_model(
    checkpoint: str | Path, device: torch.device | str = "cpu", channels_last: bool = True
) -> tuple[nn.Module, dict]:
    """(model in eval mode on ``device``, meta) from a checkpoint written by training.

    ``channels_last`` (the default, for inference) stores the weights NHWC; exporters pass False.
    """
    path = Path(checkpoint)
    ckpt = load_user_torch(path, "segmentation checkpoint")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise InputError(f"{path}: not a segmentation checkpoint (no model/meta)")
    meta = ckpt["meta"]
    model = create_model(meta["arch"], meta["encoder"], meta["in_channels"], meta["classes"])
    model.load_state_dict(ckpt["model"])
    return to_channels_last(model.to(device), channels_last).eval(), meta


def _pad_to_multiple(image: np.ndarray, multiple: int = 32) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if min(h, w) > max(ph, pw) else "symmetric"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, overlap: int) -> np.ndarray:
    """Blend weights of one tile axis: rising over the overlap at each end (never 0)."""
    r = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        edge = (np.arange(n, dtype=np.float32) + 1) / (n + 1)
        r[:n], r[-n:] = edge, edge[::-1]
    return r


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module, image: np.ndarray, device: torch.device, amp: bool = True, tile: int = TILE
) -> np.ndarray:
    """Sigmoid outputs ``C x H x W`` (float32) for one whole image of any size."""
    h, w = image.shape[:2]
    padded = _pad_to_multiple(np.asarray(image, np.float32))
    ph, pw = padded.shape[:2]
    tile_h, tile_w = min(tile, ph), min(tile, pw)
    x_full = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None]
    if is_channels_last(model):
        x_full = x_full.contiguous(memory_format=torch.channels_last)
    ys, xs = _tile_starts(ph, tile_h, TILE_OVERLAP), _tile_starts(pw, tile_w, TILE_OVERLAP)
    if len(ys) == 1 and len(xs) == 1:
        with autocast(device, amp):
            logits = model(normalize(x_full.to(device)))
        return torch.sigmoid(logits.float())[0, :, :h, :w].cpu().numpy()
    acc = weight = None
    wy, wx = _ramp(tile_h, TILE_OVERLAP if len(ys) > 1 else 0), _ramp(tile_w, TILE_OVERLAP if len(xs) > 1 else 0)
    tile_weight = wy[:, None] * wx[None, :]
    for y in ys:
        for x in xs:
            with autocast(device, amp):
                logits = model(normalize(x_full[:, :, y : y + tile_h, x : x + tile_w].to(device)))
            prob = torch.sigmoid(logits.float())[0].cpu().numpy()
            if acc is None:
                acc = np.zeros((prob.shape[0], ph, pw), np.float32)
                weight = np.zeros((ph, pw), np.float32)
            acc[:, y : y + tile_h, x : x + tile_w] += prob * tile_weight
            weight[y : y + tile_h, x : x + tile_w] += tile_weight
    return (acc / weight)[:, :h, :w]


def _resolve_model(checkpoint_or_model, cfg: Config, device) -> tuple[nn.Module, str, torch.device]:
    device = pick_device(cfg.runtime.device) if device is None else torch.device(device)
    if isinstance(checkpoint_or_model, nn.Module):
        return checkpoint_or_model.to(device), cfg.segmentation.target, device
    model, meta = load_segmentation_model(checkpoint_or_model, device)
    model.seg_in_channels = meta["in_channels"]
    return model, meta["target"], device


def predict_with_probabilities(
    checkpoint_or_model, images: list[np.ndarray], cfg: Config, device=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(int32 instance mask, probabilities C x H x W)] per image; the target kind comes from the
    checkpoint (or ``cfg.segmentation.target`` for a model object)."""
    model, kind, device = _resolve_model(checkpoint_or_model, cfg, device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for image in images:
            expected = getattr(model, "seg_in_channels", None)
            if expected is not None and image.shape[2] != expected:
                raise InputError(f"{checkpoint_or_model}: model takes {expected}-channel images, got {image.shape[2]}")
            probs = predict_probabilities(model, image, device, cfg.segmentation.amp)
            out.append((instances_for_config(probs, kind, cfg.evaluation), probs))
    finally:
        model.train(was_training)
    return out


def predict_instances(checkpoint_or_model, images: list[np.ndarray], cfg: Config, device=None) -> list[np.ndarray]:
    """int32 instance masks for whole images of any size (padded to /32, tiled above 1024 px)."""
    return [inst for inst, _ in predict_with_probabilities(checkpoint_or_model, images, cfg, device)]


PLATEAU_KEYS = ("eval_every", "patience", "min_delta", "min_steps", "lr_drops", "lr_drop_factor", "warmup_steps")
# options that say which arms / seeds / sizes a study runs, not how one training goes
STUDY_KEYS = ("seeds", "n_real", "arms")


def _run_key(cfg: Config, dataset: Dataset, steps: int, lr: float, seed: int, init_from, batch_size: int) -> str:
    seg = {k: v for k, v in cfg.segmentation.model_dump(mode="json").items() if k not in STUDY_KEYS}
    payload = {
        "segmentation": seg,
        "evaluation": cfg.section_hash("evaluation"),
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "batch_size": batch_size,
        "init_from": str(init_from) if init_from else None,
        "dataset": [type(dataset).__name__, len(dataset), getattr(dataset, "channels", None)],
    }
    return json_hash(payload)


def _validate(model, val_pairs, cfg, device) -> dict:
    from ..evaluation.metrics import evaluate_instances

    if not val_pairs:
        return {"val_f1": float("nan"), "val_precision": float("nan"), "val_recall": float("nan"),
                "val_loss": float("nan")}
    out = predict_with_probabilities(model, [img for img, _ in val_pairs], cfg, device)
    masks = [m for _, m in val_pairs]
    summary, _ = evaluate_instances([pred for pred, _ in out], masks, cfg.evaluation)
    kind = cfg.segmentation.target
    loss = float(np.mean([pixel_bce(probs, make_target(m, kind)) for (_, probs), m in zip(out, masks)]))
    return {"val_f1": summary["f1"], "val_precision": summary["precision"], "val_recall": summary["recall"],
            "val_loss": loss}


class WeightAverage:
    """Exponential moving average of a model's weights and float buffers (BatchNorm running
    statistics); integer buffers (``num_batches_tracked``) are copied. ``model`` is the averaged
    copy, always in eval mode."""

    def __init__(self, model: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0
        self._source, self._pairs = None, None  # the model averaged and its tensors, paired once

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        if self._source is not model:
            # state_dict tensors are the live ones (updated in place by the optimizer and BatchNorm):
            # pair them once instead of rebuilding two dicts every step
            mine, theirs = self.model.state_dict(), model.state_dict()
            floats = [k for k, v in theirs.items() if v.dtype.is_floating_point]
            self._source = model
            self._pairs = ([mine[k] for k in floats], [theirs[k] for k in floats],
                           [(mine[k], v) for k, v in theirs.items() if not v.dtype.is_floating_point])
        avg, live, ints = self._pairs
        torch._foreach_mul_(avg, d)
        torch._foreach_add_(avg, live, alpha=1.0 - d)
        for a, v in ints:
            a.copy_(v)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class Plateau:
    """The stopping rule of the module docstring, as a small state machine saved in ``last.pt``."""

    def __init__(self, patience: int, min_delta: float, min_steps: int, lr_drops: int, min_loss_delta: float = 0.0):
        self.patience, self.min_delta, self.min_steps, self.lr_drops = patience, min_delta, min_steps, lr_drops
        self.min_loss_delta = min_loss_delta  # 0: the loss never counts
        self.reference = -math.inf  # F1 of the last counted F1 improvement
        self.loss_reference = math.inf  # validation loss of the last counted loss improvement
        self.waited = 0  # evaluations since the last improvement of either
        self.drops = 0  # learning-rate drops done

    def update(self, step: int, f1: float, loss: float = math.nan) -> bool:
        """Record one evaluation; True when training should stop."""
        if self.patience <= 0 or math.isnan(f1):
            return False
        better_f1 = f1 >= self.reference + self.min_delta
        better_loss = self.min_loss_delta > 0 and not math.isnan(loss) and (
            loss <= self.loss_reference * (1.0 - self.min_loss_delta))
        if better_f1:
            self.reference = f1
        if better_loss:
            self.loss_reference = loss
        if better_f1 or better_loss:
            self.waited = 0
            return False
        self.waited += 1
        if self.waited < self.patience or step < self.min_steps:
            return False
        if self.drops < self.lr_drops:
            self.drops, self.waited = self.drops + 1, 0
            return False
        return True

    def outlook(self, step: int = 0) -> str:
        """Where the rule stands, for the progress line: the step count reads against a cap that a
        phase rarely reaches (EMPS: 3,000-5,000 of 6,000), so "step 600/6000" alone tells a user
        nothing about when the phase will end; how many evaluations remain before it stops does."""
        if self.patience <= 0:
            return "no plateau rule: runs to the cap"
        if self.waited == 0:
            return "improving"
        then = "the learning rate drops" if self.drops < self.lr_drops else "stop"
        note = f"{min(self.waited, self.patience)} of {self.patience} evaluations without a gain, then {then}"
        return note + (f" (not before step {self.min_steps})" if step < self.min_steps else "")

    def state(self) -> dict:
        return {"reference": self.reference, "loss_reference": self.loss_reference, "waited": self.waited,
                "drops": self.drops}

    def load(self, state: dict) -> None:
        self.reference, self.waited, self.drops = state["reference"], state["waited"], state["drops"]
        self.loss_reference = state.get("loss_reference", math.inf)


def train_segmentation(
    cfg: Config,
    train: Dataset | list,
    val_pairs: list,
    out_dir: Path,
    steps: int,
    lr: float,
    seed: int,
    init_from: Path | None = None,
    device=None,
    progress: bool = True,
    stop_at: int | None = None,
    batch_size: int | None = None,
) -> Path:
    """Train until the validation plateau (or ``steps``, the cap) and return the best checkpoint
    (``out_dir/best.pt``); ``out_dir/metrics.json`` records steps run, why it stopped and wall time.

    ``train``: a crop dataset (:mod:`.dataset`) or a list of real (image, mask) pairs.
    ``init_from``: a checkpoint whose weights start the model (fine-tuning after pretraining).
    ``stop_at``: stop (checkpointed) after this many steps; a later call resumes.
    ``batch_size``: samples per step (default ``segmentation.batch_size``; the joint arm's batches
    hold real samples plus synthetic ones on top).
    """
    seg = cfg.segmentation
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if steps < 1:
        raise InputError(f"steps={steps}: need at least one training step")
    batch_size = int(batch_size or seg.batch_size)
    device = pick_device(cfg.runtime.device) if device is None else torch.device(device)
    configure(cfg.runtime)
    dataset = train if isinstance(train, Dataset) else RealPairsDataset(
        train, seg.image_size, seg.target, seed=seed, foreground=seg.foreground_crops
    )
    channels = int(dataset.channels)
    for img, _ in val_pairs:
        if img.shape[2] != channels:
            raise InputError(f"validation images have {img.shape[2]} channels, training data {channels}")
    key = _run_key(cfg, dataset, steps, lr, seed, init_from, batch_size)
    if (out_dir / METRICS).is_file() and (out_dir / BEST).is_file():
        done = json.loads((out_dir / METRICS).read_text())
        if done.get("key") == key:
            return out_dir / BEST

    rng.seed_everything(seed)
    meta = model_meta(cfg, channels)
    model = create_model(seg.arch, seg.encoder, channels, meta["classes"], seg.encoder_weights)
    if init_from is not None:
        init = load_torch(Path(init_from)) if Path(init_from).is_file() else None
        if not isinstance(init, dict) or "model" not in init:
            raise InputError(f"{init_from}: not a segmentation checkpoint to start from")
        try:
            model.load_state_dict(init["model"])
        except RuntimeError as e:
            raise InputError(f"{init_from}: weights do not fit {seg.arch}/{seg.encoder} ({str(e).splitlines()[0]})") from None
    to_channels_last(model.to(device), seg.channels_last)
    average = WeightAverage(model, seg.ema) if seg.ema > 0 else None
    evaluated = average.model if average else model  # what is validated, selected and saved
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = build_loss(seg.target, seg.loss)
    plateau = Plateau(seg.patience, seg.min_delta, seg.min_steps, seg.lr_drops, seg.min_loss_delta)

    step, best_f1, best_step, log, elapsed_before, stopped = 0, -math.inf, 0, [], 0.0, False
    if (out_dir / LAST).is_file():
        ckpt = load_torch(out_dir / LAST)
        if ckpt.get("key") != key:
            raise InputError(
                f"{out_dir / LAST}: checkpoint of a different training run (config, data or steps changed); "
                "use another output folder or delete it"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if average is not None:
            average.load(ckpt["average"])
        step, best_f1, best_step = ckpt["step"], ckpt["best_f1"], ckpt["best_step"]
        log, elapsed_before, stopped = list(ckpt["log"]), ckpt["elapsed"], ckpt["stopped"]
        plateau.load(ckpt["plateau"])
        rng.restore(ckpt["rng"])

    def save_last() -> None:
        save_torch(
            out_dir / LAST,
            {
                "key": key,
                "meta": meta,
                "model": model.state_dict(),
                "average": average.state() if average is not None else None,
                "optimizer": optimizer.state_dict(),
                "step": step,
                "best_f1": best_f1,
                "best_step": best_step,
                "plateau": plateau.state(),
                "stopped": stopped,
                "log": log,
                "elapsed": elapsed_before + (time.perf_counter() - t0),
                "rng": rng.capture(),
            },
        )

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=InfiniteSampler(step * batch_size),
        num_workers=cfg.runtime.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
        persistent_workers=False,
    )
    bar = tqdm(total=steps, initial=step, desc=f"train {out_dir.name}", disable=not (progress and cfg.runtime.progress))
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    loss_count, interval_start, interval_t = 0, step, time.perf_counter()
    finished = lambda: stopped or step >= steps  # noqa: E731
    batches = iter(loader) if not finished() else iter(())
    try:
        while not finished() and (stop_at is None or step < stop_at):
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if seg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            current_lr = learning_rate(lr, step, seg.warmup_steps, plateau.drops, seg.lr_drop_factor)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            model.train()
            with autocast(device, seg.amp):
                logits = model(normalize(x))
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model)
            step += 1
            loss_sum += loss.detach()
            loss_count += 1
            bar.update(1)
            if step % seg.eval_every == 0 or step == steps:
                t_val = time.perf_counter()
                scores = _validate(evaluated, val_pairs, cfg, device)
                f1 = scores["val_f1"]
                now = time.perf_counter()
                row = {
                    "step": step,
                    "train_loss": float(loss_sum.item()) / max(1, loss_count),
                    "lr": current_lr,
                    **scores,
                    "elapsed_s": elapsed_before + now - t0,
                    # the steps' rate without the evaluation, and the evaluation's own time: where a phase's
                    # time goes (training steps or validation) is what a speed-up has to know
                    "train_images_per_s": (step - interval_start) * batch_size / max(1e-9, t_val - interval_t),
                    "val_seconds": now - t_val,
                }
                log.append(row)
                if math.isnan(f1) or f1 >= best_f1:  # ties (and no validation) -> the later step
                    best_f1 = f1 if not math.isnan(f1) else best_f1
                    best_step = step
                    save_torch(out_dir / BEST, {"meta": {**meta, "step": step, "val_f1": f1},
                                                "model": evaluated.state_dict()})
                stopped = plateau.update(step, f1, scores["val_loss"])
                save_last()
                write_text(out_dir / LOG, pd.DataFrame(log).to_csv(index=False))
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_f1=f"{f1:.3f}", best=f"{best_f1:.3f}")
                # time beside the step count: with how many evaluations remain (the outlook), it tells a user
                # on a slow CPU how long the phase may still take (one evaluation window = eval_every steps; the
                # seconds a step include the window's validation)
                step_s = (now - interval_t) / max(1, step - interval_start)
                progress_log.info(f"train {out_dir.name}: step {step}/{steps} ({row['elapsed_s'] / 60:.1f} min, "
                                  f"{step_s:.2f} s a step), loss {row['train_loss']:.4f}, "
                                  f"val F1 {f1:.3f} (best {best_f1:.3f} at step {best_step})"
                                  + (", plateau: stop" if stopped else f"; {plateau.outlook(step)}"),
                                  extra={"progress": step / steps})
                loss_sum.zero_()
                loss_count, interval_start, interval_t = 0, step, time.perf_counter()
    except KeyboardInterrupt:
        save_last()
        raise
    finally:
        bar.close()
    if not finished():  # stopped early on purpose (stop_at): checkpoint where we are
        save_last()
        return out_dir / BEST
    elapsed = elapsed_before + time.perf_counter() - t0
    write_json(
        out_dir / METRICS,
        {
            "key": key,
            "best_val_f1": None if best_f1 == -math.inf else best_f1,
            "best_step": best_step,
            "steps_run": step,
            "max_steps": steps,
            "stop_reason": "patience" if stopped else "cap",
            "lr": lr,
            "lr_drops_done": plateau.drops,
            "batch_size": batch_size,
            "seed": seed,
            "init_from": str(init_from) if init_from else None,
            "time_s": elapsed,
            "images_per_s_with_validation": step * batch_size / max(1e-9, elapsed),
            "validation_s": float(sum(r.get("val_seconds", 0.0) for r in log)),
            "device": str(device),
            "precision": precision_name(device, seg.amp),
            **meta,
        },
    )
    return out_dir / BEST
