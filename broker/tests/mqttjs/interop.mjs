#!/usr/bin/env node
// MQTT.js (v5) interoperability test for an MQTT broker, over TCP and WebSocket,
// with MQTT 3.1.1 (protocolVersion 4) and MQTT 5.
//
// usage: node interop.mjs <tcp-url> <ws-url>
//   e.g. node interop.mjs mqtt://127.0.0.1:1883 ws://127.0.0.1:8083/mqtt
//
// Every step prints `ok   <name>` or `FAIL <name>: <reason>`; the last line is
// `N passed, M failed`; the exit code is 1 when anything failed.
// Every wait is bounded (WAIT_MS); a global hard timeout (GLOBAL_MS) fails the
// remaining steps and exits 1.

import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';

const WAIT_MS = Number(process.env.MQTTJS_WAIT_MS || 5000);
const STEP_MS = 3 * WAIT_MS;
const GLOBAL_MS = Number(process.env.MQTTJS_GLOBAL_MS || 60000);

const [tcpUrl, wsUrl] = process.argv.slice(2);
if (!tcpUrl || !wsUrl) {
  console.error('usage: node interop.mjs <tcp-url> <ws-url>');
  console.error('  e.g. node interop.mjs mqtt://127.0.0.1:1883 ws://127.0.0.1:8083/mqtt');
  process.exit(2);
}

const runId = randomBytes(6).toString('hex');
const prefix = `mqttjs/${runId}`;
let seq = 0;
const uniqueId = () => `mqttjs-${runId}-${++seq}`;
const uniqueTopic = (name) => `${prefix}/${name}/${++seq}`;

// ---------------------------------------------------------------- helpers

class StepError extends Error {}

function fail(reason) {
  throw new StepError(reason);
}

function check(cond, reason) {
  if (!cond) fail(reason);
}

function show(v) {
  if (Buffer.isBuffer(v)) return `<Buffer ${v.toString('hex')}>`;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StepError(`timeout after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const clients = new Set();

// Connect and wait for CONNACK (bounded). Never reconnects by itself.
async function connect(url, protocolVersion, extra = {}) {
  const clientId = uniqueId();
  const client = mqtt.connect(url, {
    clientId,
    protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    keepalive: 30,
    ...extra,
  });
  clients.add(client);
  client.inbox = [];
  client.waiters = [];
  client.errors = [];
  client.on('error', (err) => client.errors.push(err));
  client.on('message', (topic, payload, packet) => {
    const msg = { topic, payload, packet, consumed: false };
    client.inbox.push(msg);
    for (const w of [...client.waiters]) {
      if (w.match(msg)) {
        msg.consumed = true;
        client.waiters.splice(client.waiters.indexOf(w), 1);
        w.resolve(msg);
        break;
      }
    }
  });
  const connack = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new StepError(`timeout after ${WAIT_MS} ms waiting for CONNACK from ${url}`)), WAIT_MS);
    const onConnect = (p) => done(null, p);
    const onError = (e) => done(new StepError(`connect to ${url} (v${protocolVersion}) failed: ${e.message}`));
    const onClose = () => done(new StepError(`connection to ${url} (v${protocolVersion}) closed before CONNACK`));
    function done(err, p) {
      clearTimeout(timer);
      client.removeListener('connect', onConnect);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      if (err) {
        client.end(true);
        reject(err);
      } else {
        resolve(p);
      }
    }
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
  client.connack = connack;
  return client;
}

// Wait for the first not-yet-consumed message on `topic` satisfying `pred`.
function waitMessage(client, topic, pred = () => true, what = `a message on ${topic}`) {
  const match = (m) => !m.consumed && m.topic === topic && pred(m);
  const found = client.inbox.find(match);
  if (found) {
    found.consumed = true;
    return Promise.resolve(found);
  }
  let waiter;
  const p = new Promise((resolve) => {
    waiter = { match, resolve };
    client.waiters.push(waiter);
  });
  return withTimeout(p, WAIT_MS, what).catch((err) => {
    const i = client.waiters.indexOf(waiter);
    if (i >= 0) client.waiters.splice(i, 1);
    throw err;
  });
}

const payloadIs = (s) => (m) => m.payload.toString() === s;

async function subscribe(client, topic, qos, opts = {}) {
  const granted = await withTimeout(client.subscribeAsync(topic, { qos, ...opts }), WAIT_MS, `SUBACK for ${topic}`);
  check(Array.isArray(granted) && granted.length === 1, `unexpected SUBACK result ${show(granted)}`);
  check(granted[0].qos === qos, `subscribed at QoS ${qos} on ${topic}, broker granted ${granted[0].qos}`);
  return granted;
}

function publish(client, topic, payload, opts = {}) {
  const qos = opts.qos || 0;
  const ack = qos === 0 ? 'the write' : qos === 1 ? 'PUBACK' : 'PUBCOMP';
  return withTimeout(client.publishAsync(topic, payload, opts), WAIT_MS, `${ack} for QoS ${qos} publish to ${topic || '(empty topic)'}`);
}

function need(obj, ...keys) {
  for (const k of keys) check(obj[k], `precondition failed: ${k} not set up by an earlier step`);
}

// ---------------------------------------------------------------- steps

const steps = [];
const step = (name, fn) => steps.push({ name, fn });

const transports = [
  ['tcp', tcpUrl],
  ['ws', wsUrl],
];

for (const [tname, url] of transports) {
  for (const v of [4, 5]) {
    const label = `${tname} v${v}`;
    const c = {};

    // ---- QoS delivery matrix
    step(`${label} connect subscriber and publisher`, async () => {
      c.sub = await connect(url, v);
      c.pub = await connect(url, v);
    });

    step(`${label} subscribe at QoS 2, 1 and 0`, async () => {
      need(c, 'sub');
      c.t2 = uniqueTopic(`${tname}-v${v}-sub2`);
      c.t1 = uniqueTopic(`${tname}-v${v}-sub1`);
      c.t0 = uniqueTopic(`${tname}-v${v}-sub0`);
      await subscribe(c.sub, c.t2, 2);
      await subscribe(c.sub, c.t1, 1);
      await subscribe(c.sub, c.t0, 0);
      c.subscribed = true;
    });

    const deliveries = [
      // [publish qos, subscription qos]
      [0, 2],
      [1, 2],
      [2, 2],
      [0, 1],
      [2, 1],
      [2, 0],
    ];
    for (const [pq, sq] of deliveries) {
      const expected = Math.min(pq, sq);
      const extra = pq > sq ? ' (downgrade)' : '';
      step(`${label} publish QoS ${pq} to QoS ${sq} subscription arrives at QoS ${expected}${extra}`, async () => {
        need(c, 'sub', 'pub', 'subscribed');
        const topic = sq === 2 ? c.t2 : sq === 1 ? c.t1 : c.t0;
        const payload = `qos${pq}-to-sub${sq}-${uniqueId()}`;
        await publish(c.pub, topic, payload, { qos: pq });
        const m = await waitMessage(c.sub, topic, payloadIs(payload), `QoS ${pq} message "${payload}"`);
        check(m.packet.qos === expected, `delivered at QoS ${m.packet.qos}, expected ${expected}`);
        check(m.packet.retain === false, `non-retained publish delivered with retain=${m.packet.retain}`);
      });
    }

    // ---- retained messages
    step(`${label} retained message delivered to a fresh subscriber with retain flag`, async () => {
      need(c, 'pub');
      c.rt = uniqueTopic(`${tname}-v${v}-retained`);
      c.rpayload = `retained-${uniqueId()}`;
      await publish(c.pub, c.rt, c.rpayload, { qos: 1, retain: true });
      const fresh = await connect(url, v);
      await subscribe(fresh, c.rt, 1);
      const m = await waitMessage(fresh, c.rt, payloadIs(c.rpayload), `retained message "${c.rpayload}"`);
      check(m.packet.retain === true, `retained message delivered with packet.retain=${m.packet.retain}`);
      check(m.packet.qos === 1, `retained message delivered at QoS ${m.packet.qos}, expected 1`);
      c.retainedOk = true;
    });

    step(`${label} retained message cleared by empty retained payload`, async () => {
      need(c, 'pub', 'rt');
      await publish(c.pub, c.rt, '', { qos: 1, retain: true });
      // A fresh subscriber must not get the old retained message: after its
      // SUBACK, publish a non-retained marker; the marker must be the first and
      // only message it sees on the topic.
      const fresh = await connect(url, v);
      await subscribe(fresh, c.rt, 1);
      const marker = `marker-${uniqueId()}`;
      await publish(c.pub, c.rt, marker, { qos: 1 });
      await waitMessage(fresh, c.rt, payloadIs(marker), `marker message "${marker}"`);
      const before = fresh.inbox.filter((m) => m.topic === c.rt && m.payload.toString() !== marker);
      check(before.length === 0, `fresh subscriber still got ${before.length} retained message(s): ${show(before.map((m) => m.payload.toString()))}`);
    });

    // ---- will message on abnormal disconnect
    step(`${label} will message published when the client's socket dies without DISCONNECT`, async () => {
      const willTopic = uniqueTopic(`${tname}-v${v}-will`);
      const clientA = await connect(url, v, {
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      const clientB = await connect(url, v);
      await subscribe(clientB, willTopic, 1);
      clientA.stream.destroy();
      const m = await waitMessage(clientB, willTopic, () => true, `will message on ${willTopic}`);
      check(m.payload.toString() === 'gone', `will payload ${show(m.payload.toString())}, expected "gone"`);
      check(m.packet.qos === 1, `will delivered at QoS ${m.packet.qos}, expected 1`);
    });
  }

  // ---- MQTT 5 properties, and a v4 subscriber of the same topic
  const p = {};
  step(`${tname} v5 publish with properties reaches a v5 and a v4 subscriber`, async () => {
    p.topic = uniqueTopic(`${tname}-props`);
    p.payload = `props-${uniqueId()}`;
    p.responseTopic = `${prefix}/reply/${uniqueId()}`;
    p.correlationData = randomBytes(8);
    const sub5 = await connect(url, 5);
    const sub4 = await connect(url, 4);
    const pub5 = await connect(url, 5);
    await subscribe(sub5, p.topic, 1);
    await subscribe(sub4, p.topic, 1);
    await publish(pub5, p.topic, p.payload, {
      qos: 1,
      properties: {
        userProperties: { k: 'v' },
        contentType: 'text/plain',
        responseTopic: p.responseTopic,
        correlationData: p.correlationData,
        messageExpiryInterval: 60,
        payloadFormatIndicator: true,
      },
    });
    const [m5, m4] = await Promise.allSettled([
      waitMessage(sub5, p.topic, payloadIs(p.payload), 'the message at the v5 subscriber'),
      waitMessage(sub4, p.topic, payloadIs(p.payload), 'the message at the v4 subscriber'),
    ]);
    if (m5.status === 'fulfilled') p.m5 = m5.value;
    if (m4.status === 'fulfilled') p.m4 = m4.value;
    if (m5.status === 'rejected') throw m5.reason;
    if (m4.status === 'rejected') throw m4.reason;
  });

  const propChecks = [
    ['userProperties', (pr) => check(pr.userProperties && pr.userProperties.k === 'v' && Object.keys(pr.userProperties).length === 1, `userProperties ${show(pr.userProperties)}, expected {"k":"v"}`)],
    ['contentType', (pr) => check(pr.contentType === 'text/plain', `contentType ${show(pr.contentType)}, expected "text/plain"`)],
    ['responseTopic', (pr) => check(pr.responseTopic === p.responseTopic, `responseTopic ${show(pr.responseTopic)}, expected ${show(p.responseTopic)}`)],
    ['correlationData', (pr) => check(Buffer.isBuffer(pr.correlationData) && pr.correlationData.equals(p.correlationData), `correlationData ${show(pr.correlationData)}, expected ${show(p.correlationData)}`)],
    ['messageExpiryInterval', (pr) => check(Number.isInteger(pr.messageExpiryInterval) && pr.messageExpiryInterval > 0 && pr.messageExpiryInterval <= 60, `messageExpiryInterval ${show(pr.messageExpiryInterval)}, expected 1..60 (sent 60)`)],
    ['payloadFormatIndicator', (pr) => check(pr.payloadFormatIndicator === true, `payloadFormatIndicator ${show(pr.payloadFormatIndicator)}, expected true`)],
  ];
  for (const [name, fn] of propChecks) {
    step(`${tname} v5 subscriber receives property ${name} intact`, async () => {
      check(p.m5, 'no message reached the v5 subscriber');
      check(p.m5.packet.properties, 'message arrived without any properties');
      fn(p.m5.packet.properties);
    });
  }

  step(`${tname} v4 subscriber receives the payload of a v5 publish with properties`, async () => {
    check(p.m4, 'no message reached the v4 subscriber');
    check(p.m4.payload.toString() === p.payload, `payload ${show(p.m4.payload.toString())}, expected ${show(p.payload)}`);
    check(p.m4.packet.properties === undefined, `v4 packet carries properties ${show(p.m4.packet.properties)}`);
  });

  step(`${tname} broker still works after the mixed v4/v5 delivery (new connections)`, async () => {
    for (const v of [4, 5]) {
      const cl = await connect(url, v);
      const topic = uniqueTopic(`${tname}-alive-v${v}`);
      const payload = `alive-${uniqueId()}`;
      await subscribe(cl, topic, 1);
      await publish(cl, topic, payload, { qos: 1 });
      await waitMessage(cl, topic, payloadIs(payload), `round trip of "${payload}" on a new v${v} connection`);
    }
  });

  // ---- MQTT 5 topic alias (client -> broker)
  const a = {};
  step(`${tname} v5 topic alias: publish with topic and topicAlias 1 arrives on the real topic`, async () => {
    a.topic = uniqueTopic(`${tname}-alias`);
    a.sub = await connect(url, 5);
    await subscribe(a.sub, a.topic, 1);
    a.pub = await connect(url, 5);
    const max = (a.pub.connack && a.pub.connack.properties && a.pub.connack.properties.topicAliasMaximum) || 0;
    if (max < 1) fail('broker topic alias maximum is 0');
    a.sent = [];
    a.pub.on('packetsend', (pk) => {
      if (pk.cmd === 'publish') a.sent.push({ topic: String(pk.topic), alias: pk.properties && pk.properties.topicAlias });
    });
    const payload = `alias-1-${uniqueId()}`;
    await publish(a.pub, a.topic, payload, { qos: 1, properties: { topicAlias: 1 } });
    check(a.sent.length === 1 && a.sent[0].topic === a.topic && a.sent[0].alias === 1, `MQTT.js sent ${show(a.sent)}, expected topic ${a.topic} with alias 1`);
    await waitMessage(a.sub, a.topic, payloadIs(payload), `aliased message "${payload}" on ${a.topic}`);
    a.registered = true;
  });

  step(`${tname} v5 topic alias: publish with empty topic and topicAlias 1 arrives on the real topic`, async () => {
    if (a.pub && !a.registered && a.pub.connack && !((a.pub.connack.properties || {}).topicAliasMaximum > 0)) {
      fail('broker topic alias maximum is 0');
    }
    need(a, 'registered');
    const payload = `alias-2-${uniqueId()}`;
    await publish(a.pub, '', payload, { qos: 1, properties: { topicAlias: 1 } });
    const last = a.sent[a.sent.length - 1];
    check(a.sent.length === 2 && last.topic === '' && last.alias === 1, `MQTT.js sent ${show(a.sent)}, expected an empty topic with alias 1 the second time`);
    const m = await waitMessage(a.sub, a.topic, payloadIs(payload), `message "${payload}" published via alias only`);
    check(m.packet.qos === 1, `delivered at QoS ${m.packet.qos}, expected 1`);
    check(a.pub.connected, 'publisher was disconnected after using the alias');
  });
}

// ---------------------------------------------------------------- runner

let passed = 0;
let failed = 0;
let current = 0;
let finished = false;

function report(ok, name, reason) {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}: ${reason}`);
  }
}

function summary() {
  console.log(`${passed} passed, ${failed} failed`);
}

const hardTimer = setTimeout(() => {
  if (finished) return;
  finished = true;
  for (let i = current; i < steps.length; i++) {
    report(false, steps[i].name, i === current ? `global timeout of ${GLOBAL_MS} ms hit during this step` : `not run: global timeout of ${GLOBAL_MS} ms`);
  }
  summary();
  process.exit(1);
}, GLOBAL_MS);
hardTimer.unref();

async function cleanup() {
  await Promise.allSettled(
    [...clients].map((cl) => withTimeout(cl.endAsync(true), WAIT_MS, 'client end').catch(() => {})),
  );
  clients.clear();
}

async function main() {
  console.log(`# MQTT.js interop: tcp=${tcpUrl} ws=${wsUrl} topic prefix=${prefix}`);
  for (current = 0; current < steps.length; current++) {
    const { name, fn } = steps[current];
    try {
      await withTimeout(Promise.resolve().then(fn), STEP_MS, `step "${name}"`);
      if (finished) return;
      report(true, name);
    } catch (err) {
      if (finished) return;
      const reason = err instanceof StepError ? err.message : (err && err.stack) || String(err);
      report(false, name, reason.replace(/\n/g, ' | '));
    }
  }
  await cleanup();
  if (finished) return;
  finished = true;
  clearTimeout(hardTimer);
  summary();
  process.exitCode = failed > 0 ? 1 : 0;
  // Safety net only: all clients are ended above, so the process should exit
  // on its own; this unref'd timer never keeps it alive.
  setTimeout(() => {
    console.error('# warning: handles still open after cleanup; forcing exit');
    process.exit(process.exitCode);
  }, 5000).unref();
}

main();
