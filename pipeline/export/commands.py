"""CLI: predict on a folder of images, export the model (ONNX / TorchScript), export data as COCO."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL_HELP = (
    "segmentation checkpoint (.pt) or run folder (runs/<set>/<run-id>); a run folder gives the --arm "
    "arm's fine-tuned best-validation checkpoint of --seed"
)

OVERRIDES_HELP = (
    "section.key=value config overrides (e.g. evaluation.fg_threshold=0.4), applied to the run's config "
    "or to --config"
)


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("predict")
    @user_errors
    def predict(
        model: Path = typer.Argument(..., help=MODEL_HELP),
        images_dir: Path = typer.Argument(..., help="folder of images (any size; not searched recursively)"),
        out_dir: Path = typer.Argument(..., help="output folder (masks/, overlays/, objects.csv, summary.csv, ...)"),
        arm: str = typer.Option("best", help="with a run folder: best (highest validation F1) | real_only | pretrained | joint (arm:method when several)"),
        seed: int | None = typer.Option(None, help="with a run folder: training seed (default: the lowest, 0)"),
        min_area: int | None = typer.Option(None, "--min-area", help="drop objects below this many px (default: what the run evaluated with)"),
        pixel_size: float | None = typer.Option(None, "--pixel-size", help="physical size of one pixel (default: set.yaml beside/above the images)"),
        pixel_unit: str | None = typer.Option(None, "--pixel-unit", help="unit of --pixel-size, e.g. um (default: set.yaml's, else 'unit')"),
        device: str = typer.Option("auto", help="auto (GPU when present) | cpu | cuda | cuda:N"),
        tile: int | None = typer.Option(None, help="tile size in px for large images (multiple of 32; default 1024)"),
        config: str = typer.Option("default", "--config", help="with a checkpoint file: config for thresholds"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        max_pixels: int | None = typer.Option(None, "--max-pixels", help="skip images with more pixels than this (default: config data.max_image_pixels, 40 MP)"),
        overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
    ) -> None:
        """Instance masks, contour overlays and per-object sizes for every image of a folder."""
        from .model_source import resolve_model
        from .predict import find_pixel_size, predict_folder

        source = resolve_model(model, arm, seed, config, min_area, overrides or [])
        pixel = find_pixel_size(images_dir, pixel_size, pixel_unit)
        typer.echo(f"model: {source.checkpoint}; min object area {source.min_object_area} px ({source.min_area_origin})"
                   + (f"; pixel size {pixel.size:g} {pixel.unit} ({pixel.origin})" if pixel else ""))
        counts = predict_folder(source, images_dir, out_dir, device=device, tile=tile, pixel=pixel, progress=progress,
                                echo=lambda line: typer.secho(line, fg=typer.colors.YELLOW, err=True), max_pixels=max_pixels)
        reused = f" ({counts['reused']} reused from an earlier run)" if counts["reused"] else ""
        typer.echo(f"{counts['images']} images, {counts['objects']} objects{reused}; wrote {out_dir}")
        typer.echo(f"{counts['skipped']} image(s) skipped")

    @app.command("export")
    @user_errors
    def export(
        model: Path = typer.Argument(..., help=MODEL_HELP),
        fmt: str = typer.Option("onnx", "--format", help="onnx | torchscript"),
        out: Path | None = typer.Option(None, "--out", help="model file (.onnx/.ts) or folder (default: export/ beside the checkpoint or in the run folder)"),
        arm: str = typer.Option("best", help="with a run folder: best | real_only | pretrained | joint (arm:method when several)"),
        seed: int | None = typer.Option(None, help="with a run folder: training seed (default: the lowest)"),
        min_area: int | None = typer.Option(None, "--min-area", help="min_object_area to record (default: the run's)"),
        config: str = typer.Option("default", "--config", help="with a checkpoint file: config for thresholds"),
        overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
    ) -> None:
        """Write the network as ONNX (dynamic batch/height/width) or TorchScript, plus model.json."""
        from .model_export import FORMATS, export_model, output_path
        from .model_source import resolve_model

        if fmt not in FORMATS:
            from ..errors import InputError

            raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
        source = resolve_model(model, arm, seed, config, min_area, overrides or [])
        path = output_path(model, fmt, out)
        info = export_model(source, fmt, path)
        v = info["verified"]
        typer.echo(f"wrote {path} and {path.with_suffix('.json')} (checked with {v['runtime']}: "
                   f"max |diff| vs PyTorch {v['max_abs_diff']:.1e})")

    @app.command("export-coco")
    @user_errors
    def export_coco_cmd(
        source: Path = typer.Argument(..., help="labeled set (images/ + masks/ or annotation files) or synthetic pair store folder"),
        out_dir: Path = typer.Argument(..., help="output folder: annotations.json + images/"),
        category: str | None = typer.Option(None, help="category name (default: set.yaml object_name, else 'object')"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """COCO instance-segmentation export (RLE masks) of real or synthetic pairs."""
        from .coco import export_coco

        counts = export_coco(source, out_dir, category, progress)
        typer.echo(f"{counts['kind']}: {counts['images']} images, {counts['annotations']} '{counts['category']}' "
                   f"annotations; wrote {out_dir / 'annotations.json'}")
