"""`[[ami]] transport = "http"` (AJAM): its keys, defaults and the checks `config check` runs on them."""

from __future__ import annotations

import tomllib

import pytest

from bridge.config_load import parse_config
from bridge.errors import ConfigError

HTTP = """
[[ami]]
name = "pbx1"
transport = "http"
url = "https://pbx.example:8089/asterisk/"
username = "bridge"
secret = "x"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), env={})
    return info.value.problems


def test_http_server_gets_cookie_auth_and_a_20s_wait_when_only_url_is_given():
    (ami,) = parse_config(tomllib.loads(HTTP), env={}).ami
    assert (ami.transport, ami.auth, ami.url) == ("http", "cookie", "https://pbx.example:8089/asterisk/")
    assert (ami.wait_timeout_s, ami.httptimeout_s, ami.verify_tls, ami.proxy) == (20.0, 60.0, True, None)


def test_tcp_server_keeps_md5_auth_when_auth_is_not_given():
    (ami,) = parse_config(tomllib.loads('[[ami]]\nname = "a"\nusername = "u"\n'), env={}).ami
    assert (ami.transport, ami.auth) == ("tcp", "md5")


def test_digest_proxy_and_durations_are_read_when_written():
    text = HTTP + ('auth = "digest"\nproxy = "http://proxy:3128"\nwait_timeout = "45s"\nhttptimeout = "2m"\n'
                   'verify_tls = false\n')
    (ami,) = parse_config(tomllib.loads(text), env={}).ami
    assert (ami.auth, ami.proxy, ami.wait_timeout_s, ami.httptimeout_s, ami.verify_tls) == \
        ("digest", "http://proxy:3128", 45.0, 120.0, False)


def test_wait_timeout_is_refused_when_asterisk_would_cut_it():
    problems = problems_of(HTTP + 'wait_timeout = "55s"\n')
    assert problems == ["ami[0].wait_timeout: 55 s must be ≤ httptimeout - 10 s (50 s): Asterisk ends a "
                        "WaitEvent 10 s before the session would expire (raise manager.conf httptimeout "
                        "and this key together)"]


def test_every_bad_http_key_is_named_when_many_are_wrong():
    text = """
[[ami]]
name = "pbx1"
transport = "http"
url = "ftp://pbx/asterisk/"
username = "bridge"
auth = "md5"
proxy = "socks://p"
tls = true
ca_file = "/nonexistent/ca.pem"
"""
    problems = problems_of(text)
    assert "ami[0].url: expected an http:// or https:// URL with a host" in problems
    assert "ami[0].auth: 'md5' is not one of cookie, digest" in problems
    assert "ami[0].proxy: expected an http:// or https:// URL with a host" in problems
    assert 'ami[0].tls: not used with transport = "http"; write an https:// url' in problems
    assert "ami[0].ca_file: no such file: /nonexistent/ca.pem" in problems
    assert len(problems) == 5


def test_url_is_required_and_transport_checked_when_missing_or_unknown():
    assert problems_of('[[ami]]\nname = "a"\nusername = "u"\ntransport = "http"\n') == [
        'ami[0].url: required with transport = "http" (e.g. "https://pbx:8089/asterisk/")']
    assert "ami[0].transport: 'ws' is not one of tcp, http, ari" in problems_of(
        '[[ami]]\nname = "a"\nusername = "u"\ntransport = "ws"\n')


def test_cookie_auth_is_refused_when_the_transport_is_tcp():
    assert problems_of('[[ami]]\nname = "a"\nusername = "u"\nauth = "cookie"\n') == [
        "ami[0].auth: 'cookie' is not one of md5, plain"]
