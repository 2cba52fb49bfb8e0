//! The miner's side of Stratum: `quarry miner --pool stratum+tcp://HOST:PORT`. One I/O
//! thread speaks the protocol (blocking std socket); N hashing threads run the SHA-NI
//! kernel ([`crate::miner::kernel`]) on dedicated std threads, never tokio workers.
//!
//! Work split: thread `t` of `n` rolls extranonce2 through `t, t + n, t + 2n, …` (big-endian
//! bytes), so no two threads hash the same header; for each it scans the whole nonce range
//! in chunks of [`crate::miner::chunk`] nonces, checking the work generation between chunks,
//! so a `clean_jobs` notify (or a new difficulty) moves every thread within milliseconds.

use super::job::EXTRANONCE2_SIZE;
use super::share::{prev_from_field, target_for, JobParts};
use super::stratum::{self, MAX_LINE};
use super::PoolError;
use crate::miner::kernel::{midstate, scan, tail_words, Kernel};
use crate::primitives::{Hash256, U256};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How long the miner keeps trying to reach the pool at start.
pub const CONNECT_RETRY: Duration = Duration::from_secs(15);

/// Miner settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `HOST:PORT` (a `stratum+tcp://` prefix is accepted).
    pub pool: String,
    /// Worker name.
    pub user: String,
    /// Password (pools mostly ignore it).
    pub password: String,
    /// Hashing threads.
    pub threads: usize,
    /// Kernel.
    pub kernel: Kernel,
}

/// A job as the miner sees it.
#[derive(Clone, Debug)]
pub struct PoolJob {
    /// Job id.
    pub id: String,
    /// Header inputs.
    pub parts: JobParts,
    /// ntime.
    pub ntime: u32,
    /// clean_jobs.
    pub clean: bool,
}

/// Parses `mining.notify` params.
pub fn parse_notify(params: &[Value]) -> Result<PoolJob, PoolError> {
    let bad = |what: &str| PoolError::Stratum(format!("mining.notify: bad {what}"));
    let s = |i: usize, what: &str| params.get(i).and_then(Value::as_str).ok_or_else(|| bad(what));
    let u = |i: usize, what: &str| -> Result<u32, PoolError> {
        u32::from_str_radix(s(i, what)?, 16).map_err(|_| bad(what))
    };
    let prev = prev_from_field(s(1, "prevhash")?).ok_or_else(|| bad("prevhash"))?;
    let branch = params
        .get(4)
        .and_then(Value::as_array)
        .ok_or_else(|| bad("merkle_branch"))?
        .iter()
        .map(|h| {
            let b: [u8; 32] = h
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("merkle_branch"))?;
            Ok(Hash256(b))
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    Ok(PoolJob {
        id: s(0, "job_id")?.to_string(),
        parts: JobParts {
            prev,
            coinb1: hex::decode(s(2, "coinb1")?).map_err(|_| bad("coinb1"))?,
            coinb2: hex::decode(s(3, "coinb2")?).map_err(|_| bad("coinb2"))?,
            branch,
            version: u(5, "version")?,
            bits: u(6, "nbits")?,
        },
        ntime: u(7, "ntime")?,
        clean: params.get(8).and_then(Value::as_bool).unwrap_or(false),
    })
}

/// What hashing threads work on.
struct Work {
    job: PoolJob,
    extranonce1: Vec<u8>,
    target: U256,
}

/// A share found by a thread.
struct Found {
    job: String,
    extranonce2: [u8; EXTRANONCE2_SIZE],
    ntime: u32,
    nonce: u32,
}

struct Shared {
    work: Mutex<Option<Arc<Work>>>,
    generation: AtomicU64,
    stop: Arc<AtomicBool>,
    hashes: AtomicU64,
}

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    /// Shares sent.
    pub submitted: u64,
    /// Accepted by the pool.
    pub accepted: u64,
    /// Refused, with the pool's messages (the last few).
    pub rejected: u64,
    /// Hashes done.
    pub hashes: u64,
    /// Jobs received.
    pub jobs: u64,
}

fn hash_thread(t: usize, n: usize, kernel: Kernel, shared: &Shared, found: &Sender<Found>) {
    let mut last = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let generation = shared.generation.load(Ordering::SeqCst);
        let work = shared.work.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(work) = work.filter(|_| generation != 0) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if generation == last {
            // Finished this work's slice (all extranonce2 values): wait for new work.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        last = generation;
        let current =
            || shared.generation.load(Ordering::SeqCst) == generation && !shared.stop.load(Ordering::SeqCst);
        let mut en2 = t as u64;
        'work: while en2 <= u32::MAX as u64 && current() {
            let en2_bytes = (en2 as u32).to_be_bytes();
            let header = work.job.parts.header(&work.extranonce1, &en2_bytes, work.job.ntime, 0);
            let bytes = header.to_bytes();
            let mid = midstate(bytes[..64].try_into().expect("64 bytes"));
            let tail = tail_words(&bytes);
            let mut start = 0u64;
            while start <= u32::MAX as u64 {
                let count = (u32::MAX as u64 - start + 1).min(crate::miner::chunk(kernel) as u64) as u32;
                let r = scan(kernel, &mid, &tail, start as u32, count, &work.target);
                shared.hashes.fetch_add(r.hashes, Ordering::Relaxed);
                if let Some(nonce) = r.found {
                    let _ = found.send(Found {
                        job: work.job.id.clone(),
                        extranonce2: en2_bytes,
                        ntime: work.job.ntime,
                        nonce,
                    });
                    start = nonce as u64 + 1;
                } else {
                    start += count as u64;
                }
                if !current() {
                    break 'work;
                }
            }
            en2 += n as u64;
        }
    }
}

fn addr_of(pool: &str) -> &str {
    pool.strip_prefix("stratum+tcp://").unwrap_or(pool).trim_end_matches('/')
}

/// Mines for the pool until `stop` is set or the connection ends; returns the counters.
pub fn run(config: &ClientConfig, stop: Arc<AtomicBool>) -> Result<ClientStats, PoolError> {
    let addr = addr_of(&config.pool);
    // A pool started a moment ago may not listen yet: retry for a while.
    let started = Instant::now();
    let stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if started.elapsed() < CONNECT_RETRY && !stop.load(Ordering::SeqCst) => {
                debug!(target: "miner", error = %e, "pool not reachable yet");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(PoolError::Stratum(format!(
                    "connecting to {addr}: {e} (is the pool running? check --pool)"
                )))
            }
        }
    };
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| PoolError::Stratum(e.to_string()))?;
    let mut writer = stream.try_clone().map_err(|e| PoolError::Stratum(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    let send = |w: &mut TcpStream, line: String| {
        w.write_all(line.as_bytes()).map_err(|e| PoolError::Stratum(e.to_string()))
    };
    send(&mut writer, stratum::request(1, "mining.subscribe", serde_json::json!(["quarry-miner/0.1"])))?;
    send(
        &mut writer,
        stratum::request(2, "mining.authorize", serde_json::json!([config.user, config.password])),
    )?;
    send(&mut writer, stratum::request(3, "mining.extranonce.subscribe", serde_json::json!([])))?;

    let shared = Arc::new(Shared {
        work: Mutex::new(None),
        generation: AtomicU64::new(0),
        stop: stop.clone(),
        hashes: AtomicU64::new(0),
    });
    let (tx, rx): (Sender<Found>, Receiver<Found>) = channel();
    let threads = config.threads.clamp(1, crate::miner::Miner::MAX_THREADS);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (shared, tx, kernel) = (shared.clone(), tx.clone(), config.kernel);
        let h = std::thread::Builder::new()
            .name(format!("pool-miner-{t}"))
            .spawn(move || hash_thread(t, threads, kernel, &shared, &tx))
            .map_err(|e| PoolError::Stratum(format!("starting hashing thread {t}: {e}")))?;
        handles.push(h);
    }
    let mut stats = ClientStats::default();
    let mut extranonce1: Option<Vec<u8>> = None;
    let mut difficulty = 1.0f64;
    let mut job: Option<PoolJob> = None;
    let mut next_id = 10u64;
    let mut line = Vec::new();
    let mut last_report = Instant::now();
    let set_work = |job: &PoolJob, en1: &[u8], diff: f64| {
        let work = Work { job: job.clone(), extranonce1: en1.to_vec(), target: target_for(diff) };
        *shared.work.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(work));
        shared.generation.fetch_add(1, Ordering::SeqCst);
    };
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        while let Ok(f) = rx.try_recv() {
            next_id += 1;
            stats.submitted += 1;
            let params = serde_json::json!([
                config.user,
                f.job,
                hex::encode(f.extranonce2),
                format!("{:08x}", f.ntime),
                format!("{:08x}", f.nonce)
            ]);
            send(&mut writer, stratum::request(next_id, "mining.submit", params))?;
        }
        match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) => break Err(PoolError::Stratum("the pool closed the connection".into())),
            Ok(_) if !line.ends_with(b"\n") => {
                if line.len() > MAX_LINE {
                    break Err(PoolError::Stratum("the pool sent a line longer than the limit".into()));
                }
                continue; // partial line: read more
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue
            }
            Err(e) => break Err(PoolError::Stratum(e.to_string())),
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        line.clear();
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            warn!(target: "miner", line = %text, "unparseable line from the pool");
            continue;
        };
        match v.get("method").and_then(Value::as_str) {
            Some("mining.notify") => {
                let params = v.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
                match parse_notify(&params) {
                    Ok(j) => {
                        stats.jobs += 1;
                        debug!(target: "miner", job = %j.id, clean = j.clean, "new job");
                        if let Some(en1) = &extranonce1 {
                            set_work(&j, en1, difficulty);
                        }
                        job = Some(j);
                    }
                    Err(e) => warn!(target: "miner", error = %e, "bad job"),
                }
            }
            Some("mining.set_difficulty") => {
                if let Some(d) = v.pointer("/params/0").and_then(Value::as_f64).filter(|d| *d > 0.0) {
                    difficulty = d;
                    info!(target: "miner", difficulty = d, "share difficulty");
                    if let (Some(j), Some(en1)) = (&job, &extranonce1) {
                        set_work(j, en1, difficulty);
                    }
                }
            }
            Some(other) => debug!(target: "miner", method = other, "ignored notification"),
            None => match v.get("id").and_then(Value::as_u64) {
                Some(1) => {
                    let en1 =
                        v.pointer("/result/1").and_then(Value::as_str).and_then(|h| hex::decode(h).ok());
                    let size = v.pointer("/result/2").and_then(Value::as_u64);
                    match (en1, size) {
                        (Some(en1), Some(s)) if s as usize == EXTRANONCE2_SIZE => {
                            if let Some(j) = &job {
                                set_work(j, &en1, difficulty);
                            }
                            extranonce1 = Some(en1);
                        }
                        _ => break Err(PoolError::Stratum(format!("mining.subscribe answered {v}: need extranonce1 and extranonce2_size {EXTRANONCE2_SIZE}"))),
                    }
                }
                Some(2) if v.get("result") != Some(&Value::Bool(true)) => {
                    break Err(PoolError::Stratum(format!("mining.authorize refused: {}", v["error"])))
                }
                Some(id) if id > 10 => {
                    if v.get("result") == Some(&Value::Bool(true)) {
                        stats.accepted += 1;
                    } else {
                        stats.rejected += 1;
                        warn!(target: "miner", error = %v["error"], "share refused");
                    }
                }
                _ => {}
            },
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            info!(target: "miner", accepted = stats.accepted, rejected = stats.rejected, hashes = shared.hashes.load(Ordering::Relaxed), "progress");
            last_report = Instant::now();
        }
    };
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    stats.hashes = shared.hashes.load(Ordering::Relaxed);
    result.map(|()| stats)
}
