//! Share accounting and payout rules.
//!
//! Every credited share is appended to the pool's ledger (`<pool dir>/ledger.jsonl`, one JSON
//! record a line) and the file is fsynced *before* the miner is told the share is accepted,
//! so a crash loses no credited share. Blocks found (with the credits they give, computed by
//! the payout method when the block is found) and payments are records too; opening the
//! ledger replays it. The file is bounded: when it passes [`COMPACT_BYTES`] at open it is
//! rewritten as one snapshot record (through a temporary file, fsync, rename). Memory is
//! bounded too: only the current round's shares (for proportional and score) and the last
//! [`PPLNS_KEEP`] shares (for PPLNS) are kept, beside per-worker totals.
//!
//! Blocks are recorded *before* they are submitted (with the block's bytes, so a restart
//! submits again a block it may not have sent); their credits become owed only once the
//! payout task has seen the block on the node's active chain with `coinbase_maturity`
//! confirmations (a `matured` record), and are dropped if the block is refused or left off
//! the chain (`orphaned`). Payouts are two-phase: the signed transaction is recorded
//! (`payout`, its amounts now "paying", no longer owed) before it is broadcast, then
//! `payout_confirmed` (paying → paid) or, only when the node shows it can never confirm,
//! `payout_abandoned` (paying → owed again). A crash at any point therefore never pays twice:
//! a recorded payout is re-broadcast as the same transaction, never rebuilt.
//!
//! The payout methods are in [`super::methods`]. A ledger open for writing holds an
//! exclusive lock on `<dir>/ledger.lock`, so two pools cannot share a directory.

use super::methods::{pplns, pps, prop, score};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// A ledger larger than this is compacted when opened.
pub const COMPACT_BYTES: u64 = 32 << 20;
/// PPLNS window: this many times the network difficulty of shares.
pub const PPLNS_FACTOR: f64 = 2.0;
/// Shares kept for the PPLNS window at most.
pub const PPLNS_KEEP: usize = 100_000;
/// Shares of one round kept at most (the oldest are merged into a per-worker carry).
pub const ROUND_KEEP: usize = 200_000;
/// The score method's time constant, seconds.
pub const SCORE_C: f64 = 300.0;
/// Recent shares kept per worker for the hash-rate estimate.
const RATE_KEEP: usize = 1_000;

/// How the pool pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Payout {
    /// Pay per share.
    Pps,
    /// Pay per last N shares.
    Pplns,
    /// Slush's score.
    Score,
    /// Proportional.
    Prop,
}

/// Ledger failures.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading or writing the file.
    #[error("ledger {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Another process holds the ledger.
    #[error("ledger {} is in use by another pool process (lock {}): stop it, or pass another --pool-dir", path.display(), lock.display())]
    Locked {
        /// The ledger.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A line that is not a record (a torn last line is dropped instead).
    #[error("ledger {} line {line}: {why} (the file is damaged: restore it from a backup)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        why: String,
    },
}

/// One credited share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Worker name.
    pub worker: String,
    /// Its difficulty (the target it was asked to meet).
    pub diff: f64,
    /// The network difficulty when it was submitted.
    pub net_diff: f64,
    /// The block reward (coinbase value) of its job, base units.
    pub reward: u64,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// What it earned when credited (PPS; 0 for the other methods, whose credits come with
    /// blocks). Recorded, so replaying the ledger does not depend on the method.
    #[serde(default)]
    pub credit: u64,
}

/// A block the pool found, as recorded before it is submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundBlock {
    /// Its height.
    pub height: u32,
    /// Its id (display hex).
    pub hash: String,
    /// Its coinbase value, base units.
    pub reward: u64,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// What its reward credits each worker, by the method.
    pub credits: Vec<(String, u64)>,
    /// The block's bytes as hex, kept until it is resolved (matured or orphaned), so a pool
    /// that crashed before `submitblock` answered submits it again.
    #[serde(default)]
    pub block: String,
}

/// Where a found block stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStatus {
    /// Submitted (or about to be); not yet `coinbase_maturity` deep on the active chain.
    Immature,
    /// On the active chain and spendable: its credits are owed.
    Mature,
    /// Refused, or not on the active chain: its credits were dropped.
    Orphaned,
}

/// A found block and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockRec {
    /// The block as found.
    #[serde(flatten)]
    pub found: FoundBlock,
    /// Its status.
    pub status: BlockStatus,
}

/// A payout transaction, recorded before it is broadcast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PayoutTx {
    /// Its txid (display hex).
    pub txid: String,
    /// The signed transaction, hex.
    pub tx: String,
    /// Per worker: what the payout settles of its balance (its output's share plus its part
    /// of the fee).
    pub payments: Vec<(String, u64)>,
    /// The outputs: (address, base units).
    pub outputs: Vec<(String, u64)>,
    /// The fee split over the payments, base units.
    pub fee: u64,
    /// Change below the dust limit left to the fee on top of `fee`.
    #[serde(default)]
    pub dust: u64,
    /// The node's tip height when it was made.
    pub tip: u32,
}

/// One line of the ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Share(Share),
    Block(FoundBlock),
    Matured { hash: String },
    Orphaned { hash: String, why: String },
    Payout(PayoutTx),
    PayoutConfirmed { txid: String, blockhash: String },
    PayoutAbandoned { txid: String, why: String },
    Snapshot(Box<State>),
}

/// What a worker has done and is owed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerTotals {
    /// Shares credited.
    pub shares: u64,
    /// Their total difficulty.
    pub diff: f64,
    /// Credits of blocks not yet mature, by block id.
    pub immature: BTreeMap<String, u64>,
    /// Credits owed once: mature blocks' and PPS shares'.
    pub matured: u64,
    /// In payout transactions not yet confirmed.
    pub paying: u64,
    /// Paid by confirmed payout transactions.
    pub paid: u64,
    /// Recent (unix ms, difficulty), for the hash-rate estimate.
    pub recent: VecDeque<(u64, f64)>,
}

impl WorkerTotals {
    /// Owed now: matured credits less what is being paid or was paid.
    pub fn owed(&self) -> u64 {
        self.matured.saturating_sub(self.paying + self.paid)
    }
}

/// The ledger's state (also its snapshot record).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    workers: BTreeMap<String, WorkerTotals>,
    round: Vec<Share>,
    window: VecDeque<Share>,
    blocks: Vec<BlockRec>,
    /// Payout transactions recorded and not yet confirmed or abandoned.
    payouts: Vec<PayoutTx>,
    /// Confirmed payouts: (txid, block).
    confirmed: Vec<(String, String)>,
}

/// A worker's line of `quarry pool stats`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerStats {
    /// Name.
    pub worker: String,
    /// Shares credited.
    pub shares: u64,
    /// Their difficulty.
    pub diff: f64,
    /// Hashes per second over its recent shares (each difficulty-1 share stands for
    /// 2^32 hashes on average).
    pub hashrate: f64,
    /// Credited: matured plus immature credits.
    pub credited: u64,
    /// Credits of blocks not yet mature.
    pub immature: u64,
    /// Owed now: matured credits less what is being paid or was paid.
    pub owed: u64,
    /// In payout transactions not yet confirmed.
    pub paying: u64,
    /// Paid by confirmed payouts.
    pub paid: u64,
}

/// The persistent ledger.
pub struct Ledger {
    path: PathBuf,
    file: std::fs::File,
    method: Payout,
    state: State,
    /// Bytes appended since the last snapshot.
    written: u64,
    /// Held (locked) while the ledger is open for writing.
    _lock: Option<std::fs::File>,
    /// The score method's time constant, seconds.
    score_c: f64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |error| LedgerError::Io { path: path.to_path_buf(), error }
}

/// Takes the exclusive lock beside the ledger at `path`.
fn lock(path: &Path) -> Result<std::fs::File, LedgerError> {
    let lock = path.with_file_name("ledger.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io(&lock))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked { path: path.to_path_buf(), lock }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&lock)(e)),
    }
}

impl Ledger {
    /// Opens (or creates) the ledger at `path` for writing: locks it, replays it and rewrites
    /// it as one snapshot (which also drops a torn last line).
    pub fn open(path: &Path, method: Payout) -> Result<Ledger, LedgerError> {
        let held = lock(path)?;
        let state = replay(path)?;
        if path.exists() {
            write_snapshot(path, &state)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            method,
            state,
            written: 0,
            _lock: Some(held),
            score_c: SCORE_C,
        })
    }

    /// Reads the ledger at `path` without changing it (`quarry pool stats` beside a running
    /// pool).
    pub fn read(path: &Path) -> Result<Ledger, LedgerError> {
        let state = replay(path)?;
        let file = std::fs::File::open(path).map_err(io(path))?;
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            method: Payout::Prop,
            state,
            written: 0,
            _lock: None,
            score_c: SCORE_C,
        })
    }

    /// The same ledger with the score method's time constant set to `c` seconds (a positive
    /// number; [`SCORE_C`] otherwise).
    pub fn with_score_c(mut self, c: f64) -> Ledger {
        if c > 0.0 && c.is_finite() {
            self.score_c = c;
        }
        self
    }

    fn append(&mut self, r: &Record) -> Result<(), LedgerError> {
        let mut line = serde_json::to_string(r).expect("records serialize");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Appends and applies a record, compacting a large file.
    fn record(&mut self, r: Record) -> Result<(), LedgerError> {
        self.append(&r)?;
        self.state.apply(r);
        if self.written > COMPACT_BYTES {
            write_snapshot(&self.path, &self.state)?;
            self.file = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(io(&self.path))?;
            self.written = 0;
        }
        Ok(())
    }

    /// Credits a share (setting its PPS credit by the method): written and fsynced before
    /// it counts.
    pub fn credit_share(&mut self, mut share: Share) -> Result<(), LedgerError> {
        share.credit = if self.method == Payout::Pps { pps(&share) } else { 0 };
        self.record(Record::Share(share))
    }

    /// The credits a block with `reward` would give now, by the method (none for PPS, whose
    /// shares were paid as they came).
    pub fn credits_for(&mut self, reward: u64) -> Vec<(String, u64)> {
        match self.method {
            Payout::Pps => Vec::new(),
            Payout::Prop => prop(&self.state.round, reward),
            Payout::Pplns => {
                let net = self.state.window.back().map_or(1.0, |s| s.net_diff);
                pplns(self.state.window.make_contiguous(), PPLNS_FACTOR * net, reward)
            }
            Payout::Score => score(&self.state.round, self.score_c, reward),
        }
    }

    /// Records a block found by the pool, with its credits by the method, *before* it is
    /// submitted; starts a new round. `block` is the block's hex.
    pub fn block_found(
        &mut self,
        height: u32,
        hash: String,
        reward: u64,
        time_ms: u64,
        block: String,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let credits = self.credits_for(reward);
        let found = FoundBlock { height, hash, reward, time_ms, credits: credits.clone(), block };
        self.record(Record::Block(found))?;
        Ok(credits)
    }

    /// The block `hash` is `coinbase_maturity` deep on the active chain: its credits are owed.
    pub fn matured(&mut self, hash: &str) -> Result<(), LedgerError> {
        self.record(Record::Matured { hash: hash.to_string() })
    }

    /// The block `hash` was refused or left off the chain: its credits are dropped.
    pub fn orphaned(&mut self, hash: &str, why: &str) -> Result<(), LedgerError> {
        self.record(Record::Orphaned { hash: hash.to_string(), why: why.to_string() })
    }

    /// Records a payout transaction before it is broadcast: its amounts are no longer owed.
    pub fn payout_made(&mut self, p: PayoutTx) -> Result<(), LedgerError> {
        self.record(Record::Payout(p))
    }

    /// A recorded payout confirmed in `blockhash`.
    pub fn payout_confirmed(&mut self, txid: &str, blockhash: &str) -> Result<(), LedgerError> {
        self.record(Record::PayoutConfirmed { txid: txid.to_string(), blockhash: blockhash.to_string() })
    }

    /// A recorded payout that can never confirm: its amounts are owed again.
    pub fn payout_abandoned(&mut self, txid: &str, why: &str) -> Result<(), LedgerError> {
        self.record(Record::PayoutAbandoned { txid: txid.to_string(), why: why.to_string() })
    }

    /// Shares credited in the current round.
    pub fn round_shares(&self) -> usize {
        self.state.round.len()
    }

    /// Blocks found, oldest first.
    pub fn blocks(&self) -> &[BlockRec] {
        &self.state.blocks
    }

    /// Payouts recorded and not yet confirmed or abandoned.
    pub fn pending_payouts(&self) -> &[PayoutTx] {
        &self.state.payouts
    }

    /// Confirmed payouts: (txid, block id).
    pub fn confirmed_payouts(&self) -> &[(String, String)] {
        &self.state.confirmed
    }

    /// What each worker is owed now (workers owed nothing left out), in name order.
    pub fn owed(&self) -> Vec<(String, u64)> {
        self.state.workers.iter().map(|(n, w)| (n.clone(), w.owed())).filter(|(_, a)| *a > 0).collect()
    }

    /// Per-worker figures.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.state
            .workers
            .iter()
            .map(|(name, w)| {
                let hashrate = match (w.recent.front(), w.recent.back()) {
                    (Some(a), Some(b)) if b.0 > a.0 => {
                        let d: f64 = w.recent.iter().skip(1).map(|s| s.1).sum();
                        d * 4_294_967_296.0 / ((b.0 - a.0) as f64 / 1000.0)
                    }
                    _ => 0.0,
                };
                let immature = w.immature.values().sum::<u64>();
                WorkerStats {
                    worker: name.clone(),
                    shares: w.shares,
                    diff: w.diff,
                    hashrate,
                    credited: w.matured + immature,
                    immature,
                    owed: w.owed(),
                    paying: w.paying,
                    paid: w.paid,
                }
            })
            .collect()
    }
}

impl State {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Share(s) => {
                let w = self.workers.entry(s.worker.clone()).or_default();
                w.shares += 1;
                w.diff += s.diff;
                w.recent.push_back((s.time_ms, s.diff));
                if w.recent.len() > RATE_KEEP {
                    w.recent.pop_front();
                }
                w.matured += s.credit;
                self.window.push_back(s.clone());
                if self.window.len() > PPLNS_KEEP {
                    self.window.pop_front();
                }
                if self.round.len() < ROUND_KEEP {
                    self.round.push(s);
                }
            }
            Record::Block(found) => {
                for (worker, amount) in &found.credits {
                    *self
                        .workers
                        .entry(worker.clone())
                        .or_default()
                        .immature
                        .entry(found.hash.clone())
                        .or_default() += amount;
                }
                self.blocks.push(BlockRec { found, status: BlockStatus::Immature });
                self.round.clear();
            }
            Record::Matured { hash } => self.resolve(&hash, BlockStatus::Mature),
            Record::Orphaned { hash, .. } => self.resolve(&hash, BlockStatus::Orphaned),
            Record::Payout(p) => {
                for (worker, amount) in &p.payments {
                    self.workers.entry(worker.clone()).or_default().paying += amount;
                }
                self.payouts.push(p);
            }
            Record::PayoutConfirmed { txid, blockhash } => {
                if let Some(p) = self.take_payout(&txid) {
                    for (worker, amount) in p.payments {
                        let w = self.workers.entry(worker).or_default();
                        w.paying = w.paying.saturating_sub(amount);
                        w.paid += amount;
                    }
                    self.confirmed.push((txid, blockhash));
                }
            }
            Record::PayoutAbandoned { txid, .. } => {
                if let Some(p) = self.take_payout(&txid) {
                    for (worker, amount) in p.payments {
                        let w = self.workers.entry(worker).or_default();
                        w.paying = w.paying.saturating_sub(amount);
                    }
                }
            }
            Record::Snapshot(s) => *self = *s,
        }
    }

    fn take_payout(&mut self, txid: &str) -> Option<PayoutTx> {
        let i = self.payouts.iter().position(|p| p.txid == txid)?;
        Some(self.payouts.remove(i))
    }

    /// Moves an immature block to `status`: its credits owed (mature) or dropped.
    fn resolve(&mut self, hash: &str, status: BlockStatus) {
        let Some(b) =
            self.blocks.iter_mut().find(|b| b.found.hash == hash && b.status == BlockStatus::Immature)
        else {
            return;
        };
        b.status = status;
        b.found.block.clear();
        for w in self.workers.values_mut() {
            if let Some(amount) = w.immature.remove(hash) {
                if status == BlockStatus::Mature {
                    w.matured += amount;
                }
            }
        }
    }
}

/// The state a ledger file leaves (empty if there is none).
fn replay(path: &Path) -> Result<State, LedgerError> {
    let mut state = State::default();
    if path.exists() {
        let f = std::fs::File::open(path).map_err(io(path))?;
        let lines: Vec<String> =
            std::io::BufReader::new(f).lines().collect::<Result<_, _>>().map_err(io(path))?;
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => state.apply(r),
                // A crash mid-write leaves at most a torn last line: that record was never
                // acted on (a share not acknowledged, a block not submitted, a payout not
                // broadcast), so dropping it loses nothing.
                Err(_) if i + 1 == n => {
                    tracing::warn!(target: "pool", line = i + 1, "dropping a torn last ledger line")
                }
                Err(e) => {
                    return Err(LedgerError::Corrupt {
                        path: path.to_path_buf(),
                        line: i + 1,
                        why: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(state)
}

fn write_snapshot(path: &Path, state: &State) -> Result<(), LedgerError> {
    let tmp = path.with_extension("tmp");
    let mut line = serde_json::to_string(&Record::Snapshot(Box::new(state.clone()))).expect("serializes");
    line.push('\n');
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(line.as_bytes()).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(worker: &str, diff: f64, t: u64) -> Share {
        Share {
            worker: worker.into(),
            diff,
            net_diff: 100.0,
            reward: 1_000_000,
            time_ms: t * 1000,
            credit: 0,
        }
    }

    fn payout(txid: &str, payments: &[(&str, u64)]) -> PayoutTx {
        PayoutTx {
            txid: txid.into(),
            tx: "00".into(),
            payments: payments.iter().map(|(w, a)| (w.to_string(), *a)).collect(),
            outputs: Vec::new(),
            fee: 0,
            dust: 0,
            tip: 0,
        }
    }

    fn owed_paying_paid(l: &Ledger, i: usize) -> (u64, u64, u64) {
        let s = &l.stats()[i];
        (s.owed, s.paying, s.paid)
    }

    #[test]
    fn the_ledger_survives_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        {
            let mut l = Ledger::open(&path, Payout::Prop).unwrap();
            l.credit_share(share("a", 1.0, 1)).unwrap();
            l.credit_share(share("b", 3.0, 2)).unwrap();
            l.block_found(5, "h".into(), 1_000, 3000, "beef".into()).unwrap();
            l.credit_share(share("a", 1.0, 4)).unwrap();
        }
        // A crash mid-append: half a record at the end.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"share\":{\"wor")
            .unwrap();
        let mut l = Ledger::open(&path, Payout::Prop).unwrap();
        let s = l.stats();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].worker.as_str(), s[0].shares, s[0].credited, s[0].owed), ("a", 2, 250, 0));
        assert_eq!((s[1].worker.as_str(), s[1].shares, s[1].credited, s[1].immature), ("b", 1, 750, 750));
        assert_eq!(l.round_shares(), 1, "the share after the block is in the new round");
        assert_eq!(l.blocks()[0].found.block, "beef", "an unresolved block keeps its bytes");
        l.matured("h").unwrap();
        assert_eq!(l.stats()[0].owed, 250, "owed once the block is mature");
        assert!(l.blocks()[0].found.block.is_empty());
        l.payout_made(payout("t", &[("a", 200)])).unwrap();
        drop(l);
        let l = Ledger::open(&path, Payout::Prop).unwrap();
        assert_eq!(owed_paying_paid(&l, 0), (50, 200, 0), "a recorded payout is no longer owed");
        assert_eq!(l.pending_payouts().len(), 1);
        drop(l);
        // A damaged line that is not the last is an error naming the line.
        std::fs::write(&path, "garbage\n{}\n").unwrap();
        let e = Ledger::open(&path, Payout::Prop).err().unwrap().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn payouts_move_from_paying_to_paid_or_back_to_owed() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.jsonl"), Payout::Pps).unwrap();
        l.credit_share(share("a", 1.0, 1)).unwrap(); // PPS: 10,000, owed at once
        assert_eq!(owed_paying_paid(&l, 0), (10_000, 0, 0));
        l.payout_made(payout("t1", &[("a", 6_000)])).unwrap();
        assert_eq!(owed_paying_paid(&l, 0), (4_000, 6_000, 0));
        l.payout_abandoned("t1", "inputs gone").unwrap();
        assert_eq!(owed_paying_paid(&l, 0), (10_000, 0, 0), "an abandoned payout is owed again");
        l.payout_made(payout("t2", &[("a", 10_000)])).unwrap();
        l.payout_confirmed("t2", "b").unwrap();
        l.payout_confirmed("t2", "b").unwrap();
        assert_eq!(owed_paying_paid(&l, 0), (0, 0, 10_000), "confirming twice changes nothing");
        assert_eq!(l.confirmed_payouts(), &[("t2".to_string(), "b".to_string())]);
        assert!(l.owed().is_empty());
    }

    #[test]
    fn an_orphaned_block_drops_its_credits() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.jsonl"), Payout::Prop).unwrap();
        l.credit_share(share("a", 1.0, 1)).unwrap();
        l.block_found(3, "x".into(), 1_000, 2000, String::new()).unwrap();
        l.orphaned("x", "refused").unwrap();
        l.matured("x").unwrap();
        let s = &l.stats()[0];
        assert_eq!((s.credited, s.owed, s.immature), (0, 0, 0), "{s:?}");
        assert_eq!(l.blocks()[0].status, BlockStatus::Orphaned, "a resolved block stays resolved");
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let first = Ledger::open(&path, Payout::Prop).unwrap();
        let e = Ledger::open(&path, Payout::Prop).err().expect("a second writer is refused");
        assert!(matches!(e, LedgerError::Locked { .. }), "{e}");
        assert!(Ledger::read(&path).is_ok(), "reading beside a writer is fine");
        drop(first);
        assert!(Ledger::open(&path, Payout::Prop).is_ok(), "the lock goes with the writer");
    }
}
