"""Helpers of the package's tests: brokers (embedded, Mosquitto on a free port), a paho peer, waits."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import paho.mqtt.client as paho

from flask_mqtt.testing import EmbeddedBroker

WAIT = 10.0  # seconds any single expected event may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    """Waits on a condition that callbacks make true (polled on a short interval)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


@dataclass
class Broker:
    kind: str
    host: str
    port: int
    stop: Callable[[], None]
    restart: Callable[[], None] = lambda: None

    def config(self, prefix: str = "MQTT") -> dict:
        return {f"{prefix}_BROKER_URL": self.host, f"{prefix}_BROKER_PORT": self.port}


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def start_mosquitto(port: int) -> subprocess.Popen:
    path = mosquitto_path()
    assert path, "mosquitto is not installed"
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
        conf.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([path, "-c", conf.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.02)


def embedded_broker() -> Broker:
    holder = {"b": EmbeddedBroker()}
    port = holder["b"].port

    def restart() -> None:
        holder["b"].stop()
        holder["b"] = EmbeddedBroker(port=port)

    return Broker("embedded", "127.0.0.1", port, stop=lambda: holder["b"].stop(), restart=restart)


def mosquitto_broker() -> Broker:
    port = free_port()
    holder = {"p": start_mosquitto(port)}

    def stop() -> None:
        holder["p"].terminate()
        holder["p"].wait(WAIT)

    def restart() -> None:
        stop()
        holder["p"] = start_mosquitto(port)

    return Broker("mosquitto", "127.0.0.1", port, stop=stop, restart=restart)


def broker_kinds() -> list[str]:
    if mosquitto_path() or os.environ.get("AXUM_MQTT_REQUIRE_MOSQUITTO") == "1":
        return ["embedded", "mosquitto"]
    return ["embedded"]


@dataclass
class Peer:
    """A paho client standing for a device: publishes, and records what it receives."""

    client: paho.Client
    received: list[paho.MQTTMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(WAIT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos, retain).wait_for_publish(WAIT)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.received if topic is None or m.topic == topic]
