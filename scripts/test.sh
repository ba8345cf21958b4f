#!/usr/bin/env bash
# The test command: Chromium where it can be installed, the locked test environment in its
# own virtualenv (tests/requirements.lock, exact pins with hashes), lint and types, then the
# whole suite. README and .ci/run both call exactly this. Arguments pass to pytest.
# The lock is refreshed on purpose by scripts/test-latest.sh, never by this command.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=tests/requirements.lock
venv=${BROKER_TEST_VENV:-.venv-test}
scripts/install-chromium.sh
# A virtualenv of its own: nothing installed beside the project (a pytest plugin, another
# package's pins) changes what the suite runs on, and the lock changes nothing outside it.
# Made again when the lock changed: pip never removes what a new lock dropped.
stamp=$(sha256sum "$lock" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$stamp" ]; then
    python3 -m venv --clear "$venv"
fi
py="$venv/bin/python"
# The lock's environment markers were evaluated on one Python; say so when this one differs.
"$py" scripts/lock.py --check-python "$lock"
# --require-hashes: exactly the pinned files or nothing; --no-deps: nothing unpinned slips in.
"$py" -m pip install -q --require-hashes --no-deps -r "$lock"
# The project itself, built by the locked setuptools (no isolated build that would fetch one).
"$py" -m pip install -q --no-deps --no-build-isolation -e .
"$py" -m pip check
echo "$stamp" > "$venv/.lock-sha256"
"$py" -m ruff check .
"$py" -m ruff format --check .
"$py" -m mypy
if [ "$#" -gt 0 ]; then
    exec "$py" -m pytest "$@"  # a narrower run, as asked
fi
# The whole suite in two halves at once: the tests that start real processes (servers,
# replicas, Chromium: mostly waiting on leases, deadlines and sockets) beside the rest
# (CPU-bound), each with a temporary base of its own. On 2 cores this takes the suite
# from ~5 minutes to ~3. The process half's report follows the other's.
base=$(mktemp -d)
echo "test: the process tests run beside the others (their report follows; log $base/process.log)"
"$py" -m pytest -m process -p no:cacheprovider --basetemp "$base/process" >"$base/process.log" 2>&1 &
process_pid=$!
# Stopped with this script (a background job of a script ignores Ctrl-C on its own).
trap 'kill "$process_pid" 2>/dev/null || true' INT TERM EXIT
status=0
"$py" -m pytest -m "not process" --basetemp "$base/rest" || status=$?
process_status=0
wait "$process_pid" || process_status=$?
echo "test: the process tests"
cat "$base/process.log"
if [ "$status" -eq 0 ] && [ "$process_status" -eq 0 ]; then rm -rf "$base"; fi
exit $(( status != 0 ? status : process_status ))
