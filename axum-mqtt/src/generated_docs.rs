//! Tests that a documentation file generated from code (`src/docs/*.md`) is current.

/// Compares `src/docs/<name>` with `want`; with `UPDATE_DOCS=1` it rewrites the file first.
pub(crate) fn assert_current(name: &str, want: &str) {
    let path = format!("{}/src/docs/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        have, want,
        "src/docs/{name} is stale: rerun with UPDATE_DOCS=1 cargo test -p axum-mqtt --lib"
    );
}
