"""Flask-MQTT's API on axum-mqtt's Rust client.

``from flask_mqtt import Mqtt`` works as with Flask-MQTT 1.3: the same constructor, ``init_app``,
``MQTT_*`` keys, attributes, methods and decorators with paho's version-1 callback signatures.
What changes is underneath (see the package README): every callback registered runs, a late
``on_connect`` still gets its CONNACK, subscriptions survive reconnects and forks, ``publish`` can
wait for the broker's ack, and several workers can share the load.
"""

from __future__ import annotations

import logging
import select
import threading
from collections import namedtuple
from typing import Any, Callable, TypeVar

from flask import Flask

from . import _core, _process
from ._args import config_pairs, payload_bytes, subscriptions
from ._client import Client

# paho's names, re-exported as Flask-MQTT does.
from ._constants import *
from ._constants import (
    MQTT_ERR_NO_CONN,
    MQTT_ERR_SUCCESS,
    MQTT_LOG_DEBUG,
    MQTT_LOG_ERR,
    MQTT_LOG_INFO,
    MQTT_LOG_NOTICE,
    MQTT_LOG_WARNING,
    MQTTv5,
    MQTTv311,
)
from ._core import MQTTMessage, Properties
from ._info import MQTTMessageInfo

__all__ = [
    "MQTTMessage",
    "MQTTMessageInfo",
    "Mqtt",
    "Properties",
    "TopicQos",
    "topic_matches_sub",
]

__version__ = _core.__version__

#: Container for topic + qos
TopicQos = namedtuple("TopicQos", ["topic", "qos"])

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Messages (or control events) taken from Rust per GIL hand-off.
_BATCH = 256


def topic_matches_sub(sub: str, topic: str) -> bool:
    """paho's ``topic_matches_sub``: True when ``topic`` matches the filter ``sub``."""
    return _core.topic_matches(sub, topic)


class Mqtt:
    """Main Mqtt class.

    :param app: flask application object
    :param connect_async: if True, ``init_app`` does not wait for the broker's CONNACK
    :param mqtt_logging: if True, client events are logged to the ``flask_mqtt`` logger
    :param config_prefix: the prefix of this client's keys in ``app.config``
    """

    def __init__(
        self,
        app: Flask | None = None,
        connect_async: bool = False,
        mqtt_logging: bool = False,
        config_prefix: str = "MQTT",
    ) -> None:
        self._connect_async = connect_async
        self._mqtt_logging = mqtt_logging
        self.app = app
        self.client = Client(self)
        self.topics: dict[str, TopicQos] = {}
        self.config_prefix = config_prefix
        #: Callbacks that raised (each is logged with its traceback).
        self.callback_errors = 0

        # Flask-MQTT's attributes, filled from app.config by init_app.
        self.client_id: str = ""
        self.clean_session: bool = True
        self.username: str | None = None
        self.password: str | None = None
        self.broker_url: str = "localhost"
        self.broker_port: int = 1883
        self.tls_enabled: bool = False
        self.keepalive: int = 60
        self.connection_timeout: int = 5
        self.last_will_topic: str | None = None
        self.last_will_message: str | None = None
        self.last_will_qos: int = 0
        self.last_will_retain: bool = False
        self.tls_ca_certs: str | None = None
        self.tls_certfile: str | None = None
        self.tls_keyfile: str | None = None
        self.tls_insecure: bool = False
        self.protocol_version: int = MQTTv311
        self.transport: str = "tcp"

        self._app: Flask | None = None
        self._config: _core.Config | None = None
        self._rust: _core.Client | None = None
        self._userdata: Any = None
        # Guards the callback lists against the dispatcher's snapshot, and the publish book.
        self._lock = threading.RLock()
        self._acked = threading.Condition(self._lock)
        self._ack_waiters = 0  # threads in wait_for_publish: acks notify only when there are some
        self._handlers: dict[str, list[Callable[..., Any]]] = {
            kind: [] for kind in ("connect", "disconnect", "message", "publish", "subscribe", "unsubscribe", "log")
        }
        # on_topic: (filter, handler) per registration; the Rust client matches the filters and
        # names the ids (registration order) of those a message matched.
        self._topic_handlers: list[tuple[str, Callable[..., Any]]] = []
        self._by_filter_id: dict[int, Callable[..., Any]] = {}
        self._last_connack: tuple[dict[str, int], int] | None = None
        self._publishes: dict[int, MQTTMessageInfo] = {}
        self._early_acks: dict[int, int] = {}
        self._disconnect_seen = False
        # Stopped in a supervisor (gunicorn master, reloader watcher): its forks start a client.
        self._serves_workers = False

        if app is not None:
            self.init_app(app, config_prefix)

    # ----------------------------------------------------------------- configuration

    def init_app(self, app: Flask, config_prefix: str = "MQTT") -> None:
        """Reads ``<config_prefix>_*`` from ``app.config`` and connects.

        A bad value raises ``ValueError`` naming the key. The connection is made in the
        background and retried with backoff; unless ``connect_async``, this waits up to
        ``CONNECTION_TIMEOUT`` seconds for the broker to accept it.
        """
        if self.app is None:
            self.app = app
        self._app = app
        self.config_prefix = config_prefix
        config = _core.Config(config_prefix, config_pairs(app.config, config_prefix))
        self._config = config
        self.client_id = config.client_id
        self.clean_session = config.clean_session
        self.username = config.username
        self.password = config.password
        self.broker_url = config.broker_url
        self.broker_port = config.broker_port
        self.tls_enabled = config.tls_enabled
        self.keepalive = config.keepalive
        self.connection_timeout = config.connection_timeout
        self.last_will_topic = config.last_will_topic
        self.last_will_message = config.last_will_message
        self.last_will_qos = config.last_will_qos
        self.last_will_retain = config.last_will_retain
        self.tls_ca_certs = config.tls_ca_certs
        self.tls_certfile = config.tls_certfile
        self.tls_keyfile = config.tls_keyfile
        self.tls_insecure = config.tls_insecure
        self.protocol_version = config.protocol_version
        self.transport = config.transport
        _process.register(self)
        self._connect()

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        rust = self._rust
        return rust is not None and rust.is_connected()

    # ----------------------------------------------------------------- connection

    def _connect(self) -> None:
        """Starts the client (again after ``_disconnect``) with every callback and subscription."""
        if self._config is None:
            raise RuntimeError("call init_app(app) first")
        if self._rust is not None:
            return  # connected or reconnecting by itself
        rust = _core.Client(self._config)
        with self._lock:
            self._register_filters(rust)
            self._last_connack = None
        rust.start()
        self._rust = rust
        self._start_threads(rust)
        if self.topics:
            rust.subscribe([(t.topic, t.qos) for t in self.topics.values()])
        self._log(MQTT_LOG_INFO, f"client {rust.client_id()} connecting to {self.broker_url}:{self.broker_port}")
        if not self._connect_async and not rust.wait_connected(float(self.connection_timeout)):
            state, error, _ = rust.state()
            logger.warning(
                "flask_mqtt: broker %s:%s not reachable yet (%s); retrying in the background",
                self.broker_url,
                self.broker_port,
                error or state,
            )

    def _disconnect(self, timeout: float = _process.EXIT_TIMEOUT) -> None:
        """Waits (up to ``timeout`` s) for in-flight publishes to be acked, then DISCONNECT."""
        rust, self._rust = self._rust, None
        if rust is None:
            return
        self._disconnect_seen = False
        rust.shutdown(timeout)
        # The dispatcher stopped with the client: run what it left (on_disconnect, acks) here.
        self._run_control(rust)
        if not self._disconnect_seen:
            # The client's own disconnect event may come after it stopped: paho calls
            # on_disconnect(rc=0) for a requested disconnect, once.
            self._on_disconnected(MQTT_ERR_SUCCESS, None)
        with self._lock:
            pending, self._publishes = self._publishes, {}
            for info in pending.values():
                info._complete(MQTT_ERR_NO_CONN)
            self._acked.notify_all()
        logger.debug("Disconnected from Broker")

    def _restart_after_fork(self) -> None:
        # The parent's client and threads are not in this process; start ours (also when the
        # parent stopped its own because it only supervises workers like this one).
        if self._rust is None and not self._serves_workers:
            return
        self._rust = None
        self._lock = threading.RLock()
        self._acked = threading.Condition(self._lock)
        self._ack_waiters = 0
        self._publishes = {}
        self._early_acks = {}
        self._connect_async = True  # never hold up a worker's start-up
        self._connect()

    def _stop_in_supervisor(self, why: str) -> None:
        if self._rust is not None:
            logger.info("flask_mqtt: the %s does not serve; its client stops (the workers have theirs)", why)
            self._disconnect(timeout=1.0)
            self._serves_workers = True

    # ----------------------------------------------------------------- dispatch

    def _start_threads(self, rust: _core.Client) -> None:
        threading.Thread(target=self._control_loop, args=(rust,), name="flask-mqtt-control", daemon=True).start()
        for lane in range(rust.lanes()):
            threading.Thread(
                target=self._lane_loop, args=(rust, lane), name=f"flask-mqtt-lane-{lane}", daemon=True
            ).start()

    def _control_loop(self, rust: _core.Client) -> None:
        fd = rust.control_fileno()
        while self._rust is rust:
            select.select([fd], [], [], 5.0)
            if self._rust is not rust:
                return
            self._run_control(rust)

    def _run_control(self, rust: _core.Client) -> None:
        for event in rust.take_control(_BATCH):
            kind = event[0]
            if kind == "publish":
                self._on_publish_ack(event[1], event[2], event[3], event[4])
            elif kind == "connect":
                self._on_connack(event[1], event[2])
            elif kind == "disconnect":
                self._on_disconnected(event[1], event[2])
            elif kind == "subscribe":
                self._on_suback(event[1], event[2])
            elif kind == "unsubscribe":
                self._on_unsuback(event[1], event[2], event[3])

    def _lane_loop(self, rust: _core.Client, lane: int) -> None:
        fd = rust.lane_fileno(lane)
        while self._rust is rust:
            select.select([fd], [], [], 5.0)
            batch = rust.take_messages(lane, _BATCH)
            if batch:
                self._deliver(batch)

    def _deliver(self, batch: list[tuple[MQTTMessage, list[int]]]) -> None:
        # Handlers read the lists without the lock: registration replaces nothing in place
        # that a reader could see half-done (list.append is atomic).
        message_handlers = self._handlers["message"]
        by_filter_id = self._by_filter_id
        client, userdata = self.client, self._userdata
        with self._context():
            for message, ids in batch:
                if ids:
                    for fid in ids:
                        handler = by_filter_id.get(fid)
                        if handler is not None:
                            self._call("on_topic", handler, client, userdata, message)
                else:
                    for handler in message_handlers:
                        self._call("on_message", handler, client, userdata, message)

    def _context(self) -> Any:
        app = self._app or self.app
        return app.app_context() if app is not None else _NoContext()

    def _call(self, kind: str, handler: Callable[..., Any], *args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:
            with self._lock:
                self.callback_errors += 1
            logger.exception("flask_mqtt: %s callback %s raised; the client goes on", kind, _name(handler))
            self._log(MQTT_LOG_ERR, f"{kind} callback {_name(handler)} raised {exc!r}")

    def _run(self, kind: str, handlers: list[Callable[..., Any]], *args: Any) -> None:
        if handlers:
            with self._context():
                for handler in handlers:
                    self._call(kind, handler, *args)

    def _on_connack(self, rc: int, session_present: bool) -> None:
        flags = {"session present": int(session_present)}
        with self._lock:
            self._last_connack = (flags, rc)
            handlers = list(self._handlers["connect"])
        self._log(MQTT_LOG_DEBUG, f"Received CONNACK ({int(session_present)}, {rc})")
        self._run("on_connect", handlers, *self._connect_args(flags, rc))

    def _connect_args(self, flags: dict[str, int], rc: int) -> tuple[Any, ...]:
        if self.protocol_version == MQTTv5:
            return (self.client, self._userdata, flags, rc, None)
        return (self.client, self._userdata, flags, rc)

    def _on_disconnected(self, rc: int, reason: str | None) -> None:
        self._disconnect_seen = True
        with self._lock:
            self._last_connack = None
            handlers = list(self._handlers["disconnect"])
        self._log(MQTT_LOG_INFO if rc == 0 else MQTT_LOG_WARNING, f"disconnected ({reason or 'requested'})")
        self._run("on_disconnect", handlers, self.client, self._userdata, rc)

    def _on_publish_ack(self, mid: int, rc: int, error: str | None, settled: bool) -> None:
        if not settled:  # the caller holds an info waiting for this (or will, see publish)
            with self._lock:
                info = self._publishes.pop(mid, None)
                if info is None:
                    self._early_acks[mid] = rc
                else:
                    info._complete(rc)
                    if self._ack_waiters:
                        self._acked.notify_all()
        if rc != MQTT_ERR_SUCCESS:
            logger.error("flask_mqtt: publish %s failed: %s", mid, error)
            self._log(MQTT_LOG_ERR, f"publish mid {mid} failed: {error}")
            return
        handlers = self._handlers["publish"]
        if handlers:
            self._run("on_publish", list(handlers), self.client, self._userdata, mid)

    def _on_suback(self, mid: int, granted: list[int]) -> None:
        handlers = list(self._handlers["subscribe"])
        if self.protocol_version == MQTTv5:
            self._run("on_subscribe", handlers, self.client, self._userdata, mid, list(granted), None)
        else:
            self._run("on_subscribe", handlers, self.client, self._userdata, mid, tuple(granted))

    def _on_unsuback(self, mid: int, rc: int, error: str | None) -> None:
        if rc != MQTT_ERR_SUCCESS:
            self._log(MQTT_LOG_ERR, f"unsubscribe mid {mid} failed: {error}")
        handlers = list(self._handlers["unsubscribe"])
        if self.protocol_version == MQTTv5:
            self._run("on_unsubscribe", handlers, self.client, self._userdata, mid, None, [rc])
        else:
            self._run("on_unsubscribe", handlers, self.client, self._userdata, mid)

    def _log(self, level: int, text: str) -> None:
        handlers = self._handlers["log"]
        if self._mqtt_logging:
            logger.log(_LOG_LEVELS.get(level, logging.DEBUG), text)
        for handler in list(handlers):
            try:
                handler(self.client, self._userdata, level, text)
            except Exception:
                logger.exception("flask_mqtt: on_log callback %s raised", _name(handler))

    # ----------------------------------------------------------------- requests

    def subscribe(self, topic: str | tuple[str, int] | list[tuple[str, int]], qos: int = 0) -> tuple[int, int | None]:
        """Subscribes; returns ``(result, mid)`` at once.

        The subscription is kept and restored on every reconnect (and in a forked worker)
        wherever it was made; the SUBACK comes to ``on_subscribe``.
        """
        items = subscriptions(topic, qos)
        rust = self._rust
        if rust is None:
            return MQTT_ERR_NO_CONN, None
        result, mid = rust.subscribe(items)
        if result == MQTT_ERR_SUCCESS:
            for t, q in items:
                self.topics[t] = TopicQos(topic=t, qos=q)
            logger.debug("Subscribed to topic: %s, qos: %s", topic, qos)
        else:
            logger.error("Error %s subscribing to topic: %s", result, topic)
        return result, mid

    def unsubscribe(self, topic: str) -> tuple[int, int | None] | None:
        """Unsubscribes from a topic given to ``subscribe``; ``None`` when it was not subscribed."""
        if topic not in self.topics:
            return None
        return self._send_unsubscribe([topic])

    def _send_unsubscribe(self, topics: list[str]) -> tuple[int, int | None]:
        rust = self._rust
        if rust is None:
            return MQTT_ERR_NO_CONN, None
        result, mid = rust.unsubscribe(topics)
        if result == MQTT_ERR_SUCCESS:
            for topic in topics:
                self.topics.pop(topic, None)
            logger.debug("Unsubscribed from topics: %s", topics)
        return result, mid

    def unsubscribe_all(self) -> bool:
        """Unsubscribes from every topic; True when none is left in ``topics``."""
        for topic in list(self.topics):
            self.unsubscribe(topic)
        return not self.topics

    def publish(
        self,
        topic: str,
        payload: str | bytes | bytearray | float | None = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any | None = None,
    ) -> MQTTMessageInfo:
        """Sends a message; returns ``(result, mid)`` at once.

        The result is also a paho ``MQTTMessageInfo``: ``wait_for_publish(timeout)`` returns once
        the broker has acknowledged it (PUBACK/PUBCOMP; QoS 0: once written), and ``on_publish``
        runs then. ``MQTT_ERR_QUEUE_SIZE`` means ``MQTT_MAX_PENDING`` requests are already waiting.
        """
        data = payload_bytes(payload)
        if not isinstance(topic, str) or not topic:
            raise ValueError("Invalid topic.")
        if not isinstance(qos, int) or qos < 0 or qos > 2:
            raise ValueError("Invalid QoS level.")
        rust = self._rust
        if rust is None:
            return MQTTMessageInfo(MQTT_ERR_NO_CONN, 0, self)
        report = bool(self._handlers["publish"])
        result, mid, done = rust.publish(topic, data, qos, bool(retain), properties, report)
        info = MQTTMessageInfo(result, mid, self)
        if done:
            info._complete(MQTT_ERR_SUCCESS)  # QoS 0, queued: nothing more to wait for
        elif result == MQTT_ERR_SUCCESS:
            with self._lock:
                early = self._early_acks.pop(mid, None)
                if early is None:
                    self._publishes[mid] = info
                else:
                    info._complete(early)
        else:
            logger.error("Error %s publishing topic %s", result, topic)
        return info

    # ----------------------------------------------------------------- decorators

    def _register(self, kind: str, handler: Callable[..., Any]) -> None:
        with self._lock:
            self._handlers[kind].append(handler)

    def on_connect(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, flags, rc)`` on every CONNACK.

        Every decorated function runs, in registration order. One registered after the client
        connected runs at once, with the CONNACK it missed.
        """

        def decorator(handler: F) -> F:
            with self._lock:
                self._handlers["connect"].append(handler)
                missed = self._last_connack
            if missed is not None:
                self._run("on_connect", [handler], *self._connect_args(*missed))
            return handler

        return decorator

    def on_disconnect(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, rc)`` when the connection is closed or lost."""

        def decorator(handler: F) -> F:
            self._register("disconnect", handler)
            return handler

        return decorator

    def on_message(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, message)`` for messages no ``on_topic`` takes."""

        def decorator(handler: F) -> F:
            self._register("message", handler)
            return handler

        return decorator

    def on_topic(self, topic: str) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, message)`` for messages matching ``topic``.

        The topic still needs ``subscribe``. A message taken here does not reach ``on_message``.
        """

        def decorator(handler: F) -> F:
            self._add_topic_handler(topic, handler)
            return handler

        return decorator

    def _add_topic_handler(self, topic: str, handler: Callable[..., Any]) -> None:
        _core.check_filter(topic)
        rust = self._rust
        with self._lock:
            self._topic_handlers.append((topic, handler))
            if rust is not None:
                self._by_filter_id[rust.add_filter(topic)] = handler

    def _remove_topic_handlers(self, topic: str) -> None:
        with self._lock:
            self._topic_handlers = [e for e in self._topic_handlers if e[0] != topic]
            self._register_filters(self._rust)

    def _register_filters(self, rust: _core.Client | None) -> None:
        """Gives ``rust`` every on_topic filter (ids in registration order); the lock is held."""
        if rust is None:
            self._by_filter_id = {}
            return
        rust.clear_filters()
        self._by_filter_id = {rust.add_filter(t): h for t, h in self._topic_handlers}

    def on_publish(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, mid)`` once the broker acknowledged a publish."""

        def decorator(handler: F) -> F:
            self._register("publish", handler)
            return handler

        return decorator

    def on_subscribe(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, mid, granted_qos)`` on every SUBACK."""

        def decorator(handler: F) -> F:
            self._register("subscribe", handler)
            return handler

        return decorator

    def on_unsubscribe(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, mid)`` on every UNSUBACK."""

        def decorator(handler: F) -> F:
            self._register("unsubscribe", handler)
            return handler

        return decorator

    def on_log(self) -> Callable[[F], F]:
        """Decorator: ``handler(client, userdata, level, buf)`` for the client's log lines."""

        def decorator(handler: F) -> F:
            self._register("log", handler)
            return handler

        return decorator


class _NoContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


_LOG_LEVELS = {
    MQTT_LOG_INFO: logging.INFO,
    MQTT_LOG_NOTICE: logging.INFO,
    MQTT_LOG_WARNING: logging.WARNING,
    MQTT_LOG_ERR: logging.ERROR,
    MQTT_LOG_DEBUG: logging.DEBUG,
}
