#!/bin/bash
# kill -9 during segmentation training, then resume: nothing lost, no partial file accepted.
#   bench/kill_resume.sh WORKDIR      (smoke config on the demo set; ~3 min on the 2-core CPU)
set -u
WORK=${1:?work folder}; REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK" && cd "$WORK" || exit 1
export PREFECT_HOME=$WORK/prefect-home PREFECT_LOGGING_LEVEL=WARNING PYTHONPATH=$REPO
PY=$REPO/.venv/bin/python
ARGS=(--config smoke --run-id r1 runtime.progress=false segmentation.max_steps=200 segmentation.eval_every=5
      segmentation.patience=0 "segmentation.arms=[real_only]")
$PY -m pipeline.cli run "${ARGS[@]}" > first.log 2>&1 &
PID=$!
until ls runs/demo/stages/seg_real_only/*/train/last.pt >/dev/null 2>&1; do sleep 0.5; done
sleep 3; kill -9 $PID; pkill -9 -f "pipeline.cli run --config smoke --run-id r1"; sleep 1
echo "killed; files in the training folder:"; ls -a runs/demo/stages/seg_real_only/*/train/
$PY -c "import torch,glob; print('checkpointed step:', torch.load(glob.glob('runs/demo/stages/seg_real_only/*/train/last.pt')[0], weights_only=True)['step'])"
$PY -m pipeline.cli run "${ARGS[@]}" > second.log 2>&1; echo "second run exit: $?"; tail -1 second.log
$PY - <<'PY'
import glob, json, pandas as pd
d = glob.glob("runs/demo/stages/seg_real_only/*/train")[0]
log, m = pd.read_csv(d + "/log.csv"), json.load(open(d + "/metrics.json"))
print("logged steps", log.step.iloc[0], "...", log.step.iloc[-1], "| no gap or repeat:", bool((log.step.diff().dropna() == 5).all()),
      "| metrics:", m["steps_run"], m["stop_reason"])
PY
