"""paho's and Flask-MQTT's rules for arguments: config values, payloads, subscription forms."""

from __future__ import annotations

import enum
from typing import Any

#: Flask-MQTT 1.3's defaults where the Rust library's differ.
FLASK_MQTT_DEFAULTS = {"CONNECTION_TIMEOUT": "5"}

#: paho's payload limit.
MAX_PAYLOAD = 268435455


def config_text(key: str, value: Any) -> str:
    """One ``app.config`` value as the text the Rust key table reads."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):  # ssl.CERT_REQUIRED, ssl.PROTOCOL_TLSv1_2, paho's MQTTv5
        return value.name
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise TypeError(f"{key}: expected a string, number or bool, got {type(value).__name__}")


def config_pairs(config: Any, prefix: str) -> list[tuple[str, str]]:
    head = prefix + "_"
    pairs = [
        (key, config_text(key, value))
        for key, value in config.items()
        if isinstance(key, str) and key.startswith(head) and value is not None
    ]
    given = {key for key, _ in pairs}
    pairs[:0] = [(head + k, v) for k, v in FLASK_MQTT_DEFAULTS.items() if head + k not in given]
    return pairs


def payload_bytes(payload: Any) -> bytes:
    """paho's payload rules: str (UTF-8), bytes, bytearray, int, float or None."""
    if isinstance(payload, bytes):
        data = payload
    elif isinstance(payload, str):
        data = payload.encode("utf-8")
    elif isinstance(payload, bytearray):
        data = bytes(payload)
    elif isinstance(payload, (int, float)) and not isinstance(payload, bool):
        data = str(payload).encode("ascii")
    elif payload is None:
        data = b""
    else:
        raise TypeError("payload must be a string, bytearray, int, float or None.")
    if len(data) > MAX_PAYLOAD:
        raise ValueError("Payload too large.")
    return data


def subscriptions(topic: Any, qos: int) -> list[tuple[str, int]]:
    """paho's ``subscribe`` forms: ``"t"``, ``("t", qos)``, ``[("t", qos), ...]``."""
    if isinstance(topic, tuple):
        items = [topic]
    elif isinstance(topic, list):
        items = topic
        if not items:
            raise ValueError("No topic specified, or incorrect topic type.")
    elif isinstance(topic, str):
        items = [(topic, qos)]
    else:
        # paho's exception for a topic of the wrong type
        raise ValueError("No topic specified, or incorrect topic type.")  # noqa: TRY004
    out = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError("No topic specified, or incorrect topic type.")
        t, q = item
        if not t:
            raise ValueError("Invalid topic.")
        if not isinstance(q, int) or isinstance(q, bool) or q < 0 or q > 2:
            raise ValueError("Invalid QoS level.")
        out.append((t, q))
    return out
