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
//! The payout methods ([`Payout`]), Rosenfeld's "Analysis of Bitcoin Pooled Mining Reward
//! Systems" (2011) in the names used there:
//! - **pps**: each share earns `reward × share difficulty / network difficulty` when it is
//!   submitted, whether or not the pool finds blocks (the pool carries the variance).
//! - **prop** (proportional): a block's reward is split over the shares of its round (since
//!   the previous block) by difficulty. Open to pool hopping.
//! - **pplns**: a block's reward is split over the last N difficulty units of shares
//!   (N = [`PPLNS_FACTOR`] × the network difficulty), the oldest share cut to fit.
//! - **score** (Slush): a share submitted `t` seconds into the round weighs
//!   `difficulty × e^(t / c)` (c = [`SCORE_C`] seconds), so late shares weigh more and
//!   hopping out of a long round does not pay.
//!
//! Amounts are base units; each worker's part is rounded down and what rounding leaves goes
//! to the pool.

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

/// One line of the ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Record {
    Share(Share),
    Block { height: u32, hash: String, reward: u64, time_ms: u64, credits: Vec<(String, u64)> },
    Paid { worker: String, amount: u64, txid: String },
    Snapshot(Box<State>),
}

/// What a worker has done and is owed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerTotals {
    /// Shares credited.
    pub shares: u64,
    /// Their total difficulty.
    pub diff: f64,
    /// Credits by the height of the block paying them (PPS credits: height 0, owed at once).
    pub credits: BTreeMap<u32, u64>,
    /// Paid so far.
    pub paid: u64,
    /// Recent (unix ms, difficulty), for the hash-rate estimate.
    pub recent: VecDeque<(u64, f64)>,
}

/// The ledger's state (also its snapshot record).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    workers: BTreeMap<String, WorkerTotals>,
    round: Vec<Share>,
    window: VecDeque<Share>,
    blocks: Vec<(u32, String, u64)>,
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
    /// Credited, including blocks not yet mature.
    pub credited: u64,
    /// Owed now: credits of mature blocks (and PPS credits) less what was paid.
    pub owed: u64,
    /// Paid.
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |error| LedgerError::Io { path: path.to_path_buf(), error }
}

impl Ledger {
    /// Opens (or creates) the ledger at `path` for writing, replaying it and rewriting it
    /// as one snapshot (which also drops a torn last line).
    pub fn open(path: &Path, method: Payout) -> Result<Ledger, LedgerError> {
        let state = replay(path)?;
        if path.exists() {
            write_snapshot(path, &state)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        Ok(Ledger { path: path.to_path_buf(), file, method, state, written: 0 })
    }

    /// Reads the ledger at `path` without changing it (`quarry pool stats` beside a running
    /// pool).
    pub fn read(path: &Path) -> Result<Ledger, LedgerError> {
        let state = replay(path)?;
        let file = std::fs::File::open(path).map_err(io(path))?;
        Ok(Ledger { path: path.to_path_buf(), file, method: Payout::Prop, state, written: 0 })
    }

    fn append(&mut self, r: &Record) -> Result<(), LedgerError> {
        let mut line = serde_json::to_string(r).expect("records serialize");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Rewrites the file as one snapshot once more than [`COMPACT_BYTES`] were appended.
    fn compact_if_large(&mut self) -> Result<(), LedgerError> {
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
        let r = Record::Share(share);
        self.append(&r)?;
        self.state.apply(r);
        self.compact_if_large()
    }

    /// Records a block found by the pool and the credits its reward gives by the method
    /// (none for PPS, whose shares were paid as they came); starts a new round.
    pub fn block_found(
        &mut self,
        height: u32,
        hash: String,
        reward: u64,
        time_ms: u64,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let credits = match self.method {
            Payout::Pps => Vec::new(),
            Payout::Prop => prop(&self.state.round, reward),
            Payout::Pplns => {
                let net = self.state.window.back().map_or(1.0, |s| s.net_diff);
                pplns(self.state.window.make_contiguous(), PPLNS_FACTOR * net, reward)
            }
            Payout::Score => score(&self.state.round, SCORE_C, reward),
        };
        let r = Record::Block { height, hash, reward, time_ms, credits: credits.clone() };
        self.append(&r)?;
        self.state.apply(r);
        Ok(credits)
    }

    /// Records a payment.
    pub fn paid(&mut self, worker: &str, amount: u64, txid: String) -> Result<(), LedgerError> {
        let r = Record::Paid { worker: worker.to_string(), amount, txid };
        self.append(&r)?;
        self.state.apply(r);
        Ok(())
    }

    /// Shares credited in the current round.
    pub fn round_shares(&self) -> usize {
        self.state.round.len()
    }

    /// Blocks found: (height, hash, reward).
    pub fn blocks(&self) -> &[(u32, String, u64)] {
        &self.state.blocks
    }

    /// Per-worker figures; credits of blocks at or below `mature_height` are owed.
    pub fn stats(&self, mature_height: u32) -> Vec<WorkerStats> {
        self.state
            .workers
            .iter()
            .map(|(name, w)| {
                let credited = w.credits.values().sum::<u64>();
                let matured: u64 = w.credits.range(..=mature_height).map(|(_, v)| v).sum();
                let hashrate = match (w.recent.front(), w.recent.back()) {
                    (Some(a), Some(b)) if b.0 > a.0 => {
                        let d: f64 = w.recent.iter().skip(1).map(|s| s.1).sum();
                        d * 4_294_967_296.0 / ((b.0 - a.0) as f64 / 1000.0)
                    }
                    _ => 0.0,
                };
                WorkerStats {
                    worker: name.clone(),
                    shares: w.shares,
                    diff: w.diff,
                    hashrate,
                    credited,
                    owed: matured.saturating_sub(w.paid),
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
                if s.credit > 0 {
                    *w.credits.entry(0).or_default() += s.credit;
                }
                self.window.push_back(s.clone());
                if self.window.len() > PPLNS_KEEP {
                    self.window.pop_front();
                }
                if self.round.len() < ROUND_KEEP {
                    self.round.push(s);
                }
            }
            Record::Block { height, hash, reward, credits, .. } => {
                for (worker, amount) in credits {
                    *self.workers.entry(worker).or_default().credits.entry(height).or_default() += amount;
                }
                self.blocks.push((height, hash, reward));
                self.round.clear();
            }
            Record::Paid { worker, amount, .. } => self.workers.entry(worker).or_default().paid += amount,
            Record::Snapshot(s) => *self = *s,
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
                // A crash mid-write leaves at most a torn last line: that share was never
                // acknowledged, so dropping it loses nothing credited.
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

/// PPS: what one share earns, `reward × diff / net_diff`, rounded down.
pub fn pps(s: &Share) -> u64 {
    if s.net_diff <= 0.0 {
        return 0;
    }
    (s.reward as f64 * (s.diff / s.net_diff)).floor().min(s.reward as f64) as u64
}

/// Splits `reward` by weight, each part rounded down; workers in name order.
fn split(weights: BTreeMap<String, f64>, reward: u64) -> Vec<(String, u64)> {
    let total: f64 = weights.values().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    weights
        .into_iter()
        .map(|(w, x)| (w, ((reward as f64) * (x / total)).floor() as u64))
        .filter(|(_, a)| *a > 0)
        .collect()
}

/// Proportional: `reward` over the round's shares by difficulty.
pub fn prop(round: &[Share], reward: u64) -> Vec<(String, u64)> {
    let mut w = BTreeMap::new();
    for s in round {
        *w.entry(s.worker.clone()).or_insert(0.0) += s.diff;
    }
    split(w, reward)
}

/// PPLNS: `reward` over the newest shares whose difficulties add up to `n` (the oldest one
/// counted only in part), by difficulty.
pub fn pplns(shares: &[Share], n: f64, reward: u64) -> Vec<(String, u64)> {
    let mut w = BTreeMap::new();
    let mut left = n;
    for s in shares.iter().rev() {
        if left <= 0.0 {
            break;
        }
        let take = s.diff.min(left);
        *w.entry(s.worker.clone()).or_insert(0.0) += take;
        left -= take;
    }
    split(w, reward)
}

/// Score: `reward` over the round's shares weighed `diff × e^(t/c)`, t = seconds since the
/// round's first share (computed relative to the last share, so no overflow).
pub fn score(round: &[Share], c: f64, reward: u64) -> Vec<(String, u64)> {
    let Some(last) = round.last() else { return Vec::new() };
    let mut w = BTreeMap::new();
    for s in round {
        let t = (s.time_ms as f64 - last.time_ms as f64) / 1000.0;
        *w.entry(s.worker.clone()).or_insert(0.0) += s.diff * (t / c).exp();
    }
    split(w, reward)
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

    #[test]
    fn pps_pays_each_share_its_expected_value() {
        assert_eq!(pps(&share("a", 1.0, 0)), 10_000);
        assert_eq!(pps(&share("a", 0.5, 0)), 5_000);
        assert_eq!(pps(&Share { net_diff: 3.0, ..share("a", 1.0, 0) }), 333_333, "rounded down");
        assert_eq!(pps(&Share { net_diff: 0.0, ..share("a", 1.0, 0) }), 0);
        assert_eq!(pps(&share("a", 1000.0, 0)), 1_000_000, "never more than the reward");
    }

    #[test]
    fn prop_splits_the_round_by_difficulty() {
        let round = [share("a", 1.0, 0), share("b", 2.0, 1), share("a", 1.0, 2)];
        assert_eq!(prop(&round, 1_000_000), vec![("a".into(), 500_000), ("b".into(), 500_000)]);
        assert_eq!(
            prop(&round[..2], 1_000),
            vec![("a".into(), 333), ("b".into(), 666)],
            "rounding to the pool"
        );
        assert!(prop(&[], 1_000).is_empty());
    }

    #[test]
    fn pplns_counts_only_the_last_n_difficulty() {
        let shares = [share("old", 5.0, 0), share("a", 2.0, 1), share("b", 1.0, 2)];
        // n = 4: b 1, a 2, old 1 of its 5.
        assert_eq!(
            pplns(&shares, 4.0, 1_000_000),
            vec![("a".into(), 500_000), ("b".into(), 250_000), ("old".into(), 250_000)]
        );
        assert_eq!(pplns(&shares, 3.0, 900), vec![("a".into(), 600), ("b".into(), 300)]);
    }

    #[test]
    fn score_weighs_late_shares_more() {
        // Shares c seconds apart weigh e times more each: a at 0, b at c.
        let round = [share("a", 1.0, 0), share("b", 1.0, 300)];
        let got = score(&round, 300.0, 1_000_000);
        let e = std::f64::consts::E;
        let a = (1_000_000.0 / (1.0 + e)).floor() as u64;
        let b = (1_000_000.0 * e / (1.0 + e)).floor() as u64;
        assert_eq!(got, vec![("a".into(), a), ("b".into(), b)]);
        assert_eq!(score(&round[..1], 300.0, 7), vec![("a".into(), 7)]);
    }

    #[test]
    fn the_ledger_survives_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        {
            let mut l = Ledger::open(&path, Payout::Prop).unwrap();
            l.credit_share(share("a", 1.0, 1)).unwrap();
            l.credit_share(share("b", 3.0, 2)).unwrap();
            l.block_found(5, "h".into(), 1_000, 3000).unwrap();
            l.credit_share(share("a", 1.0, 4)).unwrap();
        }
        // A crash mid-append: half a record at the end.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"share\":{\"wor")
            .unwrap();
        let l = Ledger::open(&path, Payout::Prop).unwrap();
        let s = l.stats(5);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].worker.as_str(), s[0].shares, s[0].credited, s[0].owed), ("a", 2, 250, 250));
        assert_eq!((s[1].worker.as_str(), s[1].shares, s[1].credited), ("b", 1, 750));
        assert_eq!(l.stats(4)[0].owed, 0, "not owed before the block matures");
        assert_eq!(l.round_shares(), 1, "the share after the block is in the new round");
        drop(l);
        let mut l = Ledger::open(&path, Payout::Prop).unwrap();
        l.paid("a", 200, "t".into()).unwrap();
        drop(l);
        let l = Ledger::open(&path, Payout::Prop).unwrap();
        assert_eq!(l.stats(5)[0].owed, 50);
        assert_eq!(l.stats(5)[0].paid, 200);
        // A damaged line that is not the last is an error naming the line.
        std::fs::write(&path, "garbage\n{}\n").unwrap();
        let e = Ledger::open(&path, Payout::Prop).err().unwrap().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
