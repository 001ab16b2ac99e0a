# The "complete code" of EMQX's tutorial "How to Use MQTT in Flask"
# (https://www.emqx.com/en/blog/how-to-use-mqtt-in-flask), unchanged except the lines marked
# "# CHANGED": the broker's address, port, user name and password come from the environment.
# The tutorial's code is kept as written (its import order, dict() call, 3-space indents):
# ruff: noqa: I001, C408
import os  # CHANGED: added, for the settings below

from flask import Flask, request, jsonify
from flask_mqtt import Mqtt

app = Flask(__name__)

app.config['MQTT_BROKER_URL'] = os.environ['MQTT_BROKER_URL']  # CHANGED: was 'broker.emqx.io'
app.config['MQTT_BROKER_PORT'] = int(os.environ['MQTT_BROKER_PORT'])  # CHANGED: was 1883
app.config['MQTT_USERNAME'] = os.environ.get('MQTT_USERNAME', '')  # CHANGED: was ''. Set this item when you need to verify username and password
app.config['MQTT_PASSWORD'] = os.environ.get('MQTT_PASSWORD', '')  # CHANGED: was ''. Set this item when you need to verify username and password
app.config['MQTT_KEEPALIVE'] = 5  # Set KeepAlive time in seconds
app.config['MQTT_TLS_ENABLED'] = False  # If your server supports TLS, set it True
topic = '/flask/mqtt'

mqtt_client = Mqtt(app)


@mqtt_client.on_connect()
def handle_connect(client, userdata, flags, rc):
   if rc == 0:
       print('Connected successfully')
       mqtt_client.subscribe(topic) # subscribe topic
   else:
       print('Bad connection. Code:', rc)


@mqtt_client.on_message()
def handle_mqtt_message(client, userdata, message):
   data = dict(
       topic=message.topic,
       payload=message.payload.decode()
  )
   print('Received message on topic: {topic} with payload: {payload}'.format(**data))


@app.route('/publish', methods=['POST'])
def publish_message():
   request_data = request.get_json()
   publish_result = mqtt_client.publish(request_data['topic'], request_data['msg'])
   return jsonify({'code': publish_result[0]})

if __name__ == '__main__':
   app.run(host='127.0.0.1', port=5000)
