//! The subscribe allow-list: which filters `/events` and the WebSocket may subscribe within.
//! (Which topics may be published to is the library's `PublishEndpoint::allow`.)

use axum_mqtt::topic::split_share;

/// A list of MQTT filters a subscription must stay within; empty means everything is allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    filters: Vec<String>,
}

impl AllowList {
    /// The list; empty allows every filter.
    pub fn new(filters: Vec<String>) -> Self {
        AllowList { filters }
    }

    /// The filters (empty: all allowed).
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// True when every topic `filter` can match is matched by one allowed filter, so a subscriber
    /// never sees a topic outside the list (`a/+` is within `a/#`; `#` is not within `a/#`).
    pub fn allows_filter(&self, filter: &str) -> bool {
        let (_, inner) = split_share(filter);
        self.filters.is_empty() || self.filters.iter().any(|a| covers(a, inner))
    }
}

/// True when filter `outer` matches every topic that filter `inner` matches.
fn covers(outer: &str, inner: &str) -> bool {
    let (_, outer) = split_share(outer);
    let o: Vec<&str> = outer.split('/').collect();
    let i: Vec<&str> = inner.split('/').collect();
    // `$`-topics are not matched by a leading wildcard, so `#` does not cover `$SYS/#` (or `+/x`
    // cover anything that could start with `$`: a leading wildcard in `inner` can match only
    // non-`$` topics, which a leading wildcard in `outer` also matches).
    if i[0].starts_with('$') && (o[0] == "#" || o[0] == "+") {
        return false;
    }
    for (n, level) in i.iter().enumerate() {
        match o.get(n) {
            Some(&"#") => return true,
            Some(&"+") if *level != "#" => {}
            Some(lit) if lit == level && *level != "+" && *level != "#" => {}
            _ => return false,
        }
    }
    // `inner` is shorter: it is covered only when `outer` ends with `/#` right after it.
    o.len() == i.len() || (o.len() == i.len() + 1 && o[i.len()] == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(f: &[&str]) -> AllowList {
        AllowList::new(f.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn filters_within_filters() {
        let a = list(&["sensors/#", "lights/+/state"]);
        for ok in [
            "sensors/#",
            "sensors",
            "sensors/a/+",
            "lights/+/state",
            "lights/kitchen/state",
            "$share/g/sensors/x",
        ] {
            assert!(a.allows_filter(ok), "{ok}");
        }
        for no in [
            "#",
            "+/a",
            "lights/#",
            "lights/+/+",
            "lights/a/state/x",
            "other",
            "sensorsX/a",
        ] {
            assert!(!a.allows_filter(no), "{no}");
        }
        assert!(!list(&["#"]).allows_filter("$SYS/#"));
        assert!(list(&["#"]).allows_filter("a/+/b"));
        assert!(list(&[]).allows_filter("#"));
    }
}
