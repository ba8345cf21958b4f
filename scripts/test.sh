#!/usr/bin/env bash
# The test command: Chromium where it can be installed, the package with its test extras,
# lint and types, then the whole suite. README and .ci/run both call exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-chromium.sh
python -m pip install -q -e '.[test]'
python -m ruff check .
python -m ruff format --check .
python -m mypy
python -m pytest "$@"
