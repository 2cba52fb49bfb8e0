//! The pool attacks, run for real: a [`super::server`] pool on a node, an honest miner and an
//! attacking miner as in-process Stratum clients over loopback, each hashing with the mining
//! kernel at a set rate on its own thread. Rewards are the pool ledger's credits; hashes are
//! counted as done. (`quarry pool experiment`; BENCHMARKS.md "Pool attacks".)
//!
//! Strategies (Rosenfeld, "Analysis of Bitcoin Pooled Mining Reward Systems", 2011):
//! - **hopper**: mines in the pool only while the round is young — while the round's work so
//!   far (the pool's hashes since its last block, which pools publish) is below
//!   `hop_at × network difficulty × 2^32` hashes — and "elsewhere" after that;
//! - **sabotage**: mines in the pool, submits every share but never a share that is a block;
//! - **lie-in-wait**: mines `split` of its power in the pool and the rest elsewhere; when it
//!   finds a block in the pool it withholds it for `wait`, puts all its power in the pool
//!   meanwhile, then submits it (lost if another block came first).
//!
//! "Elsewhere" is a fair pay-per-share pool that is not run: hashes there are counted by time
//! and rate and earn their expected value. A miner's *efficiency* is its reward divided by the
//! expected value of all its hashes (`hashes × coinbase value × target / 2^256`), 1 being fair.

use super::accounting::Ledger;
use super::client::parse_notify;
use super::client::PoolJob;
use super::share::{hash_value, target_for};
use super::stratum;
use crate::consensus::pow::target_from_compact;
use crate::miner::kernel::{midstate, scan, tail_words, Kernel};
use crate::primitives::{Transaction, U256};
use serde::Serialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An attacking strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Leaves a round once it is old.
    Hopper,
    /// Withholds blocks.
    Sabotage,
    /// Withholds a block while it adds shares to the round.
    LieInWait,
}

/// What a miner does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    /// Mines in the pool, submits everything.
    Honest,
    /// Hops out once the round's work passes `hop_at` network difficulties.
    Hopper {
        /// Round age (in network difficulties of work) at which it leaves.
        hop_at: f64,
    },
    /// Never submits a block.
    Saboteur,
    /// See the module doc.
    LieInWait {
        /// Share of its power in the pool normally.
        split: f64,
        /// How long it withholds a block.
        wait: Duration,
    },
}

/// One miner's totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Worker name.
    pub worker: String,
    /// Hashes done for the pool.
    pub hashes_pool: u64,
    /// Hashes "elsewhere" (counted by time and rate, not done).
    pub hashes_elsewhere: u64,
    /// Expected value of the pool hashes, base units.
    pub fair_pool: f64,
    /// Expected value (and reward) of the elsewhere hashes.
    pub fair_elsewhere: f64,
    /// Shares submitted / accepted.
    pub submitted: u64,
    /// Accepted.
    pub accepted: u64,
    /// Blocks found and submitted.
    pub blocks: u64,
    /// Blocks found and never submitted (sabotage) or lost while withheld (lie-in-wait).
    pub withheld: u64,
    /// Credited by the pool's ledger, base units.
    pub reward_pool: u64,
}

impl Tally {
    /// Reward per expected reward over all its hashes.
    pub fn efficiency(&self) -> f64 {
        (self.reward_pool as f64 + self.fair_elsewhere) / (self.fair_pool + self.fair_elsewhere).max(1.0)
    }

    /// Reward per expected reward of its pool hashes only.
    pub fn pool_efficiency(&self) -> f64 {
        self.reward_pool as f64 / self.fair_pool.max(1.0)
    }
}

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Payout method.
    pub payout: super::Payout,
    /// Strategy.
    pub strategy: Strategy,
    /// Seconds run.
    pub seconds: f64,
    /// Blocks the pool recorded.
    pub blocks: usize,
    /// The honest miner.
    pub honest: Tally,
    /// The attacker.
    pub attacker: Tally,
}

impl Outcome {
    /// The attacker's efficiency over the honest miner's.
    pub fn ratio(&self) -> f64 {
        self.attacker.efficiency() / self.honest.efficiency().max(f64::MIN_POSITIVE)
    }
}

/// A miner's settings.
#[derive(Clone, Debug)]
pub struct MinerSpec {
    /// Worker name.
    pub worker: String,
    /// Hashes per second (all its power, pool and elsewhere).
    pub rate: f64,
    /// What it does.
    pub role: Role,
}

/// The state miners share: the pool's hashes so far (what a pool publishes as its round
/// progress) and the stop flag.
struct Common {
    pool_hashes: AtomicU64,
    stop: AtomicBool,
    kernel: Kernel,
}

/// A withheld block.
struct Held {
    job: String,
    prev: crate::primitives::Hash256,
    en2: [u8; 4],
    ntime: u32,
    nonce: u32,
    until: Instant,
}

/// Stratum over a non-blocking socket: lines in, requests out.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Conn {
    fn send(&mut self, method: &str, params: Value) -> std::io::Result<()> {
        self.next_id += 1;
        let line = stratum::request(self.next_id, method, params);
        self.stream.set_nonblocking(false)?;
        let r = self.stream.write_all(line.as_bytes());
        self.stream.set_nonblocking(true)?;
        r
    }

    /// Complete lines read so far.
    fn lines(&mut self) -> std::io::Result<Vec<Value>> {
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "pool closed")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice(&line) {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// The work a job gives: the network target and the block reward (read from the coinbase).
struct Work {
    job: PoolJob,
    net_target: U256,
    /// reward × target / 2^256: expected base units per hash.
    value_per_hash: f64,
}

fn work_of(job: PoolJob, en1: &[u8]) -> Option<Work> {
    let net_target = target_from_compact(job.parts.bits).ok()?;
    let cb = Transaction::decode(&job.parts.coinbase(en1, &[0; 4]), usize::MAX).ok()?;
    let reward = cb.outputs.first()?.value.to_sat() as f64;
    let value_per_hash = reward * net_target.to_f64() / 2f64.powi(256);
    Some(Work { job, net_target, value_per_hash })
}

/// Runs one miner until `common.stop`; its tally (reward not yet filled in).
fn mine(addr: SocketAddr, spec: &MinerSpec, common: &Common) -> std::io::Result<Tally> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    let mut c = Conn { stream, buf: Vec::new(), next_id: 0 };
    c.send("mining.subscribe", serde_json::json!(["quarry-experiment"]))?;
    c.send("mining.authorize", serde_json::json!([spec.worker, "x"]))?;
    let mut t = Tally { worker: spec.worker.clone(), ..Default::default() };
    let mut en1: Option<Vec<u8>> = None;
    let mut pending_job: Option<PoolJob> = None;
    let mut work: Option<Work> = None;
    let mut share_target = target_for(1.0);
    let mut round_start_hashes = 0u64;
    let mut held: Option<Held> = None;
    let (mut en2, mut nonce) = (0u32, 0u32);
    let start = Instant::now();
    let mut budget_done = 0f64; // hashes (pool + elsewhere) accounted for so far
    const CHUNK: u32 = 1 << 14;
    while !common.stop.load(Ordering::Relaxed) {
        for v in c.lines()? {
            match v.get("method").and_then(Value::as_str) {
                Some("mining.notify") => {
                    let Some(params) = v.get("params").and_then(Value::as_array) else { continue };
                    let Ok(job) = parse_notify(params) else { continue };
                    if job.clean {
                        round_start_hashes = common.pool_hashes.load(Ordering::Relaxed);
                        if held.take().is_some() {
                            t.withheld += 1; // another block came first: the withheld one is stale
                        }
                    }
                    match &en1 {
                        Some(e) => work = work_of(job, e),
                        None => pending_job = Some(job),
                    }
                    (en2, nonce) = (en2.wrapping_add(1), 0);
                }
                Some("mining.set_difficulty") => {
                    if let Some(d) = v.pointer("/params/0").and_then(Value::as_f64) {
                        share_target = target_for(d);
                    }
                }
                _ => match v.get("id").and_then(Value::as_u64) {
                    Some(1) => {
                        en1 =
                            v.pointer("/result/1").and_then(Value::as_str).and_then(|h| hex::decode(h).ok());
                        if let (Some(job), Some(e)) = (pending_job.take(), &en1) {
                            work = work_of(job, e);
                        }
                    }
                    Some(id) if id > 2 && v.get("result") == Some(&Value::Bool(true)) => t.accepted += 1,
                    _ => {}
                },
            }
        }
        let (Some(w), Some(e1)) = (&work, &en1) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        // Where the power goes now: the share of it in the pool.
        let in_pool = match spec.role {
            Role::Honest | Role::Saboteur => 1.0,
            Role::Hopper { hop_at } => {
                let round =
                    common.pool_hashes.load(Ordering::Relaxed).saturating_sub(round_start_hashes) as f64;
                let d_hashes = 2f64.powi(256) / w.net_target.to_f64();
                if round < hop_at * d_hashes {
                    1.0
                } else {
                    0.0
                }
            }
            Role::LieInWait { split, .. } => {
                if held.is_some() {
                    1.0
                } else {
                    split
                }
            }
        };
        // A withheld block whose time has come.
        if let Some(h) = held.take_if(|h| Instant::now() >= h.until) {
            if h.prev == w.job.parts.prev {
                c.send("mining.submit", submit_params(&spec.worker, &h.job, h.en2, h.ntime, h.nonce))?;
                t.submitted += 1;
                t.blocks += 1;
            } else {
                t.withheld += 1;
            }
        }
        // Rate limit: all power is `rate`; the pool part is hashed, the rest counted.
        let due = spec.rate * start.elapsed().as_secs_f64() - budget_done;
        if due < f64::from(CHUNK) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if in_pool < 1.0 {
            let away = f64::from(CHUNK) * (1.0 - in_pool);
            t.hashes_elsewhere += away as u64;
            t.fair_elsewhere += away * w.value_per_hash;
            budget_done += away;
            if in_pool == 0.0 {
                continue;
            }
        }
        let count = (f64::from(CHUNK) * in_pool).max(1.0) as u32;
        let header = w.job.parts.header(e1, &en2.to_be_bytes(), w.job.ntime, 0);
        let bytes = header.to_bytes();
        let mid = midstate(bytes[..64].try_into().expect("64 bytes"));
        let tail = tail_words(&bytes);
        let r = scan(common.kernel, &mid, &tail, nonce, count, &share_target);
        t.hashes_pool += r.hashes;
        t.fair_pool += r.hashes as f64 * w.value_per_hash;
        budget_done += r.hashes as f64;
        common.pool_hashes.fetch_add(r.hashes, Ordering::Relaxed);
        let (next, wrapped) = nonce.overflowing_add(r.hashes.max(1) as u32);
        nonce = next;
        if wrapped {
            en2 = en2.wrapping_add(1);
        }
        let Some(found) = r.found else { continue };
        let en2b = en2.to_be_bytes();
        let value = hash_value(&w.job.parts.header(e1, &en2b, w.job.ntime, found).hash());
        let block = value <= w.net_target;
        match (block, spec.role) {
            (true, Role::Saboteur) => t.withheld += 1,
            (true, Role::LieInWait { wait, .. }) if held.is_none() => {
                held = Some(Held {
                    job: w.job.id.clone(),
                    prev: w.job.parts.prev,
                    en2: en2b,
                    ntime: w.job.ntime,
                    nonce: found,
                    until: Instant::now() + wait,
                });
            }
            _ => {
                c.send("mining.submit", submit_params(&spec.worker, &w.job.id, en2b, w.job.ntime, found))?;
                t.submitted += 1;
                t.blocks += u64::from(block);
            }
        }
    }
    Ok(t)
}

fn submit_params(worker: &str, job: &str, en2: [u8; 4], ntime: u32, nonce: u32) -> Value {
    serde_json::json!([worker, job, hex::encode(en2), format!("{ntime:08x}"), format!("{nonce:08x}")])
}

/// Runs `miners` against the pool at `addr` for `duration`, then reads the ledger at
/// `ledger` for their rewards. Threads are joined before it returns.
pub fn run_miners(
    addr: SocketAddr,
    miners: &[MinerSpec],
    duration: Duration,
    ledger: &std::path::Path,
) -> Result<Vec<Tally>, super::PoolError> {
    let common = Arc::new(Common {
        pool_hashes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        kernel: Kernel::detect(),
    });
    let results = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = miners
        .iter()
        .cloned()
        .map(|spec| {
            let (common, results) = (common.clone(), results.clone());
            std::thread::spawn(move || {
                let r = mine(addr, &spec, &common);
                results.lock().unwrap_or_else(|e| e.into_inner()).push((spec.worker.clone(), r));
            })
        })
        .collect();
    std::thread::sleep(duration);
    common.stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    // Let the pool finish crediting what was in flight.
    std::thread::sleep(Duration::from_millis(300));
    let stats = Ledger::read(ledger)?.stats();
    let mut out = Vec::new();
    for spec in miners {
        let r = results.lock().unwrap_or_else(|e| e.into_inner()).iter().position(|(w, _)| *w == spec.worker);
        let (_, r) =
            results.lock().unwrap_or_else(|e| e.into_inner()).remove(r.expect("every miner reports"));
        let mut t = r.map_err(|e| super::PoolError::Stratum(format!("miner {}: {e}", spec.worker)))?;
        t.reward_pool = stats.iter().find(|s| s.worker == spec.worker).map_or(0, |s| s.credited);
        out.push(t);
    }
    Ok(out)
}

/// Rosenfeld's prediction of the attacker's efficiency (over a fair 1) for a small attacker,
/// where the paper gives one; `q` is the attacker's share of the pool's power.
pub fn predicted(strategy: Strategy, payout: super::Payout, hop_at: f64, q: f64) -> Option<f64> {
    use super::Payout::*;
    match (strategy, payout) {
        // A share submitted when the round has lasted x difficulties earns e^x E1(x) of a
        // fair share (Rosenfeld §5.2); averaged over a hopper's shares (x < a) and with the
        // rest of its time elsewhere at 1: 1 - e^-a + a E1(a) - e^-a + 1 - ... (see hop_gain).
        (Strategy::Hopper, Prop) => Some(hop_gain(hop_at)),
        (Strategy::Hopper, Pps | Pplns) => Some(1.0),
        // Score with c small against the round is hopping-proof; with c long it is prop.
        (Strategy::Hopper, Score) => None,
        // The pool finds (1 - q) of its blocks: every member loses q, except under PPS where
        // the operator carries it (Rosenfeld §7.1).
        (Strategy::Sabotage, Pps) => Some(1.0),
        (Strategy::Sabotage, _) => Some(1.0 - q),
        // Lie-in-wait gains under prop and score, little under PPLNS, nothing under PPS
        // (Rosenfeld §7.2); the paper gives no single figure.
        (Strategy::LieInWait, Pps) => Some(1.0),
        (Strategy::LieInWait, _) => None,
    }
}

/// E1(x), the exponential integral, by its series (x in (0, 2]).
fn e1(x: f64) -> f64 {
    let mut sum = 0.0;
    let mut term = 1.0;
    for k in 1..60 {
        term *= -x / k as f64;
        sum += term / k as f64;
    }
    -0.577_215_664_901_532_9 - x.ln() - sum
}

/// A small hopper's efficiency under prop, leaving at round age `a` (difficulties) and
/// mining at 1 elsewhere: in the pool it earns on average ∫₀ᵃ E1(x) dx / (1 - e^-a) per fair
/// share over the (1 - e^-a) of its time spent there.
pub fn hop_gain(a: f64) -> f64 {
    let in_pool = a * e1(a) - (-a).exp() + 1.0; // ∫₀ᵃ E1
    in_pool + (-a).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hopping_figures_are_rosenfelds() {
        // e^x E1(x) = 1 at x ≈ 0.435: where leaving pays (Rosenfeld's threshold).
        let x: f64 = 0.435;
        assert!((x.exp() * e1(x) - 1.0).abs() < 0.002, "{}", x.exp() * e1(x));
        // The small hopper's efficiency, about 1.28.
        assert!((hop_gain(0.435) - 1.28).abs() < 0.005, "{}", hop_gain(0.435));
        assert!((hop_gain(1e-9) - 1.0).abs() < 1e-6, "never in the pool: fair");
        assert!(hop_gain(0.2) < hop_gain(0.435) && hop_gain(1.0) < hop_gain(0.435), "0.435 is best");
    }
}
