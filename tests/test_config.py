"""bridge/config.py: TOML → settings, ${VAR} interpolation, durations, every problem by key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bridge.config import Config
from bridge.config_load import load_config, parse_config
from bridge.config_load import parse_duration
from bridge.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "bridge.example.toml"
ENV = {"AMI_SECRET": "s3cr3t-ami", "SOAP_PASSWORD": "s3cr3t-soap"}

MINIMAL = """
[[ami]]
name = "pbx1"
username = "bridge"
secret = "x"
"""


def problems_of(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), env=env or {})
    return info.value.problems


def test_example_file_loads_with_every_section_when_env_is_set():
    config = load_config(EXAMPLE, env=ENV)
    assert config.ami[0].secret == "s3cr3t-ami"
    assert config.soap.users == {"1c": "s3cr3t-soap"}
    assert config.subscribers[0].max_age_s == 72 * 3600
    assert config.subscribers[0].retry_cap_s == 600
    assert config.database.batch_max_delay_s == pytest.approx(0.005)
    assert config.metrics.listen == "127.0.0.1:9108"
    assert config.ami[0].reconnect_base_s == 0.5


def test_minimal_config_gets_defaults_and_no_optional_servers():
    config = parse_config(tomllib.loads(MINIMAL), env={})
    assert isinstance(config, Config)
    assert config.soap is None and config.metrics is None and config.subscribers == ()
    assert config.ami[0].port == 5038 and config.ami[0].auth == "md5"


@pytest.mark.parametrize("text,seconds", [
    ("72h", 259200.0), ("10m", 600.0), ("500ms", 0.5), ("1h30m", 5400.0), ("2.5s", 2.5), ("90", 90.0),
    (15, 15.0), (0.25, 0.25), ("1d", 86400.0), (" 3 m ", 180.0)])
def test_duration_is_float_seconds_when_written_with_units(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["72x", "h", "", "-5", -1, True, "5 parsecs"])
def test_duration_is_rejected_when_malformed(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_env_vars_fill_any_string_and_coerce_to_ints_and_bools():
    text = MINIMAL.replace('secret = "x"', 'secret = "${S}"\nport = "${P}"\ntls = "${T}"\nhost = "${H:-pbx.lan}"')
    config = parse_config(tomllib.loads(text), env={"S": "abc", "P": "5039", "T": "true"})
    ami = config.ami[0]
    assert (ami.secret, ami.port, ami.tls, ami.host) == ("abc", 5039, True, "pbx.lan")


def test_dollar_dollar_brace_is_a_literal_when_escaped():
    config = parse_config(tomllib.loads(MINIMAL.replace('secret = "x"', 'secret = "a$${B}c"')), env={})
    assert config.ami[0].secret == "a${B}c"


def test_missing_env_var_names_key_and_variable_but_no_other_value_when_unset():
    text = MINIMAL.replace('secret = "x"', 'secret = "${AMI_SECRET}"') + """
[soap.users]
"1c" = "${SOAP_PASSWORD}"
"""
    problems = problems_of(text, env={"SOAP_PASSWORD": "topsecret-value"})
    assert problems == ["ami[0].secret: environment variable AMI_SECRET is not set"]
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), env={"SOAP_PASSWORD": "topsecret-value"})
    assert "topsecret-value" not in str(info.value)


def test_every_problem_is_listed_at_once_by_key_path_when_many_are_wrong():
    text = """
[[ami]]
name = "pbx1"
username = "bridge"
port = "abc"
auth = "sha1"
[[subscriber]]
name = "erp"
url = "http://erp/ws"
[[subscriber]]
name = "crm"
url = "ftp://crm"
mode = "everything"
filter = 'Dial.{1,}?90)2|Hangup'
max_age = "3 days"
"""
    problems = problems_of(text)
    assert "ami[0].port: expected an integer" in problems
    assert "ami[0].auth: 'sha1' is not one of md5, plain" in problems
    assert "subscriber[1].url: expected an http:// or https:// URL with a host" in problems
    assert "subscriber[1].mode: 'everything' is not one of raw, normalized, both" in problems
    assert "subscriber[1].filter: unbalanced parenthesis at 12" in problems
    assert any(p.startswith("subscriber[1].max_age: ") for p in problems)
    assert len(problems) == 6


def test_unknown_keys_are_errors_with_a_suggestion_when_close():
    text = MINIMAL.replace('name = "pbx1"', 'name = "pbx1"\nusername_ = "x"\nping_interval_s = 3') + """
[metric]
listen = "127.0.0.1:9108"
[[subscribers]]
name = "erp"
"""
    problems = problems_of(text)
    assert "ami[0].username_: unknown key (did you mean 'username'?)" in problems
    assert "ami[0].ping_interval_s: unknown key (did you mean 'ping_interval'?)" in problems
    assert "metric: unknown key (did you mean 'metrics'?)" in problems
    assert "subscribers: unknown key (did you mean 'subscriber'?)" in problems


def test_missing_required_keys_are_named_when_absent():
    problems = problems_of('[[ami]]\nhost = "pbx"\n[[subscriber]]\nmode = "raw"\n')
    assert "ami[0].name: required key is missing" in problems
    assert "subscriber[0].name: required key is missing" in problems
    assert "subscriber[0].url: required key is missing" in problems


def test_at_least_one_ami_server_is_required_when_none_given():
    assert problems_of('[database]\nurl = "sqlite:///x.db"\n') == [
        "ami: at least one [[ami]] table is required (one per Asterisk server)"]


@pytest.mark.parametrize("snippet,expected", [
    ('[soap]\nlisten = "127.0.0.1:99999"', "soap.listen: port 99999 is out of range 0-65535"),
    ('[soap]\nlisten = "localhost"', 'soap.listen: "localhost" is not HOST:PORT'),
    ('[soap]\nallow = ["10.0.0.0/33"]', "soap.allow[0]: '10.0.0.0/33' is not an IP network"),
    ('[soap]\nallow = "10.0.0.0/8"', "soap.allow: expected a list of strings"),
    ('[soap]\npath = "bridge"', "soap.path: must start with '/'"),
    ('[soap]\nallowed_channels = ["PJSIP/(2"]', "soap.allowed_channels[0]: missing ), unterminated subpattern at 6"),
    ('[soap.click_to_call]\nchannel = "PJSIP/202"', "soap.click_to_call.channel: must contain {extension}"),
    ('[soap.click_to_call]\nserver = "pbx9"', "soap.click_to_call.server: 'pbx9' names no [[ami]] server"),
    ('[soap]\ntls_cert = "/nonexistent.pem"', "soap: tls_cert and tls_key go together"),
    ('[metrics]\nlisten = "[::1:9108"', "metrics.listen: "),
    ('[logging]\nformat = "xml"', "logging.format: 'xml' is not one of text, json"),
    ('[logging]\nlevel = "LOUD"', "logging.level: 'LOUD' is not one of DEBUG"),
    ('[database]\nurl = "nosuchdb://x"', "database.url: database driver 'nosuchdb' is not available"),
    ('[database]\nurl = "not a url"', "database.url: not a database URL"),
    ('[database]\nbatch_max_events = 0', "database.batch_max_events: must be > 0"),
    ('[calls]\ntrunk_channel_patterns = ["[a-"]', "calls.trunk_channel_patterns[0]: unterminated character set at 0"),
    ('[soap]\nthreads = 1.5', "soap.threads: expected an integer"),
    ('[soap]\nusers = ["a"]', "soap.users: expected a table of strings"),
    ('database = "sqlite:///x"', "database: expected a table ([database])"),
])
def test_section_value_is_rejected_with_its_key_path_when_invalid(snippet, expected):
    # a bare key must come before the first table, or TOML puts it inside that table
    text = snippet + "\n" + MINIMAL if not snippet.startswith("[") else MINIMAL + snippet + "\n"
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("snippet,expected", [
    ('port = 70000', "ami[0].port: 70000 is out of range 1-65535"),
    ('port = true', "ami[0].port: expected an integer"),
    ('tls = "maybe"', "ami[0].tls: expected true or false"),
    ('events = "call,nonsense"', "ami[0].events: 'nonsense' is not one of system, call"),
    ('host = "bad host!"', "ami[0].host: 'bad host!' is not an IP address or host name"),
    ('name = "pbx 1"', "ami[0].name: 'pbx 1' is not a valid name"),
    ('ca_file = "/nonexistent/ca.pem"', "ami[0].ca_file: no such file: /nonexistent/ca.pem"),
    ('reconnect_cap = "100ms"', "ami[0].reconnect_cap: must be ≥ reconnect_base"),
    ('secret = 5', "ami[0].secret: expected a string"),
])
def test_ami_value_is_rejected_with_its_key_path_when_invalid(snippet, expected):
    text = MINIMAL.replace('name = "pbx1"\n', "") .replace("[[ami]]\n", f'[[ami]]\nname = "pbx1"\n{snippet}\n', 1)
    if snippet.startswith("name ="):
        text = MINIMAL.replace('name = "pbx1"', snippet)
    if snippet.startswith("secret ="):
        text = MINIMAL.replace('secret = "x"', snippet)
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_subscriber_header_regex_and_names_are_checked_when_invalid():
    text = MINIMAL + """
[[subscriber]]
name = "erp"
url = "https://erp:99999/x"
max_attempts = 0
[subscriber.headers]
CallerIDNum = "/^2(/"
[[subscriber]]
name = "erp"
url = "http://erp2/x"
"""
    problems = problems_of(text)
    assert "subscriber[0].url: the URL's port is not a number in 0-65535" in problems
    assert "subscriber[0].max_attempts: must be > 0" in problems
    assert any(p.startswith("subscriber[0].headers.CallerIDNum: missing ), unterminated subpattern") for p in problems)
    assert "subscriber[1].name: 'erp' is already used by subscriber[0]" in problems


def test_database_url_password_is_not_echoed_when_driver_is_missing():
    problems = problems_of(MINIMAL + '[database]\nurl = "postgresql+nosuch://u:hunter22@db/x"\n')
    assert problems and not any("hunter22" in p for p in problems)


def test_single_ami_table_is_accepted_when_written_without_double_brackets():
    config = parse_config(tomllib.loads(MINIMAL.replace("[[ami]]", "[ami]")), env={})
    assert config.ami[0].name == "pbx1"


def test_load_config_reports_toml_syntax_error_with_file_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[ami]\nname = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "not valid TOML" in str(info.value)


def test_load_config_reports_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
