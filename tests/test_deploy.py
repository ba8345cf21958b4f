"""Static checks of deploy/ (Dockerfile, lock, Kubernetes manifests) and docker-compose.yml.

There is no container engine or cluster in CI, so these read the files: a manifest that
names a route the app lacks, a setting the broker does not know, or a secret passed in the
environment fails here rather than in a rollout.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Collection
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.locks import assert_exact_pins_with_hashes, read_lock

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def app_routes() -> set[str]:
    """The GET routes the production app really serves (no dev routes)."""
    from starlette.routing import Route

    from service.config.settings import load_settings
    from service.dev import create_dev_app

    settings = load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": "x" * 40})
    app = create_dev_app(settings)
    return {
        route.path
        for route in app.routes
        if isinstance(route, Route) and route.methods and "GET" in route.methods
    }


ROUTES = app_routes()
# Settings holding a secret: in Kubernetes only their X_FILE form may appear, pointing at a
# mounted Secret (service.config.environment.FILE_SETTINGS also holds POLICY, which is not secret).
SECRET_SETTINGS = {"REDIS_URL", "UPSTREAM_API_KEY", "JWT_SECRET", "JWT_PUBLIC_KEY", "ADMIN_API_KEY"}
# Read by `token-broker serve` itself (service/cli.py), outside the BROKER_* namespace.
PROCESS_ENV = {
    "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN",
    "UVICORN_TIMEOUT_KEEP_ALIVE",
    "FORWARDED_ALLOW_IPS",
}
DEFAULT_GRACEFUL_SHUTDOWN = 20  # cli.py's default for UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN
UID = 10001


def known_env(name: str, tenants: Collection[str] = ()) -> bool:
    """Whether the broker reads `name` (the settings' rule: unknown BROKER_* is fatal)."""
    from service.config import environment

    def with_files(names: Collection[str]) -> set[str]:
        return set(names) | {f"{n}_FILE" for n in names if n in environment.FILE_SETTINGS}

    known = {environment.PREFIX + n for n in with_files(environment.GLOBAL_SETTINGS)}
    prefixes = [environment.PREFIX] + [environment.env_prefix(t) for t in tenants if t]
    known |= {p + n for p in prefixes for n in with_files(environment.TENANT_SETTINGS)}
    return name in known or name in PROCESS_ENV


def parse_cli(argv: list[str]) -> Any:
    from service.cli import build_parser

    return build_parser().parse_args(argv)


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[dict[str, Any]]:
    return [
        doc
        for p in sorted(K8S.glob("*.yaml"))
        if p.name != "kustomization.yaml"
        for doc in load_yaml(p)
    ]


def only(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = only("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def container_env() -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container().get("env", [])}


def config_env() -> dict[str, str]:
    refs = [src["configMapRef"]["name"] for src in container()["envFrom"]]
    return {k: v for name in refs for k, v in only("ConfigMap", name)["data"].items()}


# --- Dockerfile -------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = [ln.strip().split(None, 1) for ln in joined.splitlines() if ln.strip()]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage `FROM ... AS name`, up to the next FROM."""
    instructions = dockerfile()
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    for start, end in zip(starts, [*starts[1:], len(instructions)], strict=True):
        words = instructions[start][1].split()
        if [w.lower() for w in words[1:2]] == ["as"] and words[2] == name:
            return instructions[start:end]
    raise AssertionError(f"deploy/Dockerfile has no stage {name}")


def stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in stage:
        for item in shlex.split(args) if op == "ENV" else []:
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_dockerfile_is_multi_stage_on_a_slim_base() -> None:
    instructions = dockerfile()
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    bases = [a.split()[0] for op, a in instructions if op == "FROM"]
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b) for b in bases]
    assert len(bases) >= 2
    assert all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?", b) for b in resolved), resolved
    assert any("--from=build" in a for op, a in final_stage() if op == "COPY")


def test_dockerfile_runs_as_numeric_non_root_user() -> None:
    users = [a for op, a in final_stage() if op == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) == UID
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_execs_token_broker_serve_as_pid_1() -> None:
    stage = dict(final_stage())
    entrypoint, cmd = json.loads(stage["ENTRYPOINT"]), json.loads(stage["CMD"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint + cmd == ["token-broker", "serve"]
    assert scripts[entrypoint[0]] == "service.cli:main"
    assert parse_cli(cmd).command == "serve"


def test_dockerfile_bakes_in_no_secrets_and_no_bytecode_writes() -> None:
    instructions = dockerfile()
    names = [a.split("=")[0] for op, a in instructions if op == "ARG"]
    names += [n for op, a in instructions if op == "ENV" for n in stage_env([(op, a)])]
    assert stage_env(final_stage())["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not [n for n in names if re.search(r"KEY|SECRET|TOKEN|PASSWORD|BROKER_", n)]
    sources = [a.split()[:-1] for op, a in instructions if op == "COPY" and "--from" not in a]
    assert all(src != "." for srcs in sources for src in srcs)


def test_dockerignore_allows_only_what_the_image_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {ln.removeprefix("!").rstrip("/") for ln in ignore if ln.startswith("!")}
    copied = {
        s.rstrip("/")
        for op, a in dockerfile()
        if op == "COPY" and "--from" not in a
        for s in a.split()[:-1]
    }
    assert "*" in ignore
    assert {s.removeprefix("./") for s in copied} <= allowed
    assert "tests" not in allowed
    assert ".env" not in allowed


# --- requirements lock ------------------------------------------------------------------


def lock(name: str = "requirements.lock") -> list[Requirement]:
    return read_lock(DEPLOY / name)


def test_lock_pins_every_requirement_exactly_with_hashes() -> None:
    for name in ("requirements.lock", "build-requirements.lock"):
        assert_exact_pins_with_hashes(DEPLOY / name)


def test_lock_covers_runtime_and_excludes_test_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {canonicalize_name(r.name) for r in lock()}
    runtime = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    test_only = {
        canonicalize_name(Requirement(d).name) for d in project["optional-dependencies"]["test"]
    }
    assert runtime <= locked, f"regenerate the lock; missing {runtime - locked}"
    assert not (test_only - runtime) & locked


def test_lock_has_every_installed_transitive_dependency() -> None:
    script = ROOT / "scripts" / "lock.py"
    out = subprocess.run(
        [sys.executable, script, "--runtime"], capture_output=True, text=True, check=True
    )
    resolved = {canonicalize_name(Requirement(ln).name) for ln in out.stdout.splitlines()[1:]}
    assert resolved <= {canonicalize_name(r.name) for r in lock()}


def test_lock_provides_every_third_party_import_of_the_service() -> None:
    imported: set[str] = set()
    for path in (ROOT / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    # aiortc and av: the fake's WebRTC peer, the `dev` extra, imported under
    # `except ImportError` (service/fake/webrtc.py): the image runs the fake without it.
    optional = {"aiortc", "av"}
    third_party = imported - set(sys.stdlib_module_names) - {"service", "__future__"} - optional
    providers = metadata.packages_distributions()
    locked = {canonicalize_name(r.name) for r in lock()}
    unlocked = {
        m for m in third_party if not {canonicalize_name(d) for d in providers.get(m, [])} & locked
    }
    assert third_party
    assert unlocked == set(), "add them to [project] dependencies and regenerate the lock"


def test_lock_python_matches_base_image_and_build_backend_fits() -> None:
    header = (DEPLOY / "requirements.lock").read_text().splitlines()[0]
    base = next(a for op, a in dockerfile() if op == "ARG" and a.startswith("PYTHON_IMAGE="))
    minor = re.search(r"Python (3\.\d+)", header)
    assert minor
    assert f"python:{minor.group(1)}-" in base
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    backend = next(Requirement(r) for r in build if r.startswith("setuptools"))
    pinned = next(r for r in lock("build-requirements.lock") if r.name == "setuptools")
    assert Version(next(iter(pinned.specifier)).version) in backend.specifier


# --- docker-compose.yml -----------------------------------------------------------------


def compose() -> dict[str, Any]:
    (doc,) = load_yaml(ROOT / "docker-compose.yml")
    services: dict[str, Any] = doc["services"]
    return services


def test_compose_waits_for_a_healthy_redis() -> None:
    services = compose()
    check = services["redis"]["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL")
    assert "redis-cli" in check[1:]
    assert "ping" in check
    assert services["broker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_wires_the_broker_to_the_fake_upstream_and_redis() -> None:
    services = compose()
    env = services["broker"]["environment"]
    fake = parse_cli(services["fake-upstream"]["command"])
    assert fake.command == "fake-upstream"
    assert fake.host == "0.0.0.0"
    assert env["BROKER_UPSTREAM"] == "openai"
    assert env["BROKER_UPSTREAM_URL"] == f"http://fake-upstream:{fake.port}/v1"
    assert env["BROKER_REDIS_URL"].startswith("redis://redis:6379/")
    assert len(env["BROKER_JWT_SECRET"].encode()) >= 32
    assert "dev" in env["BROKER_JWT_SECRET"]
    assert parse_cli(services["broker"]["command"]).command == "serve"
    assert all(p.startswith("127.0.0.1:") for p in services["broker"]["ports"])


def test_compose_builds_the_fake_with_its_webrtc_peer_and_the_broker_as_in_production() -> None:
    """The fake's calls connect only with the `dev` extra (aiortc): the production image
    lacks it, so the fake is built from the `dev` target; the broker from `runtime`, the
    image's default (last) stage."""
    services = compose()
    fake, broker = services["fake-upstream"]["build"], services["broker"]["build"]
    installs = " ".join(args for op, args in stage(fake["target"]) if op == "RUN")
    assert "-r /tmp/dev-requirements.lock" in installs
    assert "aiortc" in dev_pins()
    assert broker["target"] == final_stage()[0][1].split()[-1] == "runtime"
    assert services["fake-upstream"]["image"] != services["broker"]["image"]


def dev_pins() -> dict[str, str]:
    """The `dev` target's pins (name -> version): deploy/dev-requirements.lock."""
    return {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for r in lock("dev-requirements.lock")
    }


def test_the_dev_target_pins_the_dev_extra_as_the_tests_lock_does() -> None:
    """Exact pins (wheels only, --no-deps) of every package the `dev` extra needs beyond
    deploy/requirements.lock, at the versions the suite passed on."""
    tests_lock: dict[str, str] = {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for r in read_lock(ROOT / "tests" / "requirements.lock")
    }
    runtime = {canonicalize_name(r.name) for r in lock()}
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["dev"]
    needed: set[str] = set()
    pending = [Requirement(r).name for r in extra]
    while pending:  # what the extra pulls in, from the installed metadata
        name = canonicalize_name(pending.pop())
        if name in needed or name in runtime:
            continue
        needed.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    pins = dev_pins()
    assert set(pins) == needed
    assert pins == {name: tests_lock[name] for name in needed}
    assert_exact_pins_with_hashes(DEPLOY / "dev-requirements.lock")
    assert ("COPY", "deploy/dev-requirements.lock /tmp/dev-requirements.lock") in stage("dev")
    run = next(a for op, a in stage("dev") if op == "RUN" and "dev-requirements.lock" in a)
    assert "--no-deps" in run
    assert "--only-binary=:all:" in run


def test_the_compose_header_tells_what_to_open_and_how_to_get_a_token() -> None:
    """Every broker URL the header names is a route of `serve` (it has no page at /), and
    its token command is `token-broker jwt`, run in the broker's container."""
    from service.config.settings import load_settings
    from service.web.app import create_app

    header = [
        line.removeprefix("#")
        for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if line.startswith("#")
    ]
    text = "\n".join(header)
    settings = load_settings(compose()["broker"]["environment"])
    served = {getattr(route, "path", None) for route in create_app(settings).routes}
    named = re.findall(r"http://127\.0\.0\.1:8080(/[^\s'\"]*)?", text)
    assert named
    assert all(path and path in served for path in named), named
    token = re.search(r"docker compose exec -T broker token-broker ([^)]*)\)", text)
    assert token
    assert parse_cli(shlex.split(token.group(1))).command == "jwt"


def test_compose_lets_local_frontends_call_the_broker() -> None:
    from service.config.settings import load_settings

    (tenant,) = load_settings(compose()["broker"]["environment"]).tenants
    assert tenant.cors_origins == ("http://localhost:*", "http://127.0.0.1:*")


def test_compose_uses_only_known_settings_and_the_deploy_dockerfile() -> None:
    for name, service in compose().items():
        tenants = set(service.get("environment", {}).get("BROKER_TENANTS", "").split(","))
        assert all(known_env(k, tenants) for k in service.get("environment", {})), name
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
            assert service["read_only"] is True
            assert service["user"].startswith(f"{UID}:")


# --- Kubernetes -------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    present = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == present
    assert len(kustomization["resources"]) == len(present)


def test_every_manifest_parses_and_the_set_is_complete() -> None:
    docs = manifests()
    assert all(d.get("apiVersion") and d["metadata"].get("name") for d in docs)
    kinds = {d["kind"] for d in docs}
    expected = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert expected | {"ConfigMap", "Secret", "NetworkPolicy"} <= kinds
    # A Service named "broker" would inject BROKER_PORT=tcp://... through service links.
    assert not [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "broker"]


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")],
)
def test_probes_hit_real_routes_on_the_served_port(probe: str, path: str) -> None:
    get = container()[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert get["path"] == path
    assert get["path"] in ROUTES
    assert get["port"] in ports or get["port"] in ports.values()
    assert int(config_env()["BROKER_PORT"]) in ports.values()


def test_grace_period_outlasts_pre_stop_and_drain() -> None:
    pod = only("Deployment")["spec"]["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    drain = int(container_env().get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", DEFAULT_GRACEFUL_SHUTDOWN))
    assert command[0] == "sleep"
    assert int(command[1]) > 0
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + drain


def test_pod_is_locked_down() -> None:
    pod = only("Deployment")["spec"]["template"]["spec"]
    ctx = container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == UID
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert parse_cli(container()["args"]).command == "serve"


def test_resources_have_requests_and_limits() -> None:
    resources = container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])
    assert "replicas" not in only("Deployment")["spec"]  # the HPA owns the count


def test_tmp_is_a_writable_empty_dir() -> None:
    pod = only("Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container()["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume
    assert not mount.get("readOnly", False)


def test_secrets_are_mounted_files_read_through_file_settings() -> None:
    pod = only("Deployment")["spec"]["template"]["spec"]
    secret = only("Secret")
    volume = next(v for v in pod["volumes"] if "secret" in v)
    mount = next(m for m in container()["volumeMounts"] if m["name"] == volume["name"])
    paths = {f"{mount['mountPath']}/{key}" for key in secret["stringData"]}
    file_env = {k: v for k, v in container_env().items() if k.endswith("_FILE")}
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert mount["readOnly"]
    assert set(file_env.values()) == paths
    assert all(k.removeprefix("BROKER_").removesuffix("_FILE") in SECRET_SETTINGS for k in file_env)
    everywhere = {**config_env(), **container_env()}
    assert not [k for k in everywhere if k.removeprefix("BROKER_") in SECRET_SETTINGS]
    assert not [e for e in container().get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_every_env_name_is_a_known_setting() -> None:
    env = {**config_env(), **container_env()}
    tenants = set(env.get("BROKER_TENANTS", "").split(","))
    assert env
    assert [name for name in env if not known_env(name, tenants)] == []
    assert not known_env("BROKER_JWT_SECRETS")
    assert not known_env("BROKER_ACME_PORT", {"acme"})


def pod_environ(root: Path, secret_values: dict[str, str]) -> dict[str, str]:
    """The container's environment with its Secret and ConfigMap volumes laid out under
    `root`, so `load_settings` reads the very files the pod would."""
    pod = only("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {**config_env(), **container_env()}
    for mount in container()["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            files = {**only("Secret", volume["secret"]["secretName"])["stringData"]}
            files.update(secret_values)
        elif "configMap" in volume:
            files = only("ConfigMap", volume["configMap"]["name"])["data"]
        else:
            continue
        for key, text in files.items():
            target = root / mount["mountPath"].lstrip("/") / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        prefix = mount["mountPath"] + "/"
        env = {k: str(root) + v if v.startswith(prefix) else v for k, v in env.items()}
    return env


def test_kubernetes_configuration_loads_once_the_secret_is_filled(tmp_path: Path) -> None:
    from service.config.settings import load_settings

    real = {"jwt-secret": "k" * 48, "upstream-api-key": "sk-test", "admin-api-key": "a" * 32}
    settings = load_settings(pod_environ(tmp_path, real))
    (tenant,) = settings.tenants
    assert settings.redis_url is not None
    assert tenant.jwt_secret is not None
    assert tenant.jwt_secret.reveal() == "k" * 48
    assert "reader" in tenant.policy.roles


def test_every_role_of_the_sample_policy_names_its_models(tmp_path: Path) -> None:
    # A role without `models` may use any model, which surprises an operator.
    from service.config.settings import load_settings

    real = {"jwt-secret": "k" * 48, "upstream-api-key": "sk-test", "admin-api-key": "a" * 32}
    (tenant,) = load_settings(pod_environ(tmp_path, real)).tenants
    assert tenant.policy.roles
    assert all(rules.models for rules in tenant.policy.roles.values())


def test_the_deploy_readme_names_every_folder_of_manifests() -> None:
    text = (DEPLOY / "README.md").read_text()
    folders = [p for p in K8S.rglob("*") if p.is_dir()]
    assert folders
    assert all(f"deploy/{p.relative_to(DEPLOY)}/" in text for p in folders)
    # The HPA's Pods metric reaches it only through a metrics adapter.
    assert "prometheus-adapter" in text


def test_kubernetes_example_secret_placeholders_are_refused(tmp_path: Path) -> None:
    from service.config.settings import load_settings
    from service.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(pod_environ(tmp_path, {}))
    assert any("JWT_SECRET" in problem for problem in caught.value.problems)


def test_compose_configuration_loads() -> None:
    from service.config.settings import load_settings

    settings = load_settings(compose()["broker"]["environment"])
    assert settings.tenants[0].upstream_url.startswith("http://fake-upstream:")


def test_service_hpa_pdb_and_network_policy_select_the_pods() -> None:
    deployment = only("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in container()["ports"]}
    service, hpa, pdb, netpol = (
        only(k)
        for k in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy")
    )
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in netpol["spec"]["egress"] for p in rule["ports"]}
    assert {53, 6379, 443} <= egress_ports


def get_routes(app: Any) -> set[str]:
    from starlette.routing import Route

    return {
        route.path
        for route in app.routes
        if isinstance(route, Route) and route.methods and "GET" in route.methods
    }


def test_scrape_annotation_points_at_the_metrics_port_and_route() -> None:
    """/metrics (tenant ids in its labels) is scraped on a port of its own, which the API
    port does not share: the annotation's port is BROKER_METRICS_PORT, a declared port."""
    from service.config.settings import load_settings
    from service.dev import create_dev_app
    from service.web.app import create_metrics_app

    annotations = only("Deployment")["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    metrics_port = int(config_env()["BROKER_METRICS_PORT"])
    assert int(annotations["prometheus.io/port"]) == metrics_port == ports["metrics"]
    assert metrics_port != int(config_env()["BROKER_PORT"])
    env = {"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": "x" * 40}
    api = create_dev_app(load_settings({**env, "BROKER_METRICS_PORT": str(metrics_port)}))
    assert annotations["prometheus.io/path"] not in get_routes(api)
    assert annotations["prometheus.io/path"] in get_routes(create_metrics_app(api.state.metrics))


def test_only_the_scraper_reaches_the_metrics_port_and_the_service_does_not_carry_it() -> None:
    netpol = only("NetworkPolicy")
    reach = {
        port["port"]: {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in rule["from"]
        }
        for rule in netpol["spec"]["ingress"]
        for port in rule["ports"]
    }
    assert reach == {"http": {"gateway"}, "metrics": {"monitoring"}}
    service_ports = {p["targetPort"] for p in only("Service")["spec"]["ports"]}
    assert "metrics" not in service_ports
    assert 9090 not in service_ports


# --- Redis with persistence ---------------------------------------------------------------


def test_compose_runs_redis_with_aof_on_a_volume() -> None:
    (compose,) = load_yaml(ROOT / "docker-compose.yml")
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]


def test_the_kubernetes_redis_keeps_an_aof_on_a_persistent_volume() -> None:
    folder = K8S / "redis"
    (kustomization,) = load_yaml(folder / "kustomization.yaml")
    docs = [doc for name in kustomization["resources"] for doc in load_yaml(folder / name)]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["redis.conf"]
    settings = dict(line.split(None, 1) for line in config.splitlines() if line[:1].isalpha())
    assert settings["appendonly"] == "yes"
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": settings["dir"]} in mounts
    # The broker's NetworkPolicy lets its pods reach exactly these pods.
    netpol = only("NetworkPolicy")
    selectors = [
        to.get("podSelector", {}) for rule in netpol["spec"]["egress"] for to in rule["to"]
    ]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert {"matchLabels": pod_labels} in selectors


def test_the_hpa_scales_on_held_calls_too() -> None:
    metrics = only("HorizontalPodAutoscaler")["spec"]["metrics"]
    pods = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["broker_calls_active"]
    from service.metrics import Metrics

    assert "broker_calls_active" in Metrics(["default"]).render().decode()


def test_the_image_refuses_a_python_older_than_the_locks_markers_allow() -> None:
    """redis-py requires async-timeout below Python 3.11.3; the lock, made on a newer 3.11,
    does not carry it, so an older base would fail `pip check` (or at import)."""
    from importlib import metadata

    from packaging.markers import Marker

    header = (DEPLOY / "requirements.lock").read_text().splitlines()[0]
    made_on = re.search(r"\((3\.\d+\.\d+)\)", header)
    assert made_on
    guard = next(a for op, a in dockerfile() if op == "RUN" and "version_info >=" in a)
    minimum = re.search(r"version_info >= \((\d+), (\d+), (\d+)\)", guard)
    assert minimum
    floor = ".".join(minimum.groups())
    # Every marker on a full Python version among the locked packages' requirements holds
    # the same way on the floor as on the interpreter the lock was made on.
    for pin in lock():
        for requirement in metadata.requires(pin.name) or []:
            if "python_full_version" not in requirement:
                continue
            marker = Marker(requirement.split(";", 1)[1])
            env = {"python_version": "3.11", "extra": ""}
            assert marker.evaluate({**env, "python_full_version": floor}) == marker.evaluate(
                {**env, "python_full_version": made_on.group(1)}
            ), requirement


def test_the_fake_runs_without_its_optional_webrtc_peer() -> None:
    source = (ROOT / "service" / "fake" / "webrtc.py").read_text()
    guarded = source.split("try:", 1)[1].split("except ImportError", 1)[0]
    assert "from aiortc import" in guarded
    assert "from av import" in guarded
