"""Which folder a config's ``data.set`` names, and where each run of it goes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..config import Config

DEMO = "demo"


def demo_set_dir(cfg: Config) -> Path:
    d = cfg.data
    return Path(cfg.runtime.runs_dir) / "_datasets" / f"demo-n{d.demo_images}-s{d.demo_size}-seed{d.split_seed}"


def resolve_set_dir(cfg: Config) -> Path:
    """``demo`` -> the procedural demo set (rendered once into the runs folder, never into data/);
    a name -> ``data.root/<name>``; a path that exists -> that path."""
    if cfg.data.set == DEMO:
        out = demo_set_dir(cfg)
        if not (out / "set.yaml").is_file():
            from .demo import render_demo_set

            render_demo_set(out, n_images=cfg.data.demo_images, size=cfg.data.demo_size, seed=cfg.data.split_seed)
        return out
    as_path = Path(cfg.data.set).expanduser()
    if len(as_path.parts) > 1 or as_path.is_absolute():
        return as_path
    return Path(cfg.data.root) / cfg.data.set


def set_content_hash(set_dir: Path) -> str:
    """Hash of every file's name, size and modification time: cheap, changes when the set does."""
    h = hashlib.sha256()
    for p in sorted(set_dir.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(set_dir)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
