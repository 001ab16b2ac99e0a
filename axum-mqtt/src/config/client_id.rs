//! `CLIENT_ID` templates: `web-{hostname}-{pid}`, `worker-{random}`.
//!
//! A template is checked when the configuration is validated and expanded once per client, when
//! [`MqttBuilder::start`](crate::MqttBuilder::start) runs: every reconnect of that client uses the
//! same id, and two clients started from one config with `{random}` get two ids. The expansion is a
//! pure function of the template and the values it is given, so every case is a unit test.

/// The placeholders a template may hold, each with what it becomes.
pub(crate) const PLACEHOLDERS: &[&str] = &["hostname", "pid", "random"];

/// One piece of a template: text to copy, or a placeholder to fill.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template into pieces; the error says what is wrong (an unknown placeholder, a brace
/// without its partner).
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (None, None) => {
                out.push(Piece::Text(rest));
                break;
            }
            (Some(o), Some(c)) if o < c => {
                let name = &rest[o + 1..c];
                if name.contains('{') {
                    return Err("a `{` inside a placeholder (braces do not nest)".into());
                }
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`: expected `{{hostname}}`, `{{pid}}` or `{{random}}`"
                    ));
                }
                if o > 0 {
                    out.push(Piece::Text(&rest[..o]));
                }
                out.push(Piece::Placeholder(name));
                rest = &rest[c + 1..];
            }
            (_, Some(_)) => {
                return Err("a `}` without its `{` (braces only enclose a placeholder)".into());
            }
            (Some(_), None) => {
                return Err("a `{` without its `}` (braces only enclose a placeholder)".into());
            }
        }
    }
    Ok(out)
}

/// Checks a template without expanding it.
pub(crate) fn check(template: &str) -> Result<(), String> {
    pieces(template).map(|_| ())
}

/// True when the template holds `{random}` (a new id on every start).
pub(crate) fn is_random(template: &str) -> bool {
    pieces(template).is_ok_and(|p| p.contains(&Piece::Placeholder("random")))
}

/// The values placeholders are replaced with.
pub(crate) struct Values<'a> {
    pub hostname: &'a str,
    pub pid: u32,
    /// Eight lowercase hex digits; the same wherever `{random}` appears in one id.
    pub random: &'a str,
}

/// Replaces every placeholder of `template` with its value.
pub(crate) fn expand(template: &str, v: &Values<'_>) -> Result<String, String> {
    let mut id = String::with_capacity(template.len() + 16);
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => id.push_str(t),
            Piece::Placeholder("hostname") => id.push_str(v.hostname),
            Piece::Placeholder("pid") => id.push_str(&v.pid.to_string()),
            Piece::Placeholder(_) => id.push_str(v.random),
        }
    }
    Ok(id)
}

/// Random bits that differ between processes forked from one parent (gunicorn workers): fastrand's
/// per-thread state is copied by `fork`, so two children would draw the same numbers and so the same
/// client id; the pid and the clock tell them apart.
pub(crate) fn process_random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = fastrand::u64(..) ^ (u64::from(std::process::id()) << 32) ^ nanos;
    fastrand::Rng::with_seed(seed).u64(..)
}

/// The values of this process now: its host name (from the OS, through `gethostname`), its id,
/// and a fresh random part.
pub(crate) fn expand_here(template: &str) -> Result<String, String> {
    let host = gethostname::gethostname();
    let host = host.to_string_lossy();
    // A host without a name still needs something that reads as one.
    let hostname = if host.is_empty() { "localhost" } else { &host };
    let random = format!("{:08x}", process_random() as u32);
    expand(
        template,
        &Values {
            hostname,
            pid: std::process::id(),
            random: &random,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Values<'static> = Values {
        hostname: "web01",
        pid: 4242,
        random: "0a1b2c3d",
    };

    #[test]
    fn placeholders_are_filled() {
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("web-{hostname}-{pid}", "web-web01-4242"),
            ("{random}", "0a1b2c3d"),
            ("{pid}{pid}", "42424242"),
            ("a{random}b{random}", "a0a1b2c3db0a1b2c3d"),
            ("{hostname}", "web01"),
        ];
        for (template, want) in cases {
            assert_eq!(expand(template, &V).as_deref(), Ok(want), "{template}");
            assert!(check(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn bad_templates_say_why() {
        let cases = [
            ("web-{host}", "unknown placeholder `{host}`"),
            ("{}", "unknown placeholder `{}`"),
            ("{PID}", "unknown placeholder"),
            ("web-{pid", "a `{` without its `}`"),
            ("web-pid}", "a `}` without its `{`"),
            ("}{pid}", "a `}` without its `{`"),
            ("{{pid}}", "inside a placeholder"),
            ("{pid}}", "a `}` without its `{`"),
        ];
        for (template, needle) in cases {
            let e = check(template).expect_err(template);
            assert!(e.contains(needle), "{template}: {e}");
            assert_eq!(expand(template, &V), Err(e));
        }
    }

    #[test]
    fn random_is_recognised() {
        assert!(is_random("w-{random}"));
        assert!(!is_random("w-{pid}"));
        assert!(!is_random("w-random"));
        assert!(!is_random("w-{random"));
    }

    #[test]
    fn here_uses_this_process() {
        let id = expand_here("x-{pid}-{random}").unwrap();
        let mut parts = id.splitn(3, '-');
        assert_eq!(parts.next(), Some("x"));
        assert_eq!(parts.next(), Some(std::process::id().to_string().as_str()));
        let random = parts.next().unwrap();
        assert_eq!(random.len(), 8);
        assert!(random
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(expand_here("{random}"), expand_here("{random}"));
        assert!(!expand_here("{hostname}").unwrap().is_empty());
    }
}
