//! Topic names, topic filters and route patterns: validation and matching per the MQTT spec.
//!
//! Rules that peers got wrong and that are tested here:
//! * `a/#` matches `a` itself; `#` matches everything.
//! * `+` matches exactly one level, also an empty one (`a/+/c` matches `a//c`).
//! * Topics starting with `$` (like `$SYS/...`) are not matched by a filter starting with `+` or `#`.
//! * `$share/<group>/<filter>` is a shared subscription: matching uses `<filter>`.
//!
//! A [`TopicPattern`] is a filter whose wildcards may be named: `sensors/{device}/temp` subscribes as
//! `sensors/+/temp` and captures `device`; a trailing `{*rest}` subscribes as `#` and captures the rest.
//!
//! ```
//! use axum_mqtt::topic::TopicPattern;
//!
//! let p = TopicPattern::parse("sensors/{device}/{*rest}")?;
//! assert_eq!(p.filter(), "sensors/+/#");
//! let params = p.matches("sensors/kitchen/temp/c").unwrap();
//! assert_eq!(params, vec![("device".into(), "kitchen".into()), ("rest".into(), "temp/c".into())]);
//! assert!(p.matches("other/kitchen").is_none());
//! # Ok::<(), axum_mqtt::Error>(())
//! ```

use std::sync::Arc;

use crate::Error;

mod index;

// Public for the routing benchmark only; the router uses it internally.
#[doc(hidden)]
pub use index::FilterIndex;

const MAX_LEN: usize = 65_535;

/// Checks a topic name for publishing: not empty, no `+` or `#`, no NUL, at most 65535 bytes.
///
/// ```
/// use axum_mqtt::topic::validate_topic;
/// assert!(validate_topic("a/b").is_ok());
/// assert!(validate_topic("a/#").is_err());
/// assert!(validate_topic("").is_err());
/// ```
pub fn validate_topic(topic: &str) -> Result<(), Error> {
    topic_problem(topic).map_err(|reason| Error::InvalidTopic {
        topic: topic.to_string(),
        reason,
    })
}

/// [`validate_topic`], failing with the reason alone (a dead-letter template reports it as its
/// own error).
pub(crate) fn topic_problem(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("a topic must not be empty");
    }
    if topic.len() > MAX_LEN {
        return Err("a topic must be at most 65535 bytes");
    }
    if topic.contains('\0') {
        return Err("a topic must not contain NUL");
    }
    if topic.contains(['+', '#']) {
        return Err("a wildcard (+ or #) is not allowed in a topic to publish to");
    }
    Ok(())
}

/// Checks a topic filter for subscribing, including `$share/<group>/<filter>`.
///
/// ```
/// use axum_mqtt::topic::validate_filter;
/// assert!(validate_filter("a/+/#").is_ok());
/// assert!(validate_filter("$share/web/a/+").is_ok());
/// assert!(validate_filter("a/#/b").is_err());
/// assert!(validate_filter("a+").is_err());
/// ```
pub fn validate_filter(filter: &str) -> Result<(), Error> {
    let bad = |reason| Error::InvalidFilter {
        filter: filter.to_string(),
        reason,
    };
    if filter.is_empty() {
        return Err(bad("a filter must not be empty"));
    }
    if filter.len() > MAX_LEN {
        return Err(bad("a filter must be at most 65535 bytes"));
    }
    if filter.contains('\0') {
        return Err(bad("a filter must not contain NUL"));
    }
    let inner = share_inner(filter).map_err(bad)?;
    check_levels(inner).map_err(bad)
}

/// The filter inside `$share/<group>/<filter>` (or the filter itself), after checking the group.
fn share_inner(filter: &str) -> Result<&str, &'static str> {
    match split_share(filter) {
        (Some(group), inner) => {
            if group.is_empty() || group.contains(['+', '#']) {
                return Err("a $share group name must not be empty or contain wildcards");
            }
            if inner.is_empty() {
                return Err("a $share filter needs a filter after the group");
            }
            Ok(inner)
        }
        (None, _) if filter.starts_with("$share/") || filter == "$share" => {
            Err("a $share filter needs a group and a filter: $share/<group>/<filter>")
        }
        (None, inner) => Ok(inner),
    }
}

/// Checks the levels of a filter (without `$share/<group>/`): `#` only as the whole last level,
/// `+` only as a whole level.
fn check_levels(inner: &str) -> Result<(), &'static str> {
    let levels: Vec<&str> = inner.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("`#` must be the whole last level");
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level");
        }
    }
    Ok(())
}

/// Splits `$share/<group>/<filter>` into `(Some(group), filter)`; other filters into `(None, filter)`.
///
/// ```
/// use axum_mqtt::topic::split_share;
/// assert_eq!(split_share("$share/g/a/b"), (Some("g"), "a/b"));
/// assert_eq!(split_share("a/b"), (None, "a/b"));
/// ```
pub fn split_share(filter: &str) -> (Option<&str>, &str) {
    match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, inner)) => (Some(group), inner),
            None => (Some(rest), ""),
        },
        None => (None, filter),
    }
}

/// The filter to subscribe with when a shared-subscription group is set: `$share/<group>/<filter>`.
/// Filters that start with `$` (`$share/…` given by hand, `$SYS/…`) are subscribed as written.
///
/// ```
/// use axum_mqtt::topic::share_filter;
/// assert_eq!(share_filter("jobs/#", Some("web")), "$share/web/jobs/#");
/// assert_eq!(share_filter("$SYS/uptime", Some("web")), "$SYS/uptime");
/// assert_eq!(share_filter("$share/g/jobs", Some("web")), "$share/g/jobs");
/// assert_eq!(share_filter("jobs/#", None), "jobs/#");
/// ```
pub fn share_filter(filter: &str, group: Option<&str>) -> String {
    match group {
        Some(g) if !filter.starts_with('$') => format!("$share/{g}/{filter}"),
        _ => filter.to_string(),
    }
}

/// True when `topic` matches the MQTT `filter` (`$share/` stripped, `$`-topic rule applied).
///
/// ```
/// use axum_mqtt::topic::matches;
/// assert!(matches("a/#", "a"));
/// assert!(matches("a/+/c", "a//c"));
/// assert!(!matches("#", "$SYS/uptime"));
/// assert!(matches("$share/g/s/+", "s/1"));
/// ```
pub fn matches(filter: &str, topic: &str) -> bool {
    TopicPattern::parse(filter).is_ok_and(|p| p.matches(topic).is_some())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `+` or `{name}`.
    One(Option<Arc<str>>),
    /// `#` or `{*name}` (always last).
    Rest(Option<Arc<str>>),
}

/// Captured named segments: `(name, value)` in pattern order.
pub(crate) type Captures = Vec<(Arc<str>, String)>;

/// A topic filter whose wildcards may be named; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    source: String,
    filter: String,
    segments: Vec<Segment>,
}

impl TopicPattern {
    /// Parses a route pattern or a plain MQTT filter (`$share/<group>/` is stripped).
    pub fn parse(pattern: &str) -> Result<TopicPattern, Error> {
        Self::parse_pattern(pattern).map_err(|reason| Error::InvalidFilter {
            filter: pattern.to_string(),
            reason,
        })
    }

    /// [`parse`](Self::parse), failing with the reason alone (the router reports it as its own
    /// error).
    pub(crate) fn parse_pattern(pattern: &str) -> Result<TopicPattern, &'static str> {
        if pattern.is_empty() {
            return Err("a filter must not be empty");
        }
        if pattern.len() > MAX_LEN {
            return Err("a filter must be at most 65535 bytes");
        }
        if pattern.contains('\0') {
            return Err("a filter must not contain NUL");
        }
        let inner = share_inner(pattern)?;
        let levels: Vec<&str> = inner.split('/').collect();
        let mut segments = Vec::with_capacity(levels.len());
        for (i, level) in levels.iter().enumerate() {
            let last = i + 1 == levels.len();
            let seg = if *level == "+" {
                Segment::One(None)
            } else if *level == "#" {
                Segment::Rest(None)
            } else if let Some(name) = level.strip_prefix("{*").and_then(|l| l.strip_suffix('}')) {
                if name.is_empty() {
                    return Err("a `{*name}` segment needs a name");
                }
                Segment::Rest(Some(name.into()))
            } else if let Some(name) = level.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}', '*']) {
                    return Err("a `{name}` segment needs a plain name");
                }
                Segment::One(Some(name.into()))
            } else if level.contains(['{', '}']) {
                return Err("a `{name}` segment must fill its whole level");
            } else {
                Segment::Literal((*level).into())
            };
            if matches!(seg, Segment::Rest(_)) && !last {
                return Err("`#` and `{*name}` must be the last level");
            }
            segments.push(seg);
        }
        let filter: String = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => &**l,
                Segment::One(_) => "+",
                Segment::Rest(_) => "#",
            })
            .collect::<Vec<_>>()
            .join("/");
        check_levels(&filter)?;
        Ok(TopicPattern {
            source: pattern.to_string(),
            filter,
            segments,
        })
    }

    /// The MQTT filter to subscribe with (`{name}` → `+`, `{*name}` → `#`).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Names of the captured segments, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::One(Some(n)) | Segment::Rest(Some(n)) => Some(&**n),
            _ => None,
        })
    }

    /// The named captures of a topic already known to match (by the [`FilterIndex`] of the
    /// route table): one pass over the levels, without checking them again.
    pub(crate) fn captures_of_match(&self, topic: &str) -> Captures {
        let mut out = Captures::new();
        if !self
            .segments
            .iter()
            .any(|s| matches!(s, Segment::One(Some(_)) | Segment::Rest(Some(_))))
        {
            return out;
        }
        let mut rest = Some(topic);
        for seg in &self.segments {
            let Some(cur) = rest else { break };
            if let Segment::Rest(name) = seg {
                if let Some(name) = name {
                    out.push((name.clone(), cur.to_string()));
                }
                return out;
            }
            let (level, next) = match cur.split_once('/') {
                Some((l, n)) => (l, Some(n)),
                None => (cur, None),
            };
            if let Segment::One(Some(name)) = seg {
                out.push((name.clone(), level.to_string()));
            }
            rest = next;
        }
        // `a/{*rest}` matching `a`: the rest is empty.
        if let Some(Segment::Rest(Some(name))) = self.segments.last() {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.clone(), String::new()));
            }
        }
        out
    }

    /// Matches a concrete topic; returns the named captures on success.
    pub fn matches(&self, topic: &str) -> Option<Vec<(Arc<str>, String)>> {
        // `$SYS/...` and friends are only matched by filters that name their first level.
        if topic.starts_with('$') && !matches!(self.segments.first(), Some(Segment::Literal(_))) {
            return None;
        }
        // Captures are borrowed while matching and copied only once the whole pattern matched.
        let mut captures: Vec<(&Arc<str>, &str)> = Vec::new();
        let mut rest = Some(topic);
        for seg in &self.segments {
            if let Segment::Rest(name) = seg {
                // `a/#` also matches `a` (rest is None then).
                if let Some(name) = name {
                    captures.push((name, rest.unwrap_or("")));
                }
                rest = None;
                break;
            }
            let cur = rest?;
            let (level, next) = match cur.split_once('/') {
                Some((l, n)) => (l, Some(n)),
                None => (cur, None),
            };
            match seg {
                Segment::Literal(l) if **l == *level => {}
                Segment::One(Some(name)) => captures.push((name, level)),
                Segment::One(None) => {}
                _ => return None,
            }
            rest = next;
        }
        rest.is_none().then(|| {
            captures
                .into_iter()
                .map(|(n, v)| (n.clone(), v.to_string()))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/+", "a/"),
            ("+/+", "/"),
            ("a/+/c", "a//c"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("a/#", "a/"),
            ("#", "a/b"),
            ("#", "/"),
            ("+", ""),
            ("/+", "/x"),
            ("$SYS/#", "$SYS/uptime"),
            ("$SYS/+", "$SYS/x"),
            ("$share/g/a/+", "a/b"),
            ("$share/g/#", "x"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t:?}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/b", "a/b/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("a/+/c", "a/b"),
            ("+", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a/#", "b"),
            ("a/b/#", "a"),
            ("$share/g/a/+", "$share/g/a/b/c"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t:?}");
        }
    }

    #[test]
    fn filter_validation() {
        for ok in [
            "a",
            "/",
            "+",
            "#",
            "a/+/b/#",
            "$SYS/#",
            "$share/g/#",
            "+/+/+",
        ] {
            validate_filter(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "a#",
            "a/#/b",
            "#/a",
            "a+",
            "a/b+",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "a\0",
        ] {
            assert!(validate_filter(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(validate_filter(&"a".repeat(65_536)).is_err());
        assert!(validate_topic(&"a".repeat(65_535)).is_ok());
        assert!(validate_topic(&"a".repeat(65_536)).is_err());
        for bad in ["", "a/+", "#", "a\0b"] {
            assert!(validate_topic(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn named_patterns() {
        let p = TopicPattern::parse("sensors/{device}/temperature").unwrap();
        assert_eq!(p.filter(), "sensors/+/temperature");
        assert_eq!(
            p.matches("sensors/k1/temperature").unwrap(),
            vec![("device".into(), "k1".to_string())]
        );
        let p = TopicPattern::parse("logs/{*rest}").unwrap();
        assert_eq!(p.filter(), "logs/#");
        assert_eq!(
            p.matches("logs").unwrap(),
            vec![("rest".into(), String::new())]
        );
        assert_eq!(p.matches("logs/a/b").unwrap()[0].1, "a/b");
        for bad in ["a/{*r}/b", "a/x{y}", "a/{}", "a/{*}", "{a", "a/#/b"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad} must be rejected");
        }
    }
}
