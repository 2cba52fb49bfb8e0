//! Optional indexes, built off the critical path: the tx index (txid -> block), the address
//! index (unspent outputs by locking script) and address history, written by one background
//! thread that follows the chain.
//!
//! The indexer keeps its own best block (`index_best`) in the same batch as its data, so a
//! crash leaves the indexes at a block boundary. It follows the store, not a stream of
//! events: when told the tip moved (or every second) it unwinds the blocks it indexed that
//! are no longer on the active chain (with their undo data, which the store keeps), then
//! indexes the active chain forward to the tip, several blocks per batch when behind. The same
//! loop catches up after a restart or a crash. Readers compare [`IndexHandle::status`] with
//! the chain's tip: an index that is behind says so instead of answering from the past.

use crate::primitives::Hash256;
use crate::store::{IndexSet, IndexStep, Store, StoreError};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Blocks indexed in one batch at most while catching up.
pub const MAX_BLOCKS_PER_BATCH: usize = 64;
/// Transactions indexed in one batch at most (a batch ends after the block that passes it).
pub const MAX_TXS_PER_BATCH: usize = 20_000;
/// The indexer looks at the tip at least this often, even without a notification.
const POLL: Duration = Duration::from_secs(1);

/// Errors of the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The indexer thread could not be started.
    #[error("starting the indexer thread: {0}")]
    Spawn(std::io::Error),
}

/// Where the indexes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexStatus {
    /// The block the indexes match.
    pub best: Hash256,
    /// Its height.
    pub height: u32,
    /// Which indexes are kept.
    pub which: IndexSet,
    /// The last failure, if the indexer is stuck (it retries every second).
    pub error: Option<String>,
}

enum Msg {
    TipMoved,
    Stop,
}

/// The running indexer: notify it when the tip moves, read its status.
pub struct Indexer {
    tx: mpsc::Sender<Msg>,
    status: Arc<Mutex<IndexStatus>>,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable view of the indexer's status.
#[derive(Clone)]
pub struct IndexHandle {
    status: Arc<Mutex<IndexStatus>>,
}

impl IndexHandle {
    /// Where the indexes are now.
    pub fn status(&self) -> IndexStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Indexer {
    /// Prepares the indexes `which` (a newly enabled index is rebuilt from genesis, a disabled
    /// one deleted) and starts the thread, which first catches up with the store's tip.
    pub fn start(store: Arc<Store>, which: IndexSet) -> Result<Indexer, IndexError> {
        if store.prepare_indexes(which)? {
            info!(target: "index", ?which, "rebuilding the indexes from genesis (an index was switched on)");
        }
        let best =
            store.index_best()?.ok_or(StoreError::Missing { what: "index marker", hash: Hash256::ZERO })?;
        let height = store.get_index(&best)?.map_or(0, |r| r.height);
        let status = Arc::new(Mutex::new(IndexStatus { best, height, which, error: None }));
        let (tx, rx) = mpsc::channel();
        let shared = status.clone();
        let thread = std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || run(store, which, rx, shared))
            .map_err(IndexError::Spawn)?;
        Ok(Indexer { tx, status, thread: Some(thread) })
    }

    /// Tells the indexer the tip moved.
    pub fn notify(&self) {
        let _ = self.tx.send(Msg::TipMoved);
    }

    /// A view of the status for other threads.
    pub fn handle(&self) -> IndexHandle {
        IndexHandle { status: self.status.clone() }
    }

    /// Where the indexes are now.
    pub fn status(&self) -> IndexStatus {
        self.handle().status()
    }
}

impl Drop for Indexer {
    /// Catches up with the tip one last time, then stops the thread.
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The indexer's thread niceness: it follows the tip from behind (RPCs say so while it
/// lags), so on a busy machine the core's block processing and relay go first.
const INDEXER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux: niceness is per thread). Best
/// effort: failing leaves the thread at the process's niceness.
fn lower_this_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let tid = unsafe { libc::gettid() };
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, current.max(nice)) } != 0 {
            tracing::debug!(target: "index", "could not lower the indexer's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

fn run(store: Arc<Store>, which: IndexSet, rx: mpsc::Receiver<Msg>, status: Arc<Mutex<IndexStatus>>) {
    lower_this_thread_priority(INDEXER_NICE);
    let mut stopping = false;
    loop {
        match catch_up(&store, which, &status) {
            Ok(()) => status.lock().unwrap_or_else(|e| e.into_inner()).error = None,
            Err(e) => {
                warn!(target: "index", error = %e, "indexing failed; retrying in a second");
                status.lock().unwrap_or_else(|e| e.into_inner()).error = Some(e.to_string());
            }
        }
        if stopping {
            return;
        }
        match rx.recv_timeout(POLL) {
            Ok(Msg::TipMoved) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
        }
        // Many notifications while busy: one pass serves them all.
        while let Ok(m) = rx.try_recv() {
            if matches!(m, Msg::Stop) {
                stopping = true;
            }
        }
    }
}

fn publish(status: &Mutex<IndexStatus>, best: Hash256, height: u32) {
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    s.best = best;
    s.height = height;
}

/// Brings the indexes to the store's tip: unwinds what left the active chain, then indexes
/// forward in batches. The core may move the tip meanwhile; every step re-reads the store,
/// and a batch's marker is always a block whose data the batch completes.
fn catch_up(store: &Store, which: IndexSet, status: &Mutex<IndexStatus>) -> Result<(), StoreError> {
    let missing = |what, hash| StoreError::Missing { what, hash };
    let mut best = store.index_best()?.ok_or(missing("index marker", Hash256::ZERO))?;
    loop {
        let Some(tip) = store.tip()? else { return Ok(()) };
        let rec = store.get_index(&best)?.ok_or(missing("index record of the indexed block", best))?;
        if best == tip {
            publish(status, best, rec.height);
            return Ok(());
        }
        if store.hash_at(rec.height)? != Some(best) {
            // Left the active chain: unindex it.
            let block = store.get_block(&best)?.ok_or(missing("block body", best))?;
            let spent = store.get_undo(&best)?.ok_or(missing("undo data", best))?;
            let prev = block.header().prev;
            store.write_indexes(
                &[IndexStep { block: &block, height: rec.height, spent: &spent, connect: false }],
                &prev,
                which,
            )?;
            debug!(target: "index", hash = %best, height = rec.height, "unindexed");
            best = prev;
            publish(status, best, rec.height - 1);
            continue;
        }
        let mut loaded = Vec::new();
        let (mut prev, mut txs) = (best, 0usize);
        let mut height = rec.height;
        while loaded.len() < MAX_BLOCKS_PER_BATCH && txs < MAX_TXS_PER_BATCH {
            let Some(hash) = store.hash_at(height + 1)? else { break };
            let Some(block) = store.get_block(&hash)? else { break };
            if block.header().prev != prev {
                break; // the active chain changed under us: look again
            }
            let Some(spent) = store.get_undo(&hash)? else { break };
            txs += block.block().txs.len();
            height += 1;
            prev = hash;
            loaded.push((block, height, spent));
        }
        if loaded.is_empty() {
            // The tip moved back or sideways between our reads: start over.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let steps: Vec<IndexStep<'_>> = loaded
            .iter()
            .map(|(block, height, spent)| IndexStep { block, height: *height, spent, connect: true })
            .collect();
        store.write_indexes(&steps, &prev, which)?;
        debug!(target: "index", to = %prev, height, blocks = steps.len(), "indexed");
        best = prev;
        publish(status, best, height);
    }
}
