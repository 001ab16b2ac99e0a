//! The topic matcher and validators against a reference written from the MQTT spec.
//! Input: `<filter>\n<topic>` (lossy UTF-8).
#![no_main]

use axum_mqtt::topic::{matches, split_share, validate_filter, validate_topic, TopicPattern};
use libfuzzer_sys::fuzz_target;

// The same reference as the property tests (one copy: tests/reference/mod.rs).
#[path = "../../tests/reference/mod.rs"]
mod reference;
use reference::{ref_matches, ref_valid_filter, ref_valid_topic};

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
