"""BridgeBackend: what the SOAP operations do, over the AMI clients, the call model and the trackers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import bridge
from bridge.ami import names
from bridge.ami.actions import Action
from bridge.calls.channels import device_of
from bridge.config import SoapConfig
from bridge.errors import AmiActionError, AmiConnectionError, SoapRequestError
from bridge.soap import validation
from bridge.calls.extstate import ExtensionStateCache
from bridge.calls.originate import OriginateState, OriginateTracker
from bridge.soap.validation import OriginateRequest

ACTION_TIMEOUT_S = 5.0
# Originate's ChannelId/OtherChannelId exist from Asterisk 13, whose AMI version is 2.x.
CHANNEL_ID_MIN_AMI = (2,)
NOT_FOUND = "Client.NotFound"
UNKNOWN_SERVER = "Client.UnknownServer"


@dataclass(frozen=True)
class ExtensionInfo:
    extension: str
    context: str
    state: str
    status_code: int | None
    call_id: str | None = None
    other_party: str | None = None
    other_party_name: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    name: str
    connected: bool
    ami_version: str | None
    asterisk_version: str | None


@dataclass(frozen=True)
class PingInfo:
    version: str
    servers: tuple[ServerInfo, ...]
    outbox_pending: int | None


class BridgeBackend:
    """Adapter the SOAP service calls. Construct before the clients start: it adds its listeners."""

    def __init__(self, clients: Mapping[str, object], call_tracker, *, soap_cfg: SoapConfig = SoapConfig(),
                 originate_tracker: OriginateTracker | None = None,
                 extension_states: ExtensionStateCache | None = None,
                 pending_count: Callable[[], int] | None = None, attach: bool = True) -> None:
        if not clients:
            raise ValueError("BridgeBackend needs at least one AMI client")
        self.clients = dict(clients)
        self.calls = call_tracker
        self.soap_cfg = soap_cfg
        self.channel_patterns = validation.compile_channel_patterns(soap_cfg)
        self.originates = originate_tracker or OriginateTracker()
        self.extension_states = extension_states or ExtensionStateCache()
        self.pending_count = pending_count
        if attach:
            for client in self.clients.values():
                client.add_listener(self.originates)
                client.add_listener(self.extension_states)

    def listeners(self) -> Sequence[object]:
        return (self.originates, self.extension_states)

    def _client(self, server: str | None):
        if server is None:
            name = self.soap_cfg.click_to_call.server or next(iter(self.clients))
            server = name
        client = self.clients.get(server)
        if client is None:
            raise SoapRequestError(f"server: no AMI server named {server!r}; known: {', '.join(self.clients)}",
                                   faultcode=UNKNOWN_SERVER)
        return server, client

    def _server_of(self, channel: str) -> str | None:
        """The server whose call model has `channel` live; None (the default server) otherwise."""
        for call in self.calls.active_calls(None):
            if any(leg.channel == channel for leg in call.legs):
                return call.server
        return None

    def _run(self, client, action: Action):
        return client.send_action(action, ACTION_TIMEOUT_S).result(ACTION_TIMEOUT_S + 1.0)

    # --- operations -----------------------------------------------------------------------------

    def originate(self, request: OriginateRequest) -> str:
        """Send an Async Originate; the id is its ActionID (and ChannelId on Asterisk 13+)."""
        server, client = self._client(request.server)
        originate_id = uuid.uuid4().hex
        banner = client.banner
        channel_id = originate_id if banner is not None and banner.version >= CHANNEL_ID_MIN_AMI else None
        action = Action.build(
            names.ORIGINATE, action_id=originate_id, Channel=request.channel, Context=request.context,
            Exten=request.exten, Priority=request.priority, CallerID=request.caller_id,
            Timeout=request.timeout_ms, Account=request.account, Variable=list(request.variables) or None,
            ChannelId=channel_id, Async=True)
        ring_timeout_s = request.timeout_ms / 1000.0 if request.timeout_ms else None
        self.originates.register(originate_id, server, request.channel, channel_id, ring_timeout_s)
        if channel_id is not None:
            # The events of this call then say: the extension on `channel` calls `exten`.
            self.calls.expect_originate(server, channel_id, originate_id, device_of(request.channel),
                                        request.exten)
        try:
            self._run(client, action)
        except (AmiActionError, AmiConnectionError) as exc:
            self.originates.fail(originate_id, exc.message)
            raise
        return originate_id

    def originate_status(self, originate_id: str) -> OriginateState:
        state = self.originates.get(originate_id)
        if state is None:
            raise SoapRequestError(f"originateId: no Originate {originate_id!r} is known (ids live 24 h)",
                                   faultcode=NOT_FOUND)
        return state

    def extension_state(self, extension: str, context: str | None) -> ExtensionInfo:
        ctx = context or self.soap_cfg.click_to_call.context
        server, client = self._client(None)
        hint = self.extension_states.lookup(client, extension, ctx)
        call = self.calls.extension_call(extension)
        if call is None:
            return ExtensionInfo(extension, ctx, hint.state, hint.status_code)
        if call.caller_num == extension:
            other, other_name = call.answered_by or call.callee_num, None
        else:
            other, other_name = call.caller_num, call.caller_name
        return ExtensionInfo(extension, ctx, hint.state, hint.status_code, call.call_id, other, other_name)

    def active_calls(self, extension: str | None) -> list:
        return list(self.calls.active_calls(extension))

    def hangup(self, channel: str | None, call_id: str | None, server: str | None = None) -> int:
        """Hang up one channel, or every live channel of a call; returns how many were hung up."""
        if channel is not None:
            _, client = self._client(server or self._server_of(channel))
            self._run(client, Action.build("Hangup", Channel=channel))
            return 1
        call = self.calls.call(call_id)
        if call is None or call.ended_at is not None:
            raise SoapRequestError(f"callId: no active call {call_id!r}", faultcode=NOT_FOUND)
        _, client = self._client(call.server)
        legs = list(call_channels(call))
        if self.channel_patterns:
            # Only the legs the caller may touch (its phones); the others end with the bridge.
            legs = [c for c in legs if _allowed(c, self.channel_patterns)]
            if not legs:
                raise SoapRequestError(f"callId: call {call_id!r} has no channel matching allowed_channels",
                                       faultcode=validation.NOT_ALLOWED)
        count = 0
        for chan in legs:
            try:
                self._run(client, Action.build("Hangup", Channel=chan))
                count += 1
            except AmiActionError:
                pass          # that leg hung up by itself meanwhile (No such channel)
        if count == 0:
            raise SoapRequestError(f"callId: call {call_id!r} has no live channel left", faultcode=NOT_FOUND)
        return count

    def redirect(self, channel: str, context: str, exten: str, server: str | None) -> None:
        _, client = self._client(server or self._server_of(channel))
        self._run(client, Action.build("Redirect", Channel=channel, Context=context, Exten=exten, Priority=1))

    def ping(self) -> PingInfo:
        servers = tuple(ServerInfo(name, c.connected, c.ami_version, c.asterisk_version)
                        for name, c in self.clients.items())
        pending = self.pending_count() if self.pending_count is not None else None
        return PingInfo(bridge.__version__, servers, pending)


def call_channels(call) -> tuple[str, ...]:
    """The live channels of a call, one per leg the call model still sees up."""
    return tuple(leg.channel for leg in call.legs if leg.ended_at is None and leg.channel)


def _allowed(channel: str, patterns) -> bool:
    try:
        validation.check_live_channel_allowed(channel, patterns)
    except SoapRequestError:
        return False
    return True
