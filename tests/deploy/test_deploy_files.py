"""The deployment files (docker-compose.yml, deploy/) agree with each other and with the product.

No container runs here: the files are parsed and checked against what the code really has —
the metric names the product exposes, the ``backupctl`` subcommands and their options, the
WSGI entry point — so a renamed metric or command breaks a test instead of a dashboard.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from api.cli.main import cli
from orchestrator.infra import telemetry
from tests.deploy.test_compose_schema import override_examples

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "backup-orchestrator.json"

LONG_RUNNING = ("postgres", "redis", "api", "worker", "dispatcher", "prometheus", "grafana")
BACKUPCTL_SERVICES = ("migrate", "api", "worker", "dispatcher")
COMMON_ENV = ("BACKUP_DATABASE_URL", "BACKUP_BROKER_URL", "BACKUP_HOME", "BACKUP_SECRET_KEY")
BACKUP_HOME = "/var/lib/backup-orchestrator"
METRIC = re.compile(r"backup_orchestrator_[a-z_]+")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that draws something (rows only group them)."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    instructions = [tuple(line.split(maxsplit=1)) for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, (name, *_) in enumerate(instructions) if name.upper() == "FROM")
    return [(name.upper(), rest[0] if rest else "") for name, *rest in instructions[last_from:]]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's short-syntax volumes (colons inside ``${...}`` kept)."""
    pairs = (re.split(r":(?![^{]*})", volume)[:2] for volume in service.get("volumes", []))
    return {target: source for source, target in pairs}


def _default(value: str) -> str:
    """What ``${NAME:-default}`` becomes when NAME is unset."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    assert match, value
    return match.group(1)


def _port_of(url: str) -> int:
    match = re.search(r"://[^/:]+:(\d+)", url)
    assert match, url
    return int(match.group(1))


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# -- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {*LONG_RUNNING, "migrate"}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert len(test) > 1


def test_migrate_runs_once(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["restart"] == "no"
    assert "healthcheck" not in services["migrate"]


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert dependency != name
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no"


def test_backupctl_services_wait_for_the_migration(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker", "dispatcher"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_backupctl_services_share_settings(services: dict[str, dict[str, Any]]) -> None:
    envs = [services[name]["environment"] for name in BACKUPCTL_SERVICES]
    for key in COMMON_ENV:
        assert len({env[key] for env in envs}) == 1, f"{key} differs between services"
    env = envs[0]
    assert env["BACKUP_HOME"] == BACKUP_HOME
    assert env["BACKUP_DATABASE_URL"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in env["BACKUP_DATABASE_URL"]
    assert env["BACKUP_BROKER_URL"].startswith("redis://redis:6379/")
    # Required, never defaulted: every process must be given the same one.
    assert env["BACKUP_SECRET_KEY"].startswith("${BACKUP_SECRET_KEY:?")


def test_backupctl_services_share_backup_home(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    (home,) = {_mounts(services[name])[BACKUP_HOME] for name in BACKUPCTL_SERVICES}
    assert home in compose["volumes"]


def test_workers_see_storage_at_the_paths_of_the_hosts_and_the_inventory(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = _mounts(services["worker"])
    storage = {target: source for target, source in worker.items() if target != BACKUP_HOME}
    # Primary storage and the NAS mount, each at the very path it has outside.
    assert {_default(target) for target in storage} == {"/var/lib/libvirt/images", "/mnt/backup"}
    assert all(source == target for target, source in storage.items())
    nas = next(target for target in storage if _default(target) == "/mnt/backup")
    assert _mounts(services["api"])[nas] == nas


def test_workers_run_unprivileged_unless_told(services: dict[str, dict[str, Any]]) -> None:
    uid, _, gid = _default(services["worker"]["user"]).partition(":")
    assert uid not in ("0", "root")
    assert gid not in ("0", "root")
    run_as = dict(_dockerfile_instructions())["USER"]
    assert uid == "10001"
    assert "--uid 10001" in DOCKERFILE.read_text()
    assert run_as == "backup"


def test_workers_get_the_ssh_files_as_secrets(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert set(services["worker"]["secrets"]) == {"ssh_key", "ssh_known_hosts"}
    for name in services["worker"]["secrets"]:
        path = (REPO / _default(compose["secrets"][name]["file"])).resolve()
        assert path.parent == DEPLOY / "ssh", name
    # Site files: never committed.
    assert (DEPLOY / "ssh" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


def test_backupctl_services_use_the_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in BACKUPCTL_SERVICES:
        build = services[name]["build"]
        assert (REPO / build["context"]).resolve() == REPO
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert len({services[name]["image"] for name in BACKUPCTL_SERVICES}) == 1


def test_api_runs_the_wsgi_app_under_gunicorn(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api["entrypoint"] == ["gunicorn"]
    module, attribute = api["command"][-1].split(":")
    source = (REPO / Path(*module.split("."))).with_suffix(".py")
    assigned = {
        target.id
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert attribute in assigned
    assert _option(api["command"], "-b") == "0.0.0.0:8080"
    assert api["environment"]["PROMETHEUS_MULTIPROC_DIR"] in api["tmpfs"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert any(dep.startswith("gunicorn") for dep in pyproject["project"]["dependencies"])


def test_healthchecks_probe_the_service_ports(services: dict[str, dict[str, Any]]) -> None:
    assert "http://localhost:8080/healthz" in services["api"]["healthcheck"]["test"][-1]
    for name in ("worker", "dispatcher"):
        command = services[name]["command"]
        port = _option(command, "--metrics-port")
        assert f"http://localhost:{port}/metrics" in services[name]["healthcheck"]["test"][-1]


def test_prometheus_and_grafana_mount_the_deploy_files(services: dict[str, dict[str, Any]]) -> None:
    def mounts(name: str) -> dict[str, Path]:
        pairs = _mounts(services[name]).items()
        return {target: (REPO / source).resolve() for target, source in pairs if source.startswith(".")}

    assert mounts("prometheus")["/etc/prometheus"] == PROMETHEUS.parent
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == GRAFANA_DATASOURCE.parent.parent
    assert grafana["/var/lib/grafana/dashboards"] == DASHBOARD.parent


# -- the image and the CLI -------------------------------------------------------------------------


def test_dockerfile_runs_backupctl_as_a_user() -> None:
    instructions = _dockerfile_instructions()
    values = {name: rest for name, rest in instructions}
    assert json.loads(values["ENTRYPOINT"]) == ["backupctl"]
    assert values["FROM"].startswith("python:3.11-slim")
    assert values["USER"] not in ("root", "0")
    assert set(values["EXPOSE"].split()) == {"8080", "9101", "9102"}
    assert f"BACKUP_HOME={BACKUP_HOME}" in values["ENV"]
    assert BACKUP_HOME in values["VOLUME"]
    installs = " ".join(rest for name, rest in instructions if name == "RUN")
    # qemu-img for the data mover, virsh for the KVM driver.
    assert "qemu-utils" in installs
    assert "libvirt-clients" in installs
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "backupctl" in pyproject["project"]["scripts"]


def _assert_backupctl_command(args: list[str], service: str) -> None:
    command: click.Command = cli
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"backupctl has no command {name!r} ({service})"
        command = command.commands[name]
    assert not isinstance(command, click.Group), f"{service} names a group, not a command"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in known, f"{command.name} has no option {arg}"


@pytest.mark.parametrize("service", ["migrate", "worker", "dispatcher"])
def test_service_commands_are_real_backupctl_commands(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    _assert_backupctl_command(list(services[service]["command"]), service)


def test_the_guides_override_examples_run_real_backupctl_commands() -> None:
    commands = [
        (name, service["command"])
        for example in override_examples()
        for name, service in example["services"].items()
        if "command" in service
    ]
    assert commands
    for name, command in commands:
        _assert_backupctl_command(list(command), name)


# -- Prometheus ------------------------------------------------------------------------------------


def test_prometheus_scrapes_api_worker_and_dispatcher(services: dict[str, dict[str, Any]]) -> None:
    config = _yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= {"api", "worker", "dispatcher"}
    assert jobs["api"]["metrics_path"] == "/metrics"
    assert jobs["api"]["static_configs"][0]["targets"] == ["api:8080"]
    for name in ("worker", "dispatcher"):
        (discovery,) = jobs[name]["dns_sd_configs"]
        assert discovery["names"] == [name]
        assert str(discovery["port"]) == _option(services[name]["command"], "--metrics-port")
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS.parent / rule_file).resolve() == ALERTS


def test_every_alert_is_complete(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_alerts_cover_the_sla_queues_and_processes(alert_rules: list[dict[str, Any]]) -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules}
    assert 'backup_orchestrator_rpo_vms{state="beyond"}' in by_name["BackupRPOBreached"]["expr"]
    assert by_name["BackupRPOBreached"]["for"] == "15m"
    assert "by (offering)" in by_name["BackupRPOBreached"]["expr"]
    assert by_name["BackupQueueBacklog"]["for"] == "30m"
    assert "> 3600" in by_name["BackupQueueStalled"]["expr"]
    assert by_name["BackupWorkerDown"]["expr"] == 'up{job="worker"} == 0'
    assert by_name["BackupNoWorker"]["expr"] == 'absent(up{job="worker"} == 1)'
    assert by_name["BackupDispatcherDown"]["expr"] == 'up{job="dispatcher"} == 0'
    assert 'outcome="failed"' in by_name["BackupJobFailureRate"]["expr"]
    assert "backup_orchestrator_jobs_past_deadline" in by_name["BackupJobsPastDeadline"]["expr"]


# -- Grafana ---------------------------------------------------------------------------------------


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    (datasource,) = _yaml(GRAFANA_DATASOURCE)["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = _yaml(GRAFANA_PROVIDER)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_panels_query_prometheus(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    panels = _panels(dashboard)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat", "bargauge"), panel["title"]
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "prometheus", panel["title"]


def test_dashboard_grid_does_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[x, y]}"
                taken[x, y] = panel["title"]


def test_dashboard_variables_select_offering_and_queue(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    for name in ("offering", "queue"):
        variable = variables[name]
        assert variable["datasource"]["uid"] == "prometheus"
        assert variable["query"].startswith("label_values(")
        assert variable["query"].endswith(f", {name})")
        assert any(
            f'{name}=~"${name}"' in target["expr"]
            for panel in _panels(dashboard)
            for target in panel["targets"]
        ), f"no panel uses ${name}"


# -- metric names: the contract between the product and these files --------------------------------


def _referenced_metrics(alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]) -> dict[str, str]:
    """Metric name -> where it is first used."""
    exprs = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules]
    exprs += [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in _panels(dashboard)
        for target in panel["targets"]
    ]
    exprs += [
        (f"variable ${variable['name']}", variable["query"]) for variable in dashboard["templating"]["list"]
    ]
    found: dict[str, str] = {}
    for where, expr in exprs:
        for name in METRIC.findall(expr):
            found.setdefault(name, where)
    return found


def test_every_referenced_metric_is_exposed(
    alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    exposed = telemetry.metric_names()
    referenced = _referenced_metrics(alert_rules, dashboard)
    missing = {name: where for name, where in referenced.items() if name not in exposed}
    assert not missing, f"not exposed by the product: {missing}"


def test_every_exposed_metric_is_shown(alert_rules: list[dict[str, Any]], dashboard: dict[str, Any]) -> None:
    """A histogram counts as shown through its buckets."""
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in telemetry.metric_names()}
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for name in _referenced_metrics([], dashboard)}
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"
