"""CLI: train one arm of the study on a labeled set, exactly as the flow trains it."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("train-seg")
    @user_errors
    def train_seg(
        set_dir: Path = typer.Option(..., "--set", help="labeled-set folder (images/, masks/)"),
        out: Path = typer.Option(..., "--out", help="output folder (resumes when it holds a run)"),
        arm: str = typer.Option("real_only", "--arm", help="real_only | pretrained | joint"),
        synthetic: list[Path] | None = typer.Option(None, "--synthetic", help="synthetic pair store folder(s), for pretrained / joint"),
        config: str = typer.Option("default", "--config", help="config name (configs/) or YAML path"),
        seed: int | None = typer.Option(None, help="training seed (default segmentation.seed)"),
        n_real: int | None = typer.Option(None, "--n-real", help="real training pairs (default: the first of segmentation.n_real)"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value config overrides"),
    ) -> None:
        """Train and evaluate one arm (the same splits, plateau rule, post-processing tuning and test
        evaluation as the flow); writes OUT/config.yaml, splits.json and OUT/<arm>/metrics.json."""
        from ..config import load_config
        from ..context import prepare
        from ..data.images import InputError
        from ..io import read_json
        from .arms import ARMS, run_arm

        if arm not in ARMS:
            raise InputError(f"--arm {arm}: expected one of {', '.join(ARMS)}")
        if ARMS[arm].needs_synthetic and not synthetic:
            raise InputError(f"--arm {arm} needs --synthetic PAIRSTORE_DIR")
        cfg = load_config(config, [*(overrides or []), f"data.set={set_dir}"])
        ctx = prepare(cfg, run_dir=out)
        seg = cfg.segmentation
        seed = seg.seed if seed is None else seed
        n_real = seg.n_real[0] if n_real is None else n_real
        typer.echo(f"{ctx.report().summary()}; arm {arm}, seed {seed}, {min(n_real, len(ctx.splits['train']))} real "
                   f"training pairs, {len(ctx.splits['val'])} validation, {len(ctx.splits['test'])} test images")
        run_arm(ctx, arm, seed, n_real, list(synthetic or []), out / arm,
                synthesis="user" if ARMS[arm].needs_synthetic else None)
        m = read_json(out / arm / "metrics.json")
        stops = ", ".join(f"{k[:-5]} {m[k[:-5] + '_steps']} steps ({m[k]})" for k in m if k.endswith("_stop"))
        typer.echo(f"{stops}; validation F1 {m['val_f1']:.3f} (tuned post-processing), test F1 {m['f1']:.3f} "
                   f"(precision {m['precision']:.3f}, recall {m['recall']:.3f}); checkpoint {m['checkpoint']}")
