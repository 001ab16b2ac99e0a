"""The value ``publish`` returns: Flask-MQTT's ``(result, mid)``, and paho's ``MQTTMessageInfo``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Mqtt


class MQTTMessageInfo(tuple):
    """``(rc, mid)`` that can also wait for the broker's acknowledgement.

    It unpacks and compares as Flask-MQTT's tuple; ``wait_for_publish(timeout)`` and
    ``is_published()`` are paho's.
    """

    def __new__(cls, rc: int, mid: int, owner: Mqtt) -> MQTTMessageInfo:  # noqa: PYI034 (no Self on 3.9)
        self = super().__new__(cls, (rc, mid))
        self._owner = owner
        self._done = rc != 0
        self._final_rc = rc
        return self

    @property
    def rc(self) -> int:
        """0 once queued (and once acknowledged); an ``MQTT_ERR_*`` code when it failed."""
        return self._final_rc

    @property
    def mid(self) -> int:
        """The message id ``on_publish`` receives."""
        return self[1]

    def _complete(self, rc: int) -> None:
        # Called with the owner's lock held (or before anyone can wait).
        self._final_rc = rc
        self._done = True

    def is_published(self) -> bool:
        """True once the broker acknowledged the message (QoS 0: once queued to be written)."""
        return self._done and self._final_rc == 0

    def wait_for_publish(self, timeout: float | None = None) -> None:
        """Blocks until the broker acknowledged the message, or ``timeout`` seconds passed.

        Raises ``ValueError`` if it was not queued (``MQTT_ERR_QUEUE_SIZE``) and ``RuntimeError``
        if it failed, as paho does. Under eventlet or gevent the wait is cooperative.
        """
        if self[0] == 15:
            raise ValueError("Message is not queued due to ERR_QUEUE_SIZE")
        deadline = None if timeout is None else time.monotonic() + timeout
        owner = self._owner
        with owner._acked:
            owner._ack_waiters += 1
            try:
                while not self._done:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    owner._acked.wait(left)
            finally:
                owner._ack_waiters -= 1
        if self._final_rc != 0:
            raise RuntimeError(f"Message publish failed: error {self._final_rc}")
