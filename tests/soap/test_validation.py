"""bridge/soap/validation.py: what may reach AMI from a SOAP request."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from bridge.config import ClickToCallConfig, SoapConfig
from bridge.errors import SoapRequestError
from bridge.soap import validation as v

CFG = SoapConfig(allowed_contexts=("from-internal",), allowed_channels=(r"PJSIP/\d+",))
PATTERNS = v.compile_channel_patterns(CFG)
GOOD = dict(server_name=None, chan="PJSIP/202", ctx="from-internal", ext="89001234567", priority=1,
            caller='"Иван" <202>', timeout_ms=30_000, variable_list=["ORDER_ID=42", "__CRM=Заказ 7"],
            account="crm-1")


def originate(**changes):
    return v.originate(CFG, PATTERNS, **{**GOOD, **changes})


def test_originate_accepts_typical_1c_request_when_fields_are_clean():
    request = originate()
    assert request.channel == "PJSIP/202" and request.variables == ("ORDER_ID=42", "__CRM=Заказ 7")
    assert request.caller_id == '"Иван" <202>'


@pytest.mark.parametrize("field", ["server_name", "chan", "ctx", "ext", "caller", "account"])
@pytest.mark.parametrize("bad", ["a\r\nAction: Command", "a\nb", "a\rb", "a\x00b", "a\tb"])
def test_originate_refuses_control_characters_when_in_any_string_field(field, bad):
    with pytest.raises(SoapRequestError) as info:
        originate(**{field: "202" + bad if field != "chan" else "PJSIP/202" + bad})
    assert info.value.faultcode == "Client.InvalidArgument"


@pytest.mark.parametrize("bad", ["A=1\r\nAction: Command", "A=1,FILE(/etc/x)=y", "FILE(/etc/x)=y", "NOEQUALS",
                                 "A=x|B=y", "1A=x"])
def test_variables_refuse_injection_when_item_could_smuggle_an_assignment(bad):
    with pytest.raises(SoapRequestError) as info:
        originate(variable_list=[bad])
    assert "variables[0]" in info.value.message


@pytest.mark.parametrize("changes, fragment", [
    ({"chan": "PJSIP"}, "channel"), ({"chan": "x" * 100}, "at most 79"), ({"ext": "_X."}, "exten"),
    ({"ctx": "from internal"}, "context"), ({"priority": 0}, "priority"), ({"timeout_ms": 5}, "timeoutMs"),
    ({"variable_list": ["A=1"] * 33}, "at most 32"), ({"chan": None}, "channel: is required"),
])
def test_originate_explains_the_field_when_a_value_is_wrong(changes, fragment):
    with pytest.raises(SoapRequestError) as info:
        originate(**changes)
    assert fragment in info.value.message


def test_originate_refuses_context_when_not_in_allow_list():
    with pytest.raises(SoapRequestError) as info:
        originate(ctx="default")
    assert info.value.faultcode == "Client.NotAllowed"


def test_originate_refuses_channel_when_no_pattern_matches():
    with pytest.raises(SoapRequestError) as info:
        originate(chan="DAHDI/1")
    assert info.value.faultcode == "Client.NotAllowed"


def test_click_to_call_rings_the_extension_first_when_template_is_configured():
    ctc = ClickToCallConfig(channel="SIP/{extension}", context="ext-local", timeout_ms=20_000)
    request = v.click_to_call(ctc, extension="202", number="+79161234567", caller=None)
    assert (request.channel, request.context, request.exten) == ("SIP/202", "ext-local", "+79161234567")
    assert request.caller_id == "+79161234567" and request.timeout_ms == 20_000


def test_click_to_call_refuses_extension_when_it_would_change_the_channel_template():
    with pytest.raises(SoapRequestError):
        v.click_to_call(ClickToCallConfig(), extension="202&SIP/evil", number="1", caller=None)


@given(st.text(max_size=120))
def test_validators_either_pass_clean_text_or_refuse_when_given_any_string(value):
    for check in (v.channel, v.context, v.exten, v.caller_id, v.call_id, v.server):
        try:
            result = check(value)
        except SoapRequestError as exc:
            assert exc.faultcode == "Client.InvalidArgument" and exc.message
            continue
        assert result is None or not any(c in result for c in "\r\n\x00")


@given(st.lists(st.text(max_size=40), max_size=5))
def test_variables_never_pass_a_separator_or_control_character_when_fuzzed(items):
    try:
        accepted = v.variables(items)
    except SoapRequestError:
        return
    for item in accepted:
        name, _, value = item.partition("=")
        assert "(" not in name and not any(c in value for c in ",|\r\n\x00")
