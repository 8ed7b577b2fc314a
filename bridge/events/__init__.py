"""Events on their way to subscribers: filters, routing, and the AMI listener pipeline."""

from bridge.events.filters import SubscriberFilter
from bridge.events.model import NORMALIZED, RAW, BridgeEvent, EventSink
from bridge.events.pipeline import Pipeline, PipelineMetrics, raw_event
from bridge.events.router import SERVICE_EVENTS, Router

__all__ = [
    "NORMALIZED", "RAW", "SERVICE_EVENTS", "BridgeEvent", "EventSink", "Pipeline",
    "PipelineMetrics", "Router", "SubscriberFilter", "raw_event",
]
