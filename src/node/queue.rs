//! The core's inbox: two bounded lanes, one for the network (gossip, sync, peers' requests)
//! and one for RPC, served in turn so neither waits behind the other's backlog. Both are
//! bounded in count, the network lane in bytes too; a full lane is refused at once ("busy"),
//! never waited on, so async callers cannot stall. A third lane, served before both, carries
//! results of work the core already accepted (the verifier pool's, bounded by that pool).

use crate::p2p::link::NetJob;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A job taken from the inbox.
pub(crate) enum Job<R> {
    /// From the network service.
    Net(NetJob),
    /// From RPC (or any other API user).
    Api(R),
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The lane is full.
    Full,
    /// The core has stopped.
    Closed,
}

/// Bounds of the two lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most API requests waiting.
    pub api_count: usize,
    /// Most network items waiting.
    pub net_count: usize,
    /// Most bytes of network items waiting.
    pub net_bytes: usize,
}

struct Lanes<R> {
    /// Results of the core's own work handed out (served first, bounded by their producer).
    internal: VecDeque<R>,
    api: VecDeque<R>,
    net: VecDeque<(NetJob, usize)>,
    net_bytes: usize,
    /// Which lane goes first next time both hold work.
    net_next: bool,
    closed: bool,
}

/// The two-lane queue.
pub(crate) struct Inbox<R> {
    lanes: Mutex<Lanes<R>>,
    ready: Condvar,
    limits: Limits,
}

impl<R> Inbox<R> {
    /// An empty inbox.
    pub(crate) fn new(limits: Limits) -> Inbox<R> {
        Inbox {
            lanes: Mutex::new(Lanes {
                internal: VecDeque::new(),
                api: VecDeque::new(),
                net: VecDeque::new(),
                net_bytes: 0,
                net_next: true,
                closed: false,
            }),
            ready: Condvar::new(),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes<R>> {
        // A panic while holding this lock cannot leave the lanes inconsistent (every
        // operation is a single push or pop), so a poisoned lock is still usable.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an API request.
    pub(crate) fn push_api(&self, r: R) -> Result<(), (Refused, R)> {
        let mut l = self.lock();
        if l.closed {
            return Err((Refused::Closed, r));
        }
        if l.api.len() >= self.limits.api_count {
            return Err((Refused::Full, r));
        }
        l.api.push_back(r);
        drop(l);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues the result of work the core handed out; taken before either lane. Not
    /// bounded here: the producer bounds what it has outstanding.
    pub(crate) fn push_internal(&self, r: R) -> Result<(), (Refused, R)> {
        let mut l = self.lock();
        if l.closed {
            return Err((Refused::Closed, r));
        }
        l.internal.push_back(r);
        drop(l);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a network item, or gives it back with why not.
    pub(crate) fn push_net(&self, job: NetJob) -> Result<(), (Refused, NetJob)> {
        let cost = job.work.cost();
        let mut l = self.lock();
        if l.closed {
            return Err((Refused::Closed, job));
        }
        if l.net.len() >= self.limits.net_count
            || (!l.net.is_empty() && l.net_bytes + cost > self.limits.net_bytes)
        {
            return Err((Refused::Full, job));
        }
        l.net_bytes += cost;
        l.net.push_back((job, cost));
        drop(l);
        self.ready.notify_one();
        Ok(())
    }

    /// Takes the next job, alternating between the lanes when both hold work; waits at most
    /// `timeout` for one.
    pub(crate) fn pop(&self, timeout: Duration) -> Option<Job<R>> {
        let mut l = self.lock();
        if l.api.is_empty() && l.net.is_empty() && l.internal.is_empty() && !timeout.is_zero() {
            l = self.ready.wait_timeout(l, timeout).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
        if let Some(r) = l.internal.pop_front() {
            return Some(Job::Api(r));
        }
        let take_net = match (l.net.is_empty(), l.api.is_empty()) {
            (true, true) => return None,
            (false, true) => true,
            (true, false) => false,
            (false, false) => l.net_next,
        };
        l.net_next = !take_net;
        if take_net {
            let (job, cost) = l.net.pop_front()?;
            l.net_bytes -= cost;
            Some(Job::Net(job))
        } else {
            l.api.pop_front().map(Job::Api)
        }
    }

    /// Refuses every later push and returns what was still queued.
    pub(crate) fn close(&self) -> (Vec<NetJob>, Vec<R>) {
        let mut l = self.lock();
        l.closed = true;
        l.net_bytes = 0;
        l.internal.clear();
        (l.net.drain(..).map(|(j, _)| j).collect(), l.api.drain(..).collect())
    }

    /// Items waiting in (network, API and internal) lanes.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let l = self.lock();
        (l.net.len(), l.api.len() + l.internal.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::link::{NetWork, SyncEvent};

    fn net(token: u64) -> NetJob {
        NetJob { token, work: NetWork::Sync(SyncEvent::Tick { connected: vec![], queued_ms: 0 }) }
    }

    fn limits() -> Limits {
        Limits { api_count: 3, net_count: 3, net_bytes: 1 << 20 }
    }

    #[test]
    fn lanes_alternate_so_a_backlog_never_starves_the_other() {
        let q: Inbox<u32> = Inbox::new(limits());
        for i in 0..3 {
            q.push_api(i).unwrap();
        }
        q.push_net(net(7)).unwrap();
        q.push_net(net(8)).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| q.pop(Duration::ZERO))
            .map(|j| match j {
                Job::Net(n) => format!("n{}", n.token),
                Job::Api(a) => format!("a{a}"),
            })
            .collect();
        assert_eq!(order, ["n7", "a0", "n8", "a1", "a2"]);
    }

    #[test]
    fn internal_results_go_first_and_ignore_the_lane_bounds() {
        let q: Inbox<u32> = Inbox::new(Limits { api_count: 1, net_count: 1, net_bytes: 1 << 20 });
        q.push_api(1).unwrap();
        q.push_net(net(2)).unwrap();
        for r in 10..15 {
            q.push_internal(r).unwrap();
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop(Duration::ZERO))
            .map(|j| match j {
                Job::Net(n) => format!("n{}", n.token),
                Job::Api(a) => format!("a{a}"),
            })
            .collect();
        assert_eq!(order, ["a10", "a11", "a12", "a13", "a14", "n2", "a1"]);
        q.close();
        assert_eq!(q.push_internal(1).unwrap_err().0, Refused::Closed);
    }

    #[test]
    fn full_lanes_refuse_without_blocking_and_closed_refuses_all() {
        let q: Inbox<u32> = Inbox::new(limits());
        for i in 0..3 {
            q.push_api(i).unwrap();
            q.push_net(net(i as u64)).unwrap();
        }
        assert_eq!(q.push_api(9).unwrap_err().0, Refused::Full);
        assert_eq!(q.push_net(net(9)).unwrap_err().0, Refused::Full);
        assert_eq!(q.depth(), (3, 3));
        let (n, a) = q.close();
        assert_eq!((n.len(), a.len()), (3, 3));
        assert_eq!(q.push_api(1).unwrap_err().0, Refused::Closed);
        assert_eq!(q.push_net(net(1)).unwrap_err().0, Refused::Closed);
        assert!(q.pop(Duration::ZERO).is_none());
    }

    #[test]
    fn network_lane_is_bounded_in_bytes() {
        let q: Inbox<u32> = Inbox::new(Limits { api_count: 1, net_count: 100, net_bytes: 600 });
        let big =
            || NetJob { token: 0, work: NetWork::Sync(SyncEvent::Tick { connected: vec![], queued_ms: 0 }) };
        // A tick costs 0 bytes of peers; use Serve-sized items (256 bytes each).
        let serve = |t| NetJob {
            token: t,
            work: NetWork::Serve {
                peer: libp2p::PeerId::random(),
                request: crate::p2p::wire::Request::GetBlocks(vec![]),
            },
        };
        q.push_net(serve(1)).unwrap();
        q.push_net(serve(2)).unwrap();
        assert_eq!(q.push_net(serve(3)).unwrap_err().0, Refused::Full, "512 + 256 > 600 bytes");
        q.push_net(big()).unwrap();
        assert!(matches!(q.pop(Duration::ZERO), Some(Job::Net(j)) if j.token == 1));
        q.push_net(serve(4)).unwrap();
    }
}
