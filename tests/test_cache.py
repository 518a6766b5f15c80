"""The derived code hash: a stage's key follows every module that can change its output."""

from __future__ import annotations

from pipeline import cache, stages
from pipeline.generators.methods import SYNTHESIS_METHODS
from pipeline.masks.sources import MASK_SOURCES


def test_generation_hashes_the_store_that_writes_the_pairs():
    # the hand-written list this replaced missed data/store.py for the generation key
    for method in SYNTHESIS_METHODS.values():
        assert "pipeline.data.store" in cache.code_modules(method.generate)


def test_arm_code_follows_lazy_imports_but_not_the_report_or_the_cli():
    mods = cache.code_modules(stages.stage_seg_arm)
    for needed in ("pipeline.segmentation.arms", "pipeline.segmentation.training", "pipeline.segmentation.dataset",
                   "pipeline.segmentation.postprocess", "pipeline.evaluation.matching", "pipeline.data.store",
                   "pipeline.device"):
        assert needed in mods
    assert not [m for m in mods if m.startswith(("pipeline.report", "pipeline.cli", "pipeline.stages", "pipeline.config"))]
    assert not [m for m in mods if m.endswith(".commands")]


def test_registry_entries_are_hashed_apart():
    # adding a mask source must not invalidate the others: each entry hashes its own imports
    assert "pipeline.masks.progan" not in cache.code_modules(MASK_SOURCES["placement"].write)
    assert "pipeline.masks.placement" in cache.code_modules(MASK_SOURCES["placement"].write)
    assert cache.code_hash(SYNTHESIS_METHODS["copypaste"].generate) != cache.code_hash(SYNTHESIS_METHODS["spade"].generate)


def test_a_module_edit_changes_the_hash(tmp_path, monkeypatch):
    root = tmp_path / "pipeline"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "leaf.py").write_text("X = 1\n")
    (root / "sub" / "mid.py").write_text("def f():\n    from .leaf import X\n    return X\n")
    monkeypatch.setattr(cache, "PACKAGE_ROOT", root)
    cache._module_imports.cache_clear()
    assert cache._closure({"pipeline.sub.mid"}) == ["pipeline.sub", "pipeline.sub.leaf", "pipeline.sub.mid"]
    cache._module_imports.cache_clear()
