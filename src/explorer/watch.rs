//! The tip watcher behind `/api/events` and `/api/reorgs`: it asks the core for its tip
//! every [`POLL`] through the typed API and, when the tip moved, tells subscribers whether
//! the old tip is still in the active chain (a new tip) or not (a reorganisation, with the
//! fork point and the depth: blocks that left the active chain). Polling keeps the core
//! untouched; several reorganisations within one poll show as one.

use crate::node::NodeHandle;
use crate::primitives::Hash256;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

/// How often the tip is polled.
pub const POLL: Duration = Duration::from_millis(250);
/// Reorganisations kept for `/api/reorgs`.
pub const REORG_LOG: usize = 100;
/// Event streams open at once.
pub const MAX_SUBSCRIBERS: usize = 32;
/// Blocks walked back from an old tip looking for the fork point (a deeper reorg reports
/// this depth and no fork point).
pub const MAX_WALK: u32 = 10_000;

/// A tip.
#[derive(Clone, Debug, Serialize)]
pub struct TipEvent {
    /// Height.
    pub height: u32,
    /// Block id.
    pub hash: Hash256,
    /// Unix seconds when the watcher saw it.
    pub seen: u64,
}

/// A reorganisation.
#[derive(Clone, Debug, Serialize)]
pub struct ReorgEvent {
    /// The tip that left the active chain.
    pub old_tip: Hash256,
    /// Its height.
    pub old_height: u32,
    /// The new tip.
    pub new_tip: Hash256,
    /// Its height.
    pub new_height: u32,
    /// The last block both chains share (None if deeper than [`MAX_WALK`]).
    pub fork_hash: Option<Hash256>,
    /// Its height.
    pub fork_height: Option<u32>,
    /// Blocks disconnected.
    pub depth: u32,
    /// Unix seconds when the watcher saw it.
    pub seen: u64,
}

/// What a subscriber receives.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// The tip moved forward on the same chain.
    Tip(TipEvent),
    /// The active chain switched branches.
    Reorg(ReorgEvent),
}

impl Event {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Tip(_) => "tip",
            Event::Reorg(_) => "reorg",
        }
    }
}

#[derive(Default)]
struct State {
    last: Option<TipEvent>,
    reorgs: VecDeque<ReorgEvent>,
}

/// The watcher's shared state.
pub struct Watch {
    events: broadcast::Sender<Event>,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
}

/// One event stream (holds one of [`MAX_SUBSCRIBERS`] slots).
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    _slot: OwnedSemaphorePermit,
}

impl Subscription {
    /// The next event; a subscriber that fell behind skips what it missed. None when the
    /// watcher stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Watch {
    /// Starts watching `node` on the current runtime until `stop` is notified.
    pub fn spawn(node: NodeHandle, stop: Arc<tokio::sync::Notify>) -> Arc<Watch> {
        let (events, _) = broadcast::channel(64);
        let watch = Arc::new(Watch {
            events,
            state: Mutex::default(),
            slots: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)),
        });
        let w = watch.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.notified() => return,
                }
                w.poll(&node).await;
            }
        });
        watch
    }

    /// The last tip seen.
    pub fn last(&self) -> Option<TipEvent> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).last.clone()
    }

    /// Recent reorganisations, newest first.
    pub fn reorgs(&self) -> Vec<ReorgEvent> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reorgs.iter().rev().cloned().collect()
    }

    /// A new event stream, or None when [`MAX_SUBSCRIBERS`] are open.
    pub fn subscribe(&self) -> Option<Subscription> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(Subscription { rx: self.events.subscribe(), _slot: slot })
    }

    async fn poll(&self, node: &NodeHandle) {
        let Ok(info) = node.chain_info().await else { return };
        let tip = TipEvent { height: info.tip.height, hash: info.tip.hash, seen: now() };
        let Some(old) = self.last() else {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).last = Some(tip);
            return;
        };
        if old.hash == tip.hash {
            return;
        }
        let event = match node.is_active(old.hash).await {
            Ok(true) | Err(_) => Event::Tip(tip.clone()),
            Ok(false) => {
                // Walk back from the old tip to the first block still active.
                let (mut at, mut height, mut fork) = (old.hash, old.height, None);
                for _ in 0..MAX_WALK {
                    let Ok(view) = node.header(at).await else { break };
                    if node.is_active(view.header.prev).await.unwrap_or(false) {
                        fork = Some((view.header.prev, height.saturating_sub(1)));
                        break;
                    }
                    at = view.header.prev;
                    height = height.saturating_sub(1);
                }
                let depth = match fork {
                    Some((_, h)) => old.height - h.min(old.height),
                    None => MAX_WALK,
                };
                Event::Reorg(ReorgEvent {
                    old_tip: old.hash,
                    old_height: old.height,
                    new_tip: tip.hash,
                    new_height: tip.height,
                    fork_hash: fork.map(|f| f.0),
                    fork_height: fork.map(|f| f.1),
                    depth,
                    seen: tip.seen,
                })
            }
        };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.last = Some(tip);
            if let Event::Reorg(r) = &event {
                if s.reorgs.len() == REORG_LOG {
                    s.reorgs.pop_front();
                }
                s.reorgs.push_back(r.clone());
            }
        }
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_subscribers_streams_are_open_and_a_closed_one_frees_its_slot() {
        let (events, _) = broadcast::channel(64);
        let watch =
            Watch { events, state: Mutex::default(), slots: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)) };
        let mut open: Vec<Subscription> = (0..MAX_SUBSCRIBERS).map(|_| watch.subscribe().unwrap()).collect();
        assert!(watch.subscribe().is_none(), "a stream past {MAX_SUBSCRIBERS} is refused");
        open.pop();
        assert!(watch.subscribe().is_some(), "a closed stream's slot is free again");
    }
}
