"""The locked test environment (tests/requirements.lock, written by scripts/lock.py): what
the test command installs, exactly and with hashes, and how it says the Python differs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.locks import assert_exact_pins_with_hashes, lock_hashes, read_lock

ROOT = Path(__file__).resolve().parent.parent
TEST_LOCK = ROOT / "tests" / "requirements.lock"
LOCK_SCRIPT = ROOT / "scripts" / "lock.py"


def _pinned(path: Path) -> dict[str, str]:
    return {canonicalize_name(r.name): next(iter(r.specifier)).version for r in read_lock(path)}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_the_test_lock_pins_everything_exactly_with_hashes() -> None:
    assert_exact_pins_with_hashes(TEST_LOCK)


def test_the_test_lock_covers_runtime_extras_and_the_build_backend() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    wanted = (
        _names(pyproject["project"]["dependencies"])
        | _names(extras["test"])
        | _names(extras["dev"])
        | _names(pyproject["build-system"]["requires"])
    )
    locked = _pinned(TEST_LOCK)

    assert wanted - set(locked) == set(), "run scripts/test-latest.sh to refresh the lock"
    for spec in [*pyproject["project"]["dependencies"], *extras["test"], *extras["dev"]]:
        requirement = Requirement(spec)
        version = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)


def test_the_image_ships_the_versions_the_suite_ran_on() -> None:
    runtime = _pinned(ROOT / "deploy" / "requirements.lock")
    build = _pinned(ROOT / "deploy" / "build-requirements.lock")
    tested = _pinned(TEST_LOCK)

    assert {name: tested.get(name) for name in runtime} == runtime
    assert {name: tested.get(name) for name in build} == build
    # The same files too: a hash in the image's lock is one the test lock accepts.
    test_hashes = lock_hashes(TEST_LOCK)
    for name, digests in lock_hashes(ROOT / "deploy" / "requirements.lock").items():
        assert set(digests) == set(test_hashes[name]), name


def test_every_lock_names_the_python_it_was_made_on() -> None:
    for path in (TEST_LOCK, ROOT / "deploy" / "requirements.lock"):
        header = path.read_text().splitlines()[0]
        assert re.search(r"scripts/lock\.py on Python 3\.\d+ \(3\.\d+\.\d+\)", header), header


def _check(tmp_path: Path, header: str) -> subprocess.CompletedProcess[str]:
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"{header}\nanyio==4.0.0 \\\n    --hash=sha256:{'0' * 64}\n")
    return subprocess.run(
        [sys.executable, LOCK_SCRIPT, "--check-python", lock],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_python_check_is_quiet_on_the_locks_own_python(tmp_path: Path) -> None:
    v = sys.version_info
    done = _check(
        tmp_path, f"# made by scripts/lock.py on Python {v[0]}.{v[1]} ({v[0]}.{v[1]}.{v[2]})"
    )

    assert (done.returncode, done.stderr) == (0, "")


def test_the_python_check_says_clearly_when_the_interpreter_differs(tmp_path: Path) -> None:
    patch = _check(tmp_path, f"# on Python 3.{sys.version_info[1]} (3.{sys.version_info[1]}.999)")
    minor = _check(tmp_path, "# on Python 3.99 (3.99.0)")
    unknown = _check(tmp_path, "# hand-written")

    assert patch.returncode == 0
    assert "WARNING" in patch.stderr
    assert "made on Python 3." in patch.stderr
    assert "another minor version" not in patch.stderr
    assert minor.returncode == 0
    assert "another minor version" in minor.stderr
    assert unknown.returncode == 2
    assert "names no Python version" in unknown.stderr


def _commands(script: str) -> list[str]:
    text = (ROOT / "scripts" / script).read_text()
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def test_the_test_command_installs_only_from_the_lock_and_ci_runs_it() -> None:
    commands = _commands("test.sh")
    installs = [c for c in commands if "pip install" in c]

    assert '"$py" scripts/lock.py --check-python "$lock"' in commands
    assert "lock=tests/requirements.lock" in commands
    assert 'py="$venv/bin/python"' in commands
    assert installs == [
        '"$py" -m pip install -q --require-hashes --no-deps -r "$lock"',
        '"$py" -m pip install -q --no-deps --no-build-isolation -e .',
    ]
    assert '"$py" -m pip check' in commands
    assert 'python3 -m venv --clear "$venv"' in commands  # made again when the lock changed
    checks = [
        '"$py" -m ruff check .',
        '"$py" -m ruff format --check .',
        '"$py" -m mypy',
    ]
    at = commands.index(checks[0])
    assert commands[at : at + 3] == checks
    runs = [c for c in commands[at + 3 :] if "-m pytest" in c]
    # With arguments, pytest as asked; without, the whole suite in two halves that
    # together leave nothing out (the process tests beside the rest), both waited for.
    assert runs[0] == 'exec "$py" -m pytest "$@"  # a narrower run, as asked'
    assert any("-m pytest -m process " in c and c.endswith("&") for c in runs)
    assert any('-m pytest -m "not process" ' in c for c in runs)
    assert 'wait "$process_pid" || process_status=$?' in commands
    assert commands[-1] == "exit $(( status != 0 ? status : process_status ))"
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and ln[0] != "#"]
    assert ci[-1] == "scripts/test.sh"
    assert "```sh\nscripts/test.sh\n```" in (ROOT / "README.md").read_text()


def test_the_newest_and_floor_scripts_type_check_and_only_a_whole_run_relocks() -> None:
    latest = _commands("test-latest.sh")
    floors = _commands("test-floors.sh")

    assert any(c.endswith("-m mypy") for c in latest)
    assert any(c.endswith("-m mypy") for c in floors)
    relock = latest.index('"$venv/bin/python" scripts/lock.py')
    suite = next(i for i, c in enumerate(latest) if "-m pytest" in c)
    assert suite < relock
    assert any('[ "$#" -ne 0 ]' in c for c in latest[suite:relock])
