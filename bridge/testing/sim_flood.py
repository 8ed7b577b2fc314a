"""Realistic mixed AMI event traffic for floods and benchmarks (shapes from the real captures)."""

from __future__ import annotations

import random
from typing import Iterator

from bridge.testing.sim_channels import Value

# Caller names seen in the field: Latin, UTF-8 Cyrillic, and cp1251 bytes from old phones
# (cp1251-callerid-amiheader-22.10.1.ami: Asterisk passes them through untranscoded).
NAMES_UTF8 = ("Оператор-202", "Иван Петров", "Тест", "Operator-202", "Vasiliy-902", "Ёлка Щукина")
NAMES_CP1251 = ("Василий", "Мария Ивановна")
CP1251_SHARE = 0.1
MATCH_EXTEN = "902"


def caller_name(rng: random.Random) -> Value:
    if rng.random() < CP1251_SHARE:
        return rng.choice(NAMES_CP1251).encode("cp1251")
    return rng.choice(NAMES_UTF8)


def _snapshot(profile: str, prefix: str, channel: str, uid: str, num: str, name: Value,
              exten: str) -> list[tuple[str, Value]]:
    if profile == "asterisk11":
        return [(f"{prefix}Channel", channel), (f"{prefix}CallerIDNum", num), (f"{prefix}CallerIDName", name),
                (f"{prefix}Uniqueid", uid)]
    return [(f"{prefix}Channel", channel), (f"{prefix}ChannelState", "4"), (f"{prefix}ChannelStateDesc", "Ring"),
            (f"{prefix}CallerIDNum", num), (f"{prefix}CallerIDName", name),
            (f"{prefix}ConnectedLineNum", "<unknown>"), (f"{prefix}ConnectedLineName", "<unknown>"),
            (f"{prefix}Language", "ru"), (f"{prefix}AccountCode", ""), (f"{prefix}Context", "from-internal"),
            (f"{prefix}Exten", exten), (f"{prefix}Priority", "1"), (f"{prefix}Uniqueid", uid),
            (f"{prefix}Linkedid", uid)]


def matching_event(profile: str, n: int, rng: random.Random) -> list[tuple[str, Value]]:
    """A dial towards MATCH_EXTEN: what `Dial.{1,}?Begin.{1,}?902`-style subscriber filters catch."""
    caller = str(200 + n % 50)
    uid, dest_uid = f"1795666{n:06d}.{2 * n}", f"1795666{n:06d}.{2 * n + 1}"
    src, dst = f"PJSIP/{caller}-{n:08x}", f"PJSIP/{MATCH_EXTEN}-{n + 1:08x}"
    name = caller_name(rng)
    if profile == "asterisk11":
        return [("Event", "Dial"), ("Privilege", "call,all"), ("SubEvent", "Begin"),
                ("Channel", src.replace("PJSIP", "SIP")), ("Destination", dst.replace("PJSIP", "SIP")),
                ("CallerIDNum", caller), ("CallerIDName", name), ("ConnectedLineNum", MATCH_EXTEN),
                ("ConnectedLineName", ""), ("UniqueID", uid), ("DestUniqueID", dest_uid),
                ("Dialstring", MATCH_EXTEN)]
    return ([("Event", "DialBegin"), ("Privilege", "call,all")]
            + _snapshot(profile, "", src, uid, caller, name, MATCH_EXTEN)
            + _snapshot(profile, "Dest", dst, dest_uid, MATCH_EXTEN, "", MATCH_EXTEN)
            + [("DialString", MATCH_EXTEN)])


def noise_event(profile: str, n: int, rng: random.Random) -> list[tuple[str, Value]]:
    """Traffic nobody subscribes to but every PBX sends: Newexten, VarSet, DeviceStateChange."""
    kind = n % 3
    exten = str(100 + n % 700)
    if exten == MATCH_EXTEN:
        exten = "903"
    uid, channel = f"1795667{n:06d}.{n}", f"PJSIP/{exten}-{n:08x}"
    if kind == 2:
        return [("Event", "DeviceStateChange"), ("Privilege", "call,all"), ("Device", f"PJSIP/{exten}"),
                ("State", rng.choice(("INUSE", "NOT_INUSE", "RINGING")))]
    base = _snapshot(profile, "", channel, uid, exten, caller_name(rng), exten)
    if kind == 0:
        return ([("Event", "Newexten"), ("Privilege", "dialplan,all")] + base
                + [("Extension", exten), ("Application", "Dial"), ("AppData", f"PJSIP/{exten},30,tT")])
    return ([("Event", "VarSet"), ("Privilege", "dialplan,all")] + base
            + [("Variable", "DIALSTATUS"), ("Value", rng.choice(("ANSWER", "BUSY", "NOANSWER")))])


def mixed_events(profile: str, count: int, match_ratio: float, seed: int = 0
                 ) -> Iterator[tuple[list[tuple[str, Value]], bool]]:
    """`count` events, a `match_ratio` share of them matching; yields (pairs, matched)."""
    rng = random.Random(seed)
    for n in range(count):
        matched = rng.random() < match_ratio
        yield (matching_event(profile, n, rng) if matched else noise_event(profile, n, rng)), matched
