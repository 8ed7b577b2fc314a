"""AMI actions carried out over ARI REST, so the SOAP backend and the pipeline stay transport-blind.

The backend builds the same validated `Action` for every transport (CR/LF and size checks run
when it is built); here each supported action becomes one REST request and its answer an
`ActionResult` shaped like AMI's, for the fields the callers read:

| Action           | REST                                                          |
|------------------|---------------------------------------------------------------|
| Originate        | POST /channels (endpoint, extension, context, priority, callerId,     |
|                  | timeout in s, variables, channelId)                           |
| Hangup           | DELETE /channels/{id}  (the channel name is looked up in the live channels) |
| Redirect         | POST /channels: a helper Local/s@<redirect_context> runs ChannelRedirect()  |
|                  | (ARI moves no channel outside Stasis: bridge.ari.redirect)    |
| ExtensionState   | GET /deviceStates/{hint_device}: on 22 ARI reads no dialplan hint |
|                  | (GET /asterisk/variable evaluates no function), so the device the |
|                  | hint names is configured: `hint_device = "PJSIP/{extension}"`    |
| CoreShowChannels | GET /channels → CoreShowChannel events                         |
| Ping             | GET /asterisk/ping                                            |
"""

from __future__ import annotations

import itertools
from typing import Callable
from urllib.parse import quote

from bridge.ami.actions import Action
from bridge.ami.connection import ActionResult
from bridge.ami.message import Message
from bridge.ari import redirect
from bridge.ari.event import channel_as_ami
from bridge.ari.rest import AriRest
from bridge.errors import AmiActionError

# Device state text (GET /deviceStates/{name}) → the extension state code AMI's ExtensionState gives,
# as ast_devstate_to_extenstate() (main/pbx.c) maps it: an UNKNOWN device makes an idle hint.
DEVICE_TO_EXTENSION_STATE = {"UNKNOWN": 0, "NOT_INUSE": 0, "INUSE": 1, "BUSY": 2, "INVALID": 4, "UNAVAILABLE": 4,
                             "RINGING": 8, "RINGINUSE": 9, "ONHOLD": 16}


def success(**fields: str) -> ActionResult:
    return ActionResult(Message.from_pairs([("Response", "Success"), *fields.items()]))


def originate_body(action: Action, channel_id: str) -> dict:
    """POST /channels arguments from an AMI Originate (Timeout is ms in AMI, seconds in ARI)."""
    body: dict = {"endpoint": action.get("Channel"), "channelId": channel_id}
    if action.get("Exten"):
        body.update(extension=action.get("Exten"), context=action.get("Context"),
                    priority=int(action.get("Priority") or 1))
    if action.get("CallerID"):
        body["callerId"] = action.get("CallerID")
    if action.get("Timeout"):
        body["timeout"] = max(1, int(action.get("Timeout")) // 1000)
    variables = {}
    for item in (v for k, v in action.headers if k.lower() == "variable"):
        key, _, value = item.partition("=")
        variables[key] = value
    if action.get("Account"):
        variables["CDR(accountcode)"] = action.get("Account")
    if variables:
        body["variables"] = variables
    return body


def run(rest: AriRest, action: Action, channel_id_of: Callable[[str], str | None], timeout_s: float,
        hint_device: str = "PJSIP/{extension}", redirector: "Redirector | None" = None) -> ActionResult:
    """Carry `action` out; AmiActionError for a refused or unsupported one (AmiConnectionError, AmiAuthError pass)."""
    name = action.name.lower()
    if name == "originate":
        channel_id = action.get("ChannelId") or action.action_id
        created = rest.post("channels", json=originate_body(action, channel_id), timeout_s=timeout_s)
        return success(Message="Originate successfully queued", Uniqueid=str((created or {}).get("id", "")))
    if name in ("hangup", "redirect"):
        channel = action.get("Channel") or ""
        channel_id = channel_id_of(channel)
        if channel_id is None:
            raise AmiActionError(f"ARI {action.name}: no such channel {channel!r}", action.action_id)
        if name == "hangup":
            rest.delete(f"channels/{channel_id}", timeout_s=timeout_s)
            return success(Message="Channel Hungup")
        if redirector is None:
            raise AmiActionError("ARI Redirect needs the client's event stream", action.action_id)
        redirector.run(rest, action, channel, timeout_s)
        return success(Message="Redirect successful")
    if name == "extensionstate":
        exten, context = action.get("Exten") or "", action.get("Context") or ""
        device = hint_device.format(extension=exten)
        answer = rest.get(f"deviceStates/{quote(device, safe='')}", timeout_s=timeout_s) or {}
        text = str(answer.get("state") or "UNKNOWN").upper()
        return success(Exten=exten, Context=context, Status=str(DEVICE_TO_EXTENSION_STATE.get(text, -1)),
                       StatusText=text)
    if name == "coreshowchannels":
        channels = rest.get("channels", timeout_s=timeout_s) or []
        return ActionResult(Message.from_pairs([("Response", "Success"), ("EventList", "start")]),
                            tuple(channel_as_ami(c) for c in channels if isinstance(c, dict)))
    if name == "ping":
        rest.get("asterisk/ping", timeout_s=timeout_s)
        return success(Ping="Pong")
    raise AmiActionError(f"action {action.name} is not available over ARI", action.action_id)


class Redirector:
    """Redirect by a helper channel running ChannelRedirect (bridge.ari.redirect); the verdict
    comes from the client's own event stream through `watch`."""

    def __init__(self, watch: redirect.Watch, app: str, context: str, id_prefix: str) -> None:
        self.watch, self.app, self.context = watch, app, context
        self.id_prefix = f"{id_prefix}-redirect-"     # the helper's channel ids: see owns()
        self._ids = itertools.count(1)

    def owns(self, event: Message) -> bool:
        """An event about a helper channel (its own, or a Dial naming it): the bridge's plumbing."""
        return any((event.get(key) or "").startswith(self.id_prefix) for key in ("channel.id", "peer.id", "caller.id"))

    def run(self, rest: AriRest, action: Action, channel: str, timeout_s: float) -> None:
        helper_id = f"{self.id_prefix}{next(self._ids)}"
        target = (action.get("Context") or "", action.get("Exten") or "", int(action.get("Priority") or 1))
        awaited = self.watch.expect(redirect.verdict_of(helper_id))
        try:
            rest.post("channels", json=redirect.helper_body(helper_id, self.app, self.context, channel, target),
                      timeout_s=timeout_s)
            try:
                verdict = awaited.result(timeout_s)
            except TimeoutError:
                raise AmiActionError(f"ARI Redirect: the helper in [{self.context}] gave no "
                                     f"{redirect.STATUS} within {timeout_s:g} s", action.action_id) from None
        finally:
            self.watch.forget(awaited)
        redirect.answer(verdict, channel, self.context, action.action_id)
