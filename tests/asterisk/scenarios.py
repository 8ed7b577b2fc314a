"""The scenario matrix: how each call is placed, and the story a call-centre user would tell.

Phones (extensions.conf [phones]): 1XX ring 1 s then talk 3 s; 2XX never answer; 3XX busy;
4XX auto-answer; 5XX ring 2 s then talk 3 s; 6XX operators (ring 1 s, stay on the line).
Customers call from Local/<number>@pstn (a trunk pattern: inbound); 11-digit numbers leave
through Local/<number>@trunk (outbound). Every scenario has its own numbers, so all run at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import pytest

from tests.asterisk.live import Live
from tests.asterisk.stories import Story, answer, at_once, before_trunk, end, left, ring, story, xfer

IN, OUT, INT = "inbound", "outbound", "internal"
TALK = (2, 5)           # a 3 s conversation, give or take the ring/answer rounding


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Live], tuple[str, str | None]]   # → (CallId, OriginateId or None)
    expected: Story
    alone: bool = False                             # disturbs the AMI link: runs after the others
    # What a transport cannot see, as (transport, the story it can tell, why): the PBX did the same.
    unlike: tuple[tuple[str, Story, str], ...] = ()

    def story_over(self, transport: str) -> Story:
        return next((story for t, story, _ in self.unlike if t == transport), self.expected)


SCENARIOS: list[Scenario] = []


def scenario(name: str, expected: Story, alone: bool = False, unlike: tuple[tuple[str, Story, str], ...] = ()):
    def register(run):
        SCENARIOS.append(Scenario(name, run, expected, alone, unlike))
        return run
    return register


def click_to_call(live: Live, extension: str, number: str) -> tuple[str, str]:
    originate_id = live.bridge.call_return("ClickToCall", extension=extension, number=number)
    return originate_id, originate_id


# --- inbound -------------------------------------------------------------------------------------

@scenario("inbound-answered", story("79160000001", "104", IN,
          ring("104"), answer("104"), end("104", "answered", "104", TALK)))
def _(live):
    return live.inbound("79160000001", "104"), None


@scenario("inbound-no-answer", story("79160000002", "212", IN,
          ring("212"), end("212", "no-answer")))
def _(live):
    return live.inbound("79160000002", "212"), None


@scenario("inbound-busy", story("79160000003", "301", IN,
          ring("301"), end("301", "busy")))
def _(live):
    return live.inbound("79160000003", "301"), None


@scenario("inbound-caller-hangs-up-ringing", story("79160000004", "213", IN,
          ring("213"), end("213", "cancelled")))
def _(live):
    return live.inbound("79160000004", "213", hold_s=2), None


# Nobody exists at 1234, so the one event is about the only party: the customer's own leg.
@scenario("inbound-no-such-extension", story("79160000005", "1234", IN,
          end("79160000005", "failed")))
def _(live):
    return live.dial("79160000005", "1234", context="did", device="pstn"), None


@scenario("inbound-no-answer-through-local-hop", story("79160000017", "704", IN,
          ring("218"), end("218", "no-answer")))
def _(live):
    return live.inbound("79160000017", "704"), None


@scenario("inbound-answered-through-local-hop", story("79160000018", "705", IN,
          ring("119"), answer("119"), end("119", "answered", "119", TALK)))
def _(live):
    return live.inbound("79160000018", "705"), None


@scenario("internal-answered", story("105", "106", INT,
          ring("106"), answer("106"), end("106", "answered", "106", TALK)))
def _(live):
    return live.internal("105", "106"), None


@scenario("outbound-trunk-answered", story("107", "79160000011", OUT,
          ring("79160000011"), answer("79160000011"), end("79160000011", "answered", "79160000011", TALK)))
def _(live):
    return live.internal("107", "79160000011"), None


@scenario("ring-group-second-answers", story("79160000006", "701", IN,
          at_once(ring("206"), ring("504")), answer("504"), left("206", "answered-elsewhere", "answered", "504"),
          end("504", "answered", "504", TALK)))
def _(live):
    return live.inbound("79160000006", "701"), None


@scenario("queue-ringall-second-answers", story("79160000007", "702", IN,
          at_once(ring("207"), ring("505")), answer("505"), left("207", "answered-elsewhere", "answered", "505"),
          end("505", "answered", "505", TALK), queue="q702"))
def _(live):
    return live.inbound("79160000007", "702"), None


# --- ClickToCall and Originate through the SOAP service ------------------------------------------

@scenario("click-to-call-answered", story("601", "108", INT,
          ring("601"), answer("601", "ringing"), ring("108"), answer("108"),
          end("108", "answered", "108", TALK), originated=True))
def _(live):
    return click_to_call(live, "601", "108")


@scenario("click-to-call-operator-no-answer", story("214", "109", INT,
          ring("214"), end("214", "no-answer"), originated=True))
def _(live):
    return click_to_call(live, "214", "109")


@scenario("click-to-call-operator-auto-answer", story("401", "110", INT,
          ring("401"), answer("401", "ringing"), ring("110"), answer("110"),
          end("110", "answered", "110", TALK), originated=True))
def _(live):
    return click_to_call(live, "401", "110")


@scenario("click-to-call-number-busy", story("602", "302", INT,
          ring("602"), answer("602", "ringing"), ring("302"), end("302", "busy"), originated=True))
def _(live):
    return click_to_call(live, "602", "302")


@scenario("click-to-call-number-no-answer", story("603", "215", INT,
          ring("603"), answer("603", "ringing"), ring("215"), end("215", "no-answer"), originated=True))
def _(live):
    return click_to_call(live, "603", "215")


@scenario("click-to-call-number-is-ivr", story("604", "700", INT,
          ring("604"), answer("604", "ringing"), ring("700"), answer("700"),
          end("700", "answered", "700", TALK), originated=True))
def _(live):
    return click_to_call(live, "604", "700")


@scenario("click-to-call-number-is-queue", story("605", "703", INT,
          ring("605"), answer("605", "ringing"),
          at_once(ring("402"), ring("208"), ring("221"), ring("222")), answer("402"),
          at_once(*(left(m, "answered-elsewhere", "answered", "402") for m in ("208", "221", "222"))),
          end("402", "answered", "402", (10, 15)),
          queue="q703", originated=True))
def _(live):
    return click_to_call(live, "605", "703")


@scenario("click-to-call-outbound-trunk", story("606", "79160000021", OUT,
          before_trunk(ring("606")), before_trunk(answer("606", "ringing")), ring("79160000021"),
          answer("79160000021"),
          end("79160000021", "answered", "79160000021", TALK), originated=True))
def _(live):
    return click_to_call(live, "606", "79160000021")


@scenario("originate-with-variables", story("607", "708", INT,
          ring("607"), answer("607", "ringing"), ring("111"), answer("111"),
          end("111", "answered", "111", TALK), originated=True))
def _(live):
    originate_id = live.bridge.call_return(
        "Originate", channel="Local/607@phones", context="from-internal", exten="708",
        variables=[("variable", "TARGET=111")])
    return originate_id, originate_id


# --- AMI Originate straight into an application (an auto-dialer: no Context/Exten) -----------
# The application is the originator's own side; the phone the Local channel reaches is the party
# called. The SOAP Originate always names a Context/Exten, so these go through the driver's AMI.

@scenario("ami-originate-into-application", story("7001", "120", INT,
          ring("120"), answer("120"), end("120", "answered", "120", TALK)))
def _(live):
    # 120 rings 1 s, answers, talks 3 s and hangs up; Wait(10) would have stayed longer.
    return live.into_application("Local/120@phones", "Wait", "10", "7001"), None


@scenario("ami-originate-into-application-auto-answer", story("7002", "403", INT,
          ring("403"), answer("403"), end("403", "answered", "403", TALK)))
def _(live):
    # 403 answers at once (never rings: it still gets its CallRinging); Wait(3) ends first.
    return live.into_application("Local/403@phones", "Wait", "3", "7002"), None


@scenario("ami-originate-into-application-no-answer", story("7003", "223", INT,
          ring("223"), end("223", "no-answer")))
def _(live):
    # 223 rings until the Originate's 4 s timeout: the application never starts.
    return live.into_application("Local/223@phones", "Wait", "3", "7003", timeout_s=4), None


# --- transfers, and the SOAP service acting on a call in progress --------------------------------

MOMENT = (0, 2)         # the agent talks until the driver transfers: a moment, longer on a loaded box
XFER_TALK = (4, 9)      # from the first answer: 1-2 s with the first agent, ring, 3 s with the second
# A blind transfer: the agent's own CallEnded names nobody as AnsweredBy (nobody has the call
# while the target rings); the target answers it from its CallAnswered on. Asterisk
# dials the target while it tears the agent's channel down: either event may come first.


@scenario("blind-transfer-ami-redirect", story("79160000008", "608", IN,
          ring("608"), answer("608"), xfer("608", "112"), at_once(left("608", "transferred", "answered", "", MOMENT),
                  ring("112", "answered")), answer("112"), end("112", "answered", "112", XFER_TALK)))
def _(live):
    call_id = live.inbound("79160000008", "608")
    live.wait_for(call_id, "CallAnswered", "608")
    reply = live.driver.action("Redirect", Channel=live.channel(call_id), Context="from-internal",
                               Exten="112", Priority=1)
    assert reply.get("Response") == "Success", reply
    return call_id, None


@scenario("blind-transfer-ami-blindtransfer", story("79160000009", "609", IN,
          ring("609"), answer("609"), xfer("609", "113"), at_once(left("609", "transferred", "answered", "", MOMENT),
                  ring("113", "answered")), answer("113"), end("113", "answered", "113", XFER_TALK)))
def _(live):
    call_id = live.inbound("79160000009", "609")
    live.wait_for(call_id, "CallAnswered", "609")
    agent = live.bridged_peer(call_id, "Local/609@phones")
    reply = live.driver.action("BlindTransfer", Channel=agent, Context="from-internal", Exten="113")
    assert reply.get("Response") == "Success", reply
    return call_id, None


@scenario("attended-transfer-ami-atxfer", story("79160000010", "610", IN,
          ring("610"), answer("610"), ring("616", "answered"), answer("616"), xfer("610", "616"),
          left("610", "transferred", "answered", "616", (1, 6)), end("616", "answered", "616", (3, 14))))
def _(live):
    call_id = live.inbound("79160000010", "610", hold_s=8)
    live.wait_for(call_id, "CallAnswered", "610")
    agent = live.bridged_peer(call_id, "Local/610@phones")
    reply = live.driver.action("Atxfer", Channel=agent, Context="from-internal", Exten="616")
    assert reply.get("Response") == "Success", reply
    live.wait_for(call_id, "CallAnswered", "616")
    reply = live.driver.action("Hangup", Channel=agent)   # the agent hangs up: the transfer completes
    assert reply.get("Response") == "Success", reply
    return call_id, None


@scenario("soap-hangup", story("79160000012", "611", IN,
          ring("611"), answer("611"), end("611", "answered", "611", (0, 3))))
def _(live):
    call_id = live.inbound("79160000012", "611")
    live.wait_for(call_id, "CallAnswered", "611")
    assert int(live.bridge.call_return("Hangup", callId=call_id)) >= 1
    return call_id, None


@scenario("soap-redirect", story("79160000013", "612", IN,
          ring("612"), answer("612"), xfer("612", "114"), at_once(left("612", "transferred", "answered", "", MOMENT),
                  ring("114", "answered")), answer("114"), end("114", "answered", "114", XFER_TALK)))
def _(live):
    call_id = live.inbound("79160000013", "612")
    live.wait_for(call_id, "CallAnswered", "612")
    assert live.bridge.call_return("Redirect", channel=live.channel(call_id), context="from-internal",
                                   exten="114") == "true"
    return call_id, None


# --- caller names --------------------------------------------------------------------------------

@scenario("cyrillic-caller-name-utf8", story("79160000014", "115", IN,
          ring("115"), answer("115"), end("115", "answered", "115", TALK), caller_name="Иван Петров"))
def _(live):
    return live.inbound("79160000014", "115", name="Иван Петров"), None


CP1251 = story("79160000015", "750", IN, ring("117"), answer("117"), end("117", "answered", "117", TALK),
               caller_name="Петрова Нина")
# Asterisk 22's ARI carries no string that is not UTF-8: the ChannelCallerId (and the ChannelDialplan
# of the Set) that would carry these bytes is never sent, snapshots hold an empty name, and
# GET /channels/{id}/variable?variable=CALLERID(name) answers 500 "Allocation failed" (probed
# live). No ARI client can read the name; the rest of the story is the same.
CP1251_ARI = replace(CP1251, caller_name="")


@scenario("cyrillic-caller-name-cp1251", CP1251, unlike=(("ari", CP1251_ARI, "ARI blanks a name that is not UTF-8"),))
def _(live):
    # from-trunk 750 sets CALLERID(name) from raw cp1251 bytes, then rings 117.
    return live.inbound("79160000015", "750"), None


# --- the AMI link drops mid-call -----------------------------------------------------------------

@scenario("call-across-ami-reconnect", story("79160000016", "617", IN,
          ring("617"), answer("617"), end("617", "answered", "617", (3, 7))), alone=True)
def _(live):
    if live.bridge.transport in ("http", "digest"):
        # main/manager.c kicks a session by its file descriptor; an HTTP session has none. (ARI:
        # the proxy in front of it resets the WebSocket and REST connections, see conftest.)
        pytest.skip("`manager kick session` reaches only TCP sessions; AJAM session loss: tests/ajam_live")
    call_id = live.inbound("79160000016", "617", hold_s=7)
    live.wait_for(call_id, "CallAnswered", "617")
    live.kick_bridge()
    return call_id, None
