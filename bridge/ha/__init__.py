"""High availability on a PostgreSQL outbox: one leader per AMI server, hot standbys, fencing."""

from bridge.ha.coordinator import HANDOVER, LEADER, STANDBY, Coordinator, ServerRole
from bridge.ha.gate import StandbyGate
from bridge.ha.lease import Lease
from bridge.ha.node import node_id, session_options
from bridge.ha.solo import SoloLock

__all__ = [
    "HANDOVER", "LEADER", "STANDBY", "Coordinator", "Lease", "ServerRole", "SoloLock",
    "StandbyGate", "node_id", "session_options",
]
