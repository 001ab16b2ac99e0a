// End-to-end test of the live page in real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core; no browser download).
//
//   node app/e2e/e2e.mjs target/debug/axum-mqtt-app
//
// Starts its own Mosquitto on a free port and the app with --no-broker + MQTT_BROKER_URL pointing
// there, so it can stop and restart the broker. Prints `N passed, M failed`; exits 1 on failure.
// Saves a screenshot to app/e2e/out/screenshot.png.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, existsSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const appBin = resolve(process.argv[2] || join(here, "../../target/debug/axum-mqtt-app"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find(existsSync);
const T = 15000; // per-step wait

let passed = 0;
let failed = 0;
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`);
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function portOpen(port) {
  return new Promise((res) => {
    const c = connect(port, "127.0.0.1");
    c.once("connect", () => { c.destroy(); res(true); });
    c.once("error", () => res(false));
  });
}

async function waitFor(what, pred, ms = T) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.out = "";
  child.stdout.on("data", (d) => { child.out += d; });
  child.stderr.on("data", (d) => { child.out += d; });
  children.push(child);
  return child;
}

function stop(child, signal = "SIGTERM") {
  return new Promise((res) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return res();
    child.once("exit", () => res());
    child.kill(signal);
  });
}

// --- Mosquitto on a free port, restartable on the same port ---
const mqttPort = await freePort();
const mosqDir = mkdtempSync(join(tmpdir(), "e2e-mosq-"));
chmodSync(mosqDir, 0o777);
writeFileSync(join(mosqDir, "mosquitto.conf"),
  `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n`);
let mosq = null;
async function startBroker() {
  mosq = start(MOSQUITTO, ["-c", join(mosqDir, "mosquitto.conf")]);
  await waitFor("mosquitto to listen", () => portOpen(mqttPort), 10000);
}
function mosquittoPub(topic, msg) {
  execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(mqttPort), "-t", topic, "-m", msg, "-q", "1"]);
}

// --- the app ---
async function startApp(args, env) {
  const httpPort = await freePort();
  const app = start(appBin, ["--http", `127.0.0.1:${httpPort}`, ...args], {
    RUST_LOG: "info", MQTT_RECONNECT_MAX_MS: "1000", MQTT_KEEPALIVE: "5", ...env,
  });
  app.base = `http://127.0.0.1:${httpPort}`;
  await waitFor("the app to be healthy", async () => {
    try { return (await fetch(app.base + "/healthz")).status === 200; } catch { return false; }
  }, 20000);
  return app;
}

const killTimer = setTimeout(async () => {
  console.log("FAIL the whole run took more than 180 s");
  for (const c of children) c.kill("SIGKILL");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 180000);

let browser = null;
let profile = null;
try {
  if (!MOSQUITTO) throw new Error("mosquitto is not installed");
  if (!existsSync(appBin)) throw new Error(`app binary not found: ${appBin}`);
  await startBroker();
  const app = await startApp(["--no-broker"], { MQTT_BROKER_URL: `mqtt://127.0.0.1:${mqttPort}` });

  profile = mkdtempSync(join(tmpdir(), "e2e-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  const run = Math.random().toString(36).slice(2, 8);
  const filter = `e2e/${run}/+`;
  const rowWith = (text) => page.locator("#messages tbody tr", { hasText: text });

  await step("the page loads and shows MQTT connected", async () => {
    await page.goto(app.base + "/");
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: T });
    const text = await page.locator("#status-text").textContent();
    if (!/MQTT connected/.test(text)) throw new Error(`status text: ${text}`);
  });

  await step("subscribe from the page", async () => {
    await page.fill("#sub-filter", filter);
    await page.selectOption("#sub-qos", "1");
    await page.click("#sub-btn");
    await page.locator(`#subs li[data-filter="${filter}"][data-active="true"]`).waitFor({ timeout: T });
  });

  await step("a message published from the page appears", async () => {
    await page.fill("#pub-topic", `e2e/${run}/page`);
    await page.fill("#pub-payload", "hello from the page");
    await page.click("#pub-btn");
    await rowWith("hello from the page").first().waitFor({ timeout: T });
    const topic = await rowWith("hello from the page").first().locator("td.topic").textContent();
    if (topic !== `e2e/${run}/page`) throw new Error(`topic cell: ${topic}`);
  });

  await step("a message published with mosquitto_pub appears, newest first", async () => {
    mosquittoPub(`e2e/${run}/cli`, "hello from mosquitto_pub");
    await rowWith("hello from mosquitto_pub").first().waitFor({ timeout: T });
    const first = await page.locator("#messages tbody tr").first().locator("td.payload").textContent();
    if (first !== "hello from mosquitto_pub") throw new Error(`first row: ${first}`);
  });

  await step("numeric payloads feed the chart and per-topic rates", async () => {
    for (const v of [20.5, 21, 22.25, 21.75, 23, 22.5]) {
      await page.fill("#pub-topic", `e2e/${run}/temperature`);
      await page.fill("#pub-payload", String(v));
      await page.click("#pub-btn");
      await rowWith(String(v)).first().waitFor({ timeout: T });
    }
    for (const v of [40, 45, 42, 47]) mosquittoPub(`e2e/${run}/humidity`, String(v));
    await rowWith("47").first().waitFor({ timeout: T });
    const row = page.locator(`#rates tbody tr[data-topic="e2e/${run}/temperature"]`);
    await row.waitFor({ timeout: T });
    // The table refreshes every second.
    await waitFor("a count of 6", async () => (await row.locator("td.count").textContent()) === "6");
    const rate = Number(await row.locator("td.rate").textContent());
    if (!(rate > 0)) throw new Error(`rate ${rate}`);
    await page.locator("#legend span", { hasText: `e2e/${run}/temperature` }).waitFor({ timeout: T });
    // The canvas has drawn pixels in the series colour.
    const coloured = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 80 && d[i + 3] > 200) n++;
      return n;
    });
    if (coloured < 20) throw new Error(`chart line not drawn (${coloured} blue pixels)`);
  });

  await step("bad input gets an error notice and the page keeps working", async () => {
    await page.fill("#pub-topic", "bad/+/topic");
    await page.fill("#pub-payload", "x");
    await page.click("#pub-btn");
    await page.locator("#notice", { hasText: "invalid_topic" }).waitFor({ timeout: T });
  });

  mkdirSync(join(here, "out"), { recursive: true });
  await step("screenshot saved", async () => {
    await page.screenshot({ path: join(here, "out", "screenshot.png"), fullPage: true });
  });

  await step("unsubscribe stops the messages", async () => {
    await page.click(`#subs li[data-filter="${filter}"] button.unsub`);
    await page.locator(`#subs li[data-filter="${filter}"]`).waitFor({ state: "detached", timeout: T });
    mosquittoPub(`e2e/${run}/cli`, "after unsubscribe");
    await sleep(500); // proving absence: bounded
    if (await rowWith("after unsubscribe").count()) throw new Error("message arrived after unsubscribe");
  });

  await step("the indicator shows the broker going away and coming back", async () => {
    await page.fill("#sub-filter", filter);
    await page.click("#sub-btn");
    await page.locator(`#subs li[data-filter="${filter}"][data-active="true"]`).waitFor({ timeout: T });
    await stop(mosq);
    await page.locator('#status[data-state="reconnecting"]').waitFor({ timeout: T });
    await startBroker();
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: T });
    // The subscription is restored after the reconnect.
    await waitFor("a message after the restart", async () => {
      mosquittoPub(`e2e/${run}/cli`, "after restart");
      return (await rowWith("after restart").count()) > 0;
    }, T);
  });

  await step("the app going away is shown, and the page reconnects", async () => {
    // Two tabs; each has its own subscriptions.
    const other = await browser.newPage();
    await other.goto(app.base + "/");
    await other.locator('#status[data-state="connected"]').waitFor({ timeout: T });
    mosquittoPub(`e2e/${run}/cli`, "only for the first tab");
    await rowWith("only for the first tab").first().waitFor({ timeout: T });
    await sleep(300);
    const leaked = await other.locator("#messages tbody tr").count();
    if (leaked) throw new Error("the second tab got the first tab's messages");
    await other.close();
  });

  await step("a token-protected app asks for the token", async () => {
    const secured = await startApp(
      ["--no-broker"],
      { MQTT_BROKER_URL: `mqtt://127.0.0.1:${mqttPort}`, APP_TOKEN: "e2e-secret" },
    );
    try {
      const p = await browser.newPage();
      await p.goto(secured.base + "/");
      await p.locator("#token-box").waitFor({ state: "visible", timeout: T });
      await p.fill("#token-input", "e2e-secret");
      await p.click("#token-form button");
      await p.locator('#status[data-state="connected"]').waitFor({ timeout: T });
      await p.close();
    } finally {
      await stop(secured);
    }
  });

  await step("no errors in the browser console", async () => {
    // The token page's probe answers 401 on purpose; Chromium logs that as a console error.
    const real = consoleErrors.filter((e) => !/401|Unauthorized/.test(e));
    if (real.length) throw new Error(real.join(" | "));
  });

  await step("the app exits cleanly on SIGTERM", async () => {
    const t0 = Date.now();
    await stop(app);
    if (app.exitCode !== 0) throw new Error(`exit code ${app.exitCode}\n${app.out.slice(-2000)}`);
    if (Date.now() - t0 > 5000) throw new Error("took more than 5 s");
  });
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) await stop(c, "SIGKILL");
  if (profile) rmSync(profile, { recursive: true, force: true });
  rmSync(mosqDir, { recursive: true, force: true });
  clearTimeout(killTimer);
}

if (failed) {
  for (const c of children) if (c.out) console.log(`--- output of ${c.spawnargs[0]} ---\n${c.out.slice(-3000)}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
