"""The verdict: did synthetic data make the best model the user can train better, and by how much?

For each arm trained with synthetic data, against ``real_only`` at the same number of real pairs:

* ΔF1@IoU: the arm's test object F1 minus real_only's, paired by seed (same seed, same test images),
  averaged over seeds;
* its interval: a two-level bootstrap - seeds drawn with replacement (when there are several), test
  images drawn with replacement (the same draw for both arms, so the pairing is kept); each draw
  recomputes the pooled (micro) F1 of both arms from per-image tp / fp / fn;
* one sentence: *helped* (interval above 0), *hurt* (below 0), *no detectable difference*, or
  *inconclusive* when a phase of either arm stopped at the step cap instead of its plateau.

The label-efficiency line compares a synthetic arm with fewer real pairs against real_only with the
most real pairs, the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

REFERENCE = "real_only"
ONE_SEED_CAVEAT = (" The interval covers the test images, not how far another training seed would move either arm: "
                   "segmentation.seeds=[0,1,2] or `synth-pretrain study` for a verdict across seeds.")


@dataclass
class Comparison:
    arm: str
    n_real: int
    reference_n_real: int
    seeds: int
    images: int
    delta_f1: float
    ci_low: float
    ci_high: float
    f1: float
    reference_f1: float
    precision: float
    recall: float
    reference_precision: float
    reference_recall: float
    capped: list[str]
    word: str = ""
    sentence: str = ""

    def as_row(self) -> dict:
        row = asdict(self)
        row["capped"] = ";".join(self.capped)
        return row


def _counts(per_image: pd.DataFrame, images: list[str]) -> np.ndarray:
    """tp, fp, fn per image (3 x images) in the given image order."""
    frame = per_image.set_index(per_image["image"].astype(str)).reindex(images)
    if frame[["tp", "fp", "fn"]].isna().any().any():
        raise ValueError("per-image results do not cover the same test images")
    return frame[["tp", "fp", "fn"]].to_numpy(np.float64).T


def _f1(tp, fp, fn):
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den, dtype=np.float64), where=den > 0)


def paired_bootstrap(arm: list[np.ndarray], ref: list[np.ndarray], n_boot: int, confidence: float,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean ΔF1, low, high). ``arm`` / ``ref``: per seed, a 3 x images array of tp / fp / fn."""
    a, r = np.stack(arm), np.stack(ref)  # seeds x 3 x images
    n_seeds, _, n_images = a.shape
    point = float(np.mean(_f1(*a.sum(2).T) - _f1(*r.sum(2).T)))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot).astype(np.float64)  # B x I
    sa, sr = np.einsum("bi,sci->bsc", weights, a), np.einsum("bi,sci->bsc", weights, r)  # B x seeds x 3
    delta = _f1(sa[..., 0], sa[..., 1], sa[..., 2]) - _f1(sr[..., 0], sr[..., 1], sr[..., 2])  # B x seeds
    if n_seeds > 1:
        pick = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        delta = np.take_along_axis(delta, pick, axis=1)
    boot = delta.mean(1)
    alpha = (1.0 - confidence) / 2
    return point, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def compare(rows: pd.DataFrame, per_image: dict[int, pd.DataFrame], arm: str, n_real: int, reference_n_real: int,
            n_boot: int = 2000, confidence: float = 0.95, reference: str = REFERENCE) -> Comparison | None:
    """``rows``: one row per arm x seed x n_real (arm, seed, n_real, f1, precision, recall, hit_cap,
    row_id); ``per_image``: row_id -> that row's per-image table. ``reference``: the arm compared
    against (real_only; another run's arm in ``synth-pretrain compare``)."""
    mine = rows[(rows.arm == arm) & (rows.n_real == n_real)].set_index("seed")
    ref = rows[(rows.arm == reference) & (rows.n_real == reference_n_real)].set_index("seed")
    seeds = sorted(set(mine.index) & set(ref.index))
    if not seeds:
        return None
    images = [str(s) for s in per_image[int(ref.loc[seeds[0], "row_id"])]["image"]]
    a = [_counts(per_image[int(mine.loc[s, "row_id"])], images) for s in seeds]
    r = [_counts(per_image[int(ref.loc[s, "row_id"])], images) for s in seeds]
    delta, lo, hi = paired_bootstrap(a, r, n_boot, confidence)
    capped = []
    for name, frame in ((arm, mine), (reference, ref)):
        if frame.loc[seeds, "hit_cap"].astype(bool).any():
            capped.append(name)
    c = Comparison(arm, int(n_real), int(reference_n_real), len(seeds), len(images), delta, lo, hi,
                   float(mine.loc[seeds, "f1"].mean()), float(ref.loc[seeds, "f1"].mean()),
                   float(mine.loc[seeds, "precision"].mean()), float(mine.loc[seeds, "recall"].mean()),
                   float(ref.loc[seeds, "precision"].mean()), float(ref.loc[seeds, "recall"].mean()), capped)
    c.word, c.sentence = describe(c, confidence)
    return c


def describe(c: Comparison, confidence: float = 0.95) -> tuple[str, str]:
    """(helped | hurt | no detectable difference | inconclusive, one sentence)."""
    pts = lambda v: f"{v * 100:+.1f}"  # noqa: E731
    interval = f"{confidence:.0%} interval {pts(c.ci_low)} to {pts(c.ci_high)}"
    who = f"{c.arm} with {c.n_real} real pairs"
    against = f"real_only with {c.reference_n_real}" if c.reference_n_real != c.n_real else "real_only"
    numbers = (f"F1 {c.f1 * 100:.1f} vs {c.reference_f1 * 100:.1f} % (Δ {pts(c.delta_f1)} points, {interval}; "
               f"precision {c.precision * 100:.1f} vs {c.reference_precision * 100:.1f}, recall {c.recall * 100:.1f} vs "
               f"{c.reference_recall * 100:.1f}; {c.seeds} seed{'s' if c.seeds > 1 else ''}, {c.images} test images)")
    if c.capped:
        return "inconclusive", (f"Inconclusive: {who} vs {against}: {', '.join(c.capped)} reached the step cap before "
                                f"its validation plateau (raise segmentation.max_steps); {numbers}.")
    # With one seed the bootstrap resamples test images only, and seed-to-seed spread was as large as
    # the effects on EMPS (docs/RESULTS.md section 15): the words say what was seen on that seed.
    one_seed = c.seeds == 1
    caveat = ONE_SEED_CAVEAT if one_seed else ""
    if c.ci_low > 0:
        word, sentence = "helped", f"Synthetic data helped: {who} beat {against}, {numbers}."
    elif c.ci_high < 0:
        word, sentence = "hurt", f"Synthetic data hurt: {who} fell below {against}, {numbers}."
    else:
        return "no detectable difference", f"No detectable difference: {who} vs {against}, {numbers}.{caveat}"
    if one_seed:
        return f"{word} on one seed", f"On one training seed: {sentence[0].lower()}{sentence[1:]}{caveat}"
    return word, sentence


def verdicts(rows: pd.DataFrame, per_image: dict[int, pd.DataFrame], n_boot: int = 2000,
             confidence: float = 0.95) -> tuple[list[Comparison], list[Comparison]]:
    """(verdicts at each n_real, label-efficiency comparisons against real_only at the largest n_real)."""
    out, efficiency = [], []
    synthetic_arms = [a for a in dict.fromkeys(rows.arm) if a != REFERENCE]
    ns = sorted(set(rows.n_real))
    for n in ns:
        for arm in synthetic_arms:
            c = compare(rows, per_image, arm, n, n, n_boot, confidence)
            if c is not None:
                out.append(c)
    if len(ns) > 1:
        top = ns[-1]
        for n in ns[:-1]:
            for arm in synthetic_arms:
                c = compare(rows, per_image, arm, n, top, n_boot, confidence)
                if c is not None:
                    efficiency.append(c)
    return out, efficiency


def efficiency_sentence(c: Comparison) -> str:
    """'n real pairs + synthetic are worth ...' from a label-efficiency comparison."""
    pts = f"{c.delta_f1 * 100:+.1f} points ({c.ci_low * 100:+.1f} to {c.ci_high * 100:+.1f})"
    if c.capped:
        return f"Label efficiency inconclusive for {c.arm} at {c.n_real} pairs: {', '.join(c.capped)} hit the step cap."
    if c.ci_low > 0:
        return (f"{c.n_real} real pairs + synthetic ({c.arm}) beat {c.reference_n_real} real pairs alone: "
                f"F1 {c.f1 * 100:.1f} vs {c.reference_f1 * 100:.1f} %, {pts}.")
    if c.ci_high < 0:
        return (f"{c.n_real} real pairs + synthetic ({c.arm}) fall short of {c.reference_n_real} real pairs alone: "
                f"F1 {c.f1 * 100:.1f} vs {c.reference_f1 * 100:.1f} %, {pts}.")
    return (f"{c.n_real} real pairs + synthetic ({c.arm}) are as good as {c.reference_n_real} real pairs alone "
            f"within the interval: F1 {c.f1 * 100:.1f} vs {c.reference_f1 * 100:.1f} %, {pts}.")
