"""Static checks of the container build and the compose stack (no Docker engine needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from casewatch.offline.logs import read_log
from casewatch.settings import KAFKA_ENV_PREFIX, SCHEMA_REGISTRY_ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "config" / "casewatch.env.example"
PROMETHEUS = ROOT / "config" / "prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "config" / "grafana" / "provisioning" / "datasources"
LOCK = ROOT / "requirements.lock"
# The environment markers of the image (python:3.11-slim on x86_64).
IMAGE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
BUNDLED_LOG = ROOT / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"

SETTINGS_ENV = {
    env_name(name) for name in Settings.model_fields if name not in ("kafka", "schema_registry")
}
PROPERTY_PREFIXES = (KAFKA_ENV_PREFIX, SCHEMA_REGISTRY_ENV_PREFIX)
ENV_NAME = re.compile(r"\bCASEWATCH_[A-Z0-9_]+")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def assert_known(names: set[str], where: str) -> None:
    unknown = {
        name
        for name in names
        if name not in SETTINGS_ENV and not name.startswith(PROPERTY_PREFIXES)
    }
    assert not unknown, f"{where} uses CASEWATCH_* names that are not settings: {sorted(unknown)}"


def test_dockerfile_is_multi_stage() -> None:
    stages = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(stages) >= 2
    assert any(" AS " in stage.upper() for stage in stages)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "python:3.11-slim" in text
    assert "pip wheel" in text
    assert re.search(r"from=build", text), "the runtime stage takes the wheels from the build stage"


def locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {normalized name: (version, hashes)}."""
    text = re.sub(r"\\\n", " ", LOCK.read_text(encoding="utf-8"))
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        entry = line.split("#")[0].strip()
        if not entry:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", entry)
        assert match, f"not an exact pin with hashes: {entry[:80]}"
        name, version, hashes = match.groups()
        pins[canonicalize_name(name)] = (version, hashes.split())
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = locked()
    assert all(hashes for _, hashes in pins.values())
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but not in {LOCK.name}"
        assert requirement.specifier.contains(pins[name][0]), f"{name}=={pins[name][0]}"
    # Runtime only: nothing from the dev or parquet extras, and not casewatch itself.
    assert not {"pytest", "mypy", "ruff", "pyarrow", "scikit-learn", "casewatch"} & set(pins)


def test_the_lock_is_closed_under_the_dependencies_of_what_it_pins() -> None:
    # Read from the installed metadata of every package installed at its locked version: what
    # each requires on Linux / Python 3.11 (the image) must be pinned too.
    pins = locked()
    checked = 0
    for name, (version, _) in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker is None or marker.evaluate({"extra": "", **IMAGE_MARKERS}):
                wanted = canonicalize_name(requirement.name)
                assert wanted in pins, f"{name} needs {requirement}, which is not locked"
                assert requirement.specifier.contains(pins[wanted][0]), f"{name}: {requirement}"
    assert checked >= len(runtime_requirements())


def test_the_image_installs_the_lock() -> None:
    instructions = dockerfile_instructions()
    build = instructions[: next(i for i, (k, a) in enumerate(instructions) if "AS runtime" in a)]
    copies = [args for keyword, args in build if keyword == "COPY"]
    assert any(LOCK.name in args.split()[:-1] for args in copies)
    runs = [args for keyword, args in build if keyword == "RUN"]
    from_lock = [r for r in runs if f"-r {LOCK.name}" in r]
    assert from_lock and "--require-hashes" in from_lock[0] and "pip wheel" in from_lock[0]
    # casewatch's own wheel brings no dependency of its own choosing.
    assert any(re.search(r"pip wheel --no-deps .*\s\.$", r) for r in runs)
    runtime_runs = [args for keyword, args in instructions[len(build) :] if keyword == "RUN"]
    assert any("pip install --no-index --find-links /wheels casewatch" in r for r in runtime_runs)
    assert LOCK.name not in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()


def test_make_lock_regenerates_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "--generate-hashes" in recipe and "--python-version 3.11" in recipe
    assert f"-o {LOCK.name}" in recipe
    assert "make lock" in LOCK.read_text(encoding="utf-8").split("\n", 3)[1]


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_health_check_hits_healthz_without_curl() -> None:
    checks = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]
    assert "urllib" in checks[0]
    assert "curl" not in checks[0]
    assert "9108" in checks[0]


def test_dockerfile_entrypoint_model_and_env() -> None:
    instructions = dockerfile_instructions()
    assert ("ENTRYPOINT", '["casewatch"]') in instructions
    assert ("CMD", '["run"]') in instructions
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "CASEWATCH_MODEL_PATH=/app/models/reference.onnx" in text
    assert re.search(r"COPY\b.*\bmodels/ /app/models/", text)
    assert (ROOT / "models" / "reference.onnx").exists()
    assert_known(set(ENV_NAME.findall(text)), "Dockerfile")


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".venv", ".git", "tests"):
        assert entry in ignored


def test_compose_services_and_ports() -> None:
    services = compose()["services"]
    assert {"kafka", "topic-init", "casewatch", "producer", "prometheus", "grafana"} <= set(
        services
    )
    assert "9108:9108" in services["casewatch"]["ports"]
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    assert services["casewatch"]["build"] == "."
    assert services["kafka"]["image"].startswith("apache/kafka:")


def test_compose_kafka_runs_kraft() -> None:
    environment = compose()["services"]["kafka"]["environment"]
    assert "broker" in environment["KAFKA_PROCESS_ROLES"]
    assert "controller" in environment["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in environment
    assert "kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]


def test_compose_wiring() -> None:
    services = compose()["services"]
    casewatch = services["casewatch"]
    assert casewatch["environment"]["CASEWATCH_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert casewatch["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    script = producer_script()
    assert f"--topic {casewatch['environment']['CASEWATCH_INPUT_TOPIC']} " in script
    assert "/app/data/p2p-0.3-1.csv.gz" in script
    volumes = services["prometheus"]["volumes"]
    assert any(v.startswith("./config/prometheus.yml:") for v in volumes)
    assert any("grafana/provisioning" in v for v in services["grafana"]["volumes"])


def producer_script() -> str:
    producer = compose()["services"]["producer"]
    assert producer["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = producer["command"]
    # Compose turns $$ into $ before the shell sees it.
    return str(script).replace("$$", "$")


def test_the_compose_producer_replays_the_log_in_rounds_of_new_case_ids(tmp_path: Path) -> None:
    # The image's own log path and scratch file, pointed into tmp_path; `casewatch` is a stub that
    # keeps each round's file and ends the loop after the second round.
    script = (
        producer_script()
        .replace("/app/data/p2p-0.3-1.csv.gz", str(BUNDLED_LOG))
        .replace("/tmp/round.csv", str(tmp_path / "round.csv"))
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "casewatch"
    stub.write_text(
        "#!/bin/sh\n"
        f'n=$(ls "{tmp_path}" | grep -c "^seen-")\n'
        f'cp "$2" "{tmp_path}/seen-$((n + 1)).csv"\n'
        f'echo "$@" >> "{tmp_path}/args"\n'
        '[ "$n" -lt 1 ]\n',
        encoding="utf-8",
    )
    stub.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0, "the loop ends only when a replay fails"
    args = (tmp_path / "args").read_text(encoding="utf-8").splitlines()
    assert args == [f"produce {tmp_path / 'round.csv'} --topic casewatch-events --rate 2000"] * 2

    original = read_log(BUNDLED_LOG)
    rounds = [read_log(tmp_path / f"seen-{n}.csv") for n in (1, 2)]
    ids = [{trace.case_id for trace in traces} for traces in rounds]
    assert not ids[0] & ids[1], "a case id came back in the next round"
    prefixes = [traces[0].case_id.removesuffix(original[0].case_id) for traces in rounds]
    assert prefixes[0].endswith("-1-") and prefixes[1].endswith("-2-")
    for prefix, traces in zip(prefixes, rounds, strict=True):
        assert [t.case_id for t in traces] == [prefix + t.case_id for t in original]
        assert [[e.name for e in t.events] for t in traces] == [
            [e.name for e in t.events] for t in original
        ]


def test_compose_env_names_are_settings() -> None:
    names: set[str] = set()
    for service in compose()["services"].values():
        environment = service.get("environment", {})
        keys = (
            environment if isinstance(environment, dict) else [e.split("=")[0] for e in environment]
        )
        names |= {key for key in keys if key.startswith("CASEWATCH_")}
    assert names
    assert_known(names, "docker-compose.yml")
    assert_known(set(ENV_NAME.findall(COMPOSE.read_text(encoding="utf-8"))), "docker-compose.yml")


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assigned = dict(re.findall(r"^#?\s*(CASEWATCH_[A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))
    assert_known(set(assigned), "casewatch.env.example")
    assert set(assigned) >= SETTINGS_ENV, sorted(SETTINGS_ENV - set(assigned))
    for name, field in Settings.model_fields.items():
        if isinstance(field.default, int | float | str) and not isinstance(field.default, bool):
            assert assigned[env_name(name)] == str(field.default), name


def test_env_example_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from casewatch.settings import load_settings

    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name, value in re.findall(r"^#\s*(CASEWATCH_[A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE):
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.kafka["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings.contract_path is None


def test_prometheus_scrapes_casewatch() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for c in jobs["casewatch"]["static_configs"] for t in c["targets"]]
    assert "casewatch:9108" in targets


def test_grafana_datasource_is_provisioned() -> None:
    files = list(GRAFANA_DATASOURCES.glob("*.yml"))
    assert files
    sources = [s for f in files for s in yaml.safe_load(f.read_text())["datasources"]]
    assert any(s["type"] == "prometheus" and s["url"] == "http://prometheus:9090" for s in sources)
