"""Per-profile wire shapes of the call events the scenarios emit, copied from real captures.

Every header list below follows tests/fixtures/ami/asterisk-11.25.3 (AMI 1.3: `Dial` with
`SubEvent`, `Bridge` with `Bridgestate`, no `Linkedid`, empty caller id as an empty value) or
tests/fixtures/ami/asterisk-22.10.1 (AMI 11.0.0, the Asterisk 12+ event set: every channel
event carries the full channel snapshot with `Linkedid`, empty caller id is `<unknown>`).
"""

from __future__ import annotations

from dataclasses import dataclass

ASTERISK11 = "asterisk11"
ASTERISK20 = "asterisk20"

Pairs = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CALL = "call,all"
DIALPLAN = "dialplan,all"
AGENT = "agent,all"


@dataclass
class Chan:
    """A channel as a scenario drives it; mutable because its state changes along the script."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    cid_num: str = ""
    cid_name: str = ""
    conn_num: str = ""
    conn_name: str = ""
    state: int = 0


def _cid(profile: str, value: str) -> str:
    # Asterisk 12+ writes an unset caller id as `<unknown>`; 11 leaves the value empty.
    return value if value or profile == ASTERISK11 else "<unknown>"


def snapshot(profile: str, ch: Chan, prefix: str = "") -> Pairs:
    """The Asterisk 12+ channel snapshot (`Channel` … `Linkedid`), optionally `Dest`-prefixed."""
    p = prefix
    return [
        (f"{p}Channel", ch.name), (f"{p}ChannelState", str(ch.state)),
        (f"{p}ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
        (f"{p}CallerIDNum", _cid(profile, ch.cid_num)), (f"{p}CallerIDName", _cid(profile, ch.cid_name)),
        (f"{p}ConnectedLineNum", _cid(profile, ch.conn_num)),
        (f"{p}ConnectedLineName", _cid(profile, ch.conn_name)),
        (f"{p}Language", "en"), (f"{p}AccountCode", ""), (f"{p}Context", ch.context),
        (f"{p}Exten", ch.exten), (f"{p}Priority", "1"), (f"{p}Uniqueid", ch.uniqueid),
        (f"{p}Linkedid", ch.linkedid),
    ]


def newchannel(profile: str, ch: Chan) -> Pairs:
    head = [("Event", "Newchannel"), ("Privilege", CALL)]
    if profile == ASTERISK11:
        return head + [
            ("Channel", ch.name), ("ChannelState", str(ch.state)),
            ("ChannelStateDesc", STATE_DESC[ch.state]), ("CallerIDNum", ch.cid_num),
            ("CallerIDName", ch.cid_name), ("AccountCode", ""), ("Exten", ch.exten),
            ("Context", ch.context), ("Uniqueid", ch.uniqueid),
        ]
    return head + snapshot(profile, ch)


def newstate(profile: str, ch: Chan) -> Pairs:
    head = [("Event", "Newstate"), ("Privilege", CALL)]
    if profile == ASTERISK11:
        return head + [
            ("Channel", ch.name), ("ChannelState", str(ch.state)),
            ("ChannelStateDesc", STATE_DESC[ch.state]), ("CallerIDNum", ch.cid_num),
            ("CallerIDName", ch.cid_name), ("ConnectedLineNum", ch.conn_num),
            ("ConnectedLineName", ch.conn_name), ("Uniqueid", ch.uniqueid),
        ]
    return head + snapshot(profile, ch)


def newexten(profile: str, ch: Chan, app: str, app_data: str, priority: int = 1) -> Pairs:
    head = [("Event", "Newexten"), ("Privilege", DIALPLAN)]
    if profile == ASTERISK11:
        return head + [
            ("Channel", ch.name), ("Context", ch.context), ("Extension", ch.exten),
            ("Priority", str(priority)), ("Application", app), ("AppData", app_data),
            ("Uniqueid", ch.uniqueid),
        ]
    # Asterisk 22 carries both `Exten` (snapshot) and `Extension` (fixtures README).
    return head + snapshot(profile, ch) + [
        ("Extension", ch.exten), ("Application", app), ("AppData", app_data)]


def hangup_request(profile: str, ch: Chan) -> Pairs:
    head = [("Event", "HangupRequest"), ("Privilege", CALL)]
    if profile == ASTERISK11:
        return head + [("Channel", ch.name), ("Uniqueid", ch.uniqueid)]
    return head + snapshot(profile, ch)


def hangup(profile: str, ch: Chan, cause: int, cause_txt: str) -> Pairs:
    head = [("Event", "Hangup"), ("Privilege", CALL)]
    tail = [("Cause", str(cause)), ("Cause-txt", cause_txt)]
    if profile == ASTERISK11:
        # After hangup Asterisk 11 reports an unset caller name as `<unknown>` (queue capture).
        return head + [
            ("Channel", ch.name), ("Uniqueid", ch.uniqueid),
            ("CallerIDNum", ch.cid_num or "<unknown>"), ("CallerIDName", ch.cid_name or "<unknown>"),
            ("ConnectedLineNum", ch.conn_num or "<unknown>"),
            ("ConnectedLineName", ch.conn_name or "<unknown>"), ("AccountCode", ""),
        ] + tail
    return head + snapshot(profile, ch) + tail


def dial_begin(profile: str, src: Chan | None, dst: Chan, dialstring: str) -> Pairs:
    """`Dial`/`SubEvent: Begin` on 11; `DialBegin` on 12+ (only `Dest*` for an Originate)."""
    if profile == ASTERISK11:
        assert src is not None, "Asterisk 11 sends no Dial event for an Originate"
        return [
            ("Event", "Dial"), ("Privilege", CALL), ("SubEvent", "Begin"), ("Channel", src.name),
            ("Destination", dst.name), ("CallerIDNum", src.cid_num), ("CallerIDName", src.cid_name),
            ("ConnectedLineNum", src.conn_num), ("ConnectedLineName", src.conn_name),
            ("UniqueID", src.uniqueid), ("DestUniqueID", dst.uniqueid), ("Dialstring", dialstring),
        ]
    head = [("Event", "DialBegin"), ("Privilege", CALL)]
    return head + (snapshot(profile, src) if src else []) + snapshot(profile, dst, "Dest") + [
        ("DialString", dialstring)]


def dial_state(profile: str, src: Chan | None, dst: Chan, status: str) -> Pairs:
    head = [("Event", "DialState"), ("Privilege", CALL)]
    return head + (snapshot(profile, src) if src else []) + snapshot(profile, dst, "Dest") + [
        ("DialStatus", status)]


def dial_end(profile: str, src: Chan | None, dst: Chan, status: str) -> Pairs:
    """`Dial`/`SubEvent: End` on 11 (when the Dial app returns); `DialEnd` per peer on 12+."""
    if profile == ASTERISK11:
        assert src is not None
        return [("Event", "Dial"), ("Privilege", CALL), ("SubEvent", "End"), ("Channel", src.name),
                ("UniqueID", src.uniqueid), ("DialStatus", status)]
    head = [("Event", "DialEnd"), ("Privilege", CALL)]
    return head + (snapshot(profile, src) if src else []) + snapshot(profile, dst, "Dest") + [
        ("DialStatus", status)]


def bridge_11(state: str, a: Chan, b: Chan) -> Pairs:
    return [
        ("Event", "Bridge"), ("Privilege", CALL), ("Bridgestate", state), ("Bridgetype", "core"),
        ("Channel1", a.name), ("Channel2", b.name), ("Uniqueid1", a.uniqueid),
        ("Uniqueid2", b.uniqueid), ("CallerID1", a.cid_num), ("CallerID2", b.cid_num),
    ]


def bridge_head(event: str, bridge_id: str, count: int) -> Pairs:
    return [
        ("Event", event), ("Privilege", CALL), ("BridgeUniqueid", bridge_id),
        ("BridgeType", "basic"), ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"), ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(count)), ("BridgeVideoSourceMode", "none"),
    ]


def queue_join(profile: str, ch: Chan, queue: str, count: int) -> Pairs:
    if profile == ASTERISK11:
        return [
            ("Event", "Join"), ("Privilege", CALL), ("Channel", ch.name),
            ("CallerIDNum", ch.cid_num), ("CallerIDName", ch.cid_name),
            ("ConnectedLineNum", ch.conn_num), ("ConnectedLineName", ch.conn_name or "unknown"),
            ("Queue", queue), ("Position", "1"), ("Count", str(count)), ("Uniqueid", ch.uniqueid),
        ]
    return [("Event", "QueueCallerJoin"), ("Privilege", AGENT)] + snapshot(profile, ch) + [
        ("Queue", queue), ("Position", "1"), ("Count", str(count))]


def queue_leave(profile: str, ch: Chan, queue: str, count: int) -> Pairs:
    if profile == ASTERISK11:
        return [("Event", "Leave"), ("Privilege", CALL), ("Channel", ch.name), ("Queue", queue),
                ("Count", str(count)), ("Position", "1"), ("Uniqueid", ch.uniqueid)]
    return [("Event", "QueueCallerLeave"), ("Privilege", AGENT)] + snapshot(profile, ch) + [
        ("Queue", queue), ("Position", "1"), ("Count", str(count))]


def originate_response(profile: str, action_id: str, ch: Chan | None, channel: str,
                       context: str, exten: str, reason: int, cid_num: str, cid_name: str) -> Pairs:
    """Success names the channel with its suffix; a failure names the dial string only and has
    `Uniqueid: <null>` on 11, `<unknown>` on 22 (fixtures README)."""
    failed = ch is None
    no_id = "<null>" if profile == ASTERISK11 else "<unknown>"
    return [
        ("Event", "OriginateResponse"), ("Privilege", CALL), ("ActionID", action_id),
        ("Response", "Failure" if failed else "Success"),
        ("Channel", channel if failed else ch.name), ("Context", context), ("Exten", exten),
        ("Reason", str(reason)), ("Uniqueid", no_id if failed else ch.uniqueid),
        ("CallerIDNum", cid_num or "<unknown>"), ("CallerIDName", cid_name or "<unknown>"),
    ]


def agent_event(event: str, caller: Chan, member: Chan, queue: str, interface: str,
                extra: Pairs = ()) -> Pairs:
    """12+ `AgentCalled`/`AgentConnect`/`AgentComplete` (class agent): the waiting caller's
    snapshot, the member channel's as `Dest*`, then the queue and member (live-queue-22.10.1)."""
    return ([("Event", event), ("Privilege", AGENT)] + snapshot(ASTERISK20, caller)
            + snapshot(ASTERISK20, member, "Dest")
            + [("Queue", queue), ("Interface", interface), ("MemberName", interface)] + list(extra))
