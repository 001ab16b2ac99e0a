//! A trie of topic filters, so finding the filters that match a topic costs the topic's depth, not
//! the number of filters (10 or 100 000 filters match in about the same time).

use std::collections::HashMap;

#[derive(Default, Debug)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Routes whose next level is `#` / `{*rest}`: they match here, with or without more levels.
    rest: Vec<usize>,
    /// Routes that end exactly here.
    end: Vec<usize>,
}

/// Ids by MQTT filter, with every rule of [`matches`](super::matches) (`#` matches the parent level,
/// `+` an empty level, `$`-topics only by filters naming their first level, `$share/<group>/` ignored).
///
/// ```
/// use axum_mqtt::topic::FilterIndex;
///
/// let mut index = FilterIndex::new();
/// index.insert("sensors/+/temperature", 0);
/// index.insert("sensors/#", 1);
/// index.insert("logs/#", 2);
/// let mut ids = Vec::new();
/// index.matching("sensors/kitchen/temperature", &mut ids);
/// assert_eq!(ids, vec![0, 1]);
/// ```
#[derive(Default, Debug)]
pub struct FilterIndex {
    root: Node,
}

impl FilterIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter (or a route pattern's filter) with an id; ids may repeat.
    pub fn insert(&mut self, filter: &str, id: usize) {
        let (_, filter) = super::split_share(filter);
        let route = id;
        let mut node = &mut self.root;
        for level in filter.split('/') {
            match level {
                "#" => {
                    node.rest.push(route);
                    return;
                }
                "+" => node = node.plus.get_or_insert_with(Default::default),
                l => node = node.literal.entry(l.into()).or_default(),
            }
        }
        node.end.push(route);
    }

    /// Appends the ids of the filters matching `topic` to `out`, then sorts `out` and removes
    /// duplicates (so ids given in insertion order come back in that order).
    pub fn matching(&self, topic: &str, out: &mut Vec<usize>) {
        // `$SYS/...`: wildcards in the first level do not match.
        let dollar = topic.starts_with('$');
        walk(&self.root, Some(topic), dollar, out);
        out.sort_unstable();
        out.dedup();
    }
}

/// `remaining`: the levels not consumed yet (`None` when the topic is used up).
fn walk(node: &Node, remaining: Option<&str>, first_is_dollar: bool, out: &mut Vec<usize>) {
    if !first_is_dollar {
        out.extend_from_slice(&node.rest);
    }
    let Some(remaining) = remaining else {
        out.extend_from_slice(&node.end);
        return;
    };
    let (level, rest) = match remaining.split_once('/') {
        Some((l, r)) => (l, Some(r)),
        None => (remaining, None),
    };
    if let Some(next) = node.literal.get(level) {
        walk(next, rest, false, out);
    }
    if let (Some(next), false) = (&node.plus, first_is_dollar) {
        walk(next, rest, false, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::topic::TopicPattern;

    #[test]
    fn agrees_with_the_pattern_matcher() {
        let filters = [
            "a/b", "a/+", "a/#", "#", "+", "+/+", "a/+/c", "$SYS/#", "$SYS/+", "/+", "+/b/#",
            "a/b/c",
        ];
        let patterns: Vec<TopicPattern> = filters
            .iter()
            .map(|f| TopicPattern::parse(f).unwrap())
            .collect();
        let mut index = FilterIndex::new();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p.filter(), i);
        }
        let topics = [
            "a", "a/b", "a/", "a/b/c", "a//c", "/", "/x", "b", "x/b", "x/b/y", "$SYS/x", "$SYS",
            "", "$SYS/a/b",
        ];
        let mut out = Vec::new();
        for t in topics {
            out.clear();
            index.matching(t, &mut out);
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&i| patterns[i].matches(t).is_some())
                .collect();
            assert_eq!(out, want, "topic {t:?}");
        }
    }

    #[test]
    fn captures_of_a_match_equal_the_full_match() {
        let patterns: Vec<TopicPattern> = [
            "s/{dev}/t",
            "s/{dev}/{*rest}",
            "{a}/{b}",
            "x/{*all}",
            "{one}",
            "s/+/{k}",
            "#",
        ]
        .iter()
        .map(|p| TopicPattern::parse(p).unwrap())
        .collect();
        let mut index = FilterIndex::new();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p.filter(), i);
        }
        let topics = [
            "s/k/t",
            "s/k",
            "s/k/t/u/v",
            "x",
            "x/",
            "x/a/b",
            "a/b",
            "a",
            "s//t",
            "s/1/2",
        ];
        for t in topics {
            let mut ids = Vec::new();
            index.matching(t, &mut ids);
            for i in ids {
                let full = patterns[i].matches(t).expect("the index matched");
                assert_eq!(
                    patterns[i].captures_of_match(t),
                    full,
                    "{t:?} by {:?}",
                    patterns[i]
                );
            }
        }
    }

    #[test]
    fn repeated_ids_and_share() {
        let mut index = FilterIndex::new();
        index.insert("x/+", 2);
        index.insert("$share/g/x/#", 0);
        index.insert("y", 1);
        let mut out = vec![1];
        index.matching("x/1", &mut out);
        assert_eq!(out, vec![0, 1, 2]);
    }
}
