#!/usr/bin/env bash
# Every experiment of docs/experiments.md, one after the other (about 7 minutes on 1 CPU core).
# Each one alone: python -m experiments.<name>. Logs go to experiments/results/logs/.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p experiments/results/logs
names=${*:-gradients_through_time clipping bidirectional memory depth units}
for name in $names; do
  echo "== $name"
  start=$(date +%s)
  PYTHONWARNINGS=ignore $PY -m experiments.$name > experiments/results/logs/$name.log 2>&1
  rc=$?
  echo "   exit $rc after $(( $(date +%s) - start )) s (log: experiments/results/logs/$name.log)"
done
