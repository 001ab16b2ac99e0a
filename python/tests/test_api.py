"""Flask-MQTT 1.3's API contract, against the embedded broker and Mosquitto, with a paho peer."""

from __future__ import annotations

import threading
from typing import Any, Callable

import flask
import paho.mqtt.client as paho
import pytest
from support import WAIT, Broker, Peer, wait_for

import flask_mqtt
from flask_mqtt import Mqtt, TopicQos


def make_app(b: Broker, **extra: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(b.config())
    app.config.update(extra)
    return app


@pytest.fixture
def mqtts() -> Any:
    made: list[Mqtt] = []
    yield made
    for m in made:
        m._disconnect(timeout=1.0)


def connect(mqtts: list[Mqtt], app: flask.Flask, **kwargs: Any) -> Mqtt:
    m = Mqtt(app, **kwargs)
    mqtts.append(m)
    return m


def subscribed(m: Mqtt, topic: str, qos: int = 0) -> None:
    """Subscribes and waits for the SUBACK."""
    done = threading.Event()
    mids: list[int] = []

    def on_subscribe(client: Any, userdata: Any, mid: int, granted: Any) -> None:
        if mid in mids:
            done.set()

    m.on_subscribe()(on_subscribe)
    rc, mid = m.subscribe(topic, qos)
    assert rc == flask_mqtt.MQTT_ERR_SUCCESS
    mids.append(mid)
    if mid is not None:
        assert done.wait(WAIT) or mid in mids, "no SUBACK"


def test_constants_have_paho_values() -> None:
    names = [n for n in dir(paho) if n.startswith(("MQTT_ERR_", "MQTT_LOG_", "MQTTv"))]
    assert len(names) > 20
    for name in names:
        assert getattr(flask_mqtt, name) == int(getattr(paho, name)), name


def test_config_keys_become_attributes(broker: Broker, mqtts: list[Mqtt]) -> None:
    app = make_app(
        broker,
        MQTT_USERNAME="user",
        MQTT_PASSWORD="secret",
        MQTT_KEEPALIVE=30,
        MQTT_CLIENT_ID="attr-test",
        MQTT_LAST_WILL_TOPIC="status/attr-test",
        MQTT_LAST_WILL_MESSAGE="gone",
        MQTT_LAST_WILL_QOS=1,
    )
    m = connect(mqtts, app)
    assert m.username == "user" and m.password == "secret"
    assert m.broker_url == "127.0.0.1" and m.broker_port == broker.port
    assert m.keepalive == 30 and m.client_id == "attr-test"
    assert m.connection_timeout == 5  # Flask-MQTT's default
    assert m.last_will_topic == "status/attr-test" and m.last_will_qos == 1
    assert m.clean_session is True and m.tls_enabled is False


def test_every_flask_mqtt_key_is_in_the_rust_key_table() -> None:
    keys = set(flask_mqtt._core.config_keys())
    flask_mqtt_keys = {
        "CLIENT_ID", "CLEAN_SESSION", "TRANSPORT", "PROTOCOL_VERSION", "USERNAME", "PASSWORD",
        "BROKER_URL", "BROKER_PORT", "TLS_ENABLED", "TLS_CA_CERTS", "TLS_CERTFILE", "TLS_KEYFILE",
        "TLS_CIPHERS", "TLS_INSECURE", "TLS_CERT_REQS", "TLS_VERSION", "KEEPALIVE",
        "CONNECTION_TIMEOUT", "LAST_WILL_TOPIC", "LAST_WILL_MESSAGE", "LAST_WILL_QOS",
        "LAST_WILL_RETAIN",
    }  # fmt: skip
    assert flask_mqtt_keys <= keys


@pytest.mark.parametrize(
    "key,value,kind,words",
    [
        ("MQTT_BROKER_PORT", "eighty", ValueError, "MQTT_BROKER_PORT"),
        ("MQTT_KEEPALIVE", "soon", ValueError, "MQTT_KEEPALIVE"),
        ("MQTT_PROTOCOL_VERSION", 3, ValueError, "MQTT_PROTOCOL_VERSION"),
        ("MQTT_LAST_WILL_QOS", 7, ValueError, "MQTT_LAST_WILL_QOS"),
        ("MQTT_CLEAN_SESSION", {"no": 1}, TypeError, "MQTT_CLEAN_SESSION"),
    ],
)
def test_a_bad_config_value_raises_naming_the_key(key: str, value: Any, kind: type, words: str) -> None:
    app = flask.Flask(__name__)
    app.config[key] = value
    with pytest.raises(kind, match=words):
        Mqtt(app)


def test_publish_reaches_a_device_and_waits_for_the_ack(broker: Broker, peer: Peer, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(broker))
    published: list[int] = []
    m.on_publish()(lambda client, userdata, mid: published.append(mid))
    peer.subscribe("api/out")
    info = m.publish("api/out", "hello", qos=1)
    rc, mid = info
    assert rc == flask_mqtt.MQTT_ERR_SUCCESS and (rc, mid) == info
    info.wait_for_publish(WAIT)
    assert info.is_published()
    wait_for(lambda: mid in published, what="on_publish")
    wait_for(lambda: peer.payloads("api/out") == [b"hello"], what="the peer to receive")


@pytest.mark.parametrize(
    "payload,expected", [(None, b""), (b"\x00\x01", b"\x00\x01"), (42, b"42"), (1.5, b"1.5"), (bytearray(b"ab"), b"ab")]
)
def test_payload_types_as_paho(
    embedded: Broker, peer_factory: Any, mqtts: list[Mqtt], payload: Any, expected: bytes
) -> None:
    peer = peer_factory(embedded)
    m = connect(mqtts, make_app(embedded))
    peer.subscribe("api/types")
    m.publish("api/types", payload, qos=1).wait_for_publish(WAIT)
    wait_for(lambda: peer.payloads() == [expected], what="payload")


@pytest.mark.parametrize(
    "call,kind",
    [
        (lambda m: m.publish("a/+/b", "x"), ValueError),
        (lambda m: m.publish("a/#", "x"), ValueError),
        (lambda m: m.publish("", "x"), ValueError),
        (lambda m: m.publish("a", {"not": "bytes"}), TypeError),
        (lambda m: m.publish("a", "x", qos=3), ValueError),
        (lambda m: m.subscribe("a/#/b"), ValueError),
        (lambda m: m.subscribe("a", qos=5), ValueError),
        (lambda m: m.subscribe(42), ValueError),
        (lambda m: m.on_topic("a/#/b")(print), ValueError),
    ],
)
def test_bad_input_is_refused_as_paho_refuses_it(
    embedded: Broker, mqtts: list[Mqtt], call: Callable[[Mqtt], Any], kind: type
) -> None:
    m = connect(mqtts, make_app(embedded))
    with pytest.raises(kind):
        call(m)
    assert m.connected  # nothing broke


def test_topics_book_as_flask_mqtt(embedded: Broker, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(embedded))
    assert m.subscribe("a", 1)[0] == 0
    assert m.subscribe("a", 2)[0] == 0
    assert m.topics == {"a": TopicQos("a", 2)} and m.topics["a"] == ("a", 2)
    m.subscribe([("b", 0), ("c", 1)])
    m.subscribe(("d", 1))
    assert sorted(m.topics) == ["a", "b", "c", "d"]
    assert m.unsubscribe("unknown") is None
    rc, mid = m.unsubscribe("a")  # type: ignore[misc]
    assert rc == 0 and isinstance(mid, int) and "a" not in m.topics
    assert m.unsubscribe_all() is True and m.topics == {}


def test_messages_go_to_on_topic_or_on_message_not_both(broker: Broker, peer: Peer, mqtts: list[Mqtt]) -> None:
    app = make_app(broker)
    m = connect(mqtts, app)
    got: list[tuple] = []
    lock = threading.Lock()

    def record(tag: str) -> Callable[..., None]:
        def handler(client: Any, userdata: Any, message: Any) -> None:
            assert flask.current_app.name == app.name  # inside the app context
            with lock:
                got.append((tag, message.topic, message.payload, message.qos, message.retain))

        return handler

    m.on_message()(record("message-1"))
    m.on_message()(record("message-2"))
    m.on_topic("home/+/temp")(record("topic-1"))
    m.on_topic("home/#")(record("topic-2"))
    subscribed(m, "home/#", 1)
    subscribed(m, "other/#", 1)
    peer.publish("home/kitchen/temp", b"21")
    peer.publish("other/x", b"y")
    wait_for(lambda: len(got) == 4, what="4 deliveries")
    home = [g for g in got if g[1] == "home/kitchen/temp"]
    other = [g for g in got if g[1] == "other/x"]
    assert [g[0] for g in home] == ["topic-1", "topic-2"]  # both filters, registration order
    assert [g[0] for g in other] == ["message-1", "message-2"]  # every callback, in order
    assert home[0][2:] == (b"21", 1, False)


def test_a_callback_that_raises_is_counted_and_the_client_goes_on(
    embedded: Broker, peer_factory: Any, mqtts: list[Mqtt], caplog: Any
) -> None:
    peer = peer_factory(embedded)
    m = connect(mqtts, make_app(embedded))
    seen: list[bytes] = []

    @m.on_message()
    def broken(client: Any, userdata: Any, message: Any) -> None:
        raise RuntimeError("boom " + message.payload.decode())

    @m.on_message()
    def fine(client: Any, userdata: Any, message: Any) -> None:
        seen.append(message.payload)

    subscribed(m, "err/#", 1)
    peer.publish("err/1", b"1")
    peer.publish("err/1", b"2")
    wait_for(lambda: seen == [b"1", b"2"], what="both messages")
    assert m.callback_errors == 2
    assert "boom 1" in caplog.text and "Traceback" in caplog.text


def test_an_on_connect_registered_late_gets_the_connack_it_missed(broker: Broker, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(broker))
    wait_for(lambda: m._last_connack is not None, what="CONNACK handled")
    calls: list[tuple] = []

    @m.on_connect()
    def handle_connect(client: Any, userdata: Any, flags: dict, rc: int) -> None:
        calls.append((flags, rc))

    assert calls == [({"session present": 0}, 0)]


def test_a_subscription_made_anywhere_survives_a_broker_restart(
    broker: Broker, peer_factory: Any, mqtts: list[Mqtt]
) -> None:
    app = make_app(broker, MQTT_RECONNECT_MIN_MS=20, MQTT_RECONNECT_MAX_MS=200)
    m = connect(mqtts, app)
    connects: list[int] = []
    m.on_connect()(lambda client, userdata, flags, rc: connects.append(rc))
    got: list[bytes] = []
    m.on_message()(lambda client, userdata, message: got.append(message.payload))
    subscribed(m, "survive/#", 1)  # not in on_connect: Flask-MQTT loses it on a reconnect
    n = len(connects)
    broker.restart()
    wait_for(lambda: len(connects) > n, what="reconnect")
    peer = peer_factory(broker)
    # The restored SUBSCRIBE is sent before on_connect runs; a publish now may still race it on a
    # multi-threaded broker, so publish until one arrives.
    wait_for(lambda: got or peer.publish("survive/x", b"after") or False, what="delivery after restart")
    assert got[0] == b"after"


def test_mqtt5_properties_both_ways(embedded: Broker, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(embedded, MQTT_PROTOCOL_VERSION=flask_mqtt.MQTTv5))
    got: list[Any] = []
    m.on_message()(lambda client, userdata, message: got.append(message))
    subscribed(m, "v5/#", 1)
    props = flask_mqtt.Properties()
    props.UserProperty = [("source", "test")]
    props.ContentType = "text/plain"
    m.publish("v5/x", "hi", qos=1, properties=props).wait_for_publish(WAIT)
    wait_for(lambda: len(got) == 1, what="v5 message")
    assert got[0].properties.UserProperty == [("source", "test")]
    assert got[0].properties.ContentType == "text/plain"


def test_properties_need_mqtt5(embedded: Broker, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(embedded))
    with pytest.raises(ValueError, match="PROTOCOL_VERSION=5"):
        m.publish("a", "b", properties=flask_mqtt.Properties())


def test_several_instances_with_their_own_prefix(embedded: Broker, peer_factory: Any, mqtts: list[Mqtt]) -> None:
    app = flask.Flask(__name__)
    app.config.update(embedded.config("MQTT"))
    app.config.update(embedded.config("OTHER"))
    app.config["OTHER_CLIENT_ID"] = "other-client"
    first = connect(mqtts, app)
    second = Mqtt(app, config_prefix="OTHER")
    mqtts.append(second)
    assert second.client_id == "other-client" and first.client_id != "other-client"
    assert first.connected and second.connected


def test_disconnect_waits_for_inflight_publishes(broker: Broker, peer: Peer, mqtts: list[Mqtt]) -> None:
    m = connect(mqtts, make_app(broker))
    peer.subscribe("bye/#")
    disconnected: list[int] = []
    m.on_disconnect()(lambda client, userdata, rc: disconnected.append(rc))
    infos = [m.publish(f"bye/{i}", str(i), qos=1) for i in range(50)]
    m._disconnect(timeout=WAIT)
    assert all(i.is_published() for i in infos)
    assert not m.connected and disconnected == [0]
    wait_for(lambda: len(peer.payloads()) == 50, what="all 50 delivered")
    assert m.publish("bye/late", "x")[0] == flask_mqtt.MQTT_ERR_NO_CONN


def test_paho_client_facade(embedded: Broker, peer_factory: Any, mqtts: list[Mqtt]) -> None:
    peer = peer_factory(embedded)
    m = connect(mqtts, make_app(embedded, MQTT_CLIENT_ID="facade"))
    c = m.client
    assert c.is_connected() and c._client_id == b"facade"
    c.user_data_set({"k": 1})
    got: list[Any] = []
    c.message_callback_add("f/#", lambda client, userdata, msg: got.append((userdata, msg.payload)))
    assert c.subscribe("f/#", 1)[0] == 0
    peer.subscribe("g")
    c.publish("g", b"from-facade", 1).wait_for_publish(WAIT)
    wait_for(lambda: peer.payloads("g") == [b"from-facade"], what="facade publish")
    wait_for(lambda: m.client.subscribe("f/#", 1) and ("f/#" in m.topics), what="subscribed")
    peer.publish("f/1", b"x")
    wait_for(lambda: got == [({"k": 1}, b"x")], what="message_callback_add")
    c.message_callback_remove("f/#")
    with pytest.raises(NotImplementedError, match="MQTT_USERNAME"):
        c.username_pw_set("u", "p")
