"""The content-addressed stage cache: keys, done markers, and the code hash a key includes.

A stage's output lives in ``runs/<set>/stages/<stage>/<key>/``. The key hashes everything the
output depends on: the set's files, the config values the stage reads, the keys of upstream
stages, and the source code that computes it. A folder holding ``_done.json`` is finished and is
reused by any later run with the same key; a folder without it is a partial result that the stage
resumes (shards, checkpoints).

The code part is *derived*, not listed by hand: :func:`code_hash` starts from a stage function,
takes its own source and every ``pipeline`` module it imports (at the top of its module or lazily
inside the function), then the modules those import, to the end. A hand-written list missed
dependencies (the generation key did not hash ``data/store.py``, which writes the pairs), so a change
that altered a stage's output could reuse a stale folder. Over-inclusion only costs a recomputation;
the stage layer itself, the CLI, the command modules and the config module are left out because
they do not compute outputs (they call the functions that do; the config values a stage reads are
in its key).

Nothing in the science (masks, generators, segmentation, evaluation) imports this module.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hashing import files_hash, json_hash
from .io import read_json, write_json

PACKAGE = "pipeline"
PACKAGE_ROOT = Path(__file__).resolve().parent
DONE = "_done.json"

# modules that orchestrate or present rather than compute a stage's output. config.py is one of
# them: the values a stage reads are in its key already, and its code only declares and checks
# them, so a new option elsewhere in it must not re-key every finished stage
_NOT_SCIENCE = ("pipeline.cli", "pipeline.stages", "pipeline.context", "pipeline.cache", "pipeline.runlock",
                "pipeline.config")
# registries of user choices: an entry's function is hashed with what it imports, not with its
# whole module, so adding a method or a mask source does not invalidate the others' caches
_REGISTRIES = ("pipeline.masks.sources", "pipeline.generators.methods")
# hashed, but their imports are not followed
_LEAVES: tuple[str, ...] = ()


def make_key(*parts: Any) -> str:
    return json_hash(list(parts))


def is_done(d: Path) -> bool:
    return (d / DONE).is_file()


def mark_done(d: Path, seconds: float, **info: Any) -> None:
    write_json(d / DONE, {"seconds": round(seconds, 3), "finished": time.time(), **info})


def done_info(d: Path) -> dict:
    return read_json(d / DONE)


def timed(d: Path, compute: Callable[[Path], Any], **info: Any) -> tuple[Path, float, bool]:
    """Run ``compute(d)`` unless ``d`` is finished; mark it done. Returns (folder, seconds, cached)."""
    if is_done(d):
        return d, 0.0, True
    t0 = time.perf_counter()
    d.mkdir(parents=True, exist_ok=True)
    compute(d)
    secs = time.perf_counter() - t0
    mark_done(d, secs, **info)
    return d, secs, False


# --------------------------------------------------------------------------------------------------
# The derived code hash


def _module_file(module: str) -> Path | None:
    """The source file of a ``pipeline`` module or package (None outside the package)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    if module == PACKAGE:
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*module.split(".")[1:])
    for p in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def _module_name(path: Path) -> str:
    rel = path.resolve().relative_to(PACKAGE_ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every ``pipeline`` module an AST imports, wherever the import statement sits."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from .pkg import submodule` imports a module, not only a name
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if _module_file(m) is not None}


@lru_cache(maxsize=None)
def _module_imports(module: str) -> frozenset[str]:
    f = _module_file(module)
    if f is None:
        return frozenset()
    return frozenset(_imports(ast.parse(f.read_text()), module, f.name == "__init__.py"))


def _closure(modules: set[str]) -> list[str]:
    seen: set[str] = set()
    todo = [m for m in modules if m not in _NOT_SCIENCE]
    while todo:
        m = todo.pop()
        if m in seen or m in _NOT_SCIENCE or m.endswith(".commands"):
            continue
        seen.add(m)
        parts = m.split(".")
        # importing pipeline.a.b runs pipeline/a/__init__.py first
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))
        if m not in _LEAVES:
            todo.extend(_module_imports(m))
    return sorted(seen)


def code_modules(fn: Callable) -> list[str]:
    """The ``pipeline`` modules whose code can change what ``fn`` computes."""
    source = textwrap.dedent(inspect.getsource(fn))
    module = fn.__module__
    mod_file = _module_file(module)
    direct = _imports(ast.parse(source), module, mod_file is not None and mod_file.name == "__init__.py")
    # a stage-layer function imports its science inside its body; a registry entry is hashed alone
    if module not in _NOT_SCIENCE and module not in _REGISTRIES and mod_file is not None:
        direct.add(module)  # (a function from outside the package is hashed by its own source)
    return _closure(direct)


@lru_cache(maxsize=None)
def code_hash(fn: Callable) -> str:
    """Hash of ``fn``'s own source and of every module in :func:`code_modules`, so a code change that
    can alter a stage's output gives the stage a new key."""
    files = [_module_file(m) for m in code_modules(fn)]
    return json_hash([textwrap.dedent(inspect.getsource(fn)), files_hash(PACKAGE_ROOT, files)], 12)


def package_hash() -> str:
    """Hash of the whole package's source: the version a run folder records."""
    return files_hash(PACKAGE_ROOT, sorted(PACKAGE_ROOT.rglob("*.py")))
