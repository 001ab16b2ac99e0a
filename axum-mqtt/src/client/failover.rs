//! Round robin over the brokers of a failover list: which one the connection task dials next.

use std::collections::VecDeque;

use crate::config::BrokerAddr;

/// The broker in use and the others, in the order they are tried after it.
#[derive(Debug)]
pub(crate) struct Failover {
    current: BrokerAddr,
    others: VecDeque<BrokerAddr>,
}

impl Failover {
    /// Starts with the first broker of the list (`broker_url:broker_port`).
    pub fn new(first: BrokerAddr, others: impl IntoIterator<Item = BrokerAddr>) -> Self {
        Failover {
            current: first,
            others: others.into_iter().collect(),
        }
    }

    /// The broker connected to, or being dialled.
    pub fn current(&self) -> &BrokerAddr {
        &self.current
    }

    /// Moves on to the next broker (after the last, the first again) and returns it; `None` when
    /// there is only one broker, which is then dialled again.
    pub fn advance(&mut self) -> Option<&BrokerAddr> {
        let next = self.others.pop_front()?;
        let previous = std::mem::replace(&mut self.current, next);
        self.others.push_back(previous);
        Some(&self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin() {
        let b = |p| BrokerAddr::new("h", p);
        let mut f = Failover::new(b(1), [b(2), b(3)]);
        assert_eq!(f.current(), &b(1));
        let order: Vec<u16> = (0..7).filter_map(|_| f.advance().map(|x| x.port)).collect();
        assert_eq!(order, [2, 3, 1, 2, 3, 1, 2]);
        assert_eq!(f.current(), &b(2));
    }

    #[test]
    fn one_broker_stays() {
        let mut f = Failover::new(BrokerAddr::new("h", 1), []);
        assert_eq!(f.advance(), None);
        assert_eq!(f.current().port, 1);
    }
}
