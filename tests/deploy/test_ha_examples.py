"""deploy/ha/: the two-node examples (one bridge.toml, the systemd drop-in with its per-node env,
docker-compose.yml) pass `config check`, `systemd-analyze verify` and agree with each other.
(No Docker engine here: the compose file is parsed and cross-checked, not run.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.test_units import UNIT, installed_root, systemd_analyze

HA = Path(__file__).parent.parent.parent / "deploy" / "ha"
CONFIG = HA / "bridge.toml"
DROP_IN = HA / "asterisk-bridge.service.d" / "ha.conf"
NODE_ENV = HA / "node.env.example"
SECRETS_ENV = HA / "bridge.env.example"
COMPOSE = HA / "docker-compose.yml"
BRIDGES = ("bridge-a", "bridge-b")


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def config_vars() -> set[str]:
    return set(re.findall(r"\$\{(\w+)", CONFIG.read_text(encoding="utf-8")))


def config_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", "config", "check", "--offline", "-c", str(CONFIG)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=60)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_ha_config_checks_with_a_systemd_nodes_environment():
    """The systemd node: its node.env (addresses) plus the unit's secrets file."""
    env = {**env_file(NODE_ENV), **{k: "s3cret-x" for k in ("PG_PASSWORD", "AMI_SECRET", "SOAP_PASSWORD")}}
    assert config_vars() <= set(env), config_vars() - set(env)
    result = config_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgresql" in result.stdout and "s3cret-x" not in result.stdout + result.stderr


def test_ha_config_checks_with_each_compose_services_environment():
    services = compose()["services"]
    for name in (*BRIDGES, "migrate"):
        env = {**env_file(SECRETS_ENV), **{k: str(v) for k, v in services[name]["environment"].items()}}
        assert config_vars() <= set(env), (name, config_vars() - set(env))
        result = config_check(env)
        assert result.returncode == 0, (name, result.stdout + result.stderr)


def test_ha_compose_runs_two_distinct_nodes_of_one_image_after_the_migration():
    doc = compose()
    services = doc["services"]
    a, b = (services[n] for n in BRIDGES)
    # Same image, config and environment (YAML merge of one anchor); only the host name and ports differ.
    for key in ("image", "build", "env_file", "environment", "volumes", "stop_signal", "depends_on"):
        assert a[key] == b[key], key
    assert a["hostname"] != b["hostname"]       # the node id is host name + pid, and both are pid 1
    host_ports = [p.rsplit(":", 1)[0] for s in (a, b) for p in s["ports"]]
    assert len(host_ports) == len(set(host_ports))
    assert a["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert a["stop_signal"] == "SIGTERM"
    assert (COMPOSE.parent / a["build"]["context"] / a["build"]["dockerfile"]).resolve().is_file()
    assert a["volumes"] == ["./bridge.toml:/etc/asterisk-bridge/bridge.toml:ro"]
    # The database the nodes are told to use is the one the postgres service creates.
    url = re.search(r'url = "([^"]+)"', CONFIG.read_text(encoding="utf-8")).group(1)
    pg = services["postgres"]["environment"]
    assert url == (f"postgresql+psycopg://{pg['POSTGRES_USER']}:${{PG_PASSWORD}}@${{PG_HOST}}:5432/"
                   f"{pg['POSTGRES_DB']}")
    assert a["environment"]["PG_HOST"] == "postgres"
    assert a["environment"]["METRICS_LISTEN"].endswith(":9108")   # the Dockerfile's HEALTHCHECK port


def test_ha_systemd_drop_in_passes_systemd_analyze_verify(tmp_path):
    analyze = systemd_analyze()
    root = installed_root(tmp_path, drop_ins=(DROP_IN,))
    result = subprocess.run([analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result
    shown = subprocess.run([analyze, "cat-config", f"--root={root}", f"systemd/system/{UNIT.name}"],
                           capture_output=True, text=True)
    assert "EnvironmentFile=/etc/asterisk-bridge/node.env" in shown.stdout, shown
