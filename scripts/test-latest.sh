#!/usr/bin/env bash
# The newest releases, on purpose: a fresh virtualenv with the newest release of everything
# pyproject.toml allows (runtime, `test` and `dev` extras, build backend), lint, types and
# the whole suite on them; when all pass, the locks are refreshed from that environment
# (tests/requirements.lock and deploy/*requirements.lock).
#   scripts/test-latest.sh               # ~4 minutes after the install; then review the lock diff
#   scripts/test-latest.sh -x tests/calls   # pytest arguments pass through (the lock is then
#                                           # not refreshed: only a whole run may do that)
# Run it when you mean to take new releases (weekly, or before a release), not in CI: the
# test command itself installs only from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LATEST_VENV:-.venv-latest}
python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q --upgrade pip setuptools
"$venv/bin/pip" install -q --upgrade -e '.[test,dev]'
"$venv/bin/pip" check
echo "test-latest: installed"
"$venv/bin/pip" freeze --exclude-editable | sed 's/^/  /'
"$venv/bin/python" -m ruff check .
"$venv/bin/python" -m ruff format --check .
"$venv/bin/python" -m mypy
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
if [ "$#" -ne 0 ]; then
    echo "test-latest: passed with pytest arguments; the locks are left as they are"
    exit 0
fi
"$venv/bin/python" scripts/lock.py
echo "test-latest: passed; locks refreshed. What changed:"
git --no-pager diff --unified=0 -- tests/requirements.lock deploy/requirements.lock deploy/dev-requirements.lock \
    deploy/build-requirements.lock | grep -E '^[-+][a-z0-9]' || echo "  nothing"
