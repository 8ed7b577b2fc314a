"""The bridge's one exception hierarchy; foreign errors are translated into it at the edges.

BridgeError
  ConfigError                     bad or missing configuration (exit code 2)
    OutboxInUse                   another process already runs on this SQLite outbox
  SchemaError                     the database is not migrated to the code's revision
  AmiError
    AmiProtocolError              the peer sent bytes we cannot frame (peer's fault)
    AmiEncodeError                we were asked to send something AMI cannot carry (caller's fault)
    AmiAuthError                  login refused
    AmiConnectionError            no link, link lost, or the action timed out
    AmiActionError                Asterisk answered `Response: Error` (.action_id, .message)
  DeliveryError
    DeliveryRetryable             5xx, timeout, refused connection: try again later
    DeliveryRejected              the ERP answered a SOAP Fault (.faultcode, .faultstring)
  OutboxError                     the outbox database failed
  NotLeader                       this node no longer leads these AMI servers (.servers): no commit
  SoapRequestError                becomes a SOAP Fault; never echoes secrets

Each class's docstring is its default message, so most subclasses are a name and a sentence.
"""

from __future__ import annotations


class BridgeError(Exception):
    """The bridge failed."""

    def __init__(self, message: str | None = None, *args: object) -> None:
        super().__init__(message or (self.__doc__ or "").strip(), *args)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(BridgeError):
    """The configuration is invalid."""

    def __init__(self, message: str | None = None, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if message is None and self.problems:
            message = "invalid configuration:\n  " + "\n  ".join(self.problems)
        super().__init__(message)


class OutboxInUse(ConfigError):
    """Another asterisk-bridge process uses this SQLite outbox; SQLite is single-node."""


class NotLeader(BridgeError):
    """This node does not hold the lease of these AMI servers, so it must not write their events."""

    def __init__(self, servers, message: str | None = None) -> None:
        self.servers = frozenset(servers)
        super().__init__(message or f"not the leader of {', '.join(sorted(self.servers))}")


class SchemaError(BridgeError):
    """The database schema does not match this version; run `asterisk-bridge db upgrade`."""


class AmiError(BridgeError):
    """The Asterisk Manager Interface failed."""


class AmiProtocolError(AmiError):
    """The AMI peer sent bytes that cannot be framed."""


class AmiEncodeError(AmiError):
    """The action cannot be sent over AMI."""


class AmiAuthError(AmiError):
    """Asterisk refused the login."""


class AmiConnectionError(AmiError):
    """The AMI link is down or the action timed out."""


class AmiActionError(AmiError):
    """Asterisk answered the action with an error."""

    def __init__(self, message: str | None = None, action_id: str | None = None,
                 response: object = None) -> None:
        super().__init__(message)
        self.action_id = action_id
        self.response = response


class DeliveryError(BridgeError):
    """Delivering an event to a subscriber failed."""


class DeliveryRetryable(DeliveryError):
    """The subscriber is unreachable or failed temporarily."""

    def __init__(self, message: str | None = None, retry_after_s: float | None = None,
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status_code = status_code


class DeliveryRejected(DeliveryError):
    """The subscriber answered with a SOAP Fault."""

    def __init__(self, message: str | None = None, faultcode: str | None = None,
                 faultstring: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message or f"SOAP Fault {faultcode}: {faultstring}")
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.status_code = status_code


class OutboxError(BridgeError):
    """The outbox database failed."""


class SoapRequestError(BridgeError):
    """The SOAP request is invalid."""

    def __init__(self, message: str | None = None, faultcode: str = "Client.InvalidArgument") -> None:
        super().__init__(message)
        self.faultcode = faultcode
