//! The Python section: Flask-MQTT's app.py and the same app.py on our package, side by side in
//! every run: their floods, their POST /publish points, their latency, publish() CPU.

use std::path::Path;

use super::ctx::{say, Ctx};
use super::http_points::{app_servers, http_round, CONCURRENCY};
use super::inbound::{self, LARGE, SMALL};
use super::latency;
use crate::broker::Broker;
use crate::python::{self, Flask, Spec};
use crate::results::{Results, OURS_PY};

/// Flask-MQTT's app, and the same app.py on our package (`OURS_PY`) beside it in every run.
/// Returns the versions of both venvs (ours: None when its venv could not be made).
pub async fn section(
    ctx: &Ctx,
    python_dir: &Path,
    package_dir: &Path,
    defaults: &Broker,
    deep: &Broker,
    res: &mut Results,
) -> Result<(String, Option<String>), String> {
    let venv = python::ensure_venv(&ctx.out, python_dir).await?;
    let versions = python::versions(&venv, "'Flask', 'Flask-MQTT', 'paho-mqtt', 'gunicorn'").await;
    say(format!("Flask-MQTT: {versions}"));
    let venv_rs = match python::ensure_venv_rs(&ctx.out, python_dir, package_dir).await {
        Ok(v) => Some(v),
        Err(e) => {
            res.notes.push(format!("{OURS_PY} not measured: {e}"));
            None
        }
    };
    let mut versions_rs = None;
    if let Some(v) = &venv_rs {
        let s = python::versions(v, "'Flask', 'flask-mqtt-rs', 'gunicorn'").await;
        say(format!("{OURS_PY}: {s}"));
        versions_rs = Some(s);
    }
    let flask_log = ctx.out.join("flask.log");
    let rs_log = ctx.out.join("flask-rs.log");
    let paho = Spec {
        venv: &venv,
        workers: 1,
        root: "bench",
    };
    for (broker, qs) in [(defaults, vec![0u8]), (deep, vec![1u8])] {
        let is_deep = broker.port == deep.port;
        let flask = Flask::start(paho, python_dir, broker.port, &flask_log).await?;
        // Ours beside it, on its own topic root: one worker for the floods (as Flask-MQTT) and,
        // for POST /publish, two (only they publish; neither gets a message there).
        let mut ours = None;
        let mut ours2 = None;
        if let Some(v) = &venv_rs {
            for (workers, root) in [(1, "bench-rs"), (2, "bench-rs2")] {
                if workers == 2 && !is_deep {
                    continue;
                }
                let spec = Spec {
                    venv: v,
                    workers,
                    root,
                };
                match Flask::start(spec, python_dir, broker.port, &rs_log).await {
                    Ok(f) if workers == 1 => ours = Some(f),
                    Ok(f) => ours2 = Some(f),
                    Err(e) => res.notes.push(format!(
                        "{OURS_PY} (gunicorn -w {workers}) did not start: {e}"
                    )),
                }
            }
        }
        for rep in 0..ctx.runs {
            for &q in &qs {
                for size in [SMALL, LARGE] {
                    say(format!(
                        "inbound run {}: Flask-MQTT QoS {q} {size} B",
                        rep + 1
                    ));
                    match inbound::flask(ctx, &flask, "Flask-MQTT", broker, q, size).await {
                        Ok(s) => res.inbound.push(s),
                        Err(e) => res
                            .notes
                            .push(format!("inbound Flask-MQTT QoS {q} {size} B: {e}")),
                    }
                    if let Some(o) = ours.as_ref().filter(|_| size == SMALL) {
                        say(format!(
                            "inbound run {}: {OURS_PY} QoS {q} {size} B",
                            rep + 1
                        ));
                        match inbound::flask(ctx, o, OURS_PY, broker, q, size).await {
                            Ok(s) => res.inbound.push(s),
                            Err(e) => res
                                .notes
                                .push(format!("inbound {OURS_PY} QoS {q} {size} B: {e}")),
                        }
                    }
                }
            }
            if is_deep {
                let servers = app_servers(&flask, ours2.as_ref(), deep);
                for c in CONCURRENCY {
                    http_round(ctx, c, &servers, Some(rep + 1), res).await;
                }
                say(format!("latency run {}: Flask-MQTT", rep + 1));
                match latency::flask(ctx, &flask, broker).await {
                    Ok(l) => res.latency.push(l),
                    Err(e) => res.notes.push(format!("latency Flask-MQTT: {e}")),
                }
                // publish() from Python, one process per client (the apps are idle meanwhile).
                let venvs = [("Flask-MQTT", Some(&venv)), (OURS_PY, venv_rs.as_ref())];
                for (client, v) in venvs {
                    let Some(v) = v else { continue };
                    say(format!("publish() CPU run {}: {client}", rep + 1));
                    let topic = ctx.topic("pubcpu");
                    match python::publish_cpu(v, python_dir, broker.port, &topic, &ctx.log).await {
                        Ok(mut p) => {
                            p.client = client.into();
                            res.publish_cpu.push(p)
                        }
                        Err(e) => res.notes.push(format!("publish() CPU {client}: {e}")),
                    }
                }
            }
        }
        flask.stop().await;
        for f in [ours, ours2].into_iter().flatten() {
            f.stop().await;
        }
    }
    Ok((versions, versions_rs))
}
