"""`[[ami]] transport = "ari"`: the keys config check reads, and its complaints."""

from __future__ import annotations

import pytest

from bridge.config_load import parse_config
from bridge.errors import ConfigError


def config(**ami) -> dict:
    return {"ami": [{"name": "pbx1", **ami}]}


def test_ari_table_loads_with_defaults_when_url_and_user_are_given():
    cfg = parse_config(config(transport="ari", url="https://pbx:8089/ari/", username="bridge",
                              secret="${S}"), env={"S": "pw"})
    [ami] = cfg.ami
    assert (ami.transport, ami.url, ami.app, ami.verify_tls, ami.secret, ami.redirect_context) == (
        "ari", "https://pbx:8089/ari/", "asterisk-bridge", True, "pw", "asterisk-bridge-redirect")


def test_tcp_stays_the_default_transport_when_none_is_named():
    [ami] = parse_config(config(username="bridge", secret="x")).ami
    assert ami.transport == "tcp"


@pytest.mark.parametrize("ami, problem", [
    ({"transport": "ari", "username": "u"}, 'ami[0].url: required with transport = "ari"'),
    ({"transport": "ari", "url": "ftp://pbx/ari/", "username": "u"}, "ami[0].url: expected an http"),
    ({"transport": "ari", "url": "http://pbx:8088/asterisk/", "username": "u"}, "ami[0].url: should end in /ari/"),
    ({"transport": "ari", "url": "http://pbx:8088/ari/"}, "ami[0].username: required (the user's [section]"),
    ({"transport": "ari", "url": "http://pbx:8088/ari/", "username": "u", "app": "my app"}, "ami[0].app:"),
    ({"transport": "ari", "url": "http://pbx:8088/ari/", "username": "u", "tls": True}, "ami[0].tls: not used"),
    ({"transport": "ari", "url": "http://pbx:8088/ari/", "username": "u", "redirect_context": "a,b"},
     "ami[0].redirect_context: 'a,b' must be letters"),
    ({"transport": "ws", "username": "u"}, "ami[0].transport: 'ws' is not one of tcp, http, ari"),
])
def test_config_check_names_the_key_when_an_ari_table_is_wrong(ami, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(config(**ami))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_config_check_never_echoes_the_url_when_it_carries_credentials():
    with pytest.raises(ConfigError) as info:
        parse_config(config(transport="ari", url="http://u:s3cret@pbx:8088/x/", username="u"))
    assert "s3cret" not in str(info.value)
