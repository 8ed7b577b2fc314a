"""bridge/logsetup.py: text/JSON logging with every known secret redacted from every record."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bridge.config import AmiConfig, Config, DatabaseConfig, SoapConfig, SubscriberConfig
from bridge.logsetup import config_secrets, setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def secret_config() -> Config:
    return Config(database=DatabaseConfig(url="postgresql+psycopg://bridge:db-pass-123@db/bridge"),
                  ami=(AmiConfig(name="pbx1", username="bridge", secret="ami-secret-456"),),
                  soap=SoapConfig(users={"1c": "soap-pass-789"}),
                  subscribers=(SubscriberConfig(name="erp", url="http://erp/x", password="erp-pass-000",
                                                signing_secret="whsec-signing-111"),))


def test_config_secrets_lists_every_secret_value():
    assert set(config_secrets(secret_config())) == {
        "db-pass-123", "ami-secret-456", "soap-pass-789", "erp-pass-000", "whsec-signing-111"}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_known_secrets_never_reach_the_output_when_logged(restore_root_logger, fmt):
    stream = io.StringIO()
    setup_logging("DEBUG", fmt, config_secrets(secret_config()), stream=stream)
    log = logging.getLogger("bridge.test")
    log.info("login with %s and %s", "ami-secret-456", "soap-pass-789")
    log.warning("POST failed: Authorization erp-pass-000 / whsec-signing-111")
    try:
        raise RuntimeError("connect to postgresql://bridge:db-pass-123@db/bridge failed")
    except RuntimeError:
        log.exception("database down")
    output = stream.getvalue()
    for secret in config_secrets(secret_config()):
        assert secret not in output
    assert output.count("***") >= 5
    if fmt == "json":
        entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert [e["level"] for e in entries] == ["INFO", "WARNING", "ERROR"]
        assert "RuntimeError" in entries[2]["exc"]


def test_unknown_secrets_are_masked_by_shape_when_logged(restore_root_logger):
    stream = io.StringIO()
    setup_logging("INFO", "text", [], stream=stream)
    logging.getLogger("bridge.test").info("url=http://u:s3cr3t@host/x Secret: abc123 password=hunter2")
    output = stream.getvalue()
    assert "s3cr3t" not in output and "abc123" not in output and "hunter2" not in output


def test_alembic_info_lines_are_off_unless_debug():
    import io
    import logging

    from bridge.logsetup import setup_logging

    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    logging.getLogger("alembic.runtime.migration").warning("something odd")
    assert "setup plugin" not in stream.getvalue() and "something odd" in stream.getvalue()
    setup_logging("DEBUG", stream=stream)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.tables")
    assert "setup plugin alembic.autogenerate.tables" in stream.getvalue()
    setup_logging("WARNING", stream=io.StringIO())
