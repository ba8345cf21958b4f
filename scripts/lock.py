"""Write the project's locks from the environment this Python runs in.

    python scripts/lock.py            # writes the three locks below
    python scripts/lock.py --runtime  # prints the runtime pins only (no hashes), for a check
    python scripts/lock.py --check-python tests/requirements.lock   # says if this Python differs

The environment must hold the project installed with its `test` and `dev` extras (what
`scripts/test-latest.sh` makes). Only what `pyproject.toml` asks for, and what that pulls in,
is walked, so stray packages in the environment stay out. Environment markers are evaluated
for this interpreter: run it with the Python the Dockerfile's base image and CI use (the
header of each lock records it, and `scripts/test.sh` compares it with its own).

- `tests/requirements.lock`: everything the test command installs (runtime, `test` and `dev`
  extras, the build backend), with the sha256 of every file PyPI has for each pin, so `pip
  install --require-hashes` installs exactly what the suite last passed on.
- `deploy/requirements.lock`: the runtime subset, for the image (no test tools in it).
- `deploy/dev-requirements.lock`: what the `dev` extra adds to the runtime, for the image's
  `dev` target (docker-compose.yml's fake upstream).
- `deploy/build-requirements.lock`: the build backend, for the image's build stage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "realtime-token-broker"
EXTRAS = ("test", "dev")
PYPI = "https://pypi.org/pypi"


def _wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    # An extra-less evaluation must still see an "extra" key, or packaging raises.
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def pins(project: str = PROJECT, extras: Iterable[str] = ()) -> dict[str, str]:
    """Walk the installed metadata from `project` (with `extras`); name -> version."""
    # packaging is imported here, not at the top: --check-python runs before anything of
    # the lock is installed, with the standard library only.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        dist = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(project):
            found[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if _wanted(requirement, wanted):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def build_backend() -> dict[str, str]:
    """The [build-system] requirements as installed here (setuptools)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    names = [canonicalize_name(Requirement(r).name) for r in requires]
    return {name: metadata.version(name) for name in names}


def hashes(name: str, version: str) -> list[str]:
    """sha256 of every file PyPI publishes for `name==version` (any platform may install)."""
    # The per-project document: the per-version one is not served by every PyPI mirror.
    with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=60) as response:
        files = json.load(response)["releases"].get(version, [])
    digests = sorted({f["digests"]["sha256"] for f in files if not f.get("yanked")})
    if not digests:
        raise SystemExit(f"lock: PyPI lists no files for {name}=={version}")
    return digests


def render(header: str, pinned: Mapping[str, str], with_hashes: bool) -> str:
    names = sorted(pinned)
    digests: dict[str, list[str]] = {}
    if with_hashes:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = pool.map(lambda n: hashes(n, pinned[n]), names)
            digests = dict(zip(names, found, strict=True))
    lines = [header]
    for name in names:
        pin = f"{name}=={pinned[name]}"
        if with_hashes:
            pin += "".join(f" \\\n    --hash=sha256:{digest}" for digest in digests[name])
        lines.append(pin)
    return "\n".join(lines) + "\n"


def python_line() -> str:
    version = sys.version_info
    return (
        f"Python {version.major}.{version.minor} ({version.major}.{version.minor}.{version.micro})"
    )


def check_python(lock: Path) -> int:
    """Compare this interpreter with the one `lock` was made on; warn when they differ.
    Exit status 2 when the lock has no version in its header (it is then not ours)."""
    match = re.search(r"Python (\d+\.\d+) \((\d+\.\d+\.\d+)\)", lock.read_text())
    if match is None:
        print(f"lock: {lock} names no Python version; regenerate it", file=sys.stderr)
        return 2
    made_minor, made = match.groups()
    here = "{}.{}.{}".format(*sys.version_info[:3])
    if here != made:
        other_minor = not here.startswith(f"{made_minor}.")
        print(
            f"lock: WARNING: {lock} was made on Python {made}, this is Python {here}"
            + (
                " (another minor version: environment markers may want other dependencies;"
                " `pip check` says if one is missing)"
                if other_minor
                else ""
            )
            + ". scripts/test-latest.sh tests the newest releases on this Python and"
            " writes the locks for it.",
            file=sys.stderr,
        )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", action="store_true", help="print the runtime pins only")
    parser.add_argument("--check-python", type=Path, metavar="LOCK", help="compare Pythons")
    args = parser.parse_args()
    if args.check_python is not None:
        raise SystemExit(check_python(args.check_python))
    runtime = pins()
    if args.runtime:
        sys.stdout.write(render(f"# runtime pins on {python_line()}", runtime, False))
        return
    backend = build_backend()
    everything = {**pins(extras=EXTRAS), **backend}
    # What the image's `dev` target adds to the runtime: the fake's WebRTC peer.
    dev_only = {name: v for name, v in pins(extras=("dev",)).items() if name not in runtime}
    made = f"# Generated by scripts/lock.py on {python_line()}; do not edit."
    outputs = {
        ROOT / "tests" / "requirements.lock": render(
            f"{made}\n# The test command's environment: runtime, extras "
            f"{', '.join(EXTRAS)} and the build backend (scripts/test.sh).",
            everything,
            True,
        ),
        ROOT / "deploy" / "requirements.lock": render(
            f"{made}\n# Runtime dependencies only: the image (deploy/Dockerfile).", runtime, True
        ),
        ROOT / "deploy" / "dev-requirements.lock": render(
            f"{made}\n# The `dev` extra beyond the runtime: the image's `dev` target only.",
            dev_only,
            True,
        ),
        ROOT / "deploy" / "build-requirements.lock": render(
            f"{made}\n# Build backend for the project's own wheel (pyproject [build-system]); "
            "build stage only.",
            backend,
            True,
        ),
    }
    for path, text in outputs.items():
        path.write_text(text)
        print(f"lock: wrote {path.relative_to(ROOT)} ({text.count('==')} pins)", file=sys.stderr)


if __name__ == "__main__":
    main()
