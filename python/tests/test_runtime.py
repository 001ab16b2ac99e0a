"""How the client runs: lanes (a slow callback holds up only its topics, order per topic kept), the
durable outbox and failover lists through app.config, and exit (in-flight publishes acked, then
DISCONNECT, so the will is not sent)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import flask
import pytest
from support import WAIT, Broker, free_port, wait_for

from flask_mqtt import Mqtt


def app_for(b: Broker, **extra: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(b.config())
    app.config.update(extra)
    return app


def subscribe_and_wait(m: Mqtt, topic: str, qos: int = 1) -> None:
    acked = threading.Event()
    mids: list[int] = []
    m.on_subscribe()(lambda client, userdata, mid, granted: mid in mids and acked.set())
    mids.append(m.subscribe(topic, qos)[1])  # type: ignore[arg-type]
    assert acked.wait(WAIT), "no SUBACK"


def test_a_slow_callback_holds_up_only_its_lane_and_order_per_topic_is_kept(
    embedded: Broker, peer_factory: Any
) -> None:
    peer = peer_factory(embedded)
    m = Mqtt(app_for(embedded))
    try:
        release = threading.Event()
        slow_started = threading.Event()
        fast: list[tuple[str, bytes]] = []

        @m.on_topic("slow/#")
        def slow(client: Any, userdata: Any, message: Any) -> None:
            slow_started.set()
            assert release.wait(WAIT)

        @m.on_topic("fast/#")
        def quick(client: Any, userdata: Any, message: Any) -> None:
            fast.append((message.topic, message.payload))

        subscribe_and_wait(m, "slow/#")
        subscribe_and_wait(m, "fast/#")
        peer.publish("slow/x", b"block")
        assert slow_started.wait(WAIT)
        # 8 topics over 8 lanes: those not sharing the blocked lane keep flowing, in order.
        for i in range(20):
            for t in range(8):
                peer.publish(f"fast/{t}", str(i).encode(), qos=1)
        wait_for(lambda: len({t for t, _ in fast}) >= 4, what="fast topics while the slow one blocks")
        assert not release.is_set()
        release.set()
        wait_for(lambda: len(fast) == 160, what="every fast message")
        for t in range(8):
            assert [p for topic, p in fast if topic == f"fast/{t}"] == [str(i).encode() for i in range(20)]
    finally:
        release.set()
        m._disconnect(timeout=1.0)


def test_the_durable_outbox_through_app_config(embedded: Broker, peer_factory: Any, tmp_path: Any) -> None:
    peer = peer_factory(embedded)
    peer.subscribe("outbox/#")
    m = Mqtt(app_for(embedded, MQTT_OUTBOX_PATH=str(tmp_path / "outbox.sqlite")))
    try:
        infos = [m.publish(f"outbox/{i}", str(i), qos=1) for i in range(20)]
        for info in infos:
            info.wait_for_publish(WAIT)
            assert info.is_published()
        wait_for(lambda: len(peer.payloads()) == 20, what="20 delivered through the outbox")
        assert (tmp_path / "outbox.sqlite").exists()
    finally:
        m._disconnect(timeout=1.0)


def test_a_failover_list_in_broker_url(embedded: Broker) -> None:
    dead = free_port()  # nothing listens there
    app = flask.Flask(__name__)
    app.config["MQTT_BROKER_URL"] = f"mqtt://127.0.0.1:{dead},mqtt://127.0.0.1:{embedded.port}"
    app.config["MQTT_RECONNECT_MIN_MS"] = 20
    m = Mqtt(app, connect_async=True)
    try:
        wait_for(lambda: m.connected, what="failover to the live broker")
    finally:
        m._disconnect(timeout=1.0)


EXITING_APP = textwrap.dedent(
    """
    import sys
    import flask
    from flask_mqtt import Mqtt

    app = flask.Flask(__name__)
    app.config.update(MQTT_BROKER_URL="127.0.0.1", MQTT_BROKER_PORT=int(sys.argv[1]),
                      MQTT_LAST_WILL_TOPIC="exit/will", MQTT_LAST_WILL_MESSAGE="died")
    mqtt = Mqtt(app)
    for i in range(200):
        mqtt.publish("exit/data", str(i), qos=1)
    # No disconnect: the interpreter exits with the publishes in flight.
    """
)


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_exit_waits_for_inflight_publishes_then_disconnects(broker: Broker, peer_factory: Any) -> None:
    peer = peer_factory(broker)
    peer.subscribe("exit/#")
    done = subprocess.run(
        [sys.executable, "-P", "-c", EXITING_APP, str(broker.port)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(peer.payloads("exit/data")) == 200, what="all 200 publishes")
    # Mosquitto publishes a will when it sees the socket close, before it reads a later packet:
    # a fence published now arrives after any will.
    peer.publish("exit/will", b"fence")
    wait_for(lambda: b"fence" in peer.payloads("exit/will"), what="the fence")
    assert peer.payloads("exit/will") == [b"fence"], "the will was sent: no DISCONNECT at exit"
