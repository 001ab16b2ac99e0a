"""Flask-MQTT's documented Socket.IO example, on eventlet (as documented) and on gevent.

The app runs as a script (``socketio.run``); a python-socketio client subscribes through it and
publishes through it, a paho peer is the device. MQTT callbacks run under the monkey-patched hub
(green threads) and emit to Socket.IO clients; waiting on the Rust client never blocks the hub:
the page and Socket.IO keep answering while messages flow both ways.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from typing import Any, Callable

import pytest
from helpers import APPS_DIR, AppProcess, CountedBroker, app_env, http_request, wait_http
from support import WAIT, Peer, free_port

socketio = pytest.importorskip("socketio")
pytest.importorskip("flask_socketio")

START = 20.0  # seconds for the app to import, connect and serve
BURST = 50


class Received:
    """The ``mqtt_message`` events a Socket.IO client got."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def add(self, data: dict[str, Any]) -> None:
        with self.cond:
            self.items.append(data)
            self.cond.notify_all()

    def payloads(self, topic: str) -> list[str]:
        with self.cond:
            return [d["payload"] for d in self.items if d.get("topic") == topic]

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


@pytest.mark.parametrize("hub", ["eventlet", "gevent"])
def test_socketio_example(counted: CountedBroker, peer_factory: Callable[..., Peer], hub: str) -> None:
    pytest.importorskip(hub)
    peer = peer_factory(counted.broker)
    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out = f"sio/{tag}/in", f"sio/{tag}/out"
    peer.subscribe(topic_out)
    port = free_port()
    env = app_env(MQTT_BROKER_URL=counted.host, MQTT_BROKER_PORT=counted.port, PORT=port)
    base = f"http://127.0.0.1:{port}"
    with AppProcess([sys.executable, str(APPS_DIR / f"socketio_{hub}.py")], env) as app:
        assert wait_http(app, base + "/", START) == 200, app.describe()
        # The start-up output is not checked: eventlet prints tracebacks there (the example patches
        # after importing Flask, whose context proxies trip eventlet's lock upgrade); not ours.
        started = len(app.lines())
        received = Received()
        sio = socketio.Client(reconnection=False)
        sio.on("mqtt_message", received.add)
        try:
            sio.connect(base, wait_timeout=WAIT)
            # The example's page sends JSON text; call() returns once the handler has run.
            sio.call("subscribe", json.dumps({"topic": topic_in}), timeout=WAIT)

            # The SUBACK is not visible to the page: probe until a message comes through.
            deadline = time.monotonic() + WAIT
            n = 0
            while not received.payloads(topic_in):
                assert time.monotonic() < deadline, f"no mqtt_message for {topic_in}\n{app.describe()}"
                app.check_alive()
                peer.publish(topic_in, f"{tag}-probe-{n}", qos=1)
                n += 1
                received.wait(lambda: bool(received.payloads(topic_in)), 0.25)

            # Device -> Socket.IO: a burst, each message once, in order, while the page still answers.
            burst = [f"{tag}-burst-{k}" for k in range(BURST)]
            for payload in burst:
                peer.publish(topic_in, payload, qos=1)
            assert http_request(base + "/", timeout=WAIT)[0] == 200
            ok = received.wait(lambda: set(burst) <= set(received.payloads(topic_in)), WAIT)
            assert ok, f"mqtt_message got {len(received.payloads(topic_in))} payloads\n{app.describe()}"
            got = [p for p in received.payloads(topic_in) if p in set(burst)]
            assert got == burst, "each message once, in order"

            # Socket.IO -> device: the example's 'publish' event.
            message = f"{tag}-from-socketio"
            sio.emit("publish", json.dumps({"topic": topic_out, "message": message}))
            app.wait_until(lambda: message in [p.decode() for p in peer.payloads(topic_out)], WAIT, "the publish")

            # The hub is free: a Socket.IO round trip and a page load while the client runs.
            sio.call("subscribe", json.dumps({"topic": topic_in}), timeout=WAIT)
            assert http_request(base + "/", timeout=WAIT)[0] == 200
        finally:
            sio.disconnect()
        later = app.lines()[started:]
        assert not [line for line in later if "Traceback" in line], app.describe()
