"""CLI: evaluate a segmentation checkpoint on a split of a labeled set (object-level metrics)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("evaluate")
    @user_errors
    def evaluate(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="segmentation checkpoint (best.pt)"),
        set_dir: Path = typer.Option(..., "--set", help="labeled-set folder (images/, masks/)"),
        split: str = typer.Option("test", "--split", help="train | val | test | all"),
        out: Path = typer.Option(..., "--out", help="folder for per_image.csv and summary.json"),
        config: str = typer.Option("default", "--config", help="config name or YAML path (splits, thresholds)"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value config overrides"),
    ) -> None:
        """Object precision/recall/F1 at evaluation.iou_threshold (+ sweep, pixel, count and size errors)."""
        from ..config import load_config
        from ..data.labeled_set import load_pairs, require_valid
        from ..data.splits import splits_for
        from ..errors import InputError
        from ..io import write_json, write_text
        from ..segmentation.training import predict_instances
        from .metrics import evaluate_instances, json_safe

        cfg = load_config(config, overrides or [])
        d = cfg.data
        report = require_valid(set_dir, d.max_image_pixels, d.max_instances)
        if split == "all":
            stems = report.stems
        elif split in ("train", "val", "test"):
            stems = splits_for(report, d)[split]
        else:
            raise InputError(f"--split {split}: expected train, val, test or all")
        pairs = load_pairs(report, stems)
        preds = predict_instances(checkpoint, [img for img, _ in pairs], cfg)
        summary, frame = evaluate_instances(preds, [m for _, m in pairs], cfg.evaluation, names=stems)
        summary = {"checkpoint": str(checkpoint), "set": str(set_dir), "split": split, **summary}
        write_text(out / "per_image.csv", frame.to_csv(index=False))
        write_json(out / "summary.json", json_safe(summary))
        typer.echo(
            f"{split}: {summary['n_images']} images, P={summary['precision']:.3f} R={summary['recall']:.3f} "
            f"F1={summary['f1']:.3f} @IoU{summary['iou_threshold']} (F1 0.5:0.95 = {summary['f1_50_95']:.3f}); "
            f"wrote {out / 'summary.json'}"
        )
