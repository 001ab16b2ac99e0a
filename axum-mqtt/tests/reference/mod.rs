//! A reference implementation of MQTT topic matching and validation, written from the spec
//! (MQTT 3.1.1 §4.7, MQTT 5 §4.7-4.8), to check the library's optimised code against.
//! Shared by `tests/properties.rs` and the cargo-fuzz target `fuzz/fuzz_targets/topic.rs`.
#![allow(dead_code)]

/// Spec rules for a filter: not empty, no NUL, at most 65535 bytes; `#` only as the whole last level;
/// `+` only as a whole level; `$share/<name>/<filter>` with a name of at least one character and no
/// `/`, `+` or `#`, and a filter after it. `$share` alone (or without a filter) is not a filter.
pub fn ref_valid_filter(f: &str) -> bool {
    if f.is_empty() || f.len() > 65_535 || f.contains('\0') {
        return false;
    }
    let inner = if f == "$share" {
        return false;
    } else if let Some(rest) = f.strip_prefix("$share/") {
        let Some((name, inner)) = rest.split_once('/') else {
            return false;
        };
        if name.is_empty() || name.contains(['+', '#']) || inner.is_empty() {
            return false;
        }
        inner
    } else {
        f
    };
    let levels: Vec<&str> = inner.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        let hash_ok = !l.contains('#') || (*l == "#" && i + 1 == levels.len());
        let plus_ok = !l.contains('+') || *l == "+";
        hash_ok && plus_ok
    })
}

/// Spec rules for a topic name: not empty, no NUL, at most 65535 bytes, no wildcard.
pub fn ref_valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 65_535 && !t.contains(['\0', '+', '#'])
}

/// The filter without its `$share/<name>/` prefix.
pub fn ref_inner(f: &str) -> &str {
    match f.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, inner)| inner),
        None => f,
    }
}

pub fn ref_levels(f: &[&str], t: &[&str]) -> bool {
    match (f.split_first(), t.split_first()) {
        // `#` matches the parent level and any number of children (also none).
        (Some((&"#", _)), _) => true,
        (Some((&"+", fr)), Some((_, tr))) => ref_levels(fr, tr),
        (Some((fl, fr)), Some((tl, tr))) => fl == tl && ref_levels(fr, tr),
        (None, None) => true,
        _ => false,
    }
}

/// Does a valid filter match a topic? Topics starting with `$` are not matched by a filter starting
/// with a wildcard (§4.7.2).
pub fn ref_matches(filter: &str, topic: &str) -> bool {
    if !ref_valid_filter(filter) {
        return false;
    }
    let f: Vec<&str> = ref_inner(filter).split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    ref_levels(&f, &t)
}
