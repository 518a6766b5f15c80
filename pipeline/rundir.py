"""Run directories: where every stage writes, and how finished stages are recognised.

Layout: ``runs/<set>/<run-id>/`` holds ``config.yaml`` (the resolved config), ``splits.json`` and
one sub-folder per stage. A stage is finished when its folder holds ``_done.json`` with the stage's
cache key; anything else in a folder without that marker is a partial result that the stage may
resume from or overwrite.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .config import Config
from .io import read_json, write_json, write_text

DONE = "_done.json"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def stage(self, name: str) -> Path:
        d = self.path / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def done_info(self, name: str) -> dict[str, Any] | None:
        f = self.path / name / DONE
        return read_json(f) if f.is_file() else None

    def is_done(self, name: str, key: str | None = None) -> bool:
        info = self.done_info(name)
        return info is not None and (key is None or info.get("key") == key)

    def mark_done(self, name: str, key: str = "", **outputs: Any) -> None:
        write_json(self.stage(name) / DONE, {"key": key, "finished": time.time(), **outputs})

    def write_config(self, cfg: Config) -> None:
        write_text(self.path / "config.yaml", cfg.to_yaml())

    def read_config(self) -> Config:
        import yaml

        return Config.model_validate(yaml.safe_load((self.path / "config.yaml").read_text()))
