"""Finding runs again: ``synth-pretrain runs`` and the ``runs/<set>/latest`` pointer.

After a few weeks ``runs/<set>/`` holds many ``<date>-<config>`` folders; a user should not have to
open each to see which one answered what. A run folder is recognised by its ``run.json`` (written
when the flow starts), and it is *finished* once its report exists (``results.csv`` and
``report.html``): a killed or running run is listed, marked unfinished, and never becomes ``latest``.

``runs/<set>/latest`` is a relative symlink to the newest finished run folder (newest by the start
time in run.json), so ``runs/<set>/latest/report.html`` always opens the current answer. It is
replaced atomically (a new link under a temporary name, then ``os.replace``); where the file system
refuses symlinks, ``runs/<set>/latest.txt`` names the folder instead. Rebuilding an older run's report
does not move it: the newest finished run is looked up each time, not "the run just reported".
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..io import read_json, write_text

log = logging.getLogger("synth_pretrain")
LATEST, LATEST_TXT = "latest", "latest.txt"


def is_run_dir(d: Path) -> bool:
    return d.is_dir() and not d.is_symlink() and (d / "run.json").is_file()


def is_finished(d: Path) -> bool:
    return (d / "results.csv").is_file() and (d / "report.html").is_file()


def _started(d: Path, manifest: dict) -> float:
    t = manifest.get("started")
    if isinstance(t, (int, float)):
        return float(t)
    return (d / "run.json").stat().st_mtime


def run_summary(d: Path) -> dict:
    """One run folder as a row: set, date, config, synthesis methods, verdict words, path."""
    try:
        manifest = read_json(d / "run.json")
    except (OSError, ValueError):
        manifest = {}
    words = []
    if (d / "verdict.json").is_file():
        try:
            rows = [r for r in read_json(d / "verdict.json").get("verdicts", []) if r.get("row") == "verdict"]
        except (OSError, ValueError, AttributeError):
            rows = []
        several_n = len({r.get("n_real") for r in rows}) > 1
        for r in rows:
            n = f" ({r.get('n_real')} real)" if several_n else ""
            words.append(f"{r.get('arm')}{n}: {r.get('word')}")
    finished = is_finished(d)
    verdict = "; ".join(words) if words else ("no synthetic arm" if finished else "unfinished")
    started = _started(d, manifest)
    return {
        "set": str(manifest.get("set", d.parent.name)),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "started": started,
        "config": str(manifest.get("config", "")),
        "synthesis": ",".join(manifest.get("synthesis") or []),
        "verdict": verdict,
        "finished": finished,
        "path": str(d),
    }


def find_runs(root: str | Path, set_name: str | None = None) -> list[dict]:
    """Every run folder ``root/<set>/<run-id>/`` (optionally of one set), oldest first per set."""
    root = Path(root)
    if not root.is_dir():
        return []
    rows = []
    for set_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if set_name is not None and set_dir.name != set_name:
            continue
        rows += [run_summary(d) for d in set_dir.iterdir() if is_run_dir(d)]
    return sorted(rows, key=lambda r: (r["set"], r["started"]))


def newest_finished(set_root: Path) -> Path | None:
    runs = [d for d in set_root.iterdir() if is_run_dir(d) and is_finished(d)] if set_root.is_dir() else []
    if not runs:
        return None
    return max(runs, key=lambda d: (run_summary(d)["started"], d.name))


def update_latest(set_root: str | Path) -> Path | None:
    """Point ``set_root/latest`` at the newest finished run folder; returns that folder (None: none)."""
    set_root = Path(set_root)
    target = newest_finished(set_root)
    if target is None:
        return None
    link = set_root / LATEST
    if link.exists() and not link.is_symlink():
        log.warning(f"{link}: exists and is not a link; left alone, {LATEST_TXT} written instead")
        write_text(set_root / LATEST_TXT, target.name + "\n")
        return target
    tmp = set_root / f".{LATEST}.{os.getpid()}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target.name, tmp, target_is_directory=True)  # relative: survives moving runs/
        os.replace(tmp, link)
    except (OSError, NotImplementedError):
        if tmp.is_symlink():
            tmp.unlink()
        write_text(set_root / LATEST_TXT, target.name + "\n")
        return target
    if (set_root / LATEST_TXT).is_file():  # left from a file system without links: keep it in step
        write_text(set_root / LATEST_TXT, target.name + "\n")
    return target


def latest_of(set_root: str | Path) -> Path | None:
    """The folder ``latest`` (or ``latest.txt``) names, if it still exists."""
    set_root = Path(set_root)
    link = set_root / LATEST
    if link.is_symlink():
        d = set_root / os.readlink(link)
        return d if d.is_dir() else None
    if (set_root / LATEST_TXT).is_file():
        d = set_root / (set_root / LATEST_TXT).read_text().strip()
        return d if d.is_dir() else None
    return None


def format_runs(rows: list[dict]) -> str:
    """Aligned plain-text table; ``*`` marks each set's latest finished run."""
    if not rows:
        return "no runs found"
    latest = {str(latest_of(Path(r["path"]).parent)) for r in rows}
    cols = [("", None), ("set", "set"), ("date", "date"), ("config", "config"), ("synthesis", "synthesis"),
            ("verdict", "verdict"), ("path", "path")]
    table = [[("*" if r["path"] in latest else "") if key is None else str(r[key]) for _, key in cols] for r in rows]
    head = [name for name, _ in cols]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *table]]
    return "\n".join(lines) + "\n\n* latest finished run of its set (runs/<set>/latest)"
