"""AMI actions → ARI REST arguments (the live suite sends them to Asterisk)."""

from __future__ import annotations

from bridge.ami.actions import Action
from bridge.ari.actions import originate_body
from bridge.ari.rest import endpoint_of, events_url


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
