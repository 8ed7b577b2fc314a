"""AMI actions → ARI REST arguments (the live suite sends them to Asterisk)."""

from __future__ import annotations

import re

import pytest

from bridge.ami.actions import Action
from bridge.ami.message import Message
from bridge.ari.actions import originate_body
from bridge.ari.redirect import Watch, answer, helper_body, verdict_of
from bridge.ari.rest import endpoint_of, events_url
from bridge.errors import AmiActionError, AmiConnectionError


def test_originate_becomes_post_channels_arguments_when_all_fields_are_set():
    action = Action.build("Originate", action_id="oid", Channel="Local/101@phones", Context="calls", Exten="102",
                          Priority=1, CallerID="Иван <101>", Timeout=30000, Account="acc",
                          Variable=["A=1", "B=x=y"], ChannelId="oid", Async=True)
    assert originate_body(action, "oid") == {
        "endpoint": "Local/101@phones", "channelId": "oid", "extension": "102", "context": "calls", "priority": 1,
        "callerId": "Иван <101>", "timeout": 30, "variables": {"A": "1", "B": "x=y", "CDR(accountcode)": "acc"}}


def test_events_url_keeps_the_scheme_family_and_drops_credentials_when_built():
    assert events_url("https://u:p@pbx:8089/x/ari/", "my-app") == \
        "wss://pbx:8089/x/ari/events?app=my-app&subscribeAll=true"
    assert events_url("http://pbx:8088/ari", "a") == "ws://pbx:8088/ari/events?app=a&subscribeAll=true"
    assert endpoint_of("http://u:p@pbx:8088/ari/") == "http://pbx:8088/ari/"


def test_redirect_helper_is_a_local_pair_into_our_app_carrying_the_target_when_built():
    assert helper_body("r-1", "asterisk-bridge", "asterisk-bridge-redirect", "Local/612@phones-0000000a;1",
                       ("from-internal", "114", 1)) == {
        "endpoint": "Local/s@asterisk-bridge-redirect", "app": "asterisk-bridge", "channelId": "r-1",
        "otherChannelId": "r-1;2",
        "variables": {"BRIDGE_REDIRECT_CHANNEL": "Local/612@phones-0000000a;1",
                      "BRIDGE_REDIRECT_CONTEXT": "from-internal", "BRIDGE_REDIRECT_EXTEN": "114",
                      "BRIDGE_REDIRECT_PRIORITY": "1"}}


def _event(kind: str, channel_id: str, **fields: str) -> Message:
    return Message.from_pairs([("Event", kind), ("channel.id", channel_id), *fields.items()])


@pytest.mark.parametrize("event, verdict", [
    (_event("ChannelVarset", "r-1;2", variable="CHANNELREDIRECT_STATUS", value="SUCCESS"), "SUCCESS"),
    (_event("ChannelVarset", "r-1;2", variable="CHANNELREDIRECT_STATUS", value="NOCHANNEL"), "NOCHANNEL"),
    (_event("ChannelDestroyed", "r-1"), "missing"),          # the context never ran ChannelRedirect
    (_event("ChannelVarset", "r-1;2", variable="OTHER", value="SUCCESS"), None),
    (_event("ChannelVarset", "r-2;2", variable="CHANNELREDIRECT_STATUS", value="SUCCESS"), None),
])
def test_redirect_verdict_is_read_from_the_helpers_own_events_when_they_arrive(event, verdict):
    watch = Watch()
    awaited = watch.expect(verdict_of("r-1"))
    watch.offer(event)
    assert (awaited.result(0) if awaited.done() else None) == verdict


@pytest.mark.parametrize("verdict, message", [
    ("NOCHANNEL", "ARI Redirect: no such channel 'Local/1@x-1;1'"),
    ("missing", "ARI Redirect: the helper context [ctx] did not run ChannelRedirect"),
])
def test_redirect_failure_is_a_typed_error_naming_the_cause_when_the_helper_says_so(verdict, message):
    with pytest.raises(AmiActionError, match=re.escape(message)):
        answer(verdict, "Local/1@x-1;1", "ctx", "a-1")
    answer("SUCCESS", "Local/1@x-1;1", "ctx", "a-1")      # no error


def test_lost_link_fails_every_waiter_with_a_connection_error_when_it_drops():
    watch = Watch()
    awaited = watch.expect(verdict_of("r-1"))
    watch.fail_all("link lost")
    with pytest.raises(AmiConnectionError, match="link lost"):
        awaited.result(0)
