"""Events on their way to subscribers: filters, routing, and the AMI listener pipeline."""

from bridge.events.filters import SubscriberFilter
from bridge.events.link import LINK_DOWN, LINK_EVENT_NAMES, LINK_UP, LinkWatch
from bridge.events.model import LINK, NORMALIZED, RAW, BridgeEvent, EventSink
from bridge.events.pipeline import Pipeline, PipelineMetrics, raw_event
from bridge.events.router import SERVICE_EVENTS, Router

__all__ = [
    "LINK", "LINK_DOWN", "LINK_EVENT_NAMES", "LINK_UP", "NORMALIZED", "RAW", "SERVICE_EVENTS",
    "BridgeEvent", "EventSink", "LinkWatch", "Pipeline", "PipelineMetrics", "Router",
    "SubscriberFilter", "raw_event",
]
