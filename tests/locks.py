"""Reading the project's pip lock files (scripts/lock.py writes them): one requirement per
pin, its `--hash` options on continuation lines."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _entries(path: Path) -> list[str]:
    """The lock's entries, continuation lines joined, comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def read_lock(path: Path) -> list[Requirement]:
    return [Requirement(entry.split(" --hash", 1)[0]) for entry in _entries(path)]


def lock_hashes(path: Path) -> dict[str, list[str]]:
    """Canonical name -> its sha256 hashes."""
    return {
        canonicalize_name(Requirement(entry.split(" --hash", 1)[0]).name): _HASH.findall(entry)
        for entry in _entries(path)
    }


def assert_exact_pins_with_hashes(path: Path) -> None:
    pins = read_lock(path)
    assert pins, path
    for requirement in pins:
        assert [spec.operator for spec in requirement.specifier] == ["=="], str(requirement)
        assert (requirement.marker, requirement.extras) == (None, set()), str(requirement)
    names = [canonicalize_name(r.name) for r in pins]
    assert len(names) == len(set(names)), path
    for name, digests in lock_hashes(path).items():
        assert digests, f"{path.name}: {name} has no --hash"
