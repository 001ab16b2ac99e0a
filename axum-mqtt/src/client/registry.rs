//! What we are subscribed to, and who asked: restored on every reconnect, so subscriptions never
//! vanish with the session (Flask-MQTT #73, #190; rumqtt #250).

use std::collections::BTreeMap;

use crate::message::QoS;

/// Who holds a subscription. A filter is unsubscribed at the broker when nobody holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A router route: held for the client's lifetime.
    Route,
    /// A `subscribe()` call, until `unsubscribe()`.
    Explicit,
    /// A live `stream()`, until it is dropped.
    Stream,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    route: Option<QoS>,
    explicit: Option<QoS>,
    streams: Vec<QoS>,
}

impl Entry {
    fn qos(&self) -> Option<QoS> {
        self.route
            .into_iter()
            .chain(self.explicit)
            .chain(self.streams.iter().copied())
            .max()
    }
}

/// Subscriptions by filter (as sent to the broker, `$share/…` included).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    subs: BTreeMap<String, Entry>,
}

impl Registry {
    /// Records a holder; returns the QoS to subscribe with when the broker must be told (a new
    /// filter or a higher QoS).
    pub fn add(&mut self, filter: &str, holder: Holder, qos: QoS) -> Option<QoS> {
        let e = self.subs.entry(filter.to_string()).or_default();
        let before = e.qos();
        match holder {
            Holder::Route => e.route = Some(e.route.map_or(qos, |q| q.max(qos))),
            Holder::Explicit => e.explicit = Some(qos),
            Holder::Stream => e.streams.push(qos),
        }
        let after = e.qos();
        (after > before).then_some(after).flatten()
    }

    /// Drops a holder; returns true when nobody holds the filter any more (unsubscribe at the broker).
    pub fn remove(&mut self, filter: &str, holder: Holder) -> bool {
        let Some(e) = self.subs.get_mut(filter) else {
            return false;
        };
        match holder {
            Holder::Route => e.route = None,
            Holder::Explicit => e.explicit = None,
            Holder::Stream => {
                e.streams.pop();
            }
        }
        if e.qos().is_none() {
            self.subs.remove(filter);
            true
        } else {
            false
        }
    }

    /// The QoS a filter is subscribed with, if anyone holds it.
    pub fn qos(&self, filter: &str) -> Option<QoS> {
        self.subs.get(filter).and_then(Entry::qos)
    }

    /// Filters held by `subscribe()` calls.
    pub fn explicit(&self) -> Vec<String> {
        self.subs
            .iter()
            .filter(|(_, e)| e.explicit.is_some())
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// Every filter with the QoS to subscribe with.
    pub fn all(&self) -> Vec<(String, QoS)> {
        self.subs
            .iter()
            .filter_map(|(f, e)| e.qos().map(|q| (f.clone(), q)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_share_a_filter() {
        let mut r = Registry::default();
        assert_eq!(
            r.add("a", Holder::Stream, QoS::AtMostOnce),
            Some(QoS::AtMostOnce)
        );
        assert_eq!(r.add("a", Holder::Stream, QoS::AtMostOnce), None);
        assert_eq!(
            r.add("a", Holder::Explicit, QoS::ExactlyOnce),
            Some(QoS::ExactlyOnce)
        );
        assert!(!r.remove("a", Holder::Explicit));
        assert!(!r.remove("a", Holder::Stream));
        assert!(r.remove("a", Holder::Stream));
        assert!(r.all().is_empty());
        assert!(!r.remove("missing", Holder::Explicit));
    }
}
