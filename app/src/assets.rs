//! The live page and its assets (`app/assets/`): embedded in the binary (no CDN: the machine may be
//! offline), or, with `--assets-dir <DIR>` (development), read from that directory on every request
//! so an edited script shows on the next reload without a rebuild. A file missing from the
//! directory is served from the embedded copy. Third-party files sit in `assets/vendor/` with
//! their licence (`vendor/LICENSE`, uPlot's, MIT), served at `/assets/vendor/{name}`.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum_mqtt::web::ApiError;

/// Every file of `app/assets/` the page loads; a test
/// checks that none is missing and that every module import is here.
// The widgets, one module each: topics.js (the model), tree.js, chart.js (uPlot), messages.js,
// detail.js.
const EMBEDDED: &[(&str, &str)] = &[
    ("index.html", include_str!("../assets/index.html")),
    ("style.css", include_str!("../assets/style.css")),
    ("app.js", include_str!("../assets/app.js")),
    ("protocol.js", include_str!("../assets/protocol.js")),
    ("transport.js", include_str!("../assets/transport.js")),
    ("dom.js", include_str!("../assets/dom.js")),
    ("notice.js", include_str!("../assets/notice.js")),
    ("status.js", include_str!("../assets/status.js")),
    ("token.js", include_str!("../assets/token.js")),
    ("publish.js", include_str!("../assets/publish.js")),
    (
        "subscriptions.js",
        include_str!("../assets/subscriptions.js"),
    ),
    ("topics.js", include_str!("../assets/topics.js")),
    ("messages.js", include_str!("../assets/messages.js")),
    ("json.js", include_str!("../assets/json.js")),
    ("tree.js", include_str!("../assets/tree.js")),
    ("detail.js", include_str!("../assets/detail.js")),
    ("chart.js", include_str!("../assets/chart.js")),
    (
        "vendor/uPlot.esm.js",
        include_str!("../assets/vendor/uPlot.esm.js"),
    ),
    (
        "vendor/uPlot.min.css",
        include_str!("../assets/vendor/uPlot.min.css"),
    ),
];

/// Files of `app/assets/` that are not served (the licence of the vendored code).
#[cfg(test)]
const NOT_SERVED: &[&str] = &["vendor/LICENSE"];

/// The directory of third-party files, under `/assets/`.
const VENDOR: &str = "vendor";

/// The page, served at `/` only.
const INDEX: &str = "index.html";

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'";

/// Where the page comes from.
#[derive(Debug, Clone, Default)]
pub struct Assets {
    /// `--assets-dir`: read from here first.
    dir: Option<Arc<std::path::Path>>,
}

impl Assets {
    /// The copy embedded in the binary, or `dir` first when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Assets {
            dir: dir.map(Arc::from),
        }
    }

    /// The file's bytes, from the directory when it has it, else the embedded copy.
    async fn load(&self, name: &str) -> Option<Vec<u8>> {
        if let Some(dir) = &self.dir {
            let path = dir.join(name);
            match tokio::fs::read(&path).await {
                Ok(bytes) => return Some(bytes),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read an asset; serving the embedded copy")
                }
            }
        }
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, body)| body.as_bytes().to_vec())
    }
}

/// The content type of an asset, by extension; `None` for names the page never loads (dots first,
/// slashes, other types), so `--assets-dir` serves nothing outside its directory.
fn content_type(name: &str) -> Option<&'static str> {
    let safe = !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !safe {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "html" => Some("text/html; charset=utf-8"),
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        _ => None,
    }
}

/// The same answer as any other unknown path.
fn not_found(uri: &Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for GET {}", uri.path()),
    )
    .into_response()
}

async fn serve(assets: &Assets, name: &str, uri: &Uri) -> Response {
    let file_name = name.strip_prefix("vendor/").unwrap_or(name);
    let found = match content_type(file_name) {
        Some(ct) => assets.load(name).await.map(|body| (ct, body)),
        None => None,
    };
    let Some((content_type, body)) = found else {
        return not_found(uri);
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    if name == INDEX {
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    r
}

/// `GET /`: the page.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "page",
    summary = "The live page (publish, subscribe, live messages, chart)",
    responses((status = 200, description = "HTML.", content_type = "text/html", body = String))
)]
pub async fn index(State(assets): State<Assets>, uri: Uri) -> Response {
    serve(&assets, INDEX, &uri).await
}

/// `GET /assets/{name}`: the page's scripts and style sheet.
pub async fn file(State(assets): State<Assets>, Path(name): Path<String>, uri: Uri) -> Response {
    if name == INDEX {
        return not_found(&uri);
    }
    serve(&assets, &name, &uri).await
}

/// `GET /assets/vendor/{name}`: the vendored third-party files (uPlot).
pub async fn vendor_file(
    State(assets): State<Assets>,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
    // `name` is one safe segment (checked by `content_type` before the prefix is added).
    if content_type(&name).is_none() {
        return not_found(&uri);
    }
    serve(&assets, &format!("{VENDOR}/{name}"), &uri).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
    }

    /// The files of `assets/` and `assets/vendor/`, as `name` and `vendor/name`.
    fn files_on_disk() -> Vec<String> {
        let mut names = Vec::new();
        for (sub, prefix) in [(dir(), ""), (dir().join(VENDOR), "vendor/")] {
            for e in std::fs::read_dir(sub).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    names.push(format!("{prefix}{}", e.file_name().into_string().unwrap()));
                }
            }
        }
        names
    }

    #[test]
    fn every_file_of_the_page_is_embedded_as_it_is_on_disk() {
        let mut on_disk: Vec<String> = files_on_disk()
            .into_iter()
            .filter(|n| !NOT_SERVED.contains(&n.as_str()))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "add new files of app/assets to EMBEDDED");
        assert!(
            files_on_disk().contains(&"vendor/LICENSE".to_string()),
            "the vendored code keeps its licence beside it"
        );
        for (name, body) in EMBEDDED {
            let file_name = name.strip_prefix("vendor/").unwrap_or(name);
            assert!(content_type(file_name).is_some(), "{name}");
            assert_eq!(std::fs::read_to_string(dir().join(name)).unwrap(), *body);
        }
    }

    #[test]
    fn every_module_import_is_embedded() {
        for (name, body) in EMBEDDED.iter().filter(|(n, _)| n.ends_with(".js")) {
            for part in body.split("from \"./").skip(1) {
                let target = part.split('"').next().unwrap();
                assert!(
                    EMBEDDED.iter().any(|(n, _)| *n == target),
                    "{name} imports {target}, which is not embedded"
                );
            }
        }
    }

    #[test]
    fn names_outside_the_directory_are_refused() {
        for bad in [
            "../secret.js",
            "a/b.js",
            ".hidden.js",
            "x.rs",
            "noext",
            "%2e%2e.js",
        ] {
            assert_eq!(content_type(bad), None, "{bad}");
        }
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
    }
}
