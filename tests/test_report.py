"""The report builder on a hand-made run folder (numbers here are test inputs, not results)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipeline.config import Config
from pipeline.io import write_json, write_text
from pipeline.report.build import build_report, results_markdown_table, split_results, summarize


@pytest.fixture()
def run_dir(tmp_path):
    rows = []
    for seed, (b, p, lb) in enumerate([(0.50, 0.56, 0.52), (0.52, 0.55, 0.50), (0.48, 0.47, 0.49)]):
        for arm, f1 in (("real_only", b), ("pretrained:spade", p), ("joint:spade", lb)):
            rows.append({"row": "seed", "arm": arm, "seed": seed, "n_real": 100, "f1": f1, "precision": f1 + 0.05,
                         "recall": f1 - 0.05, "train_steps": 400 + seed, "train_stop": "patience", "train_precision": "bf16",
                         "arm_seconds": 60.0})
    verdict = {"row": "verdict", "arm": "pretrained:spade", "n_real": 100, "word": "no detectable difference",
               "sentence": "No detectable difference: pretrained:spade with 100 real pairs vs real_only, made up here."}
    pd.DataFrame([verdict, *rows]).to_csv(tmp_path / "results.csv", index=False)
    write_text(tmp_path / "config.yaml", Config().to_yaml())
    write_json(tmp_path / "set.json", {"name": "demo", "procedural": True, "summary": "demo: 10 pairs", "object_name": "fragment"})
    write_json(tmp_path / "stages.json", [{"stage": "masks", "path": "x", "seconds": 1.0, "cached": False, "compute_seconds": 1.0}])
    np.savez(tmp_path / "sizes.npz", ground_truth=np.array([10.0, 12, 14]), pretrained=np.array([11.0, 13]))
    return tmp_path


def test_summary_paired_difference(run_dir):
    s = summarize(split_results(pd.read_csv(run_dir / "results.csv"))[1]).set_index("arm")
    assert s.loc["pretrained:spade", "f1_diff_mean"] == pytest.approx(np.mean([0.06, 0.03, -0.01]))
    assert s.loc["pretrained:spade", "seeds_above_baseline"] == 2
    assert s.loc["real_only", "seeds"] == 3


def test_report_is_self_contained_says_procedural_and_leads_with_the_verdict(run_dir):
    html, md = build_report(run_dir)
    text = html.read_text()
    assert "procedural demo set" in text
    assert text.index("made up here") < text.index("Object-level results")  # the verdict comes first
    assert not re.search(r'src="(?!data:)', text)  # every image embedded
    assert text.count("data:image/png;base64,") >= 3
    md_text = md.read_text()
    assert md_text.index("made up here") < md_text.index("| real pairs |")
    assert "| 100 | spade pairs: synthetic pretraining, then real fine-tuning | 3 | 52.7 ± 4.9" in md_text
    assert "train: 401 steps (400–402), all on patience, bf16" in md_text  # the precision it ran in



def test_plateau_table_says_how_much_of_the_time_went_to_validation(run_dir):
    results = pd.read_csv(run_dir / "results.csv")
    results.loc[results.row == "seed", "train_seconds"] = 600.0
    results.loc[results.row == "seed", "train_validation_s"] = 60.0
    results.to_csv(run_dir / "results.csv", index=False)
    md_text = build_report(run_dir)[1].read_text()
    assert "| 100 | real_only | train: 401 steps (400–402), all on patience, bf16 | 10.0 (10 % validating) |" in md_text


def test_markdown_table(run_dir):
    table = results_markdown_table(pd.read_csv(run_dir / "results.csv"))
    assert table.count("\n") == 4 and "2/3" in table and "vs real_only" in table


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """mkstemp creates 0600 files; outputs must be readable like any file the user writes."""
    import os

    from pipeline.io import write_text

    mask = os.umask(0o022)
    os.umask(mask)
    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_report_shows_quality_metrics_and_style_grid(run_dir):
    from pipeline.io import write_png

    write_json(run_dir / "quality.json", {
        "realism_c2st_accuracy": {"value": 0.8711, "meaning": "held-out accuracy of a real-vs-synthetic classifier"},
        "details": {"realism_c2st": {"steps": 300}},
    })
    write_png(run_dir / "style_grid.png", np.zeros((8, 8, 3), np.uint8))
    html, md = build_report(run_dir)
    text = html.read_text()
    assert "realism_c2st_accuracy" in text and "0.8711" in text and "alt=\"style grid\"" in text
    assert "realism_c2st\"" not in text and "<td class=\"l\">details</td>" not in text  # raw details stay in quality.json
    assert "realism_c2st_accuracy = 0.8711" in md.read_text()


def test_report_shows_generator_losses_and_sample_snapshots(run_dir):
    """Issue 15 item 3: people look at training curves before they believe a number."""
    import json

    from pipeline.io import write_png

    gen = run_dir.parent / "stages" / "generator" / "abc"
    rows = [{"step": s, "d_hinge": 2.0 - s / 100, "g_l1": 5.0 / s, "lr_scale": 1.0, "sec": 0.1} for s in range(1, 101)]
    write_text(gen / "log.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    for step in (50, 100):
        write_png(gen / "samples" / f"step_{step:07d}.png", np.full((8, 8, 3), step, np.uint8))
    write_json(run_dir / "stages.json", [{"stage": "train generator (spade)", "path": str(gen), "seconds": 1.0,
                                          "cached": False, "compute_seconds": 1.0}])
    text = build_report(run_dir)[0].read_text()
    assert "Generator training: spade (100 steps)" in text
    assert "samples at step 50" in text and "samples at step 100" in text
    assert 'alt="generator losses against step"' in text
    assert "generator fidelity against step" not in text  # no judge, no eval.csv: no curve


def test_report_shows_generator_fidelity_with_the_best_step(run_dir):
    """Issue 15: realism over generator training. A judged generator's eval.csv becomes a curve
    beside the losses, the step final.pt came from is named, and its sample grid is shown."""
    import json

    from pipeline.io import write_png

    gen = run_dir.parent / "stages" / "generator" / "judged"
    rows = [{"step": s, "d_hinge": 2.0 - s / 100, "lr_scale": 1.0, "sec": 0.1} for s in range(1, 81)]
    write_text(gen / "log.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    f1s = [0.10, 0.30, 0.42, 0.40, 0.39, 0.41, 0.38, 0.40]
    pd.DataFrame({"step": range(10, 90, 10), "fidelity_f1": f1s, "precision": f1s, "recall": f1s,
                  "gradient_w1": 0.01, "elapsed_s": range(8)}).to_csv(gen / "eval.csv", index=False)
    for step in range(10, 90, 10):
        write_png(gen / "samples" / f"step_{step:07d}.png", np.full((8, 8, 3), step, np.uint8))
    write_json(gen / "training.json", {"steps_run": 80, "max_steps": 2000, "stop_reason": "patience", "best_step": 30,
                                       "best_fidelity_f1": 0.42, "time_s": 600.0})
    write_json(run_dir / "stages.json", [{"stage": "train generator (spade)", "path": str(gen), "seconds": 1.0,
                                          "cached": False, "compute_seconds": 1.0}])
    text = build_report(run_dir)[0].read_text()
    assert 'alt="generator fidelity against step"' in text and 'alt="generator losses against step"' in text
    assert "80 of 2000 steps, 10.0 min, stopped at its fidelity plateau" in text
    assert "EMA weights of step 30 (fidelity F1 0.420)" in text
    assert "samples at step 30 (best fidelity: final.pt)" in text
    assert "samples at step 10<" in text and "samples at step 80<" in text


def test_a_run_with_only_the_real_only_arm_gets_its_overlays(tmp_path):
    """A run of `segmentation.arms=[real_only]`: no verdict to give, but the report (and its
    best / worst overlays, which once had no panel to show) is still written."""
    from pipeline import context, stages
    from pipeline.config import load_config
    from pipeline.report import collect

    cfg = load_config("smoke", [f"runtime.runs_dir={tmp_path}", "data.demo_images=12", "data.n_train=4", "data.n_val=2",
                                "data.n_test=2", "data.demo_size=64", "segmentation.encoder=tu-mobilenetv3_small_050",
                                "segmentation.max_steps=2", "segmentation.eval_every=2", "runtime.progress=false"])
    ctx = context.prepare(cfg, run_id="r")
    arm, _, _ = stages.stage_seg_arm(ctx, "real_only", 0, 4, [])
    collect.collect_results(ctx, [arm])
    assert list((ctx.run_dir / "overlays").glob("*.png"))
    html, _ = build_report(ctx.run_dir)
    assert "No arm with synthetic data in this run" in html.read_text()


def test_two_numbers_of_real_pairs_give_a_label_efficiency_line_and_plot(tmp_path):
    """A study over n_real 50 and 100: verdicts at each, the 50-pair synthetic arm against real_only
    at 100 (verdicts -> results.csv rows -> report line and plot). Counts are test inputs."""
    from pipeline.evaluation.verdict import efficiency_sentence, verdicts

    images = [f"im{i}" for i in range(20)]
    rng = np.random.default_rng(0)
    rows, per_image = [], {}
    for n, shift in ((50, {"real_only": -2, "pretrained:copypaste": 0}), (100, {"real_only": 0, "pretrained:copypaste": 0})):
        for seed in (0, 1, 2):
            for arm, s in shift.items():
                tp = rng.integers(4, 7, len(images)) + s
                per_image[len(rows)] = pd.DataFrame({"image": images, "tp": tp, "fp": 8 - tp, "fn": 8 - tp})
                f1 = float(tp.sum() / (tp.sum() + (8 - tp).sum()))
                rows.append({"row": "seed", "arm": arm, "seed": seed, "n_real": n, "f1": f1, "precision": f1, "recall": f1,
                             "hit_cap": False, "row_id": len(rows), "train_steps": 400, "train_stop": "patience"})
    frame = pd.DataFrame(rows)
    at_each, efficiency = verdicts(frame, per_image, n_boot=300)
    assert [(c.arm, c.n_real, c.reference_n_real) for c in at_each] == [("pretrained:copypaste", 50, 50),
                                                                          ("pretrained:copypaste", 100, 100)]
    assert [(c.n_real, c.reference_n_real, c.seeds) for c in efficiency] == [(50, 100, 3)]
    line = efficiency_sentence(efficiency[0])
    assert line.startswith("50 real pairs + synthetic (pretrained:copypaste)") and "100 real pairs alone" in line

    verdict_rows = [{"row": "verdict", **c.as_row()} for c in at_each]
    verdict_rows += [{"row": "label_efficiency", **efficiency[0].as_row(), "sentence": line}]
    pd.DataFrame([*verdict_rows, *frame.drop(columns=["row_id"]).to_dict("records")]).to_csv(tmp_path / "results.csv", index=False)
    write_text(tmp_path / "config.yaml", Config().to_yaml())
    write_json(tmp_path / "set.json", {"name": "demo", "procedural": True, "summary": "demo", "object_name": "fragment"})
    write_json(tmp_path / "stages.json", [])
    html, md = build_report(tmp_path)
    text = html.read_text()
    assert line in text and line in md.read_text() and "Real pairs needed" in text
    assert text.index(line) < text.index("Object-level results")  # with the verdicts, at the top
