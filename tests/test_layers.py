"""Imports point one way, and each third-party package has one owner (STYLE.md)."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "service"

OWNERS: dict[str, tuple[str, ...]] = {
    "jwt": ("service.auth.tokens", "service.auth.jwks"),
    "redis": ("service.stores.redis*",),
    "starlette": ("service.web.*", "service.fake.app*"),
    "uvicorn": ("service.cli",),
    "httpx": ("service.upstream.*", "service.auth.tokens", "service.auth.jwks", "service.web.app"),
    "aiohttp": ("service.upstream.*",),
    "httpx_aiohttp": ("service.upstream.*",),
    "prometheus_client": ("service.metrics",),
    "websockets": ("service.calls.sideband", "service.fake.app*"),
}

# The pure core: no I/O layers below it may be imported from it.
PURE = (
    "service.errors",
    "service.redact",
    "service.clock",
    "service.limits",
    "service.policy.model",
    "service.policy.values",
    "service.policy.parse",
    "service.policy.apply",
    "service.session.model",
    "service.session.decoder",
    "service.session.codec",
    "service.session.translate",
    "service.session.strict_json",
    "service.session.passthrough",
    "service.config.environment",
    "service.config.checks",
    "service.config.settings",
    "service.vector_stores.checks",
)
IO_LAYERS = (
    "service.web*",
    "service.stores.redis*",
    "service.upstream*",
    "service.auth.tokens",
    "service.auth.jwks",
    "service.mint.broker",
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
        found[name] = imported
    return found


MODULES = modules()


@pytest.mark.parametrize("package", sorted(OWNERS))
def test_third_party_packages_have_one_owner(package: str) -> None:
    offenders = [
        module
        for module, imported in MODULES.items()
        if any(i == package or i.startswith(package + ".") for i in imported)
        and not any(fnmatch(module, pattern) for pattern in OWNERS[package])
    ]
    assert offenders == []


def test_the_pure_core_imports_no_io_layer() -> None:
    offenders = {
        module: sorted(i for i in imported if any(fnmatch(i, p) for p in IO_LAYERS))
        for module, imported in MODULES.items()
        if module in PURE
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_nothing_but_the_cli_imports_the_web_layer_from_below() -> None:
    offenders = [
        module
        for module, imported in MODULES.items()
        if not module.startswith("service.web")
        and module != "service.cli"
        and any(i.startswith("service.web") or i == "service.cli" for i in imported)
    ]
    assert offenders == []
