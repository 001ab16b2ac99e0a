"""``mqtt.client``: the paho ``Client`` methods Flask-MQTT apps call most, on the Rust client.

Offered: ``publish``, ``subscribe``, ``unsubscribe``, ``is_connected``, ``disconnect``,
``reconnect``, ``loop_start`` / ``loop_stop`` (no-ops: the network runs in Rust),
``user_data_set`` / ``user_data_get``, ``message_callback_add`` / ``message_callback_remove``,
``enable_logger`` / ``disable_logger``, and the ``_client_id``, ``protocol`` and ``transport``
attributes. Settings paho takes as calls (``username_pw_set``, ``will_set``, ``tls_set``) are
``MQTT_*`` keys here and raise ``NotImplementedError`` naming the key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from . import Mqtt
    from ._info import MQTTMessageInfo


class Client:
    """A paho-like view of one :class:`flask_mqtt.Mqtt`; callbacks receive it as ``client``."""

    def __init__(self, mqtt: Mqtt) -> None:
        self._mqtt = mqtt

    # What paho stores as attributes.
    @property
    def _client_id(self) -> bytes:
        rust = self._mqtt._rust
        return (rust.client_id() if rust is not None else self._mqtt.client_id).encode("utf-8")

    @property
    def protocol(self) -> int:
        """4 (MQTT 3.1.1) or 5."""
        return self._mqtt.protocol_version

    @property
    def transport(self) -> str:
        """``"tcp"`` or ``"websockets"``."""
        return self._mqtt.transport

    def publish(
        self,
        topic: str,
        payload: str | bytes | bytearray | float | None = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any | None = None,
    ) -> MQTTMessageInfo:
        """paho's ``publish``: ``MQTTMessageInfo`` with ``rc``, ``mid``, ``wait_for_publish``."""
        return self._mqtt.publish(topic, payload, qos, retain, properties)

    def subscribe(
        self,
        topic: str | tuple[str, int] | list[tuple[str, int]],
        qos: int = 0,
        options: Any = None,
        properties: Any = None,
    ) -> tuple[int, int | None]:
        """paho's ``subscribe``; the subscription is restored on every reconnect."""
        return self._mqtt.subscribe(topic, qos)

    def unsubscribe(self, topic: str | list[str], properties: Any = None) -> tuple[int, int | None]:
        """paho's ``unsubscribe`` (a topic or a list of topics)."""
        return self._mqtt._send_unsubscribe(topic if isinstance(topic, list) else [topic])

    def is_connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._mqtt.connected

    def disconnect(self, reasoncode: Any = None, properties: Any = None) -> int:
        """Sends DISCONNECT once in-flight publishes are acknowledged (bounded)."""
        self._mqtt._disconnect()
        return 0

    def reconnect(self) -> int:
        """Connects again after ``disconnect`` (a lost connection is retried by itself)."""
        if self._mqtt._rust is None:
            self._mqtt._connect()
        return 0

    def loop_start(self) -> int:
        """No-op: the network runs on the Rust client's own threads."""
        return 0

    def loop_stop(self, force: bool = False) -> int:
        """No-op: see ``loop_start``."""
        return 0

    def user_data_set(self, userdata: Any) -> None:
        """Sets the ``userdata`` every callback receives."""
        self._mqtt._userdata = userdata

    def user_data_get(self) -> Any:
        """The ``userdata`` every callback receives."""
        return self._mqtt._userdata

    def message_callback_add(self, sub: str, callback: Callable[..., Any]) -> None:
        """Same as ``@mqtt.on_topic(sub)``."""
        self._mqtt._add_topic_handler(sub, callback)

    def message_callback_remove(self, sub: str) -> None:
        """Removes every callback added for ``sub``."""
        self._mqtt._remove_topic_handlers(sub)

    def enable_logger(self, logger: logging.Logger | None = None) -> None:
        """Logs the client's events (to ``flask_mqtt`` when no logger is given)."""
        self._mqtt._mqtt_logging = True

    def disable_logger(self) -> None:
        """Stops logging the client's events."""
        self._mqtt._mqtt_logging = False

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        """Not a call here: set ``MQTT_USERNAME`` and ``MQTT_PASSWORD`` in ``app.config``."""
        raise NotImplementedError("set MQTT_USERNAME / MQTT_PASSWORD in app.config")

    def will_set(
        self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False, properties: Any = None
    ) -> None:
        """Not a call here: set ``MQTT_LAST_WILL_*`` in ``app.config``."""
        raise NotImplementedError("set MQTT_LAST_WILL_TOPIC / _MESSAGE / _QOS / _RETAIN in app.config")

    def tls_set(self, *args: Any, **kwargs: Any) -> None:
        """Not a call here: set ``MQTT_TLS_*`` in ``app.config``."""
        raise NotImplementedError("set MQTT_TLS_ENABLED and MQTT_TLS_* in app.config")
