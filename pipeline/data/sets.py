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


SET_SUBFOLDERS = ("images", "masks", "unlabeled")
_digest_cache: dict[tuple, str] = {}


def set_files(set_dir: Path) -> list[Path]:
    """The files of a set the pipeline reads: ``set.yaml`` and the image files directly inside
    images/, masks/ and unlabeled/. Hidden files (``.DS_Store``, ``.x.swp``), OS and editor files
    (``Thumbs.db``, ``x.png~``) and sub-folders are not read, so they are not part of the set."""
    from .images import IMAGE_EXTS
    from .labeled_set import SET_YAML_NAME

    files = [set_dir / SET_YAML_NAME] if (set_dir / SET_YAML_NAME).is_file() else []
    for sub in SET_SUBFOLDERS:
        folder = set_dir / sub
        if folder.is_dir():
            files += sorted(
                p for p in folder.iterdir()
                if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS and p.is_file()
            )
    return files


def _file_digest(path: Path) -> str:
    """blake2b of a file's bytes, remembered for this process by (path, size, mtime, ctime, inode):
    a rewrite changes ctime even when the writer puts the old mtime back."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    digest = _digest_cache.get(key)
    if digest is None:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = _digest_cache[key] = h.hexdigest()
    return digest


def set_content_hash(set_dir: Path) -> str:
    """Hash of what the pipeline reads from a set (names and contents of :func:`set_files`).

    Cached stages are keyed by it, so it must change exactly when the set does: by content, not by
    size and modification time (an edit that keeps both still changes the hash), and blind to files
    the pipeline never opens (touching ``.DS_Store`` does not invalidate every stage)."""
    set_dir = Path(set_dir)
    h = hashlib.sha256()
    for p in set_files(set_dir):
        h.update(f"{p.relative_to(set_dir).as_posix()}|{_file_digest(p)}\n".encode())
    return h.hexdigest()[:16]
