"""Test your Flask app's MQTT handlers with nothing installed: an MQTT broker in-process.

The broker is the project's embedded one (rmqtt: MQTT 3.1.1 and 5, retained messages, shared
subscriptions) on a free loopback port. Installed as a pytest plugin, so the fixtures need no
import::

    def test_temperature(mqtt_broker):
        app = create_app({"MQTT_BROKER_URL": mqtt_broker.host, "MQTT_BROKER_PORT": mqtt_broker.port})
        ...

Fixtures: ``mqtt_broker`` (one broker per test) and ``mqtt_config`` (the ``app.config`` keys
that point a client at it). Outside pytest, use :class:`EmbeddedBroker` directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import _core


class EmbeddedBroker:
    """A running broker: ``host``, ``port`` (and ``ws_port``); ``stop()`` frees the port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ws_port: int | None = None) -> None:
        self.host = host
        self._broker = _core.EmbeddedBroker(host, port, ws_port)
        self.port: int = self._broker.port
        self.ws_port: int | None = self._broker.ws_port

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return self._broker.connections

    def config(self, prefix: str = "MQTT") -> dict[str, object]:
        """The ``app.config`` keys that connect a client to this broker."""
        return {f"{prefix}_BROKER_URL": self.host, f"{prefix}_BROKER_PORT": self.port}

    def stop(self) -> None:
        """Closes every connection and the listener."""
        self._broker.stop()

    def __enter__(self) -> EmbeddedBroker:  # noqa: PYI034 (no Self on 3.9)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def mqtt_broker() -> Iterator[EmbeddedBroker]:
    """An embedded MQTT broker on a free loopback port, stopped after the test."""
    broker = EmbeddedBroker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_config(mqtt_broker: EmbeddedBroker) -> dict[str, object]:
    """``{"MQTT_BROKER_URL": ..., "MQTT_BROKER_PORT": ...}`` for ``app.config.update``."""
    return mqtt_broker.config()
