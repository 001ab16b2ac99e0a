// End-to-end test of the live page in real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core; no browser download).
//
//   node app/e2e/e2e.mjs target/debug/axum-mqtt-app
//
// Starts its own Mosquitto on a free port and the app with --no-broker + MQTT_BROKER_URL pointing
// there (MQTT 5, so message properties reach the page), so it can stop and restart the broker.
// Prints `N passed, M failed`; exits 1 on failure. Saves screenshots at 1280×800 and 390×844 to
// app/e2e/out/ (ignored by git); with E2E_UPDATE_SCREENSHOTS=1 to app/e2e/screenshots/ (committed,
// for the README: look at them before committing).

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
function mosquittoPub(topic, msg, extra = []) {
  execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(mqttPort), "-t", topic, "-m", msg, "-q", "1", ...extra]);
}
// An MQTT 5 publish with properties: [["user-property", "k", "v"], ["content-type", "text/plain"], …].
function mosquittoPub5(topic, msg, props) {
  mosquittoPub(topic, msg, ["-V", "mqttv5", ...props.flatMap((p) => ["-D", "publish", ...p])]);
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
  const app = await startApp(["--no-broker"], { MQTT_BROKER_URL: `mqtt://127.0.0.1:${mqttPort}`, MQTT_PROTOCOL: "5" });

  profile = mkdtempSync(join(tmpdir(), "e2e-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  const run = Math.random().toString(36).slice(2, 8);
  const filter = `e2e/${run}/#`;
  const rowWith = (text) => page.locator("#messages tbody tr", { hasText: text });
  const node = (topic) => page.locator(`#tree .node[data-topic="${topic}"]`);
  const visibleRows = () => page.locator("#messages tbody tr:not([hidden])").count();

  await step("the page loads and shows MQTT connected, with the broker and protocol", async () => {
    await page.goto(app.base + "/");
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: T });
    const text = await page.locator("#status-text").textContent();
    if (!/MQTT connected/.test(text)) throw new Error(`status text: ${text}`);
    if (!text.includes(`127.0.0.1:${mqttPort}`) || !/MQTT 5\b/.test(text)) throw new Error(`no broker / protocol: ${text}`);
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
    const row = node(`e2e/${run}/temperature`);
    await row.waitFor({ timeout: T });
    // The tree refreshes every second.
    await waitFor("a count of 6", async () => (await row.locator(".count").textContent()) === "6");
    const rate = parseFloat(await row.locator(".rate").textContent());
    if (!(rate > 0)) throw new Error(`rate ${rate}`);
    await page.locator(`#legend button[data-series="e2e/${run}/temperature"][aria-pressed="true"]`).waitFor({ timeout: T });
    // uPlot's canvas has drawn pixels in the first series' colour (#2563eb).
    const coloured = await page.evaluate(() => {
      const c = document.querySelector("#chart canvas");
      if (!c) return -1;
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

  await step("each numeric field of a JSON payload is a chart series; the payload is pretty-printed", async () => {
    const hum = `e2e/${run}/hall/hum`;
    for (const [rh, c] of [[45, 21.5], [47, 21.75], [44, 22]]) mosquittoPub(hum, JSON.stringify({ rh, t: { c }, name: "hall" }));
    await rowWith('"rh":44').first().waitFor({ timeout: T });
    for (const series of [`${hum} rh`, `${hum} t.c`]) {
      await page.locator(`#legend button[data-series="${series}"][aria-pressed="true"]`).waitFor({ timeout: T });
    }
    if (await page.locator(`#legend button[data-series="${hum} name"]`).count()) throw new Error("a text field became a series");
    // uPlot has a series per shown name (the x series first).
    await waitFor("uPlot to draw the JSON series", () => page.evaluate((n) => {
      const labels = [...document.querySelectorAll("#legend button[aria-pressed=true]")].map((b) => b.dataset.series);
      return labels.includes(n) && document.querySelector("#chart .uplot canvas") !== null;
    }, `${hum} rh`));
    // Hiding a series from the legend (a button: keyboard works).
    const b = page.locator(`#legend button[data-series="${hum} t.c"]`);
    await b.focus();
    await page.keyboard.press("Enter");
    await page.locator(`#legend button[data-series="${hum} t.c"][aria-pressed="false"]`).waitFor({ timeout: T });
    await b.click();
    await page.locator(`#legend button[data-series="${hum} t.c"][aria-pressed="true"]`).waitFor({ timeout: T });
    // Opening the message shows its payload indented.
    await rowWith('"rh":44').first().click();
    const pre = await page.locator("#detail-payload").textContent();
    if (!pre.includes('\n  "rh": 44,') || !pre.includes('\n    "c": 22')) throw new Error(`not pretty-printed: ${pre}`);
  });

  await step("the topic tree shows a published topic with its count; opening it shows its history", async () => {
    const topic = `e2e/${run}/tree/leaf`;
    for (let i = 1; i <= 3; i++) mosquittoPub(topic, `leaf ${i}`);
    await rowWith("leaf 3").first().waitFor({ timeout: T });
    const leaf = node(topic);
    await leaf.waitFor({ timeout: T });
    await waitFor("a count of 3", async () => (await leaf.locator(".count").textContent()) === "3");
    if ((await leaf.locator(".last").textContent()) !== "leaf 3") throw new Error("last value");
    // Folders count their subtree and fold.
    const folder = node(`e2e/${run}/tree`);
    if ((await folder.getAttribute("aria-expanded")) !== "true") throw new Error("folder not expanded");
    if ((await folder.locator(".count").textContent()) !== "3") throw new Error("folder count");
    await leaf.click();
    await page.locator("#history-topic", { hasText: topic }).waitFor({ timeout: T });
    const entries = await page.locator("#history li").allTextContents();
    if (entries.length !== 3 || !entries[0].includes("leaf 3") || !entries[2].includes("leaf 1")) throw new Error(`history: ${entries}`);
    // The history follows new messages.
    mosquittoPub(topic, "leaf 4");
    await page.locator("#history li", { hasText: "leaf 4" }).waitFor({ timeout: T });
    // Keyboard: focus a folder, Enter folds it, Space unfolds it; Enter on a leaf opens it.
    await folder.focus();
    await page.keyboard.press("Enter");
    await waitFor("the folder to fold", async () => (await folder.getAttribute("aria-expanded")) === "false" && !(await leaf.isVisible()));
    await page.keyboard.press(" ");
    await waitFor("the folder to unfold", async () => (await folder.getAttribute("aria-expanded")) === "true" && (await leaf.isVisible()));
    await node(`e2e/${run}/temperature`).focus();
    await page.keyboard.press("Enter");
    await page.locator("#history-topic", { hasText: `e2e/${run}/temperature` }).waitFor({ timeout: T });
  });

  await step("the detail view shows QoS, retain and the MQTT 5 properties of a message", async () => {
    mosquittoPub5(`e2e/${run}/props`, "with properties", [
      ["user-property", "source", "mosquitto_pub"], ["user-property", "k", "v"],
      ["content-type", "text/plain"], ["response-topic", `e2e/${run}/reply`],
      ["correlation-data", "req-42"], ["message-expiry-interval", "120"],
    ]);
    const row = rowWith("with properties").first();
    await row.waitFor({ timeout: T });
    if ((await row.locator("td.props").textContent()) !== "2 user") throw new Error("props column");
    await row.focus();
    await page.keyboard.press("Enter");
    await page.locator("#user-props tbody tr", { hasText: "mosquitto_pub" }).waitFor({ timeout: T });
    const props = await page.locator("#user-props tbody tr").allTextContents();
    if (props.join("|") !== "sourcemosquitto_pub|kv") throw new Error(`user properties: ${props}`);
    const field = (f) => page.locator(`#detail-fields dd[data-field="${f}"]`).textContent();
    if ((await field("content-type")) !== "text/plain") throw new Error("content type");
    if ((await field("response-topic")) !== `e2e/${run}/reply`) throw new Error("response topic");
    if ((await field("correlation-data")) !== "req-42") throw new Error("correlation data");
    if (!/^1\d\d s$/.test(await field("message-expiry"))) throw new Error(`expiry ${await field("message-expiry")}`);
    if (!(await field("qos")).startsWith("1")) throw new Error(`qos ${await field("qos")}`);
    if ((await field("retain")) !== "no") throw new Error("retain");
    // Retained, at QoS 0 as delivered to a QoS 1 subscription.
    mosquittoPub(`e2e/${run}/kept`, "retained one", ["-r", "-q", "0"]);
    await rowWith("retained one").first().click();
    if (!(await field("qos")).startsWith("0")) throw new Error(`qos ${await field("qos")}`);
    // A new subscription gets it from the broker as retained.
    const kept = `e2e/${run}/kept`;
    await page.fill("#sub-filter", kept);
    await page.click("#sub-btn");
    await page.locator(`#subs li[data-filter="${kept}"][data-active="true"]`).waitFor({ timeout: T });
    const retained = page.locator("#messages tbody tr", { hasText: "retained one" }).filter({ has: page.locator("td.retain", { hasText: "yes" }) });
    await retained.first().click();
    if (!(await field("retain")).startsWith("yes")) throw new Error(`retain ${await field("retain")}`);
    await page.click(`#subs li[data-filter="${kept}"] button.unsub`);
    await page.locator(`#subs li[data-filter="${kept}"]`).waitFor({ state: "detached", timeout: T });
  });

  await step("the publish form adds user properties", async () => {
    await page.fill("#pub-topic", `e2e/${run}/formprops`);
    await page.fill("#pub-payload", "from the form with props");
    await page.click("#pub-add-prop");
    await page.fill("#pub-props .prop:nth-child(1) .prop-key", "origin");
    await page.fill("#pub-props .prop:nth-child(1) .prop-value", "page");
    await page.click("#pub-btn");
    const row = rowWith("from the form with props").first();
    await row.waitFor({ timeout: T });
    await row.click();
    await page.locator("#user-props tbody tr", { hasText: "origin" }).waitFor({ timeout: T });
    await page.click("#pub-props .prop button");
  });

  await step("payloads are shown as text, never as markup", async () => {
    const evil = '<img src=x onerror="window.__xss=1"><b>bold</b>';
    mosquittoPub(`e2e/${run}/evil`, evil);
    const row = rowWith("<img src=x").first();
    await row.waitFor({ timeout: T });
    await row.click();
    await node(`e2e/${run}/evil`).click();
    await sleep(200);
    const bad = await page.evaluate(() => window.__xss || document.querySelectorAll("main img, main b").length);
    if (bad) throw new Error("a payload was rendered as HTML");
    if ((await page.locator("#detail-payload").textContent()) !== evil) throw new Error("payload text changed");
  });

  await step("copy payload puts it on the clipboard", async () => {
    await browser.grantPermissions(["clipboard-read", "clipboard-write"], { origin: app.base });
    await rowWith("with properties").first().click();
    await page.click("#copy");
    await page.locator("#copy", { hasText: "Copied" }).waitFor({ timeout: T });
    const text = await page.evaluate(() => navigator.clipboard.readText());
    if (text !== "with properties") throw new Error(`clipboard: ${text}`);
  });

  await step("pause stops the table from growing; resume adds what arrived", async () => {
    const before = await page.locator("#messages tbody tr").count();
    await page.click("#pause");
    if ((await page.locator("#pause").getAttribute("aria-pressed")) !== "true") throw new Error("not pressed");
    const topic = `e2e/${run}/paused`;
    for (let i = 1; i <= 3; i++) mosquittoPub(topic, `while paused ${i}`);
    // They arrive (the tree counts them) but the table stays.
    await waitFor("the paused messages to arrive", async () =>
      (await node(topic).count()) && (await node(topic).locator(".count").textContent()) === "3");
    await page.locator("#paused-note", { hasText: "3 waiting" }).waitFor({ timeout: T });
    if ((await page.locator("#messages tbody tr").count()) !== before) throw new Error("the table grew while paused");
    if (await rowWith("while paused").count()) throw new Error("a paused message is in the table");
    await page.click("#pause");
    await rowWith("while paused 3").first().waitFor({ timeout: T });
    if ((await page.locator("#messages tbody tr").count()) !== before + 3) throw new Error("resume did not add 3 rows");
    const first = await page.locator("#messages tbody tr").first().locator("td.payload").textContent();
    if (first !== "while paused 3") throw new Error(`newest first after resume: ${first}`);
    mosquittoPub(topic, "after resume");
    await rowWith("after resume").first().waitFor({ timeout: T });
  });

  await step("the filter narrows the message table", async () => {
    const all = await visibleRows();
    try {
    await page.fill("#msg-filter", "WHILE PAUSED");
    await waitFor("3 matching rows", async () => (await visibleRows()) === 3);
    await page.fill("#msg-filter", `e2e/${run}/tree/`);
    await waitFor("4 rows on the tree topic", async () => (await visibleRows()) === 4);
    // New messages follow the filter too.
    mosquittoPub(`e2e/${run}/tree/leaf`, "leaf 5");
    mosquittoPub(`e2e/${run}/other`, "not matching");
    await rowWith("not matching").first().waitFor({ state: "attached", timeout: T });
    await waitFor("5 rows on the tree topic", async () => (await visibleRows()) === 5);
    } finally {
      await page.fill("#msg-filter", "");
    }
    await waitFor("every row again", async () => (await visibleRows()) === all + 2);
  });

  const shots = join(here, process.env.E2E_UPDATE_SCREENSHOTS === "1" ? "screenshots" : "out");
  mkdirSync(shots, { recursive: true });
  await step("screenshots at 1280×800 and 390×844", async () => {
    // The message with MQTT 5 properties in the detail view.
    await node(`e2e/${run}/props`).click();
    await page.locator("#copy", { hasText: "Copy payload" }).waitFor({ timeout: T });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, "desktop-1280x800.png") });
    await page.locator("#tree-card").scrollIntoViewIfNeeded();
    await page.evaluate(() => document.getElementById("tree-card").scrollIntoView());
    await page.screenshot({ path: join(shots, "desktop-tree-detail-1280x800.png") });
    await page.evaluate(() => document.getElementById("chart-card").scrollIntoView());
    await page.screenshot({ path: join(shots, "desktop-chart-messages-1280x800.png") });
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300); // uPlot follows the new width
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, "phone-390x844.png") });
    await page.evaluate(() => document.getElementById("tree-card").scrollIntoView());
    await page.screenshot({ path: join(shots, "phone-tree-390x844.png") });
    await page.evaluate(() => document.getElementById("detail-card").scrollIntoView());
    await page.screenshot({ path: join(shots, "phone-detail-390x844.png") });
    await page.evaluate(() => document.getElementById("chart-card").scrollIntoView());
    await page.screenshot({ path: join(shots, "phone-chart-390x844.png") });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the page is ${overflow} px wider than a phone`);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step("clear empties the table, the tree, the chart and the detail view", async () => {
    await page.click("#clear");
    await waitFor("an empty page", async () => (await page.locator("#messages tbody tr").count()) === 0
      && (await page.locator("#tree .node").count()) === 0
      && (await page.locator("#legend button").count()) === 0
      && !(await page.locator("#detail").isVisible()));
    mosquittoPub(`e2e/${run}/cli`, "after clear");
    await rowWith("after clear").first().waitFor({ timeout: T });
    await node(`e2e/${run}/cli`).waitFor({ timeout: T });
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
