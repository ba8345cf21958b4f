"""Imports point one way, each third-party package has one owner, and production code
never imports the fake upstream (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "service"

OWNERS: dict[str, tuple[str, ...]] = {
    "jwt": ("service.auth.*",),
    "redis": ("service.stores.*",),
    "starlette": ("service.web.*", "service.fake.*"),
    "uvicorn": ("service.cli",),
    "httpx": ("service.upstream.*", "service.auth.*", "service.web.app", "service.fake.*"),
    "aiohttp": ("service.upstream.*",),
    "httpx_aiohttp": ("service.upstream.*",),
    "prometheus_client": ("service.metrics",),
    "python_multipart": ("service.web.multipart",),
    "websockets": ("service.calls.sideband", "service.fake.*"),
    # Dev mode's WebRTC peer only: production never loads it.
    "aiortc": ("service.fake.webrtc",),
    "av": ("service.fake.webrtc",),
}

# Dev mode's wiring (and the CLI's `fake-upstream` command) are the only way in to the fake.
FAKE = "service.fake"
FAKE_USERS = ("service.fake.*", "service.dev", "service.cli")

# The root keeps what every package uses; each concept is a package of its own.
ROOT_LIMIT = 14

# The pure core: no I/O layers below it may be imported from it.
PURE = (
    "service.errors",
    "service.redact",
    "service.clock",
    "service.limits",
    "service.policy.*",
    "service.session.*",
    "service.config.*",
    "service.vector_stores.checks",
    "service.relay.policing",
    "service.relay.messages",
    "service.usage.model",
    "service.usage.prices",
    "service.usage.periods",
    "service.usage.budgets",
    "service.gemini.schema",
    "service.gemini.times",
    "service.gemini.request",
    "service.gemini.policy",
    "service.gemini.locking",
    "service.gemini.errors",
)
IO_LAYERS = (
    "service.web*",
    "service.stores*",
    "service.upstream*",
    "service.fake*",
    "service.auth*",
    "service.mint*",
    "service.calls*",
    "service.relay.hub",
    "service.dev",
    "service.cli",
)


def modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                # `from service.fake import app` imports service.fake.app
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[name] = imported
    return found


MODULES = modules()


def imports_of(package: str, imported: set[str]) -> bool:
    return any(i == package or i.startswith(package + ".") for i in imported)


@pytest.mark.parametrize("package", sorted(OWNERS))
def test_third_party_packages_have_one_owner(package: str) -> None:
    offenders = [
        module
        for module, imported in MODULES.items()
        if imports_of(package, imported)
        and not any(fnmatch(module, pattern) for pattern in OWNERS[package])
    ]
    assert offenders == []


def test_only_dev_wiring_imports_the_fake() -> None:
    offenders = [
        module
        for module, imported in MODULES.items()
        if imports_of(FAKE, imported) and not any(fnmatch(module, p) for p in FAKE_USERS)
    ]
    assert offenders == []


def test_the_cli_imports_the_fake_only_inside_its_dev_commands() -> None:
    """`serve` must not load the fake: the CLI imports it (and service.dev) lazily."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top_level = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {m for m in top_level if m.startswith(FAKE) or m == "service.dev"}


def test_the_pure_core_imports_no_io_layer() -> None:
    offenders = {
        module: sorted(i for i in imported if any(fnmatch(i, p) for p in IO_LAYERS))
        for module, imported in MODULES.items()
        if any(fnmatch(module, p) for p in PURE)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_nothing_but_the_cli_and_dev_wiring_import_the_web_layer_from_below() -> None:
    offenders = [
        module
        for module, imported in MODULES.items()
        if not module.startswith("service.web")
        and module not in {"service.cli", "service.dev"}
        and any(i.startswith("service.web") or i == "service.cli" for i in imported)
    ]
    assert offenders == []


def test_the_root_keeps_only_what_every_package_uses() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_LIMIT, root


def test_every_package_is_a_package() -> None:
    """A folder of modules without __init__.py would be a namespace package that setuptools'
    find_packages skips."""
    folders = [p for p in PACKAGE.rglob("*") if p.is_dir() and list(p.glob("*.py"))]
    assert [f for f in folders if not (f / "__init__.py").exists()] == []


def test_the_relay_package_sits_below_call_control() -> None:
    """calls/ uses the relay (its hub and policing); the relay never reaches back into
    calls/ or the web edge: its supervisor side is a narrow interface calls/ implements."""
    offenders = {
        module: sorted(i for i in imported if i.startswith(("service.calls", "service.web")))
        for module, imported in MODULES.items()
        if module.startswith("service.relay")
    }
    assert {m: i for m, i in offenders.items() if i} == {}
