//! The node core: one dedicated OS thread owning the chainstate, the mempool and the miner.
//!
//! Chain and mempool live on the same thread because a reorganisation must update both as
//! one step (disconnected transactions return to the pool against the new UTXO set); the
//! thread is dedicated, so their CPU-bound work (block connect, script checks on admission)
//! never runs on a tokio worker. Others reach it only through its inbox: typed API requests
//! ([`super::api`]) and network items ([`crate::p2p::link`]), in two bounded lanes served in
//! turn. Long work is cut into steps: `generatetoaddress` mines one block per step, so peers
//! and other callers are served between blocks.

use super::api::{NodeError, NodeHandle, Reply, Request};
use super::queue::{Inbox, Job, Limits, Refused};
use crate::chain::{Chain, ChainError, ChainEvent, ProcessOutcome};
use crate::clock::unix_secs;
use crate::consensus::Network;
use crate::index::Indexer;
use crate::mempool::{Mempool, MempoolConfig, MempoolTemplates};
use crate::miner::{HashRateMeter, Miner, MinerConfig, TemplateSource};
use crate::p2p::link::{CoreLink, LinkError, NetDone, NetJob, NetOutcome, FOLLOWUP_TOKEN};
use crate::p2p::sync::SyncMachine;
use crate::p2p::P2pHandle;
use crate::primitives::{Block, Hash256, Script};
use libp2p::PeerId;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// API requests (RPC) queued for the core at most.
pub const API_QUEUE: usize = 1024;
/// Network items queued for the core at most…
pub const NET_QUEUE: usize = 8192;
/// …and their bytes at most (the service also bounds gossip bytes before queuing).
pub const NET_QUEUE_BYTES: usize = 128 << 20;

/// Mining settings of the core.
#[derive(Clone, Debug)]
pub struct MiningConfig {
    /// Where coinbases pay.
    pub lock: Script,
    /// Miner threads.
    pub threads: usize,
    /// Most hashes per second over all threads (`--mine-hashrate`).
    pub hashrate: Option<f64>,
    /// How mined blocks are published (`--strategy`).
    pub strategy: crate::miner::MiningStrategy,
}

/// A `generatetoaddress` in progress: one block per core step.
struct Generate {
    remaining: u32,
    lock: Script,
    hashes: Vec<Hash256>,
    reply: Reply<Result<Vec<Hash256>, NodeError>>,
    miner: Option<Miner>,
    template_at: Instant,
}

/// State owned by the core thread. Private: other modules use [`NodeHandle`].
pub(crate) struct Core {
    pub(super) chain: Chain,
    pub(super) mempool: Mempool,
    /// The continuous miner (`--mine`), if any.
    pub(super) miner: Option<(Miner, Script)>,
    generate_threads: usize,
    generating: VecDeque<Generate>,
    /// Hash rate of the continuous miner.
    pub(super) meter: HashRateMeter,
    /// Headers-first sync state, driven by network items.
    pub(super) sync: SyncMachine<PeerId>,
    /// The network service, for publishing our own blocks and transactions.
    pub(super) net: Option<P2pHandle>,
    /// Compact block relay.
    pub(super) relay: super::relay::Relay,
    /// Where results of network items go.
    pub(super) done: Option<mpsc::Sender<NetDone>>,
    /// When the last template was made (templates are refreshed every few seconds).
    template_at: Instant,
    /// When a new tip was last logged at info level, and tips connected since.
    tip_logged_at: Instant,
    tips_unlogged: u32,
    /// Log lines that peers can cause, rate-limited.
    pub(super) log_throttle: crate::p2p::throttle::LogThrottle,
    /// The background indexer; `None` once stopped at shutdown.
    pub(super) index: Option<Indexer>,
    /// Requests that need an index which is behind the tip, with when they arrived.
    pub(super) parked: VecDeque<(Instant, Request)>,
    mempool_path: PathBuf,
    chain_dir: PathBuf,
    /// The tip last written to the tip marker, and when.
    marked: Option<(Hash256, Instant)>,
    min_free_mb: u64,
    /// Set when the node must stop with this error (disk space too low).
    fatal: Option<String>,
    /// Where the tip-and-mempool mark is published for long polls.
    changes: tokio::sync::watch::Sender<super::api::TemplateMark>,
    /// Script checks of incoming transactions; `None` once stopped at shutdown.
    pub(super) verifier: Option<super::verify::Verifier>,
    /// Selfish mining and double spends ([`super::adversary`]).
    pub(super) adv: super::adversary::Adversary,
}

/// Flags shared between the runtime and the core thread.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Shutdown requested: the core finishes the current step, drops queued work, flushes.
    pub shutdown: Arc<AtomicBool>,
    /// A job panicked: the node stops and exits non-zero.
    pub crashed: Arc<AtomicBool>,
    /// Notified when the core wants the whole node to stop (after a panic).
    pub stop: Arc<tokio::sync::Notify>,
    /// Why the core stopped the node, when a user can fix it (disk space too low).
    pub fatal: Arc<std::sync::Mutex<Option<String>>>,
}

/// The network service's way into the core (the service sees only [`CoreLink`]).
#[derive(Clone)]
pub struct NetLink {
    inbox: Arc<Inbox<Request>>,
}

impl CoreLink for NetLink {
    fn submit(&self, job: NetJob) -> Result<(), (LinkError, NetJob)> {
        self.inbox.push_net(job).map_err(|(e, job)| match e {
            Refused::Full => (LinkError::Busy, job),
            Refused::Closed => (LinkError::Stopped, job),
        })
    }
}

/// What the core needs at start.
pub struct CoreConfig {
    /// The network.
    pub network: Network,
    /// Data directory (mempool.dat).
    pub datadir: PathBuf,
    /// The chainstate directory (its tip marker, [`super::tipmark`]; its free space).
    pub chain_dir: PathBuf,
    /// Free space, MB, below which the node stops instead of connecting a block.
    pub min_free_mb: u64,
    /// Continuous mining, if asked for.
    pub mining: Option<MiningConfig>,
    /// Threads for `generatetoaddress`.
    pub generate_threads: usize,
    /// Mempool policy.
    pub mempool: MempoolConfig,
    /// The background indexer (tx index, address indexes), started on the chain's store.
    pub index: Indexer,
    /// How our own blocks are announced.
    pub relay: crate::p2p::link::BlockRelay,
    /// Threads checking the scripts of incoming transactions ([`super::verify`]).
    pub verify_threads: usize,
}

/// How long a request that needs an index waits for it to catch up before it is answered
/// "still being built".
pub const INDEX_WAIT: Duration = Duration::from_secs(5);

/// The network side of the core: where to publish, where results go.
pub struct CoreNet {
    /// Publishing our own blocks and transactions.
    pub publish: P2pHandle,
    /// Results of network items.
    pub done: mpsc::Sender<NetDone>,
}

/// A started core: its API handle, the network link, and the thread (join it after
/// shutdown).
pub struct Started {
    /// The typed API.
    pub handle: NodeHandle,
    /// For the network service.
    pub link: NetLink,
    /// The core thread.
    pub thread: std::thread::JoinHandle<()>,
}

impl Core {
    /// Hands a block to the chain and updates the mempool and the miner from the result.
    /// A block that was stored but failed to connect is returned as the error naming the
    /// rule (the chain events it caused are applied all the same).
    pub(super) fn process_block(&mut self, block: Block) -> Result<ProcessOutcome, ChainError> {
        self.process_block_from(block, 0)
    }

    /// [`Core::process_block`] for a block from `source` (see [`crate::chain::OrphanSource`]).
    pub(super) fn process_block_from(
        &mut self,
        block: Block,
        source: crate::chain::OrphanSource,
    ) -> Result<ProcessOutcome, ChainError> {
        let hash = block.hash();
        self.process_with(hash, |chain, now| chain.process_block_from(block, now, source))
    }

    /// [`Core::process_block_from`] for a block that passed [`Chain::precheck`], shared with
    /// the network service (which answers `GetBlockTxn` for it meanwhile).
    pub(super) fn process_shared_from(
        &mut self,
        block: std::sync::Arc<crate::consensus::CheckedBlock>,
        source: crate::chain::OrphanSource,
    ) -> Result<ProcessOutcome, ChainError> {
        let hash = block.hash();
        self.process_with(hash, |chain, now| chain.process_shared_from(block, now, source))
    }

    fn process_with(
        &mut self,
        hash: Hash256,
        process: impl FnOnce(&mut Chain, u64) -> Result<ProcessOutcome, ChainError>,
    ) -> Result<ProcessOutcome, ChainError> {
        // RocksDB aborts the process when a write finds the disk full: stop before.
        if let Err(e) = crate::store::check_disk_space(&self.chain_dir, self.min_free_mb) {
            if self.fatal.is_none() {
                tracing::error!(target: "node", %hash, "{e}; stopping the node");
                self.fatal = Some(e.to_string());
            }
            return Err(e.into());
        }
        let started = Instant::now();
        let outcome = process(&mut self.chain, unix_secs())?;
        if let ProcessOutcome::Accepted { events, failed } = &outcome {
            let gone = events.iter().filter(|e| matches!(e, ChainEvent::Disconnected { .. })).count();
            crate::metrics::block_processed(
                gone,
                events.len() - gone,
                started.elapsed(),
                self.chain.tip().height,
            );
            self.on_events(events);
            if let Some((_, error)) = failed.iter().find(|(h, _)| *h == hash) {
                return Err(ChainError::Invalid { hash, error: error.clone() });
            }
        }
        Ok(outcome)
    }

    /// Applies chain events to the mempool and gives the miners fresh work.
    pub(super) fn on_events(&mut self, events: &[ChainEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(index) = &self.index {
            index.notify();
        }
        for e in events {
            if let ChainEvent::Connected { block, .. } = e {
                self.relay.remember(block);
            }
        }
        let update = self.mempool.apply_events(events, &self.chain, unix_secs());
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
        self.adversary_observe(events);
        self.refresh_template();
        // A generate in progress mines on the new tip too.
        if let Some(job) = self.generating.front_mut() {
            if let Some(m) = &job.miner {
                let source = MempoolTemplates { pool: &self.mempool, lock: job.lock.clone() };
                m.set_template(source.template(&self.chain.tip_context(unix_secs())));
                job.template_at = Instant::now();
            }
        }
    }

    /// Gives the continuous miner a template on the current tip (or where its strategy
    /// mines).
    pub(super) fn refresh_template(&mut self) {
        if let Some((miner, lock)) = &self.miner {
            match self.adversary_template(lock) {
                None => {
                    let source = MempoolTemplates { pool: &self.mempool, lock: lock.clone() };
                    miner.set_template(source.template(&self.chain.tip_context(unix_secs())));
                }
                Some(Some(t)) => drop(miner.set_template(t)),
                Some(None) => miner.clear(),
            }
            self.template_at = Instant::now();
        }
    }

    /// Refreshes the miner's template unless it is younger than `max_age` (many RPC
    /// submissions in a row then cost one template, not one each).
    pub(super) fn refresh_template_if_older(&mut self, max_age: Duration) {
        if self.template_at.elapsed() >= max_age {
            self.refresh_template();
        }
    }

    /// Queues a `generatetoaddress`; it runs one block per step of the loop.
    pub(super) fn start_generate(
        &mut self,
        n: u32,
        lock: Script,
        reply: Reply<Result<Vec<Hash256>, NodeError>>,
    ) {
        self.generating.push_back(Generate {
            remaining: n,
            lock,
            hashes: Vec::with_capacity(n.min(10_000) as usize),
            reply,
            miner: None,
            template_at: Instant::now(),
        });
    }

    /// One step of the oldest generate: waits up to `wait` for its miner to find a block,
    /// then connects and announces it. Finished jobs are answered.
    fn step_generate(&mut self, wait: Duration) {
        let Some(mut job) = self.generating.pop_front() else { return };
        let miner = match &job.miner {
            Some(m) => m,
            None => {
                let m = match Miner::try_start(MinerConfig::new(self.generate_threads)) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = job.reply.send(Err(NodeError::Miner(e.to_string())));
                        return;
                    }
                };
                let source = MempoolTemplates { pool: &self.mempool, lock: job.lock.clone() };
                m.set_template(source.template(&self.chain.tip_context(unix_secs())));
                job.template_at = Instant::now();
                job.miner.insert(m)
            }
        };
        let found = miner.take_found(wait);
        if found.is_none() && job.template_at.elapsed() > Duration::from_secs(5) {
            // A fresh template keeps the header time current.
            let source = MempoolTemplates { pool: &self.mempool, lock: job.lock.clone() };
            miner.set_template(source.template(&self.chain.tip_context(unix_secs())));
            job.template_at = Instant::now();
        }
        if let Some(block) = found {
            let hash = block.hash();
            // Put the job back first: on_events refreshes its template on the new tip.
            self.generating.push_front(job);
            let result = self.process_own_block(block);
            let Some(mut job) = self.generating.pop_front() else { return };
            match result {
                Ok(_) => {
                    job.hashes.push(hash);
                    job.remaining -= 1;
                }
                Err(e) => {
                    let _ = job.reply.send(Err(NodeError::Chain(e)));
                    return;
                }
            }
            if job.remaining == 0 {
                let _ = job.reply.send(Ok(std::mem::take(&mut job.hashes)));
                return;
            }
            let source = MempoolTemplates { pool: &self.mempool, lock: job.lock.clone() };
            if let Some(m) = &job.miner {
                m.set_template(source.template(&self.chain.tip_context(unix_secs())));
            }
            job.template_at = Instant::now();
            self.generating.push_front(job);
        } else {
            self.generating.push_front(job);
        }
    }

    fn tick(&mut self) {
        self.serve_parked();
        let tip = self.chain.tip();
        let due =
            |(hash, at): (Hash256, Instant)| hash != tip.hash && at.elapsed() >= super::tipmark::MARK_EVERY;
        if self.marked.map_or(true, due) {
            super::tipmark::write(&self.chain_dir, &tip);
            self.marked = Some((tip.hash, Instant::now()));
        }
        let found = self.miner.as_ref().and_then(|(m, _)| m.take_found(Duration::ZERO));
        if let Some(block) = found {
            if self.adv.is_active() {
                self.adversary_mined(block);
                return self.sample_miner();
            }
            let hash = block.hash();
            match self.process_own_block(block) {
                Ok(_) => {
                    info!(target: "miner", %hash, "mined a block");
                }
                Err(e) => warn!(target: "miner", %hash, error = %e, "mined block rejected"),
            }
        }
        self.sample_miner();
    }

    /// Samples the hash-rate meter and refreshes an old template.
    fn sample_miner(&mut self) {
        if let Some((m, _)) = &self.miner {
            self.meter.sample(m);
            if self.template_at.elapsed() > Duration::from_secs(5) {
                self.refresh_template();
            }
        }
    }

    /// The tip and mempool as they stand.
    pub(super) fn template_mark(&self) -> super::api::TemplateMark {
        super::api::TemplateMark { tip: self.chain.tip().hash, mempool: self.mempool.change_mark() }
    }

    /// Publishes the template mark if it moved (wakes long polls; cheap otherwise).
    fn publish_mark(&self) {
        let mark = self.template_mark();
        self.changes.send_if_modified(|m| {
            let moved = *m != mark;
            *m = mark;
            moved
        });
    }

    /// Publishes a transaction on gossip (submitted over RPC).
    pub(super) fn announce_tx(&self, tx: &crate::primitives::Transaction) {
        if let Some(net) = &self.net {
            net.publish(crate::p2p::wire::Topic::Transactions, tx.encode());
        }
    }

    fn run_net(&mut self, job: NetJob) {
        // None: the verdict comes later (a transaction gone to the verifier pool).
        let Some(outcome) = self.on_net(job.token, job.work) else { return };
        if let Some(done) = &self.done {
            // The service never waits on the core, so waiting for room here cannot deadlock;
            // a closed channel means the service has stopped.
            let _ = done.blocking_send(NetDone { token: job.token, outcome });
        }
        // Blocks relayed before connecting are connected now that the verdict is out.
        let actions = self.run_deferred();
        if let (Some(done), false) = (&self.done, actions.is_empty()) {
            let _ =
                done.blocking_send(NetDone { token: FOLLOWUP_TOKEN, outcome: NetOutcome::Followup(actions) });
        }
    }

    /// Stops the miners, answers what is left, writes the UTXO cache, saves the mempool;
    /// called once at the end.
    fn flush(&mut self, inbox: &Inbox<Request>) {
        self.miner = None;
        // Transactions still being checked are dropped (their RPC callers read "shutting
        // down"; peers relay them again).
        self.verifier = None;
        let (net, _api) = inbox.close(); // dropped API replies read as "shutting down"
        if let Some(done) = &self.done {
            for job in net {
                let _ = done.try_send(NetDone { token: job.token, outcome: NetOutcome::Dropped });
            }
        }
        for job in self.generating.drain(..) {
            let _ = job.reply.send(Ok(job.hashes)); // stopped early: what was mined
        }
        // Parked requests: the index gets no further now.
        for (_, req) in std::mem::take(&mut self.parked) {
            self.handle_now(req);
        }
        let stats = self.chain.cache_stats();
        match self.chain.flush() {
            Ok(()) => {
                info!(target: "chain", coins = stats.entries, mib = stats.bytes >> 20, "UTXO cache written")
            }
            Err(e) => {
                warn!(target: "chain", error = %e, "could not write the UTXO cache; the next start replays the blocks since the last write")
            }
        }
        // Stopping the indexer lets it catch up with the tip first.
        self.index = None;
        super::tipmark::write(&self.chain_dir, &self.chain.tip());
        match self.mempool.save(&self.mempool_path) {
            Ok(n) => info!(target: "mempool", txs = n, path = %self.mempool_path.display(), "mempool saved"),
            Err(e) => warn!(target: "mempool", error = %e, "could not save the mempool"),
        }
    }
}

/// Starts the core thread.
pub fn start(
    chain: Chain,
    config: CoreConfig,
    life: Lifecycle,
    net: Option<CoreNet>,
) -> std::io::Result<Started> {
    let inbox = Arc::new(Inbox::new(Limits {
        api_count: API_QUEUE,
        net_count: NET_QUEUE,
        net_bytes: NET_QUEUE_BYTES,
    }));
    let genesis = super::api::TemplateMark { tip: chain.tip().hash, mempool: (0, 0) };
    let (changes, changes_rx) = tokio::sync::watch::channel(genesis);
    let handle = NodeHandle {
        inbox: inbox.clone(),
        network: config.network,
        api_limit: API_QUEUE,
        changes: changes_rx,
    };
    let link = NetLink { inbox: inbox.clone() };
    let verify_inbox = inbox.clone();
    let thread = std::thread::Builder::new().name("node-core".into()).spawn(move || {
        let params = chain.params();
        let mut mempool = Mempool::new(params, config.mempool, chain.script_cache());
        let verifier = match super::verify::Verifier::start(
            config.verify_threads,
            super::verify::MAX_JOBS,
            super::verify::MAX_BYTES,
            chain.script_cache(),
            verify_inbox,
        ) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(target: "node", error = %e, "cannot start the verifier threads; checking transactions on the core thread");
                None
            }
        };
        let mempool_path = config.datadir.join("mempool.dat");
        match mempool.load(&mempool_path, &chain, unix_secs()) {
            Ok(report) => info!(target: "mempool", ?report, "mempool loaded"),
            Err(e) => warn!(target: "mempool", error = %e, "mempool file not loaded; starting empty"),
        }
        let tip = chain.tip();
        let adv = super::adversary::Adversary::new(
            config.mining.as_ref().map_or(Default::default(), |m| m.strategy),
            config.mining.as_ref().and_then(|m| m.hashrate),
            tip.hash,
            tip.height,
        );
        let miner = config.mining.and_then(|m| {
            match Miner::try_start(MinerConfig { hashrate: m.hashrate, ..MinerConfig::new(m.threads) }) {
            Ok(miner) => Some((miner, m.lock)),
            Err(e) => {
                tracing::error!(target: "miner", error = %e, "cannot start the miner; running without it");
                None
            }
        }
        });
        let (publish, done) = match net {
            Some(n) => (Some(n.publish), Some(n.done)),
            None => (None, None),
        };
        let mut core = Core {
            chain,
            mempool,
            miner,
            generate_threads: config.generate_threads,
            generating: VecDeque::new(),
            meter: HashRateMeter::new(Duration::from_secs(10)),
            sync: SyncMachine::new(),
            net: publish,
            relay: super::relay::Relay::new(config.relay),
            done,
            template_at: Instant::now(),
            tip_logged_at: Instant::now() - Duration::from_secs(2),
            tips_unlogged: 0,
            log_throttle: Default::default(),
            index: Some(config.index),
            parked: VecDeque::new(),
            mempool_path,
            chain_dir: config.chain_dir,
            marked: None,
            min_free_mb: config.min_free_mb,
            fatal: None,
            changes,
            verifier,
            adv,
        };
        core.refresh_template();
        core.publish_mark();
        run_loop(&mut core, &inbox, &life);
        core.flush(&inbox);
        info!(target: "node", "core stopped");
    })?;
    Ok(Started { handle, link, thread })
}

fn run_loop(core: &mut Core, inbox: &Inbox<Request>, life: &Lifecycle) {
    let mut last_expiry = Instant::now();
    while !life.shutdown.load(Ordering::SeqCst) {
        let generating = !core.generating.is_empty();
        let wait = if generating {
            Duration::ZERO
        } else if !core.parked.is_empty() {
            // Requests wait for the indexer: look again soon.
            Duration::from_millis(2)
        } else {
            Duration::from_millis(20)
        };
        let job = inbox.pop(wait);
        let had_job = job.is_some();
        // A panicking job must not leave a zombie node answering "shutting down": stop
        // everything and exit non-zero.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match job {
                Some(Job::Api(req)) => core.handle(req),
                Some(Job::Net(n)) => core.run_net(n),
                None => {}
            }
            if !core.generating.is_empty() {
                // With work waiting, only look; otherwise wait a little for the miner.
                let (n, a) = inbox.depth();
                let wait = if had_job || n + a > 0 { Duration::ZERO } else { Duration::from_millis(5) };
                core.step_generate(wait);
            }
            core.tick();
            core.publish_mark();
        }));
        if let Some(why) = core.fatal.take() {
            *life.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            life.stop.notify_one();
            break;
        }
        if ran.is_err() {
            tracing::error!(target: "node", "a request panicked on the core thread; stopping the node");
            life.crashed.store(true, Ordering::SeqCst);
            life.stop.notify_one();
            break;
        }
        if last_expiry.elapsed() > Duration::from_secs(60) {
            core.mempool.expire(unix_secs());
            last_expiry = Instant::now();
        }
    }
}
