"""asterisk-bridge: Asterisk AMI events to an ERP over SOAP, with a durable SQL outbox."""

__version__ = "0.1.0"
