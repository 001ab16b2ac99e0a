//! The topic matcher and validators against a reference written from the MQTT spec.
//! Input: `<filter>\n<topic>` (lossy UTF-8).
#![no_main]

use axum_mqtt::topic::{matches, split_share, validate_filter, validate_topic, TopicPattern};
use libfuzzer_sys::fuzz_target;

fn ref_valid_filter(f: &str) -> bool {
    if f.is_empty() || f.len() > 65_535 || f.contains('\0') || f == "$share" {
        return false;
    }
    let inner = match f.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((name, inner))
                if !name.is_empty() && !name.contains(['+', '#']) && !inner.is_empty() =>
            {
                inner
            }
            _ => return false,
        },
        None => f,
    };
    let levels: Vec<&str> = inner.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (!l.contains('#') || (*l == "#" && i + 1 == levels.len()))
            && (!l.contains('+') || *l == "+")
    })
}

fn ref_valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 65_535 && !t.contains(['\0', '+', '#'])
}

fn ref_inner(f: &str) -> &str {
    match f.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, inner)| inner),
        None => f,
    }
}

fn ref_levels(f: &[&str], t: &[&str]) -> bool {
    match (f.split_first(), t.split_first()) {
        (Some((&"#", _)), _) => true,
        (Some((&"+", fr)), Some((_, tr))) => ref_levels(fr, tr),
        (Some((fl, fr)), Some((tl, tr))) => fl == tl && ref_levels(fr, tr),
        (None, None) => true,
        _ => false,
    }
}

fn ref_matches(filter: &str, topic: &str) -> bool {
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

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (filter, topic) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = split_share(filter);
    assert_eq!(
        validate_filter(filter).is_ok(),
        ref_valid_filter(filter),
        "validate_filter({filter:?})"
    );
    assert_eq!(
        validate_topic(topic).is_ok(),
        ref_valid_topic(topic),
        "validate_topic({topic:?})"
    );
    let pattern = TopicPattern::parse(filter);
    if let (Ok(p), (None, _)) = (&pattern, split_share(filter)) {
        assert!(
            validate_filter(p.filter()).is_ok(),
            "{filter:?} gave {:?}",
            p.filter()
        );
        let _ = p.matches(topic);
        let _ = p.param_names().count();
    }
    let m = matches(filter, topic);
    // Route syntax (`{name}`) is not MQTT: compare plain filters only.
    if !filter.contains(['{', '}']) && ref_valid_topic(topic) {
        assert_eq!(
            m,
            ref_matches(filter, topic),
            "matches({filter:?}, {topic:?})"
        );
        assert_eq!(
            pattern.is_ok(),
            ref_valid_filter(filter),
            "TopicPattern::parse({filter:?})"
        );
    }
});
