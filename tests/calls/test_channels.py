"""Tests for bridge/calls/channels.py: channel names, Local halves, dial strings."""

from __future__ import annotations

import pytest

from bridge.calls.channels import device_of, dial_target, is_local, known, leg_key


@pytest.mark.parametrize("name,device", [
    ("SIP/202-0000019c", "202"), ("PJSIP/902-00000003", "902"),
    ("Local/100@test-00000001;1", "100"), ("Local/2@queue-members-00000004;2", "2"),
    ("PJSIP/trunk-0000000a", "trunk"), ("DAHDI/1-1", "1-1"),
])
def test_device_is_the_resource_when_channel_name_has_suffix(name, device):
    assert device_of(name) == device


def test_local_halves_share_a_leg_key_when_names_differ_only_by_half():
    assert leg_key("Local/200@test-00000000;1") == leg_key("Local/200@test-00000000;2")
    assert leg_key("SIP/202-0000019c") == "SIP/202-0000019c"
    assert is_local("Local/200@test-00000000;1") and not is_local("SIP/202-0000019c")


@pytest.mark.parametrize("dialstring,target", [
    ("902", "902"), ("PJSIP/902", "902"), ("100@test", "100"), ("Local/2@queue-members", "2"),
    ("SIP/trunk/79161234567", "79161234567"), ("SIP/901&SIP/902", "901"), ("", None), (None, None),
])
def test_dial_target_is_the_number_when_dialstring_has_tech_or_context(dialstring, target):
    assert dial_target(dialstring) == target


@pytest.mark.parametrize("value,expected", [("", None), ("<unknown>", None), ("<null>", None),
                                            (None, None), ("202", "202"), ("Тест", "Тест")])
def test_unset_caller_id_is_none_when_asterisk_spells_it_either_way(value, expected):
    assert known(value) == expected
