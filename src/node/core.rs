//! The node core: one dedicated OS thread owning the chainstate, the mempool and the miner.
//!
//! Chain and mempool live on the same thread because a reorganisation must update both as
//! one step (disconnected transactions return to the pool against the new UTXO set); the
//! thread is dedicated, so their CPU-bound work (block connect, script checks on admission)
//! never runs on a tokio worker. Everything else talks to it through [`NodeHandle`]: a bounded
//! channel of closures, each answered over a oneshot. A full channel is reported as "busy",
//! never waited on, so async callers cannot stall.

use crate::chain::{Chain, ChainEvent, ProcessOutcome};
use crate::consensus::Network;
use crate::mempool::{Mempool, MempoolConfig, MempoolTemplates};
use crate::miner::{HashRateMeter, Miner, MinerConfig, TemplateSource};
use crate::p2p::sync::SyncMachine;
use crate::p2p::P2pHandle;
use crate::primitives::{Block, Hash256, Script};
use libp2p::PeerId;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// The wall clock, seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Requests queued for the core at most (RPC calls, gossip verdicts, sync steps; the network
/// service bounds its share by bytes).
const QUEUE: usize = 8192;

type Job = Box<dyn FnOnce(&mut Core) + Send>;

/// Why a request to the core could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The request queue is full.
    #[error("node is busy ({QUEUE} requests queued): retry later")]
    Busy,
    /// The core has stopped (shutting down).
    #[error("node is shutting down")]
    Stopped,
}

/// A cloneable handle to the core.
#[derive(Clone)]
pub struct NodeHandle {
    tx: SyncSender<Job>,
    network: Network,
}

impl NodeHandle {
    /// Runs `f` on the core thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, CoreError> {
        self.submit(f)?.await.map_err(|_| CoreError::Stopped)
    }

    /// Queues `f` for the core thread now (so jobs keep the order they were submitted in)
    /// and returns where its result will arrive.
    pub fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<R>, CoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |core| {
            let _ = tx.send(f(core));
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(CoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(CoreError::Stopped),
        }
    }

    /// The network the node runs.
    pub fn network(&self) -> Network {
        self.network
    }
}

/// Mining settings of the core.
#[derive(Clone, Debug)]
pub struct MiningConfig {
    /// Where coinbases pay.
    pub lock: Script,
    /// Miner threads.
    pub threads: usize,
}

/// State owned by the core thread.
pub struct Core {
    /// The chainstate.
    pub chain: Chain,
    /// The mempool.
    pub mempool: Mempool,
    /// The network.
    pub network: Network,
    /// The continuous miner (`--mine`), if any.
    pub miner: Option<(Miner, Script)>,
    /// Threads for `generatetoaddress`.
    pub generate_threads: usize,
    /// Hash rate of the continuous miner.
    pub meter: HashRateMeter,
    /// Set by `stop`: the loop exits and flushes.
    pub stopping: bool,
    /// Headers-first sync state (driven by the network service through [`Core::drive_sync`]).
    pub sync: SyncMachine<PeerId>,
    /// The network service, for publishing our own blocks and transactions.
    pub net: Option<P2pHandle>,
    /// When the last template was made (templates are refreshed every few seconds).
    template_at: Instant,
    /// When a new tip was last logged at info level, and tips connected since.
    tip_logged_at: Instant,
    tips_unlogged: u32,
    mempool_path: PathBuf,
    /// Set by the runtime at shutdown: long jobs (generatetoaddress) stop early.
    shutdown: Arc<AtomicBool>,
}

/// Flags shared between the runtime and the core thread.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Shutdown requested: the core finishes the current job, skips queued ones, flushes.
    pub shutdown: Arc<AtomicBool>,
    /// A job panicked: the node stops and exits non-zero.
    pub crashed: Arc<AtomicBool>,
    /// Notified when the core wants the whole node to stop (after a panic).
    pub stop: Arc<tokio::sync::Notify>,
}

impl Core {
    /// Hands a block to the chain and updates the mempool and the miner from the result.
    pub fn submit_block(&mut self, block: Block) -> Result<ProcessOutcome, crate::chain::ChainError> {
        let outcome = self.chain.process_block(block, now())?;
        if let ProcessOutcome::Accepted { events } = &outcome {
            self.on_events(events);
        }
        Ok(outcome)
    }

    /// Applies chain events to the mempool and gives the miner fresh work.
    pub fn on_events(&mut self, events: &[ChainEvent]) {
        if events.is_empty() {
            return;
        }
        let update = self.mempool.apply_events(events, &self.chain, now());
        tracing::debug!(target: "mempool", ?update, "chain events applied");
        if let Some(ChainEvent::Connected { block, height }) = events.last() {
            // At most a line a second while syncing thousands of blocks.
            self.tips_unlogged += 1;
            if self.tip_logged_at.elapsed() >= Duration::from_secs(1) {
                info!(target: "chain", height, hash = %block.hash(), txs = block.block().txs.len(), connected = self.tips_unlogged, "new tip");
                self.tip_logged_at = Instant::now();
                self.tips_unlogged = 0;
            } else {
                tracing::debug!(target: "chain", height, hash = %block.hash(), "new tip");
            }
        }
        self.refresh_template();
    }

    /// Gives the continuous miner a template on the current tip.
    pub fn refresh_template(&mut self) {
        if let Some((miner, lock)) = &self.miner {
            let source = MempoolTemplates { pool: &self.mempool, lock: lock.clone() };
            miner.set_template(source.template(&self.chain, now()));
            self.template_at = Instant::now();
        }
    }

    /// Refreshes the miner's template unless it is younger than `max_age` (many RPC
    /// submissions in a row then cost one template, not one each).
    pub fn refresh_template_if_older(&mut self, max_age: Duration) {
        if self.template_at.elapsed() >= max_age {
            self.refresh_template();
        }
    }

    /// Mines `n` blocks paying `lock` (regtest-style `generatetoaddress`), on this thread with
    /// a temporary miner. Returns the block hashes; stops early (with what it has) when the
    /// node shuts down.
    pub fn generate(&mut self, n: u32, lock: Script) -> Result<Vec<Hash256>, crate::chain::ChainError> {
        let miner = Miner::start(MinerConfig::new(self.generate_threads));
        let mut out = Vec::with_capacity(n as usize);
        'blocks: while out.len() < n as usize {
            let source = MempoolTemplates { pool: &self.mempool, lock: lock.clone() };
            miner.set_template(source.template(&self.chain, now()));
            let started = Instant::now();
            loop {
                if self.shutdown.load(Ordering::SeqCst) {
                    break 'blocks;
                }
                if let Some(block) = miner.take_found(Duration::from_millis(200)) {
                    let hash = block.hash();
                    let copy = block.clone();
                    self.submit_block(block)?;
                    self.announce_block(&copy);
                    out.push(hash);
                    break;
                }
                if started.elapsed() > Duration::from_secs(5) {
                    continue 'blocks; // a fresh template keeps the header time current
                }
            }
        }
        Ok(out)
    }

    fn tick(&mut self) {
        let found = self.miner.as_ref().and_then(|(m, _)| m.take_found(Duration::ZERO));
        if let Some(block) = found {
            let hash = block.hash();
            let encoded = block.clone();
            let result = self.submit_block(block);
            if result.is_ok() {
                self.announce_block(&encoded);
            }
            match result {
                Ok(_) => info!(target: "miner", %hash, "mined a block"),
                Err(e) => warn!(target: "miner", %hash, error = %e, "mined block rejected"),
            }
        }
        if let Some((m, _)) = &self.miner {
            self.meter.sample(m);
            if self.template_at.elapsed() > Duration::from_secs(5) {
                self.refresh_template();
            }
        }
    }

    /// Saves the mempool; called once when the core stops.
    fn flush(&mut self) {
        self.miner = None;
        match self.mempool.save(&self.mempool_path) {
            Ok(n) => info!(target: "mempool", txs = n, path = %self.mempool_path.display(), "mempool saved"),
            Err(e) => warn!(target: "mempool", error = %e, "could not save the mempool"),
        }
    }
}

/// Starts the core thread. Returns the handle and the thread (join it after dropping every
/// handle or sending `stop`).
pub fn start(
    chain: Chain,
    network: Network,
    datadir: PathBuf,
    mining: Option<MiningConfig>,
    generate_threads: usize,
    mempool_config: MempoolConfig,
    life: Lifecycle,
    net: Option<P2pHandle>,
) -> (NodeHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Job>(QUEUE);
    let handle = NodeHandle { tx, network };
    let thread = std::thread::Builder::new()
        .name("node-core".into())
        .spawn(move || {
            let params = chain.params();
            let mut mempool = Mempool::new(params, mempool_config, chain.script_cache());
            let mempool_path = datadir.join("mempool.dat");
            match mempool.load(&mempool_path, &chain, now()) {
                Ok(report) => info!(target: "mempool", ?report, "mempool loaded"),
                Err(e) => warn!(target: "mempool", error = %e, "mempool file not loaded; starting empty"),
            }
            let miner = mining.map(|m| (Miner::start(MinerConfig::new(m.threads)), m.lock));
            let mut core = Core {
                chain,
                mempool,
                network,
                miner,
                generate_threads,
                meter: HashRateMeter::new(Duration::from_secs(10)),
                stopping: false,
                sync: SyncMachine::new(),
                net,
                template_at: Instant::now(),
                tip_logged_at: Instant::now() - Duration::from_secs(2),
                tips_unlogged: 0,
                mempool_path,
                shutdown: life.shutdown.clone(),
            };
            core.refresh_template();
            run_loop(&mut core, &rx, &life);
            core.flush();
            info!(target: "node", "core stopped");
        })
        .expect("spawning the core thread");
    (handle, thread)
}

fn run_loop(core: &mut Core, rx: &Receiver<Job>, life: &Lifecycle) {
    let mut last_expiry = Instant::now();
    while !core.stopping && !life.shutdown.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(job) => {
                // A panicking job must not leave a zombie node answering "shutting down":
                // stop everything and exit non-zero.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(core))).is_err() {
                    tracing::error!(target: "node", "a request panicked on the core thread; stopping the node");
                    life.crashed.store(true, Ordering::SeqCst);
                    life.stop.notify_one();
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        core.tick();
        if last_expiry.elapsed() > Duration::from_secs(60) {
            core.mempool.expire(now());
            last_expiry = Instant::now();
        }
    }
}
