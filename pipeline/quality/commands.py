"""CLI: synthetic-data quality of a pair store (mask fidelity, realism, diversity) + a style grid."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("quality")
    @user_errors
    def quality_cmd(
        set_dir: Path = typer.Option(..., "--set", help="the labeled set the generator learned from"),
        pairs: Path = typer.Option(..., "--pairs", help="synthetic PairStore folder"),
        segmenter: Path = typer.Option(..., "--segmenter", help="segmentation checkpoint trained on real pairs only"),
        generator: Path | None = typer.Option(None, "--generator", help="generator final.pt (diversity, style grid)"),
        out: Path = typer.Option(..., "--out", help="folder for quality.json (and style_grid.png)"),
        config: str = typer.Option("default", "--config", help="config name or YAML path"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value overrides"),
    ) -> None:
        """Measure how good synthetic pairs are, with no downloaded weights; writes OUT/quality.json."""
        from ..config import load_config
        from ..data.labeled_set import load_pairs, require_valid
        from ..data.splits import splits_for
        from ..errors import InputError
        from ..io import write_json
        from ..segmentation.postprocess import resolve_min_area
        from .measure import measure_quality, style_grid

        cfg = load_config(config, overrides or [])
        if not (pairs / "manifest.parquet").is_file() and not any(pairs.glob("shard_*.parquet")):
            raise InputError(f"{pairs}: not a synthetic pair store (no manifest.parquet)")
        d = cfg.data
        report = require_valid(set_dir, d.max_image_pixels, d.max_instances)
        splits = splits_for(report, d)
        train, val = load_pairs(report, splits["train"]), load_pairs(report, splits["val"])
        cfg = resolve_min_area(cfg, [m for _, m in train])
        q = measure_quality(cfg, pairs, segmenter, train, val, generator)
        write_json(out / "quality.json", q)
        if generator is not None:
            style_grid(generator, val[:4], out / "style_grid.png", crop=cfg.generator.image_size)
        for k, v in q.items():
            if k != "details":
                typer.echo(f"{k:24s} {v['value']:.4f}  ({v['meaning']})")
        typer.echo(f"wrote {out / 'quality.json'}")
