// Validates AsyncAPI documents with the official parser (@asyncapi/parser, its spectral rules):
//
//   node app/e2e/asyncapi-validate.mjs target/debug/axum-mqtt-app [more.json ...]
//
// Starts the app (its own embedded broker, every port chosen by the kernel: port 0, read back from
// the banner) with routes that use every kind of wildcard, fetches GET /asyncapi.json, and
// validates it; then validates each further file given (e.g. the document of a router with
// `route_json` payloads that axum-mqtt/tests/asyncapi.rs writes). Prints every diagnostic; exits 1
// on any of error severity, or when a document cannot be had.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const [appBin, ...files] = process.argv.slice(2);
if (!appBin) {
  console.error("usage: asyncapi-validate.mjs <axum-mqtt-app binary> [document.json ...]");
  process.exit(2);
}
const WAIT_MS = 20000;
const SUBSCRIBE = "sensors/{device}/temperature,logs/{*rest},alerts/+,all/#";

/** Starts the app and resolves with its web address once the banner shows it. */
function startApp() {
  const any = "127.0.0.1:0";
  const child = spawn(
    resolve(appBin),
    ["--http", any, "--broker-listen", any, "--broker-ws", any, "--subscribe", SUBSCRIBE],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const address = new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no web address within ${WAIT_MS} ms:\n${out}`)), WAIT_MS);
    const look = (d) => {
      out += d;
      const m = out.match(/Web page:\s+(http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    child.stdout.on("data", look);
    child.stderr.on("data", (d) => { out += d; });
    child.once("exit", (code) => { clearTimeout(timer); rej(new Error(`the app exited with ${code}:\n${out}`)); });
  });
  return { child, address };
}

const parser = new Parser();
let errors = 0;

async function validate(name, text) {
  const diagnostics = await parser.validate(text);
  for (const d of diagnostics) {
    const level = DiagnosticSeverity[d.severity] ?? d.severity;
    console.log(`${name}: ${level} ${d.code} at /${d.path.join("/")}: ${d.message}`);
  }
  const bad = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).length;
  errors += bad;
  console.log(`${bad ? "FAIL" : "ok  "} ${name}: ${diagnostics.length} diagnostics, ${bad} errors`);
}

const app = startApp();
try {
  const base = await app.address;
  const res = await fetch(`${base}/asyncapi.json`, { signal: AbortSignal.timeout(WAIT_MS) });
  if (res.status !== 200) throw new Error(`GET /asyncapi.json answered ${res.status}`);
  const text = await res.text();
  const channels = Object.keys(JSON.parse(text).channels ?? {});
  if (channels.length !== SUBSCRIBE.split(",").length) {
    throw new Error(`expected one channel per --subscribe filter, got ${channels.join(", ")}`);
  }
  await validate("GET /asyncapi.json", text);
  for (const f of files) await validate(f, readFileSync(f, "utf8"));
} catch (e) {
  console.log(`FAIL ${e.message}`);
  errors++;
} finally {
  app.child.kill("SIGTERM");
}
process.exit(errors ? 1 : 0);
