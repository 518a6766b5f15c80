"""Every bad-input kind through the real command line: exit code, message, traceback or not, and
whether the user's folder is byte-identical afterwards (names, sizes, contents, mtimes).

    python bench/bad_input.py CODE_ROOT WORK_DIR OUT_JSON            # run the cases
    python bench/bad_input.py --markdown NEW_JSON [OLD_JSON]          # the table of RESULTS.md

CODE_ROOT is the checkout whose ``pipeline`` package is run (PYTHONPATH), so the same cases can be
run against an older commit (``git archive <commit> | tar -x -C /tmp/old``) for the "before" column.
WORK_DIR is wiped and receives the small bad sets; nothing is written elsewhere. No training runs:
``predict`` uses a randomly initialised tiny checkpoint (tests/fixtures/seg_data.py).
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent


def markdown(new_path: str, old_path: str | None = None) -> str:
    """One row per case; the last column is the older code's outcome where it differed."""
    new = json.loads(Path(new_path).read_text())
    old = {r["case"]: r for r in json.loads(Path(old_path).read_text())} if old_path else {}

    def cell(text: str) -> str:
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # torch colours its advice
        return text.replace("|", "\\|").replace("error: ", "").strip()

    def outcome(r: dict) -> str:
        if r["traceback"]:  # the exception's own line, not "Traceback (most recent call last):"
            raised = [ln for ln in r["all_lines"] if "Error" in ln.split(":")[0]]
            return f"exit {r['rc']}: traceback ending in {cell(raised[-1] if raised else r['all_lines'][-1])[:160]}"
        tb = ""
        same = "" if r["identical"] in (None, True) else ", folder changed"
        unnamed = f", {r['unnamed']} unnamed decoder line(s)" if r["unnamed"] else ""
        return f"exit {r['rc']}: {cell(r['msg'])}{tb}{same}{unnamed}"

    head = ["#", "case (issue 14 item)", "command", "exit", "message (first line)", "traceback", "folder byte-identical"]
    if old:
        head.append("before (aedc53b)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(new, 1):
        ident = "n/a (the case edits it)" if r["identical"] is None else ("yes" if r["identical"] else "**no**")
        row = [str(i), f"{r['case']} ({r['item'] or 'RESULTS 1'})", f"`{r['cmd']}`", str(r["rc"]), cell(r["msg"]),
               "yes" if r["traceback"] else "no", ident]
        if old:
            o = old.get(r["case"])
            row.append("same" if o and outcome(o) == outcome(r) else (outcome(o) if o else ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if sys.argv[1] == "--markdown":
    print(markdown(*sys.argv[2:4]))
    sys.exit(0)

CODE, WORK, OUT = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), Path(sys.argv[3])
# run from WORK: `python -c` puts the current folder first on sys.path, ahead of PYTHONPATH
BIN = str(Path(sys.executable).parent / "synth-pretrain")
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(CODE), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
if WORK.exists():
    shutil.rmtree(WORK)
WORK.mkdir(parents=True)


def png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def tex(h=48, w=48, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w)).astype(np.uint8), (5, 5), 0)


def jpg_bytes(arr):
    return cv2.imencode(".jpg", arr)[1].tobytes()


def png_bytes(arr):
    return cv2.imencode(".png", arr)[1].tobytes()


def good(root, stem="good", h=48, w=48):
    png(root / "images" / f"{stem}.png", tex(h, w))
    m = np.zeros((h, w), np.uint8)
    m[5:15, 5:15] = 255
    png(root / "masks" / f"{stem}.png", m)


def mask_for(root, stem, h=48, w=48):
    m = np.zeros((h, w), np.uint8)
    m[5:15, 5:15] = 255
    png(root / "masks" / f"{stem}.png", m)


def snapshot(root):
    out = {}
    if not root.exists():
        return None
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        dig = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink() else None
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else None, st.st_mtime_ns, dig)
    return out


cases = []


def case(name, item=""):
    def deco(fn):
        cases.append((name, item, fn))
        return fn
    return deco


def V(root, *extra):
    return [BIN, "validate", str(root), *extra], root


# ---- kinds validation already covered (RESULTS section 1) ----
@case("corrupt PNG (PNG signature, garbage after)", "")
def _(d):
    good(d); (d / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png IEND"); mask_for(d, "bad")
    return V(d)

@case("truncated JPEG (second half missing)", "")
def _(d):
    good(d); b = jpg_bytes(tex()); (d / "images" / "bad.jpg").write_bytes(b[: len(b) // 2]); mask_for(d, "bad")
    return V(d)

@case("mask without image", "")
def _(d):
    good(d); mask_for(d, "orphan"); return V(d)

@case("image without mask", "")
def _(d):
    good(d); png(d / "images" / "orphan.png", tex()); return V(d)

@case("mask size differs from image", "")
def _(d):
    good(d); png(d / "images" / "bad.png", tex()); mask_for(d, "bad", 40, 48); return V(d)

@case("floating-point mask (TIFF)", "")
def _(d):
    good(d); png(d / "images" / "bad.png", tex()); tifffile.imwrite(d / "masks" / "bad.tif", np.full((48, 48), 0.5, np.float32)); return V(d)

@case("negative mask values (TIFF int16)", "")
def _(d):
    good(d); png(d / "images" / "bad.png", tex()); m = np.zeros((48, 48), np.int16); m[2, 2] = -3
    tifffile.imwrite(d / "masks" / "bad.tif", m); return V(d)

@case("too many instances (--max-instances 5)", "")
def _(d):
    good(d); png(d / "images" / "bad.png", tex()); m = np.zeros((48, 48), np.uint16)
    for k in range(8):
        m[2:6, 2 + 5 * k: 5 + 5 * k] = k + 1
    png(d / "masks" / "bad.png", m); return V(d, "--max-instances", "5")

@case("duplicate stem (bad.png + bad.bmp)", "9")
def _(d):
    good(d); png(d / "images" / "bad.png", tex()); png(d / "images" / "bad.bmp", tex()); mask_for(d, "bad"); return V(d)

@case("symlinked file pointing out of the set", "")
def _(d):
    good(d); png(d.parent / f"{d.name}_outside.png", tex()); os.symlink(d.parent / f"{d.name}_outside.png", d / "images" / "bad.png")
    mask_for(d, "bad"); return V(d)

@case("image over the pixel limit (--max-pixels 2000)", "")
def _(d):
    png(d / "images" / "bad.png", tex(100, 100)); mask_for(d, "bad", 100, 100); good(d, "good", 40, 40)
    return V(d, "--max-pixels", "2000")

@case("non-image file in images/ (README.txt)", "")
def _(d):
    good(d); (d / "images" / "README.txt").write_text("notes"); return V(d)

@case("empty set (images/ and masks/ empty)", "")
def _(d):
    (d / "images").mkdir(parents=True); (d / "masks").mkdir(); return V(d)

@case("masks/ folder missing", "")
def _(d):
    png(d / "images" / "a.png", tex()); return V(d)

@case("no such set folder", "")
def _(d):
    d.parent.mkdir(parents=True, exist_ok=True); return V(d)

@case("set.yaml with an unknown key", "")
def _(d):
    good(d); (d / "set.yaml").write_text("display_name: x\ncolour: red\n"); return V(d)

@case("set.yaml test list names a missing stem", "")
def _(d):
    good(d); (d / "set.yaml").write_text("test: [good, zzz]\n"); return V(d)

# ---- issue 14 items ----
@case("JPEG corrupted in the middle, end marker intact", "7")
def _(d):
    good(d); b = bytearray(jpg_bytes(tex(128, 128))); m = len(b) // 2; b[m:m + 200] = bytes(200)
    (d / "images" / "bad.jpg").write_bytes(bytes(b)); mask_for(d, "bad", 128, 128); return V(d)

@case("PNG with one flipped byte in IDAT", "7")
def _(d):
    good(d); b = bytearray(png_bytes(tex())); b[len(b) // 2] ^= 0xFF
    (d / "images" / "bad.png").write_bytes(bytes(b)); mask_for(d, "bad"); return V(d)

@case("truncated PNG (second half missing)", "7")
def _(d):
    good(d); b = png_bytes(tex()); (d / "images" / "bad.png").write_bytes(b[: len(b) // 2]); mask_for(d, "bad"); return V(d)

@case("valid PNG + 100 trailing bytes", "7")
def _(d):
    good(d); (d / "images" / "tail.png").write_bytes(png_bytes(tex()) + b"x" * 100); mask_for(d, "tail"); return V(d)

@case("valid JPEG + 100 trailing bytes", "7")
def _(d):
    good(d); (d / "images" / "tail.jpg").write_bytes(jpg_bytes(tex()) + b"x" * 100); mask_for(d, "tail"); return V(d)

@case("JPEG data named .png", "9")
def _(d):
    good(d); (d / "images" / "bad.png").write_bytes(jpg_bytes(tex())); mask_for(d, "bad"); return V(d)

@case("text file named .png", "9")
def _(d):
    good(d); (d / "images" / "bad.png").write_text("hello, not an image\n"); mask_for(d, "bad"); return V(d)

@case("anti-aliased binary mask (2 circles, 60 grey levels)", "8")
def _(d):
    png(d / "images" / "aa.png", tex(128, 128)); m = np.zeros((128, 128), np.uint8)
    cv2.circle(m, (40, 40), 20, 255, -1, lineType=cv2.LINE_AA); cv2.circle(m, (90, 84), 25, 255, -1, lineType=cv2.LINE_AA)
    png(d / "masks" / "aa.png", m); return V(d)

@case("images/ folder is a symlink out of the set", "9")
def _(d):
    other = d.parent / f"{d.name}_elsewhere"; good(other); d.mkdir(parents=True)
    os.symlink(other / "images", d / "images"); shutil.copytree(other / "masks", d / "masks"); return V(d)

@case("last_finished.json for --set /absolute/path (remember_set + set_changed, as `run` does)", "2")
def _(d):
    good(d); runs = d.parent / f"{d.name}_runs"
    code = ("import sys; from pipeline import context; from pipeline.config import load_config; "
            f"cfg = load_config('smoke', ['data.set={d.resolve()}', 'runtime.runs_dir={runs}']); "
            "context.remember_set(cfg); print('changed after remember:', context.set_changed(cfg)); "
            "import pathlib; print('state files:', [str(p) for p in pathlib.Path(sys.argv[1]).rglob('last_finished.json')] + "
            "[str(p) for p in pathlib.Path(sys.argv[2]).rglob('last_finished.json')])")
    return [PY, "-c", code, str(d), str(runs)], d, f"python -c '<remember_set, set_changed with data.set={d.name}>'"

@case("set hash after adding .DS_Store, Thumbs.db, x.png~ (then after a 1-byte mask edit, mtime restored)", "10")
def _(d):
    good(d)
    code = ("import os, sys, pathlib; from pipeline.data.sets import set_content_hash as h; r = pathlib.Path(sys.argv[1]); a = h(r); "
            "(r/'.DS_Store').write_bytes(b'x'); (r/'masks'/'Thumbs.db').write_bytes(b'x'); (r/'masks'/'good.png~').write_bytes(b'x'); b = h(r); "
            "m = r/'masks'/'good.png'; st = m.stat(); d = bytearray(m.read_bytes()); d[-20] ^= 1; m.write_bytes(bytes(d)); "
            "os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns)); c = h(r); "
            "print('OS files change hash:', a != b, '| 1-byte edit changes hash:', b != c)")
    return [PY, "-c", code, str(d)], None, f"python -c '<set_content_hash before/after>' {d.name}"

DEMO = WORK / "_demo"

def _demo():
    if not DEMO.exists():
        subprocess.run([BIN, "demo-data", str(DEMO), "--n", "8", "--size", "64"], env=ENV, cwd=WORK, capture_output=True, check=True)
    return DEMO

@case("masks --out DIR holding 3 masks of 32x32, asked for 4 of 64x64", "11")
def _(d):
    demo = _demo()
    base = [BIN, "masks", "--set", str(demo), "--out", str(d), "--workers", "1", "--config", "smoke", "-o", "runtime.progress=false"]
    subprocess.run([*base, "--count", "3", "--size", "32"], env=ENV, cwd=WORK, capture_output=True, check=True)
    return [*base, "--count", "4", "--size", "64"], d

@case("generate --checkpoint <a text file>", "11")
def _(d):
    d.mkdir(parents=True); (d / "notes.pt").write_text("not a checkpoint\n")
    store = d / "maskstore"
    code = ("import sys, numpy as np; from pipeline.data.store import MaskStore; s = MaskStore(sys.argv[1]); "
            "s.write_shard(0, [np.zeros((32, 32), np.int32)], [{'index': 0, 'source': 'placement'}]); s.finalize()")
    subprocess.run([PY, "-c", code, str(store)], env=ENV, cwd=WORK, check=True)
    return [BIN, "generate", "--checkpoint", str(d / "notes.pt"), "--masks", str(store), "--out", str(d.parent / f"{d.name}_out"),
            "--config", "smoke", "runtime.progress=false", "runtime.device=cpu"], d

@case("generate --checkpoint <a torch file that needs full unpickling>", "11")
def _(d):
    d.mkdir(parents=True)
    subprocess.run([PY, "-c", "import torch, pathlib, sys; torch.save({'model': pathlib.Path('/x')}, sys.argv[1])", str(d / "pickle.pt")], env=ENV, cwd=WORK, check=True)
    store = d / "maskstore"
    code = ("import sys, numpy as np; from pipeline.data.store import MaskStore; s = MaskStore(sys.argv[1]); "
            "s.write_shard(0, [np.zeros((32, 32), np.int32)], [{'index': 0, 'source': 'placement'}]); s.finalize()")
    subprocess.run([PY, "-c", code, str(store)], env=ENV, cwd=WORK, check=True)
    return [BIN, "generate", "--checkpoint", str(d / "pickle.pt"), "--masks", str(store), "--out", str(d.parent / f"{d.name}_out"),
            "--config", "smoke", "runtime.progress=false", "runtime.device=cpu"], d

CKPT = WORK / "_ckpt" / "best.pt"

def _ckpt():
    if not CKPT.exists():
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from fixtures.seg_data import tiny_checkpoint; "
                "tiny_checkpoint(sys.argv[1])")
        CKPT.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-c", code, str(CKPT)], env=ENV, cwd=WORK, check=True)
    return CKPT

def _bomb(w, h):
    ch = lambda k, p: struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p))
    return b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + ch(b"IDAT", zlib.compress(b"\0" * (w + 1) * 4)) + ch(b"IEND", b"")

@case("predict on a 300-byte PNG announcing 30000x30000 px (default limit)", "12")
def _(d):
    png(d / "ok.png", tex(64, 64)); (d / "bomb.png").write_bytes(_bomb(30000, 30000))
    return [BIN, "predict", str(_ckpt()), str(d), str(d.parent / f"{d.name}_pred"), "--tile", "64", "--no-progress", "--device", "cpu"], d

@case("predict --max-pixels 5000 on a 100x100 image", "12")
def _(d):
    png(d / "ok.png", tex(64, 64)); png(d / "large.png", tex(100, 100))
    return [BIN, "predict", str(_ckpt()), str(d), str(d.parent / f"{d.name}_pred"), "--tile", "64", "--no-progress", "--device", "cpu",
            "--max-pixels", "5000"], d


rows = []
only = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else None
for i, (name, item, fn) in enumerate(cases, 1):
    if only and item not in only and not any(x in only for x in item.split(", ")):
        continue
    d = WORK / f"c{i:02d}"
    cmd, watch, *shown = fn(d)
    before = snapshot(watch) if watch is not None else None
    proc = subprocess.run(cmd, env=ENV, cwd=WORK, capture_output=True, text=True, timeout=300)
    after = snapshot(watch) if watch is not None else None
    out = proc.stdout + proc.stderr
    lines = [ln for ln in out.splitlines() if ln.strip()]
    interesting = [ln for ln in lines if ln.startswith(("error:", "skipped:"))] or [ln for ln in lines if ln.startswith("note:") and "README" not in ln] or lines
    if "README" in name:
        interesting = [ln for ln in lines if ln.startswith("note:")]
    errors = [ln for ln in lines if ln.startswith("error:") and not ln.endswith("problem(s) found")]
    msg = " / ".join(errors) if errors else interesting[0] if interesting else ""
    if name.startswith("set hash") or name.startswith("last_finished"):
        msg = " ".join(lines)
    unnamed = [ln for ln in lines if ("Corrupt JPEG" in ln or "libpng" in ln or "Premature end" in ln) and str(WORK) not in ln]
    rows.append({
        "case": name, "item": item, "cmd": shown[0] if shown else " ".join(Path(c).name if c in (BIN, PY) else c for c in cmd).replace(str(WORK) + "/", ""),
        "rc": proc.returncode, "msg": msg.replace(str(WORK) + "/", ""), "n_errors": sum(ln.startswith("error:") for ln in lines),
        "all_lines": [ln.replace(str(WORK) + "/", "") for ln in lines],
        "traceback": "Traceback" in out, "unnamed": len(unnamed),
        "identical": None if watch is None else before == after,
    })
    print(f"{i:2d} rc={proc.returncode} {name}: {rows[-1]['msg'][:150]}", flush=True)
OUT.write_text(json.dumps(rows, indent=1))
