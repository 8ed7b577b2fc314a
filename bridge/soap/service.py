"""The SOAP operations (spyne ServiceBase): validate, call the BridgeBackend, shape the answer."""

from __future__ import annotations

from datetime import datetime, timezone

from spyne import Boolean, Integer, ServiceBase, Unicode, rpc

from bridge.errors import SoapRequestError
from bridge.soap import validation as v
from bridge.soap.faults import translated
from bridge.soap.types import (AmiServerList, AmiServerState, Call, CallList, ExtensionState,
                               OriginateStatus, PingResult, VariableList)
from bridge.xmltext import visible

SERVICE_NAME = "Bridge"
RETURN = "return"      # 1C names the one element of every OpResponse `return`


def _backend(ctx):
    return ctx.app.bridge_backend


def _cfg(ctx):
    return ctx.app.bridge_backend.soap_cfg


class BridgeService(ServiceBase):
    """Operations 1C calls; every string is validated before anything is sent to AMI."""

    @rpc(Unicode, Unicode(min_occurs=1), Unicode(min_occurs=1), Unicode(min_occurs=1), Integer,
         Unicode, Integer, VariableList, Unicode,
         _in_variable_names={"server": "server", "channel": "channel", "context": "context",
                             "exten": "exten", "priority": "priority", "caller_id": "callerId",
                             "timeout_ms": "timeoutMs", "variables": "variables", "account": "account"},
         _returns=Unicode, _out_variable_name=RETURN)
    def Originate(ctx, server, channel, context, exten, priority, caller_id, timeout_ms, variables, account):
        with translated():
            backend = _backend(ctx)
            request = v.originate(
                backend.soap_cfg, backend.channel_patterns, server_name=server, chan=channel, ctx=context,
                ext=exten, priority=priority, caller=caller_id, timeout_ms=timeout_ms,
                variable_list=variables.variable if variables is not None else None, account=account)
            return backend.originate(request)

    @rpc(Unicode(min_occurs=1), Unicode(min_occurs=1), Unicode,
         _in_variable_names={"extension": "extension", "number": "number", "caller_id": "callerId"},
         _returns=Unicode, _out_variable_name=RETURN)
    def ClickToCall(ctx, extension, number, caller_id):
        with translated():
            request = v.click_to_call(_cfg(ctx).click_to_call, extension=extension, number=number,
                                      caller=caller_id)
            return _backend(ctx).originate(request)

    @rpc(Unicode(min_occurs=1), _in_variable_names={"originate_id": "originateId"},
         _returns=OriginateStatus, _out_variable_name=RETURN)
    def GetOriginateStatus(ctx, originate_id):
        with translated():
            state = _backend(ctx).originate_status(v.originate_id(originate_id))
            return OriginateStatus(
                originateId=state.originate_id, status=state.status, reason=_x(state.reason),
                reasonCode=state.reason_code, server=state.server, channel=_x(state.channel),
                uniqueid=_x(state.uniqueid), linkedid=_x(state.linkedid))

    @rpc(Unicode(min_occurs=1), Unicode, _returns=ExtensionState, _out_variable_name=RETURN)
    def GetExtensionState(ctx, extension, context):
        with translated():
            info = _backend(ctx).extension_state(v.exten(extension, "extension"), v.context(context, required=False))
            return ExtensionState(
                extension=info.extension, context=info.context, state=_x(info.state), statusCode=info.status_code,
                callId=_x(info.call_id), otherParty=_x(info.other_party), otherPartyName=_x(info.other_party_name))

    @rpc(Unicode, _returns=CallList, _out_variable_name=RETURN)
    def GetActiveCalls(ctx, extension):
        with translated():
            ext = v.exten(extension, "extension", required=False)
            calls = _backend(ctx).active_calls(ext)
            return CallList(call=[_call(c) for c in calls])

    @rpc(Unicode, Unicode, Unicode, _in_variable_names={"channel": "channel", "call_id": "callId", "server": "server"},
         _returns=Integer, _out_variable_name=RETURN)
    def Hangup(ctx, channel, call_id, server):
        with translated():
            if not channel and not call_id:
                raise SoapRequestError("channel or callId: one of them is required", faultcode=v.INVALID_ARGUMENT)
            backend = _backend(ctx)
            chan = v.channel(channel) if channel else None
            if chan is not None:
                v.check_live_channel_allowed(chan, backend.channel_patterns)
            cid = v.call_id(call_id, required=False)
            return backend.hangup(channel=chan, call_id=cid, server=v.server(server))

    @rpc(Unicode(min_occurs=1), Unicode(min_occurs=1), Unicode(min_occurs=1), Unicode,
         _in_variable_names={"channel": "channel", "context": "context", "exten": "exten", "server": "server"},
         _returns=Boolean, _out_variable_name=RETURN)
    def Redirect(ctx, channel, context, exten, server):
        with translated():
            backend = _backend(ctx)
            chan, ctxt, ext = v.channel(channel), v.context(context), v.exten(exten)
            v.check_context_allowed(ctxt, backend.soap_cfg)  # type: ignore[arg-type]
            v.check_live_channel_allowed(chan, backend.channel_patterns)
            backend.redirect(chan, ctxt, ext, v.server(server))
            return True

    @rpc(_returns=PingResult, _out_variable_name=RETURN)
    def Ping(ctx):
        with translated():
            info = _backend(ctx).ping()
            servers = [AmiServerState(name=s.name, connected=s.connected, amiVersion=_x(s.ami_version),
                                      asteriskVersion=_x(s.asterisk_version)) for s in info.servers]
            return PingResult(version=info.version, servers=AmiServerList(server=servers),
                              outboxPending=info.outbox_pending)


def _x(value):
    """Every text an answer carries from AMI goes through the one XML rule (bridge.xmltext):
    one caller name with ESC in it must not break GetActiveCalls for as long as the call lives."""
    return visible(value) if isinstance(value, str) else value


def _call(info) -> Call:
    return Call(**{"id": _x(info.call_id), "server": info.server, "from": _x(info.caller_num),
                   "fromName": _x(info.caller_name), "to": _x(info.callee_num), "direction": info.direction,
                   "state": _x(info.state), "started": _dt(info.started_at), "answered": _dt(info.answered_at)})


def _dt(epoch):
    if epoch is None:
        return None
    if isinstance(epoch, datetime):
        return epoch
    return datetime.fromtimestamp(float(epoch), tz=timezone.utc)
