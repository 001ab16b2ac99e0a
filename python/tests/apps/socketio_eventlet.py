"""

A small Test application to show how to use Flask-MQTT.

"""
# Flask-MQTT's Socket.IO example, from its documentation ("Interact with SocketIO" in
# doc/usage.rst of github.com/stlehmann/Flask-MQTT), unchanged except the lines marked
# "# CHANGED": the broker's address and the server's port come from the environment, and
# Flask-Bootstrap is left out (templates/index.html here needs no Bootstrap base template).
# The example's code is kept as written (its import order, dict() call):
# ruff: noqa: I001, C408

import eventlet
import json
import os  # CHANGED: added, for the settings below
from flask import Flask, render_template
from flask_mqtt import Mqtt
from flask_socketio import SocketIO
# CHANGED: removed "from flask_bootstrap import Bootstrap"

eventlet.monkey_patch()

app = Flask(__name__)
app.config['SECRET'] = 'my secret key'
app.config['TEMPLATES_AUTO_RELOAD'] = True
app.config['MQTT_BROKER_URL'] = os.environ['MQTT_BROKER_URL']  # CHANGED: was 'broker.hivemq.com'
app.config['MQTT_BROKER_PORT'] = int(os.environ['MQTT_BROKER_PORT'])  # CHANGED: was 1883
app.config['MQTT_USERNAME'] = ''
app.config['MQTT_PASSWORD'] = ''
app.config['MQTT_KEEPALIVE'] = 5
app.config['MQTT_TLS_ENABLED'] = False

# Parameters for SSL enabled
# app.config['MQTT_BROKER_PORT'] = 8883
# app.config['MQTT_TLS_ENABLED'] = True
# app.config['MQTT_TLS_INSECURE'] = True
# app.config['MQTT_TLS_CA_CERTS'] = 'ca.crt'

mqtt = Mqtt(app)
socketio = SocketIO(app)
# CHANGED: removed "bootstrap = Bootstrap(app)"


@app.route('/')
def index():
    return render_template('index.html')


@socketio.on('publish')
def handle_publish(json_str):
    data = json.loads(json_str)
    mqtt.publish(data['topic'], data['message'])


@socketio.on('subscribe')
def handle_subscribe(json_str):
    data = json.loads(json_str)
    mqtt.subscribe(data['topic'])


@socketio.on('unsubscribe_all')
def handle_unsubscribe_all():
    mqtt.unsubscribe_all()


@mqtt.on_message()
def handle_mqtt_message(client, userdata, message):
    data = dict(
        topic=message.topic,
        payload=message.payload.decode()
    )
    socketio.emit('mqtt_message', data=data)


@mqtt.on_log()
def handle_logging(client, userdata, level, buf):
    print(level, buf)


if __name__ == '__main__':
    socketio.run(app, host='127.0.0.1', port=int(os.environ['PORT']), use_reloader=False, debug=True)  # CHANGED: was host='0.0.0.0', port=5000
