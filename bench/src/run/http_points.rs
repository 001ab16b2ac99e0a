//! Section 2, HTTP → MQTT publish: every server under test from one table, a closed-loop load point
//! for each QoS and concurrency, and a subscriber counting what was delivered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::ctx::{done_of, port_of, say, strings, Ctx};
use crate::broker::Broker;
use crate::http;
use crate::kid::Kid;
use crate::procinfo;
use crate::python::Flask;
use crate::results::{HttpPoint, Results, OURS_PY};

/// Concurrency of the load client (keep-alive connections), one point each.
pub const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Every HTTP server under test, in the order of its points for each QoS. report.rs picks table
/// rows and targets by the start of `name`.
const HTTP_SERVERS: [HttpServer; 7] = [
    HttpServer {
        name: "axum no-op (ceiling)",
        tag: "noop",
        start: Start::ServeHttp("noop"),
        qos: &[None],
    },
    // The reference a user would pick instead.
    HttpServer {
        name: "naive: axum Json + bare rumqttc, fire and forget",
        tag: "naive",
        start: Start::ServeHttp("naive"),
        qos: QOS_0_1,
    },
    // Our endpoint through the durable outbox: QoS 1 only, QoS 0 does not go through it
    // (nothing to confirm).
    HttpServer {
        name: "outbox: axum-mqtt PublishEndpoint, durable",
        tag: "outbox",
        start: Start::ServeHttp("outbox"),
        qos: &[Some(1)],
    },
    HttpServer {
        name: "axum-mqtt PublishEndpoint",
        tag: "publish",
        start: Start::ServeHttp("publish"),
        qos: QOS_0_1,
    },
    HttpServer {
        name: "rmqtt-embedded: axum-mqtt PublishEndpoint",
        tag: "publish on rmqtt",
        start: Start::ServeHttpOnRmqtt("publish"),
        qos: QOS_0_1,
    },
    HttpServer {
        name: "Flask-MQTT /publish (gunicorn 1×8)",
        tag: "Flask-MQTT",
        start: Start::FlaskMqtt,
        qos: QOS_0_1,
    },
    HttpServer {
        name: "flask_mqtt (Rust) /publish (gunicorn 2×8)",
        tag: OURS_PY,
        start: Start::FlaskRs,
        qos: QOS_0_1,
    },
];

const QOS_0_1: &[Option<u8>] = &[Some(0), Some(1)];

/// An HTTP server under test.
struct HttpServer {
    /// The endpoint column of table 2.
    name: &'static str,
    /// How progress lines and notes name it.
    tag: &'static str,
    start: Start,
    /// Its points' QoS; None: no MQTT and no counting subscriber (the no-op ceiling).
    qos: &'static [Option<u8>],
}

/// How a server under test is started.
enum Start {
    /// The child `serve-http --mode <mode>`, publishing to the deep-queue Mosquitto.
    ServeHttp(&'static str),
    /// The same, publishing to the embedded broker.
    ServeHttpOnRmqtt(&'static str),
    /// app.py on Flask-MQTT (gunicorn -w 1), started by the Python section for its floods too.
    FlaskMqtt,
    /// The same app.py on our package (gunicorn -w 2), started by the Python section.
    FlaskRs,
}

/// A server of the table, started.
pub struct Running<'a> {
    server: &'a HttpServer,
    port: u16,
    /// Its processes (gunicorn: every worker); its CPU is their sum.
    pids: Vec<u32>,
    /// Where it publishes (the no-op: the deep-queue Mosquitto, idle; its CPU is read all the same).
    broker: &'a Broker,
}

/// Section 2: starts the `serve-http` servers of the table, takes their points `ctx.runs` times.
pub async fn section(
    ctx: &Ctx,
    deep: &Broker,
    embedded: &Broker,
    res: &mut Results,
) -> Result<(), String> {
    let mut kids = Vec::new();
    for server in &HTTP_SERVERS {
        let (mode, broker, kid) = match server.start {
            Start::ServeHttp(mode) => (mode, deep, format!("serve-{mode}")),
            Start::ServeHttpOnRmqtt(mode) => (mode, embedded, format!("serve-{mode}-rmqtt")),
            Start::FlaskMqtt | Start::FlaskRs => continue,
        };
        // The no-op ignores --mqtt-port.
        let args = strings(&[
            "serve-http",
            "--mode",
            mode,
            "--mqtt-port",
            &broker.port.to_string(),
        ]);
        kids.push((server, broker, Kid::spawn(&kid, &args, &ctx.log)?));
    }
    let mut servers = Vec::new();
    for (server, broker, kid) in &mut kids {
        let port = port_of(&kid.event("ready", Duration::from_secs(15)).await?);
        servers.push(Running {
            server,
            port,
            pids: vec![kid.pid],
            broker,
        });
    }
    for rep in 0..ctx.runs {
        for c in CONCURRENCY {
            say(format!("http run {}: c={c}", rep + 1));
            http_round(ctx, c, &servers, None, res).await;
        }
    }
    for (_, _, kid) in kids {
        kid.finish().await;
    }
    Ok(())
}

/// The app.py servers of the table on the apps the Python section started (ours: when its venv
/// could be made), publishing to `broker`.
pub fn app_servers<'a>(
    flask_mqtt: &'a Flask,
    ours: Option<&'a Flask>,
    broker: &'a Broker,
) -> Vec<Running<'a>> {
    HTTP_SERVERS
        .iter()
        .filter_map(|server| {
            let app = match server.start {
                Start::FlaskMqtt => flask_mqtt,
                Start::FlaskRs => ours?,
                Start::ServeHttp(_) | Start::ServeHttpOnRmqtt(_) => return None,
            };
            Some(Running {
                server,
                port: app.port,
                pids: app.worker_pids.clone(),
                broker,
            })
        })
        .collect()
}

/// One point of each of `servers` at concurrency `c`, in `round_order`. A failed point becomes a
/// note. With `run`, each point is named on stderr (the Python section's points are interleaved
/// with its other runs).
pub async fn http_round(
    ctx: &Ctx,
    c: usize,
    servers: &[Running<'_>],
    run: Option<usize>,
    res: &mut Results,
) {
    let table: Vec<&HttpServer> = servers.iter().map(|s| s.server).collect();
    for (i, q) in round_order(&table) {
        let s = &servers[i];
        let qos = q.map(|q| format!(" QoS {q}")).unwrap_or_default();
        if let Some(run) = run {
            say(format!("http run {run}: {}{qos} c={c}", s.server.tag));
        }
        match http_point(ctx, s, q, c).await {
            Ok(p) => res.http.push(p),
            Err(e) => res
                .notes
                .push(format!("http {}{qos} c={c}: {e}", s.server.tag)),
        }
    }
}

/// The points of one round, as (index in `servers`, QoS): QoS by QoS, the servers in table order.
fn round_order(servers: &[&HttpServer]) -> Vec<(usize, Option<u8>)> {
    [None, Some(0u8), Some(1)]
        .into_iter()
        .flat_map(|q| {
            (0..servers.len())
                .filter(move |&i| servers[i].qos.contains(&q))
                .map(move |i| (i, q))
        })
        .collect()
}

/// One load point; with a QoS, a rumqttc subscriber counts the deliveries.
async fn http_point(
    ctx: &Ctx,
    server: &Running<'_>,
    q: Option<u8>,
    c: usize,
) -> Result<HttpPoint, String> {
    let topic = ctx.topic("http");
    let broker = server.broker;
    let mut sub = if q.is_some() {
        let args = vec![
            "recv".into(),
            "--kind".into(),
            "rumqttc".into(),
            "--port".into(),
            broker.port.to_string(),
            "--topic".into(),
            topic.clone(),
            "--qos".into(),
            "1".into(),
        ];
        let mut k = Kid::spawn("http-subscriber", &args, &ctx.log)?;
        k.event("ready", Duration::from_secs(15)).await?;
        Some(k)
    } else {
        None
    };
    let cpu = |pid: Option<u32>| pid.and_then(procinfo::cpu_seconds).unwrap_or(f64::NAN);
    let server_cpu = || server.pids.iter().map(|&p| cpu(Some(p))).sum::<f64>();
    let broker_pid = Some(broker.pid());
    let sub_pid = sub.as_ref().map(|k| k.pid);
    let me = Some(std::process::id());
    let (cpu0, b0, s0, m0) = (server_cpu(), cpu(broker_pid), cpu(sub_pid), cpu(me));
    let body = publish_body(topic, q.unwrap_or(0));
    let load = http::load(server.port, "/publish", c, ctx.http_secs, body).await?;
    let (cpu1, b1, s1, m1) = (server_cpu(), cpu(broker_pid), cpu(sub_pid), cpu(me));
    let hwm = server
        .pids
        .iter()
        .map(|&p| procinfo::vm_hwm_kib(p).unwrap_or(0))
        .sum();
    let delivered = match sub.as_mut() {
        Some(k) if load.ok > 0 => {
            k.send(&format!("expect {}", load.ok)).await;
            Some(done_of(&k.event("done", Duration::from_secs(120)).await?)?.received)
        }
        Some(_) => Some(0),
        None => None,
    };
    if let Some(k) = sub {
        k.finish().await;
    }
    Ok(HttpPoint {
        server: server.server.name.into(),
        qos: q,
        c,
        rps: load.rps(),
        p50_us: load.p50_us,
        p99_us: load.p99_us,
        ok: load.ok,
        failed: load.failed,
        delivered,
        server_cpu_s: cpu1 - cpu0,
        server_hwm_kib: hwm,
        broker_cpu_s: b1 - b0,
        sub_cpu_s: if sub_pid.is_some() { s1 - s0 } else { 0.0 },
        client_cpu_s: m1 - m0,
        first_error: load.first_error,
    })
}

/// The body of request `seq`: a JSON publish to `topic` at QoS `q`.
pub fn publish_body(topic: String, q: u8) -> impl Fn(u64) -> Bytes + Send + Sync + Clone + 'static {
    let topic = Arc::<str>::from(topic);
    move |seq| {
        Bytes::from(format!(
            r#"{{"topic":"{topic}","msg":"hello {seq}","qos":{q}}}"#
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order the per-server copies of the `http_point` call measured in, before the table.
    #[test]
    fn http_points_in_the_order_of_the_copies_they_replace() {
        let points = |python: bool| -> Vec<String> {
            let servers: Vec<&HttpServer> = HTTP_SERVERS
                .iter()
                .filter(|s| matches!(s.start, Start::FlaskMqtt | Start::FlaskRs) == python)
                .collect();
            round_order(&servers)
                .into_iter()
                .map(|(i, q)| format!("{} {q:?}", servers[i].tag))
                .collect()
        };
        let section_2 = [
            "noop None",
            "naive Some(0)",
            "publish Some(0)",
            "publish on rmqtt Some(0)",
            "naive Some(1)",
            "outbox Some(1)",
            "publish Some(1)",
            "publish on rmqtt Some(1)",
        ];
        assert_eq!(points(false), section_2);
        let python = [
            "Flask-MQTT Some(0)",
            "flask_mqtt (Rust) Some(0)",
            "Flask-MQTT Some(1)",
            "flask_mqtt (Rust) Some(1)",
        ];
        assert_eq!(points(true), python);
    }
}
