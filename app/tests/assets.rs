//! The page's files over real HTTP: embedded by default, and with `--assets-dir <DIR>` read from
//! that directory on every request (so a change shows on the next reload, without a restart), with
//! the embedded copy for files the directory lacks and nothing served from outside it.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn fetch(app: &App, path: &str) -> (u16, String, String) {
    let r = reqwest::get(app.url(path)).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_dir_serves_the_page_from_disk_on_every_request() {
    let dir = TempDir::new("assets-dir");
    dir.write(
        "index.html",
        "<!doctype html><title>changed page, first edit</title>",
    );
    // A secret beside the directory must not be reachable through it.
    let outside = TempDir::new("assets-outside");
    outside.write("secret.js", "secret");
    let app = App::start(&["--assets-dir", dir.arg()], &[]).await;
    assert!(
        app.stdout().iter().any(|l| l.contains("--assets-dir")),
        "the banner says where the page comes from:\n{}",
        app.output()
    );

    let r = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(r.text().await.unwrap().contains("first edit"));

    // Changed on disk: the next request sees it, with no restart.
    dir.write(
        "index.html",
        "<!doctype html><title>changed page, second edit</title>",
    );
    let (status, ct, body) = fetch(&app, "/").await;
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("second edit"), "{body}");

    // A file the directory lacks comes from the embedded copy; one it has, from disk.
    let (status, ct, embedded) = fetch(&app, "/assets/protocol.js").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(embedded.contains("export const Frame"), "{embedded}");
    dir.write("protocol.js", "export const Frame = {}; // edited");
    let (_, _, edited) = fetch(&app, "/assets/protocol.js").await;
    assert!(edited.contains("// edited"), "{edited}");

    // Nothing outside the directory, and no index at /assets/.
    let escape = format!(
        "/assets/..%2F{}%2Fsecret.js",
        outside.0.file_name().unwrap().to_str().unwrap()
    );
    for path in [escape.as_str(), "/assets/index.html", "/assets/nope.js"] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["kind"], "not_found", "{path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_page_loads_its_modules() {
    let app = App::start(&[], &[]).await;
    let (status, _, html) = fetch(&app, "/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<script type="module" src="/assets/app.js">"#),
        "{html}"
    );
    // Every module the entry imports, and theirs, is served as JavaScript.
    let mut todo = vec!["app.js".to_string()];
    let mut seen = Vec::new();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let (status, ct, body) = fetch(&app, &format!("/assets/{name}")).await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "text/javascript; charset=utf-8"),
            "{name}"
        );
        for part in body.split("from \"./").skip(1) {
            todo.push(part.split('"').next().unwrap().to_string());
        }
        seen.push(name);
    }
    assert!(seen.len() >= 8, "{seen:?}");
    let (status, ct, _) = fetch(&app, "/assets/style.css").await;
    assert_eq!((status, ct.as_str()), (200, "text/css; charset=utf-8"));
}

#[test]
fn a_missing_assets_dir_exits_2_naming_the_option() {
    let mut cmd = command();
    cmd.args([
        "--assets-dir",
        "/nonexistent/axum-mqtt-assets",
        "--http",
        "127.0.0.1:0",
    ]);
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--assets-dir"), "{err}");
}
