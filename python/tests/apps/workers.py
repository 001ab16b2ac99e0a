"""A Flask-MQTT app that tells which process handled what: for the gunicorn and reloader tests.

Configured from the environment: ``MQTT_BROKER_URL``, ``MQTT_BROKER_PORT`` and, optionally,
``MQTT_SHARED_GROUP`` (the workers then share ``jobs/#``: each message goes to one of them).

- ``on_connect`` subscribes ``jobs/#`` (QoS 1);
- each SUBACK publishes this process's pid to ``workers/ready`` (the tests wait on it);
- ``on_message`` publishes ``"<pid>:<payload>"`` to ``handled`` (QoS 1);
- ``POST /publish {"topic", "msg"}`` publishes (QoS 1) and answers ``{"code", "mid", "pid"}``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from flask_mqtt import Mqtt

app = Flask(__name__)
app.config["MQTT_BROKER_URL"] = os.environ["MQTT_BROKER_URL"]
app.config["MQTT_BROKER_PORT"] = int(os.environ["MQTT_BROKER_PORT"])
app.config["MQTT_KEEPALIVE"] = 5
# A template: each process (a forked gunicorn worker too) connects as web-<its pid>.
app.config["MQTT_CLIENT_ID"] = "web-{pid}"
if os.environ.get("MQTT_SHARED_GROUP"):
    app.config["MQTT_SHARED_GROUP"] = os.environ["MQTT_SHARED_GROUP"]

mqtt = Mqtt(app)


@mqtt.on_connect()
def handle_connect(client: Any, userdata: Any, flags: dict[str, int], rc: int) -> None:
    if rc == 0:
        mqtt.subscribe("jobs/#", qos=1)


@mqtt.on_subscribe()
def handle_subscribe(client: Any, userdata: Any, mid: int, granted_qos: Any) -> None:
    mqtt.publish("workers/ready", str(os.getpid()), qos=1)


@mqtt.on_message()
def handle_message(client: Any, userdata: Any, message: Any) -> None:
    mqtt.publish("handled", f"{os.getpid()}:{message.payload.decode()}", qos=1)


@app.route("/publish", methods=["POST"])
def publish() -> ResponseReturnValue:
    data = request.get_json()
    rc, mid = mqtt.publish(data["topic"], data["msg"], qos=1)
    return jsonify({"code": rc, "mid": mid, "pid": os.getpid()})
