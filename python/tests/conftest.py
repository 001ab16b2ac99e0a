"""Fixtures of the package's tests: each test against the embedded broker (in-process) and a real
Mosquitto on a free loopback port, with a paho-mqtt client as the device on the other side."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Callable

import paho.mqtt.client as paho
import pytest
from helpers import CountedBroker, start_counted_broker
from support import WAIT, Broker, Peer, broker_kinds, embedded_broker, mosquitto_broker


@pytest.fixture(params=broker_kinds())
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """Each test runs against the embedded broker and against Mosquitto."""
    b = embedded_broker() if request.param == "embedded" else mosquitto_broker()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def embedded() -> Iterator[Broker]:
    b = embedded_broker()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def peer_factory() -> Iterator[Callable[[Broker], Peer]]:
    peers: list[Peer] = []

    def make(b: Broker, protocol: int = paho.MQTTv311) -> Peer:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"peer-{uuid.uuid4().hex[:8]}", protocol=protocol)
        peer = Peer(c)

        def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            with peer.lock:
                peer.received.append(msg)

        c.on_message = on_message
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect(b.host, b.port)
        c.loop_start()
        assert connected.wait(WAIT), "peer did not connect"
        peers.append(peer)
        return peer

    yield make
    for p in peers:
        p.client.disconnect()
        p.client.loop_stop()


@pytest.fixture
def peer(broker: Broker, peer_factory: Callable[[Broker], Peer]) -> Peer:
    return peer_factory(broker)


@pytest.fixture
def counted() -> Iterator[CountedBroker]:
    """conftest's embedded broker, with its connection count."""
    b = start_counted_broker()
    try:
        yield b
    finally:
        b.stop()
