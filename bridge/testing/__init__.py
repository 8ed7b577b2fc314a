"""Test and demo equipment, not part of the bridge: a fake Asterisk (AMI simulator and its call
scenarios), a fake ERP (PushEvent receiver) and the waiting/recording helpers the tests share.

No product module imports this package (tests/test_layers.py checks it); only the `demo` command
loads it, lazily.
"""

from bridge.testing.fake_erp import FakeErp
from bridge.testing.helpers import RecordingListener, RecordingSink, wait_until
from bridge.testing.simulator import AmiSimulator, FloodJob

__all__ = ["AmiSimulator", "FakeErp", "FloodJob", "RecordingListener", "RecordingSink", "wait_until"]
