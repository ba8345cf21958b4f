#!/usr/bin/env bash
# The benchmark, from a fresh clone: installs wrk (Debian) if missing and the project into
# .venv (unless PYTHON names an interpreter that has it), then runs bench/run.py.
#   bench/run.sh --quick     # ~3 minutes: mints (bench/run.py) and 200 held calls (bench/calls.py)
#   bench/run.sh             # full (~25 minutes: the 5-minute memory run, 1k/5k/10k held calls)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null) || true; fi
  command -v wrk >/dev/null || echo "bench: wrk unavailable; closed loop falls back to bench/loadgen.py"
fi
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
    # redis-py's C reply parser: measured here (bench/README.md), pending as a dependency.
    .venv/bin/pip install -q 'hiredis>=3.2'
  fi
  PYTHON=.venv/bin/python
fi
"$PYTHON" bench/run.py "$@"
quick=()
for arg in "$@"; do [ "$arg" = --quick ] && quick=(--quick); done
exec "$PYTHON" bench/calls.py "${quick[@]}"
