//! The verifier pool: script and signature checks of transactions on their way into the
//! mempool, off the core thread.
//!
//! The core runs every cheap admission rule ([`crate::mempool::Mempool::accept_deferred`]:
//! UTXO lookups, policy, the pool graph) and hands a transaction whose scripts still need
//! checking here as a [`ScriptJob`]. Each verifier thread takes whatever jobs are waiting (at
//! most [`BATCH`]), checks them together with one ed25519 batch verification
//! ([`verify_txs_batched`], which narrows a failed batch down to the bad transactions, so only
//! their senders are blamed), records the ones that passed in the chain's script cache (block
//! connect then skips them) and queues the results on the core's inbox, where
//! [`crate::mempool::Mempool::accept_verified`] finishes the admission.
//!
//! Bounded: at most `max_jobs` transactions and `max_bytes` of them are outstanding (queued,
//! being checked, or with their result not yet taken by the core). A submission past either
//! bound is refused at once, and the submitter is told: "busy" over RPC, Ignore on gossip.

use super::api::{NodeError, Reply, Request};
use super::queue::Inbox;
use crate::consensus::{verify_txs_batched, ConsensusError, ScriptCache};
use crate::mempool::ScriptJob;
use crate::primitives::{Hash256, Transaction, TxOut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Most jobs one thread checks in one batch.
pub const BATCH: usize = 128;
/// Most transactions outstanding in the pool by default.
pub const MAX_JOBS: usize = 8192;
/// Most bytes of transactions outstanding by default.
pub const MAX_BYTES: usize = 32 << 20;

/// Who is waiting for a job's verdict.
pub(crate) enum Origin {
    /// A gossiped transaction: the service waits for the verdict on `token` (and blames
    /// the message's source if it says Reject).
    Gossip { token: u64 },
    /// A local submission (RPC `sendrawtransaction`).
    Local(Reply<Result<Hash256, NodeError>>),
}

/// A transaction to check and who waits for it.
pub(crate) struct Job {
    pub script: ScriptJob,
    pub origin: Origin,
}

/// A checked job.
pub(crate) struct Checked {
    pub job: Job,
    /// The scripts' verdict: exactly what an eager check gives.
    pub result: Result<(), ConsensusError>,
}

/// How full the pool is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Transactions outstanding.
    pub jobs: usize,
    /// Their bytes.
    pub bytes: usize,
}

struct State {
    queue: VecDeque<(Job, usize)>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// Outstanding jobs and bytes, released by [`Verifier::release`] once the core took a
    /// result.
    jobs: AtomicUsize,
    bytes: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section is a push, a drain or a flag: never left half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool; dropping it stops its threads (queued jobs are dropped: their RPC callers read
/// "shutting down").
pub(crate) struct Verifier {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    max_jobs: usize,
    max_bytes: usize,
}

fn tx_bytes(tx: &Transaction, spent: &[TxOut]) -> usize {
    tx.encoded_size() + spent.iter().map(|o| 16 + o.lock.0.len()).sum::<usize>()
}

impl Verifier {
    /// Starts `threads` verifier threads (at least one) that record passes in `cache` and
    /// queue results on `inbox`.
    pub(crate) fn start(
        threads: usize,
        max_jobs: usize,
        max_bytes: usize,
        cache: Arc<ScriptCache>,
        inbox: Arc<Inbox<Request>>,
    ) -> std::io::Result<Verifier> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { queue: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
            jobs: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        });
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (shared, cache, inbox) = (shared.clone(), cache.clone(), inbox.clone());
            let handle = std::thread::Builder::new()
                .name(format!("verify-{i}"))
                .spawn(move || worker(&shared, &cache, &inbox))?;
            handles.push(handle);
        }
        Ok(Verifier { shared, threads: handles, max_jobs, max_bytes })
    }

    /// Queues `job`, or gives it back when the pool is full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        let cost = tx_bytes(&job.script.tx, &job.script.spent);
        let jobs = self.shared.jobs.load(Ordering::SeqCst);
        let bytes = self.shared.bytes.load(Ordering::SeqCst);
        // One job always fits in an empty pool, however large.
        if jobs >= self.max_jobs || (jobs > 0 && bytes + cost > self.max_bytes) {
            return Err(job);
        }
        let mut state = self.shared.lock();
        if state.closed {
            return Err(job);
        }
        self.shared.jobs.fetch_add(1, Ordering::SeqCst);
        self.shared.bytes.fetch_add(cost, Ordering::SeqCst);
        state.queue.push_back((job, cost));
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// The core took the result of `checked`: its room is free again.
    pub(crate) fn release(&self, checked: &Checked) {
        let cost = tx_bytes(&checked.job.script.tx, &checked.job.script.spent);
        self.shared.jobs.fetch_sub(1, Ordering::SeqCst);
        self.shared.bytes.fetch_sub(cost, Ordering::SeqCst);
    }

    /// How full the pool is now.
    pub(crate) fn load(&self) -> Load {
        Load {
            jobs: self.shared.jobs.load(Ordering::SeqCst),
            bytes: self.shared.bytes.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(shared: &Shared, cache: &ScriptCache, inbox: &Inbox<Request>) {
    loop {
        let batch: Vec<Job> = {
            let mut state = shared.lock();
            while state.queue.is_empty() && !state.closed {
                state = shared.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.closed {
                return;
            }
            let n = state.queue.len().min(BATCH);
            state.queue.drain(..n).map(|(job, _)| job).collect()
        };
        let pairs: Vec<(&Transaction, &[TxOut])> =
            batch.iter().map(|j| (&j.script.tx, j.script.spent.as_slice())).collect();
        let results = verify_txs_batched(&pairs);
        drop(pairs);
        crate::metrics::verify_batch(batch.len());
        let checked: Vec<Checked> = batch
            .into_iter()
            .zip(results)
            .map(|(job, result)| {
                if result.is_ok() {
                    cache.insert(job.script.txid);
                }
                Checked { job, result }
            })
            .collect();
        // A closed inbox means the core has stopped: the results have nowhere to go.
        let _ = inbox.push_internal(Request::Verified(checked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::queue::{Job as InboxJob, Limits};
    use crate::primitives::{Amount, OutPoint};
    use crate::testkit::{key, p2pkh_lock, spend_p2pkh};
    use std::time::Duration;

    fn script_job(i: u8, corrupt: bool) -> ScriptJob {
        let k = key(1);
        let out = TxOut { value: Amount::from_sat(1000).unwrap(), lock: p2pkh_lock(&k) };
        let op = OutPoint { txid: Hash256([i; 32]), index: 0 };
        let mut tx = spend_p2pkh(
            &k,
            &[(op, out.clone())],
            vec![TxOut { value: Amount::from_sat(900).unwrap(), ..out.clone() }],
            0,
        );
        if corrupt {
            tx.inputs[0].unlock.0[10] ^= 1;
        }
        ScriptJob { txid: tx.txid(), tx, spent: vec![out] }
    }

    fn inbox() -> Arc<Inbox<Request>> {
        Arc::new(Inbox::new(Limits { api_count: 1, net_count: 1, net_bytes: 1 }))
    }

    fn gossip(script: ScriptJob, token: u64) -> Job {
        Job { script, origin: Origin::Gossip { token } }
    }

    /// Takes results from the inbox until `n` arrived.
    fn collect(inbox: &Inbox<Request>, n: usize) -> Vec<Checked> {
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while out.len() < n && std::time::Instant::now() < deadline {
            if let Some(InboxJob::Api(Request::Verified(batch))) = inbox.pop(Duration::from_millis(50)) {
                out.extend(batch);
            }
        }
        out
    }

    #[test]
    fn passes_go_into_the_script_cache_and_failures_carry_the_eager_error() {
        let cache = Arc::new(ScriptCache::new(100));
        let inbox = inbox();
        let v = Verifier::start(2, 100, 1 << 20, cache.clone(), inbox.clone()).unwrap();
        for i in 1..=20u8 {
            v.submit(gossip(script_job(i, i == 7), i as u64)).map_err(|_| ()).unwrap();
        }
        let results = collect(&inbox, 20);
        assert_eq!(results.len(), 20);
        for c in &results {
            let Origin::Gossip { token, .. } = c.job.origin else { panic!("origin kept") };
            let eager = crate::consensus::verify_tx_scripts(&c.job.script.tx, &c.job.script.spent);
            assert_eq!(c.result, eager);
            assert_eq!(c.result.is_err(), token == 7, "token {token}");
            assert_eq!(cache.contains(&c.job.script.txid), token != 7);
            v.release(c);
        }
        assert_eq!(v.load(), Load { jobs: 0, bytes: 0 });
    }

    #[test]
    fn a_full_pool_refuses_at_once_until_the_core_takes_results() {
        let cache = Arc::new(ScriptCache::new(100));
        let inbox = inbox();
        let v = Verifier::start(1, 3, 1 << 20, cache, inbox.clone()).unwrap();
        for i in 1..=3u8 {
            assert!(v.submit(gossip(script_job(i, false), 0)).is_ok());
        }
        assert!(v.submit(gossip(script_job(4, false), 0)).is_err(), "3 outstanding: full");
        let results = collect(&inbox, 3);
        assert_eq!(results.len(), 3);
        // Results queued on the inbox still count until the core releases them.
        assert!(v.submit(gossip(script_job(5, false), 0)).is_err());
        v.release(&results[0]);
        assert!(v.submit(gossip(script_job(6, false), 0)).is_ok());
    }

    #[test]
    fn the_byte_bound_refuses_a_second_large_job() {
        let v = Verifier::start(1, 100, 10, Arc::new(ScriptCache::new(1)), inbox()).unwrap();
        // Outstanding until released, whether checked yet or not.
        assert!(v.submit(gossip(script_job(1, false), 0)).is_ok(), "one job always fits");
        assert!(v.submit(gossip(script_job(2, false), 0)).is_err(), "past 10 bytes");
    }
}
