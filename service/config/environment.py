"""The `BROKER_*` environment: which variables exist, and how one setting is looked up.

`EnvReader` finds each setting's variable along a list of prefixes and reads the
`_FILE` forms; `check_unknown` refuses a variable nobody reads. The rules:
- a per-tenant setting X is read from `BROKER_<ID>_X`, else `BROKER_X`;
- X and its file form X_FILE (secrets, JWT_PUBLIC_KEY; POLICY_FILE for POLICY) are one
  setting: the tenant's spelling of either wins over the global one, setting both at the
  same level is an error (PRICES_FILE for PRICES too);
- the JWT key (JWT_SECRET / JWT_PUBLIC_KEY / JWT_JWKS_URL) is one choice: a tenant that
  sets any of the three ignores the global ones, and then reads JWT_ALGORITHMS only at
  tenant level too, so a tenant can use a PEM while the others share a global secret;
- an empty value counts as unset (compose files write `BROKER_X=` for "no value");
- problem messages name variables and files, never a secret's value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

from service.redact import Secret

PREFIX = "BROKER_"
DEFAULT_TENANT = "default"
GLOBAL_SETTINGS = (
    "HOST", "PORT", "TENANTS", "REDIS_URL", "REDIS_TIMEOUT_MS", "LOG_LEVEL", "LOG_FORMAT",
    "CALL_LEASE_SECONDS", "MAX_CALLS", "SIDEBAND_REJOIN_SECONDS", "SIDEBAND_PING_SECONDS",
    "METRICS_PORT", "METRICS_HOST", "DEV_ALLOWED_HOSTS",
)  # fmt: skip
TENANT_SETTINGS = (
    "UPSTREAM", "UPSTREAM_URL", "UPSTREAM_API", "UPSTREAM_API_KEY", "UPSTREAM_TIMEOUT_MS",
    "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL", "JWT_JWKS_CACHE_SECONDS",
    "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALGORITHMS", "JWT_LEEWAY_SECONDS",
    "JWT_USER_CLAIM", "JWT_ROLE_CLAIM", "POLICY", "ADMIN_API_KEY", "CORS_ORIGINS",
    "RATE_LIMIT_FAILURE_MODE", "USER_HASH_KEY", "GEMINI_API_VERSION", "PRICES",
)  # fmt: skip
# Settings that also accept X_FILE, a path to a file holding the value.
FILE_SETTINGS = frozenset(
    {"REDIS_URL", "UPSTREAM_API_KEY", "JWT_SECRET", "JWT_PUBLIC_KEY", "ADMIN_API_KEY", "POLICY",
     "USER_HASH_KEY", "PRICES"}
)  # fmt: skip
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_INTEGER = re.compile(r"-?[0-9]+")
# Kubernetes injects BROKER_SERVICE_HOST, BROKER_PORT=tcp://... for a Service named "broker".
_SERVICE_LINK = re.compile(r"BROKER_(SERVICE_HOST|SERVICE_PORT.*|PORT_[0-9]+_.*)")


def env_prefix(tenant_id: str) -> str:
    """`acme-eu` → `BROKER_ACME_EU_`, the prefix of that tenant's variables."""
    return f"{PREFIX}{tenant_id.upper().replace('-', '_')}_"


class EnvReader:
    """Finds each setting's variable along `scopes` (prefixes, most specific first), reads
    `_FILE` files, and records problems prefixed with `label`."""

    def __init__(
        self,
        environ: Mapping[str, str],
        problems: list[str],
        scopes: tuple[str, ...],
        label: str,
        shown: tuple[str, ...] | None = None,
    ) -> None:
        self._environ = environ
        self.problems = problems
        self.scopes = scopes
        self.label = label
        # The spellings a "missing" message suggests (a lone tenant needs no prefix).
        self.shown = shown or scopes
        self._cache: dict[str, tuple[str, str | None, str | None] | None] = {}

    def narrow(self) -> EnvReader:
        return EnvReader(self._environ, self.problems, self.scopes[:1], self.label)

    def _is_set(self, var: str) -> bool:
        return bool(self._environ.get(var, "").strip())

    def _resolve(self, setting: str) -> tuple[str, str | None, str | None] | None:
        """(variable used, its text or None when unreadable, file path) or None if unset."""
        if setting in self._cache:
            return self._cache[setting]
        found: tuple[str, str | None, str | None] | None = None
        for scope in self.scopes:
            var, file_var = scope + setting, f"{scope}{setting}_FILE"
            direct = self._is_set(var)
            by_file = setting in FILE_SETTINGS and self._is_set(file_var)
            if direct and by_file:
                self.add(f"{var} and {file_var} are both set; set only one")
            if direct:
                found = (var, self._environ[var], None)
            elif by_file:
                path = self._environ[file_var].strip()
                found = (file_var, self._read(file_var, path), path)
            if found is not None:
                break
        self._cache[setting] = found
        return found

    def _read(self, var: str, path: str) -> str | None:
        # Messages name the file and the OS reason, never what the file holds.
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            self.add(f"{var}: cannot read {path!r}: {exc.strerror or type(exc).__name__}")
            return None
        except UnicodeDecodeError:
            self.add(f"{var}: {path!r} is not UTF-8 text")
            return None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            self.add(f"{var}: {path!r} is empty")
            return None
        return text

    def add(self, message: str) -> None:
        self.problems.append(self.label + message)

    def present(self, setting: str) -> bool:
        return self._resolve(setting) is not None

    def get(self, setting: str) -> str | None:
        found = self._resolve(setting)
        return None if found is None else found[1]

    def var(self, setting: str) -> str:
        found = self._resolve(setting)
        return self.scopes[-1] + setting if found is None else found[0]

    def path(self, setting: str) -> str | None:
        found = self._resolve(setting)
        return None if found is None else found[2]

    def problem(self, setting: str, message: str) -> None:
        self.add(f"{self.var(setting)}: {message}")

    def missing(self, settings: tuple[str, ...], why: str) -> None:
        names = [scope + s for s in settings for scope in self.shown]
        self.add(f"{or_list(names)}: {why}")

    def choice(self, setting: str, options: tuple[str, ...], default: str) -> str:
        text = self.get(setting)
        if text is None:
            return default
        if text.strip().lower() not in options:
            self.problem(setting, f"must be one of {', '.join(options)}, not {text[:40]!r}")
            return default
        return text.strip().lower()

    def integer(self, setting: str, default: int, low: int, high: int) -> int:
        text = self.get(setting)
        if text is None:
            return default
        if not _INTEGER.fullmatch(text.strip()) or not low <= int(text) <= high:
            hint = " (a Kubernetes service link? set enableServiceLinks: false)"
            tail = hint if text.startswith("tcp://") else ""
            self.problem(setting, f"must be an integer from {low} to {high}{tail}")
            return default
        return int(text)

    def secret(self, setting: str, min_chars: int = 1) -> Secret | None:
        text = self.get(setting)
        if text is None:
            return None
        if len(text) < min_chars:
            self.problem(setting, f"must be at least {min_chars} characters long")
        return Secret(text)


def or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def read_tenant_ids(env: EnvReader) -> tuple[str, ...]:
    text = env.get("TENANTS")
    if text is None:
        return (DEFAULT_TENANT,)
    ids: list[str] = []
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        env.problem("TENANTS", "lists no tenant")
    for item in items:
        if not _TENANT_ID.fullmatch(item):
            env.problem(
                "TENANTS",
                f"{item[:40]!r} is not a tenant id (1 to 32 of a-z, 0-9 and '-', "
                "not starting with '-')",
            )
        elif item in ids:
            env.problem("TENANTS", f"tenant {item!r} is listed twice")
        else:
            ids.append(item)
    return tuple(ids)


def _names(settings: tuple[str, ...]) -> set[str]:
    return set(settings) | {f"{s}_FILE" for s in settings if s in FILE_SETTINGS}


def check_unknown(
    environ: Mapping[str, str], tenant_ids: tuple[str, ...], problems: list[str]
) -> None:
    """A misspelt variable must fail loudly: BROKER_JWT_SECRT would otherwise be ignored."""
    global_names, tenant_names = _names(GLOBAL_SETTINGS), _names(TENANT_SETTINGS)
    known = {PREFIX + name for name in global_names | tenant_names}
    known |= {env_prefix(t) + name for t in tenant_ids for name in tenant_names}
    for var in sorted(v for v in environ if v.startswith(PREFIX) and v not in known):
        hints = []
        # Longest first so that ..._UPSTREAM_API_KEY is not read as tenant "..._UPSTREAM".
        for name in sorted(global_names | tenant_names, key=len, reverse=True):
            head = var[: -len(name) - 1]
            if not var.endswith("_" + name) or len(head) <= len(PREFIX):
                continue
            tenant = head[len(PREFIX) :].lower().replace("_", "-")
            if name in global_names and tenant in tenant_ids:
                hints.append(f"{name} is global: set {PREFIX}{name}")
            elif name in tenant_names and tenant not in tenant_ids:
                hints.append(f"{tenant!r} is not in BROKER_TENANTS ({', '.join(tenant_ids)})")
            break
        if _SERVICE_LINK.fullmatch(var):
            hints.append("Kubernetes service link? set enableServiceLinks: false")
        close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.8)
        if close:
            hints.append(f"did you mean {close[0]}?")
        problems.append(f"{var}: unknown variable" + "".join(f"; {h}" for h in hints))
