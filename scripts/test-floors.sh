#!/usr/bin/env bash
# The dependency floors in pyproject.toml, tested: a fresh virtualenv with every runtime
# dependency at the lowest version pyproject.toml allows, then mypy and the whole suite.
#   scripts/test-floors.sh            # ~3 minutes after the install
#   scripts/test-floors.sh -x tests/calls   # pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FLOORS_VENV:-.venv-floors}
python3 -m venv --clear "$venv"
# Every ">=" floor of [project] dependencies becomes an "==" constraint (extras dropped,
# markers kept): pip must then install exactly the minimum or fail.
python3 - > "$venv/floors.txt" <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as handle:
    dependencies = tomllib.load(handle)["project"]["dependencies"]
for spec in dependencies:
    requirement, _, marker = spec.partition(";")
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([\w.]+)\s*", requirement)
    if match is None:
        raise SystemExit(f"test-floors: no >= floor in {spec!r}")
    name, _, floor = match.groups()
    print(f"{name}=={floor}" + (f"; {marker.strip()}" if marker else ""))
PY
echo "test-floors: constraints"; sed 's/^/  /' "$venv/floors.txt"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -c "$venv/floors.txt" -e '.[test]'
"$venv/bin/pip" check
echo "test-floors: installed"
"$venv/bin/pip" freeze | tr '_' '-' | grep -iE "^($(cut -d= -f1 "$venv/floors.txt" | paste -sd'|'))==" | sed 's/^/  /'
# Types on the floors too: an ignore that one end needs must not be an error at the other.
"$venv/bin/python" -m mypy
# Starlette 0.46.0's TestClient (tests only) touches an alias today's anyio deprecates;
# uvicorn 0.30's WebSocket protocol hands websockets 13.0's legacy server a two-argument
# handler, which that server deprecates (inside uvicorn: nothing of ours to change).
"$venv/bin/python" -m pytest -q -p no:cacheprovider \
  -W "ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning" \
  -W "ignore:remove second argument of ws_handler:DeprecationWarning" "$@"
