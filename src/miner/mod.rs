//! The miner: block templates, multithreaded nonce search on dedicated OS threads (never
//! tokio workers), cancellation, extra-nonce rolling and hash-rate measurement.
//!
//! Threads: each of N workers owns a disjoint slice of the search space: its extra nonce is
//! `thread << 32 | counter`, so no two threads ever hash the same header; within one extra
//! nonce it scans the whole 32-bit nonce range, then rolls the counter (new coinbase, new
//! Merkle root, new midstate). Workers check the job generation every [`chunk`] nonces (a few
//! milliseconds), so a new template or a tip change stops every thread well within 50 ms.
//!
//! Exactly once: a found block is tagged with its job id and claimed by the consumer with a
//! compare-and-swap of the generation ([`Miner::take_found`]); the first claim wins and makes
//! the job stale, so no block for an old tip and no second block for one job gets through.

pub mod kernel;
pub mod strategy;
pub mod template;

use crate::primitives::{Block, BlockHeader, U256};
use kernel::{midstate, scan, tail_words, Kernel};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
pub use template::{BlockTemplate, CoinbaseOnly, TemplateSource};
use tracing::{debug, info};

/// Nonces hashed between two checks of the job generation, per kernel: about 5 ms of work
/// at release-build speed either way (27 M/s SHA-NI, 7 M/s portable), so every thread drops
/// a stale job well within 50 ms.
pub fn chunk(kernel: Kernel) -> u32 {
    match kernel {
        Kernel::ShaNi => 1 << 17,
        Kernel::Portable => 1 << 15,
    }
}

/// How the continuous miner (`--mine`) behaves (`--strategy`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MiningStrategy {
    /// Mine on the best tip and publish every block at once.
    #[default]
    Honest,
    /// Eyal-Sirer selfish mining: withhold blocks, publish to race a tie, release on a lead
    /// of two cut to one, give up when behind.
    Selfish,
}

impl MiningStrategy {
    /// The name `--strategy` takes.
    pub fn name(self) -> &'static str {
        match self {
            MiningStrategy::Honest => "honest",
            MiningStrategy::Selfish => "selfish",
        }
    }

    /// True for the default, honest strategy.
    pub fn is_honest(&self) -> bool {
        *self == MiningStrategy::Honest
    }
}

/// Miner settings.
#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// Worker threads.
    pub threads: usize,
    /// Hashing kernel.
    pub kernel: Kernel,
    /// Highest nonce scanned before rolling the extra nonce (`u32::MAX` normally; tests lower
    /// it to exercise rolling).
    pub max_nonce: u32,
    /// Most hashes per second over all threads (`--mine-hashrate`; `None`: as fast as the
    /// machine goes). Miners limited well below the machine's speed get exact hash shares on
    /// a shared machine: a block is found per hash with the same chance for everyone.
    pub hashrate: Option<f64>,
}

impl MinerConfig {
    /// `threads` workers with the fastest kernel and the full nonce range.
    pub fn new(threads: usize) -> MinerConfig {
        MinerConfig { threads: threads.max(1), kernel: Kernel::detect(), max_nonce: u32::MAX, hashrate: None }
    }
}

/// A template being mined, with its id.
struct Job {
    id: u64,
    template: BlockTemplate,
    target: U256,
}

/// A solved block and the job it solves.
struct Found {
    job: u64,
    block: Block,
}

struct Shared {
    job: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    /// Id of the job workers should be on; anything else is stale.
    generation: AtomicU64,
    shutdown: AtomicBool,
    /// Hashes done per thread.
    hashes: Vec<AtomicU64>,
    /// Job id each thread is working on (0: idle).
    working_on: Vec<AtomicU64>,
    config: MinerConfig,
}

/// The running miner. Dropping it stops and joins the workers.
pub struct Miner {
    shared: Arc<Shared>,
    found: Receiver<Found>,
    workers: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Most worker threads a miner starts (more than any machine has cores; a larger
    /// setting is refused rather than exhausting the process's threads).
    pub const MAX_THREADS: usize = 1024;

    /// Starts the worker threads, idle until [`Miner::set_template`]. Panics if a thread
    /// cannot be spawned: tools and tests only; the node uses [`Miner::try_start`].
    pub fn start(config: MinerConfig) -> Miner {
        Miner::try_start(config).expect("starting the miner")
    }

    /// Starts the worker threads, or says why it cannot (too many threads asked for, or the
    /// system refused a thread); threads already started are stopped again.
    pub fn try_start(config: MinerConfig) -> std::io::Result<Miner> {
        let threads = config.threads.max(1);
        if threads > Self::MAX_THREADS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{threads} miner threads asked for, at most {} (pass fewer with --mine-threads)",
                    Self::MAX_THREADS
                ),
            ));
        }
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            hashes: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            working_on: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            config,
        });
        let (tx, rx) = channel();
        let mut miner = Miner { shared: shared.clone(), found: rx, workers: Vec::with_capacity(threads) };
        for t in 0..threads {
            let (shared, tx) = (shared.clone(), tx.clone());
            let spawned =
                std::thread::Builder::new().name(format!("miner-{t}")).spawn(move || worker(t, &shared, &tx));
            match spawned {
                Ok(h) => miner.workers.push(h),
                // Dropping `miner` stops and joins the threads already running.
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot start miner thread {t} of {threads}: {e}"),
                    ))
                }
            }
        }
        info!(target: "miner", threads, kernel = shared.config.kernel.name(), "miner started");
        Ok(miner)
    }

    /// Replaces the work: every thread drops what it was doing and starts on `template`.
    /// Returns the new job id.
    pub fn set_template(&self, template: BlockTemplate) -> u64 {
        let mut job = self.shared.job.lock().expect("miner lock");
        let id = self.shared.generation.load(Ordering::SeqCst) + 1;
        let target = template.target();
        debug!(target: "miner", id, height = template.height, prev = %template.prev, "new job");
        *job = Some(Arc::new(Job { id, template, target }));
        self.shared.generation.store(id, Ordering::SeqCst);
        self.shared.wake.notify_all();
        id
    }

    /// Stops all work (e.g. the tip changed and no template is ready yet).
    pub fn clear(&self) {
        let mut job = self.shared.job.lock().expect("miner lock");
        *job = None;
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits up to `timeout` for a block solving the *current* job and claims it: the job
    /// becomes stale, so each job yields at most one block. Blocks of stale jobs are dropped.
    pub fn take_found(&self, timeout: Duration) -> Option<Block> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.found.recv_timeout(left) {
                Ok(f) => {
                    let claimed = self
                        .shared
                        .generation
                        .compare_exchange(f.job, f.job + 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if claimed {
                        return Some(f.block);
                    }
                    debug!(target: "miner", job = f.job, "dropped a block for a stale job");
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Total hashes per thread since start.
    pub fn hashes(&self) -> Vec<u64> {
        self.shared.hashes.iter().map(|h| h.load(Ordering::Relaxed)).collect()
    }

    /// The job id each thread is working on (0: idle).
    pub fn working_on(&self) -> Vec<u64> {
        self.shared.working_on.iter().map(|h| h.load(Ordering::SeqCst)).collect()
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.shared.config.kernel
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Waits for a job that is current; `None` on shutdown.
fn next_job(shared: &Shared) -> Option<Arc<Job>> {
    let mut guard = shared.job.lock().expect("miner lock");
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(job) = guard.as_ref() {
            if job.id == shared.generation.load(Ordering::SeqCst) {
                return Some(job.clone());
            }
        }
        guard = shared.wake.wait_timeout(guard, Duration::from_millis(20)).expect("miner lock").0;
    }
}

/// Holds one thread to `rate` hashes per second: before each chunk it waits until the hashes
/// already done are due. Time spent idle (no job) or starved of CPU is not made up later by
/// a burst: the schedule restarts when it falls more than [`Pacer::SLACK`] behind.
struct Pacer {
    rate: f64,
    next: Instant,
}

impl Pacer {
    const SLACK: Duration = Duration::from_millis(50);
    /// Chunks last about this long, so a job change is seen within it.
    const CHUNK: Duration = Duration::from_millis(10);

    fn new(rate: f64) -> Pacer {
        Pacer { rate: rate.max(1e-3), next: Instant::now() }
    }

    /// Nonces to scan in the next chunk, at most `max`.
    fn chunk(&self, max: u32) -> u32 {
        (self.rate * Self::CHUNK.as_secs_f64()).clamp(1.0, max as f64) as u32
    }

    /// Waits until `hashes` more may be done, then books them.
    fn pace(&mut self, hashes: u64) {
        let now = Instant::now();
        if self.next + Self::SLACK < now {
            self.next = now;
        }
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += Duration::from_secs_f64(hashes as f64 / self.rate);
    }

    /// Gives back hashes booked but not done (the job changed during the wait): under a
    /// template that changes faster than a chunk's wait, a slow miner would otherwise wait
    /// for ever and never hash.
    fn refund(&mut self, hashes: u64) {
        self.next -= Duration::from_secs_f64(hashes as f64 / self.rate);
    }
}

fn worker(t: usize, shared: &Shared, found: &Sender<Found>) {
    let kernel = shared.config.kernel;
    let max_nonce = shared.config.max_nonce as u64;
    let threads = shared.hashes.len().max(1) as f64;
    let mut pacer = shared.config.hashrate.map(|h| Pacer::new(h / threads));
    let (mut last_job, mut counter) = (0u64, 0u64);
    while let Some(job) = next_job(shared) {
        shared.working_on[t].store(job.id, Ordering::SeqCst);
        if job.id != last_job {
            (last_job, counter) = (job.id, 0);
        }
        let current = || shared.generation.load(Ordering::SeqCst) == job.id;
        'job: while current() {
            let extra_nonce = ((t as u64) << 32) | (counter & 0xffff_ffff);
            counter += 1;
            let coinbase = job.template.coinbase(extra_nonce);
            let header = job.template.header(&coinbase);
            let bytes = header.to_bytes();
            let mid = midstate(bytes[..64].try_into().expect("64 bytes"));
            let tail = tail_words(&bytes);
            let mut start = 0u64;
            while start <= max_nonce {
                let most = pacer.as_ref().map_or(chunk(kernel), |p| p.chunk(chunk(kernel)));
                let count = (max_nonce - start + 1).min(most as u64) as u32;
                if let Some(p) = &mut pacer {
                    p.pace(count as u64);
                    if !current() {
                        p.refund(count as u64);
                        break 'job;
                    }
                }
                let r = scan(kernel, &mid, &tail, start as u32, count, &job.target);
                shared.hashes[t].fetch_add(r.hashes, Ordering::Relaxed);
                if let Some(nonce) = r.found {
                    let block = job.template.block(coinbase, BlockHeader { nonce, ..header });
                    debug!(target: "miner", thread = t, job = job.id, hash = %block.hash(), "found a block");
                    if current() {
                        let _ = found.send(Found { job: job.id, block });
                    }
                    break 'job;
                }
                if !current() {
                    break 'job;
                }
                start += count as u64;
            }
        }
        shared.working_on[t].store(0, Ordering::SeqCst);
        // Wait for the job to change before looking again (a found job stays until claimed).
        let guard = shared.job.lock().expect("miner lock");
        if shared.generation.load(Ordering::SeqCst) == job.id && !shared.shutdown.load(Ordering::SeqCst) {
            let _ = shared.wake.wait_timeout(guard, Duration::from_millis(20));
        }
    }
}

/// A rolling hash-rate meter over the last `window` of samples (for `getmininginfo`):
/// call [`HashRateMeter::sample`] periodically, read [`HashRateMeter::rate`].
pub struct HashRateMeter {
    window: Duration,
    samples: std::collections::VecDeque<(Instant, Vec<u64>)>,
}

impl HashRateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> Self {
        HashRateMeter { window, samples: std::collections::VecDeque::new() }
    }

    /// Records the miner's counters now.
    pub fn sample(&mut self, miner: &Miner) {
        let now = Instant::now();
        self.samples.push_back((now, miner.hashes()));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
    }

    /// The rate between the oldest and newest samples in the window (zero before two).
    pub fn rate(&self) -> HashRate {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, a)), Some((t1, b))) if t1 > t0 => HashRate::between(a, b, t1.duration_since(*t0)),
            _ => HashRate { per_thread: Vec::new(), total: 0.0 },
        }
    }
}

/// Hash-rate measurement over an interval, per thread and in total.
#[derive(Clone, Debug)]
pub struct HashRate {
    /// Hashes per second of each thread.
    pub per_thread: Vec<f64>,
    /// Sum over threads.
    pub total: f64,
}

impl HashRate {
    /// The rate between two [`Miner::hashes`] snapshots `elapsed` apart.
    pub fn between(before: &[u64], after: &[u64], elapsed: Duration) -> HashRate {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let per_thread: Vec<f64> = before.iter().zip(after).map(|(b, a)| (a - b) as f64 / secs).collect();
        HashRate { total: per_thread.iter().sum(), per_thread }
    }
}

/// What [`mine_blocks`] mines on: something that knows its tip and takes blocks (a
/// chainstate driven directly by a tool or test; the node drives the miner itself).
pub trait MiningTarget {
    /// Why a block was refused.
    type Error;
    /// The template context on the current tip at time `now`.
    fn tip_context(&self, now: u64) -> crate::consensus::TipContext;
    /// Takes a mined block.
    fn submit(&mut self, block: Block, now: u64) -> Result<(), Self::Error>;
}

/// Mines `count` blocks on `target`'s tip with templates from `source`, one at a time, and
/// submits each. `now` is the clock.
pub fn mine_blocks<T: MiningTarget>(
    target: &mut T,
    miner: &Miner,
    source: &dyn TemplateSource,
    count: u32,
    now: &dyn Fn() -> u64,
) -> Result<Vec<crate::primitives::Hash256>, T::Error> {
    let mut mined = Vec::with_capacity(count as usize);
    while mined.len() < count as usize {
        miner.set_template(source.template(&target.tip_context(now())));
        // Templates are refreshed every few seconds so the header time stays current.
        if let Some(block) = miner.take_found(Duration::from_secs(5)) {
            let hash = block.hash();
            target.submit(block, now())?;
            mined.push(hash);
        }
    }
    miner.clear();
    Ok(mined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_books_hashes_at_its_rate_and_does_not_make_up_idle_time() {
        let start = Instant::now();
        let mut p = Pacer::new(1_000.0);
        // Chunks of about 10 ms of hashes, at least one, at most the kernel's chunk.
        assert_eq!((p.chunk(1 << 17), p.chunk(4)), (10, 4));
        assert_eq!(Pacer::new(0.5).chunk(1 << 17), 1);
        for _ in 0..5 {
            p.pace(10);
        }
        // Five chunks of 10 ms: the fifth may start only after the first four are due.
        assert!(start.elapsed() >= Duration::from_millis(40), "{:?}", start.elapsed());
        assert!(p.next >= start + Duration::from_millis(50));
        // After an idle spell the schedule restarts from now instead of bursting.
        p.next = Instant::now() - Duration::from_secs(5);
        let before = Instant::now();
        p.pace(10);
        assert!(p.next >= before + Duration::from_millis(10));
        // A refunded chunk (its job changed during the wait) is not waited for again.
        let mut slow = Pacer::new(2.0);
        slow.pace(1);
        slow.pace(1); // waits 0.5 s
        slow.refund(1);
        assert!(slow.next <= Instant::now(), "the next chunk may start at once");
    }
}
