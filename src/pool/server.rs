//! The Stratum V1 server: a task per connection, a task following the node's templates by
//! long polling, shares checked here and credited in the ledger (on the blocking pool, since
//! it fsyncs) before they are acknowledged.

use super::accounting::{Ledger, Share};
use super::job::{Job, Jobs, EXTRANONCE1_SIZE, EXTRANONCE2_SIZE, NTIME_ROLL};
use super::share::{difficulty_of, hash_value, target_for};
use super::stratum::{self, Call, StratumError, MAX_LINE};
use super::{PoolConfig, PoolError};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::RpcClient;
use crate::rpc::types::TemplateRequest;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};
use tracing::{debug, info, warn};

/// Connections served at once at most (more are closed at once).
pub const MAX_CONNECTIONS: usize = 1024;
/// Workers one connection may authorize at most.
pub const MAX_WORKERS_PER_CONNECTION: usize = 16;
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// After a difficulty change, shares at the previous difficulty are still accepted for this
/// long (they were being mined when the change was sent).
pub const DIFFICULTY_GRACE: Duration = Duration::from_secs(10);
/// Vardiff looks at the share rate at least this often…
pub const RETARGET_EVERY: Duration = Duration::from_secs(20);
/// …or after this many shares, whichever comes first.
pub const RETARGET_SHARES: u32 = 12;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// State shared by every connection.
pub struct Shared {
    config: PoolConfig,
    rpc: RpcClient,
    jobs: Mutex<Jobs>,
    ledger: Arc<Mutex<Ledger>>,
    /// New jobs, with their clean_jobs flag.
    announce: broadcast::Sender<(Arc<Job>, bool)>,
    next_extranonce1: AtomicU32,
}

impl Shared {
    fn current_job(&self) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).current().cloned()
    }
}

/// Starts the pool on `listener`: returns when `stop` is notified (or the listener fails).
pub async fn serve(
    config: PoolConfig,
    listener: TcpListener,
    stop: Arc<tokio::sync::Notify>,
) -> Result<(), PoolError> {
    std::fs::create_dir_all(&config.dir).map_err(|e| PoolError::Io { path: config.dir.clone(), error: e })?;
    let ledger = Ledger::open(&config.dir.join("ledger.jsonl"), config.payout)?.with_score_c(config.score_c);
    let rpc = RpcClient::new(&config.rpc)?;
    let (announce, _) = broadcast::channel(16);
    let shared = Arc::new(Shared {
        rpc,
        jobs: Mutex::new(Jobs::default()),
        ledger: Arc::new(Mutex::new(ledger)),
        announce,
        next_extranonce1: AtomicU32::new(rand::random::<u32>()),
        config,
    });
    // The first template before any miner is served.
    let mut longpoll = None;
    follow_once(&shared, &mut longpoll).await?;
    let follower = tokio::spawn(follow_templates(shared.clone(), longpoll));
    let payer = shared.config.payouts.enabled.then(|| {
        tokio::spawn(super::payer::run(shared.config.clone(), shared.rpc.clone(), shared.ledger.clone()))
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    info!(target: "pool", addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), payout = ?shared.config.payout, "stratum server listening");
    let result = loop {
        tokio::select! {
            _ = stop.notified() => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        debug!(target: "pool", %peer, "too many connections: closed");
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(e) = session(&shared, stream).await {
                            debug!(target: "pool", %peer, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => warn!(target: "pool", error = %e, "accept failed"),
            },
        }
    };
    follower.abort();
    if let Some(p) = payer {
        p.abort();
    }
    result
}

/// Fetches one template (long polling from `longpoll` if given) and makes it the current
/// job; announces it (clean when the tip changed).
async fn follow_once(shared: &Shared, longpoll: &mut Option<String>) -> Result<(), PoolError> {
    let req = TemplateRequest { longpollid: longpoll.clone(), ..Default::default() };
    let gbt = shared.rpc.getblocktemplate(Some(req)).await?;
    if longpoll.as_deref() == Some(gbt.longpollid.as_str()) {
        return Ok(()); // the long poll timed out with nothing new
    }
    *longpoll = Some(gbt.longpollid.clone());
    let (job, clean) = {
        let mut jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let id = jobs.next_id();
        let job = Arc::new(Job::new(id, &gbt, shared.config.lock.clone())?);
        let clean = jobs.current().map_or(true, |j| j.prev() != job.prev());
        jobs.push(job.clone());
        (job, clean)
    };
    info!(target: "pool", job = %job.id, height = job.template.height, prev = %job.prev(), txs = job.template.txs.len(), clean, "new job");
    let _ = shared.announce.send((job, clean));
    Ok(())
}

async fn follow_templates(shared: Arc<Shared>, mut longpoll: Option<String>) {
    loop {
        if let Err(e) = follow_once(&shared, &mut longpoll).await {
            warn!(target: "pool", error = %e, "getblocktemplate failed; retrying in 1 s");
            longpoll = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Per-connection state.
struct Session {
    extranonce1: [u8; EXTRANONCE1_SIZE],
    subscribed: bool,
    workers: Vec<String>,
    diff: f64,
    prev_diff: f64,
    changed_at: Instant,
    window_start: Instant,
    window_shares: u32,
}

impl Session {
    /// The difficulty a share must meet now.
    fn required(&self) -> f64 {
        if self.changed_at.elapsed() < DIFFICULTY_GRACE {
            self.diff.min(self.prev_diff)
        } else {
            self.diff
        }
    }

    /// Vardiff: a new difficulty if the share rate is off the target by more than 10 %.
    fn retarget(&mut self, config: &PoolConfig, force: bool) -> Option<f64> {
        let elapsed = self.window_start.elapsed();
        if !(self.subscribed && (force || self.window_shares >= RETARGET_SHARES || elapsed >= RETARGET_EVERY))
        {
            return None;
        }
        self.retarget_after(config, elapsed)
    }

    /// The retarget rule for `window_shares` shares in `elapsed`.
    fn retarget_after(&mut self, config: &PoolConfig, elapsed: Duration) -> Option<f64> {
        let minutes = elapsed.as_secs_f64().max(1.0) / 60.0;
        let rate = f64::from(self.window_shares) / minutes;
        let ratio = (rate / config.shares_per_minute).clamp(0.25, 4.0);
        let new = (self.diff * ratio).clamp(config.min_difficulty, config.max_difficulty);
        self.window_start = Instant::now();
        self.window_shares = 0;
        if (new / self.diff - 1.0).abs() <= 0.1 {
            return None;
        }
        self.prev_diff = self.diff;
        self.diff = new;
        self.changed_at = Instant::now();
        Some(new)
    }
}

async fn session(shared: &Arc<Shared>, stream: TcpStream) -> Result<(), PoolError> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut jobs = shared.announce.subscribe();
    let start = shared.config.start_difficulty;
    let mut s = Session {
        extranonce1: shared.next_extranonce1.fetch_add(1, Ordering::Relaxed).to_be_bytes(),
        subscribed: false,
        workers: Vec::new(),
        diff: start,
        prev_diff: start,
        changed_at: Instant::now(),
        window_start: Instant::now(),
        window_shares: 0,
    };
    let mut buf = Vec::with_capacity(512);
    let mut tick = tokio::time::interval(RETARGET_EVERY);
    loop {
        // `read_until` keeps what it read in `buf` when another branch wins, so `buf` is
        // cleared only once a whole line has been handled.
        let mut limited = (&mut reader).take((MAX_LINE + 1).saturating_sub(buf.len()) as u64);
        let out: Vec<String> = tokio::select! {
            read = tokio::time::timeout(IDLE_TIMEOUT, limited.read_until(b'\n', &mut buf)) => {
                let n = match read {
                    Err(_) => return Err(PoolError::Stratum("idle for too long".into())),
                    Ok(r) => r.map_err(|e| PoolError::Stratum(e.to_string()))?,
                };
                if n == 0 {
                    return Ok(()); // closed
                }
                if !buf.ends_with(b"\n") && buf.len() <= MAX_LINE {
                    return Ok(()); // closed mid-line
                }
                if !buf.ends_with(b"\n") {
                    let line = stratum::error_reply(&Value::Null, &StratumError::TooLong);
                    let _ = write.write_all(line.as_bytes()).await;
                    return Err(PoolError::Stratum(StratumError::TooLong.to_string()));
                }
                let text = String::from_utf8_lossy(&buf).trim().to_string();
                buf.clear();
                if text.is_empty() {
                    continue;
                }
                handle_line(shared, &mut s, &text).await
            }
            job = jobs.recv() => match job {
                Ok((job, clean)) if s.subscribed => vec![stratum::notification("mining.notify", job.notify_params(clean))],
                Ok(_) => continue,
                // Missed jobs: the newest one, as clean work, stands for them all.
                Err(broadcast::error::RecvError::Lagged(_)) => match shared.current_job().filter(|_| s.subscribed) {
                    Some(job) => vec![stratum::notification("mining.notify", job.notify_params(true))],
                    None => continue,
                },
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = tick.tick() => match s.retarget(&shared.config, false) {
                Some(d) => vec![stratum::notification("mining.set_difficulty", json!([d]))],
                None => continue,
            },
        };
        for line in out {
            write.write_all(line.as_bytes()).await.map_err(|e| PoolError::Stratum(e.to_string()))?;
        }
    }
}

/// The lines answering one request line (a reply, then any notifications).
async fn handle_line(shared: &Arc<Shared>, s: &mut Session, text: &str) -> Vec<String> {
    let call = match stratum::parse_request(text) {
        Ok(c) => c,
        Err(e) => return vec![stratum::error_reply(&Value::Null, &e)],
    };
    match handle_call(shared, s, &call).await {
        Ok((result, mut then)) => {
            then.insert(0, stratum::reply(&call.id, result));
            then
        }
        Err(e) => {
            debug!(target: "pool", method = %call.method, error = %e, "refused");
            vec![stratum::error_reply(&call.id, &e)]
        }
    }
}

/// Longest worker name (an address is 64 characters; `ADDRESS.RIG` names a payout address).
pub const MAX_WORKER_NAME: usize = 128;

fn valid_worker(name: &str) -> bool {
    (1..=MAX_WORKER_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

async fn handle_call(
    shared: &Arc<Shared>,
    s: &mut Session,
    call: &Call,
) -> Result<(Value, Vec<String>), StratumError> {
    match call.method.as_str() {
        "mining.subscribe" => {
            s.subscribed = true;
            let sub = hex::encode(s.extranonce1);
            let result = json!([
                [["mining.set_difficulty", sub], ["mining.notify", sub]],
                hex::encode(s.extranonce1),
                EXTRANONCE2_SIZE
            ]);
            let mut then = vec![stratum::notification("mining.set_difficulty", json!([s.diff]))];
            if let Some(job) = shared.current_job() {
                then.push(stratum::notification("mining.notify", job.notify_params(true)));
            }
            Ok((result, then))
        }
        "mining.extranonce.subscribe" => Ok((json!(true), Vec::new())),
        "mining.authorize" => {
            let user = stratum::str_param(call, 0, "username")?;
            if !valid_worker(user) {
                return Err(StratumError::BadParam {
                    index: 0,
                    name: "username",
                    why: format!("1 to {MAX_WORKER_NAME} characters of letters, digits, '.', '_', '-', ':'"),
                });
            }
            if !s.workers.iter().any(|w| w == user) {
                if s.workers.len() >= MAX_WORKERS_PER_CONNECTION {
                    return Err(StratumError::BadParam {
                        index: 0,
                        name: "username",
                        why: format!("at most {MAX_WORKERS_PER_CONNECTION} workers per connection"),
                    });
                }
                s.workers.push(user.to_string());
            }
            info!(target: "pool", worker = user, "authorized");
            Ok((json!(true), Vec::new()))
        }
        "mining.submit" => {
            let credited = submit(shared, s, call).await?;
            s.window_shares += 1;
            let mut then = Vec::new();
            if let Some(d) = s.retarget(&shared.config, false) {
                then.push(stratum::notification("mining.set_difficulty", json!([d])));
            }
            debug!(target: "pool", diff = credited, "share accepted");
            Ok((json!(true), then))
        }
        other => Err(StratumError::UnknownMethod(other.to_string())),
    }
}

/// Checks and credits one share; submits a block if it meets the network target. Returns
/// the difficulty credited.
async fn submit(shared: &Arc<Shared>, s: &Session, call: &Call) -> Result<f64, StratumError> {
    if !s.subscribed {
        return Err(StratumError::NotSubscribed);
    }
    let worker = stratum::str_param(call, 0, "worker")?;
    if !s.workers.iter().any(|w| w == worker) {
        return Err(StratumError::Unauthorized(worker.to_string()));
    }
    let job_id = stratum::str_param(call, 1, "job_id")?;
    let en2: [u8; EXTRANONCE2_SIZE] =
        stratum::hex_param(call, 2, "extranonce2", EXTRANONCE2_SIZE)?.try_into().expect("length checked");
    let ntime = stratum::u32_param(call, 3, "ntime")?;
    let nonce = stratum::u32_param(call, 4, "nonce")?;
    let (job, tip) = {
        let jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.get(job_id).cloned().ok_or_else(|| StratumError::UnknownJob(job_id.to_string()))?;
        (job, jobs.current().map(|j| j.prev()))
    };
    if let Some(tip) = tip.filter(|t| *t != job.prev()) {
        return Err(StratumError::Stale {
            job: job.id.clone(),
            prev: job.prev().to_string(),
            tip: tip.to_string(),
        });
    }
    let (min, max) = (job.min_time, job.ntime.saturating_add(NTIME_ROLL));
    if !(min..=max).contains(&ntime) {
        return Err(StratumError::BadTime { got: ntime, min, max });
    }
    let header = job.parts.header(&s.extranonce1, &en2, ntime, nonce);
    let hash = header.hash();
    let value = hash_value(&hash);
    let need = s.required();
    if value > target_for(need) {
        return Err(StratumError::LowDifficulty { got: difficulty_of(&value), need });
    }
    if !job.first_sighting(s.extranonce1, en2, ntime, nonce) {
        return Err(StratumError::Duplicate {
            job: job.id.clone(),
            extranonce2: hex::encode(en2),
            ntime: format!("{ntime:08x}"),
            nonce: format!("{nonce:08x}"),
        });
    }
    let share = Share {
        worker: worker.to_string(),
        diff: need,
        net_diff: job.net_diff,
        reward: job.template.coinbase_value.to_sat(),
        time_ms: now_ms(),
        credit: 0,
    };
    let ledger = shared.ledger.clone();
    let credited = tokio::task::spawn_blocking(move || {
        ledger.lock().unwrap_or_else(|e| e.into_inner()).credit_share(share)
    })
    .await
    .map_err(|e| StratumError::Internal(e.to_string()))
    .and_then(|r| r.map_err(|e| StratumError::Internal(e.to_string())));
    if let Err(e) = credited {
        // Not credited: the miner may send it again.
        job.forget(s.extranonce1, en2, ntime, nonce);
        return Err(e);
    }
    if value <= job.net_target {
        submit_block(shared, &job, &s.extranonce1, &en2, header).await;
    }
    Ok(need)
}

/// Assembles the block of a share that meets the network target, records it in the ledger
/// (closing the round) and then submits it: a crash in between leaves a recorded block the
/// payout task submits again ([`super::payer`]), never an open round with a block on chain.
async fn submit_block(
    shared: &Arc<Shared>,
    job: &Job,
    en1: &[u8],
    en2: &[u8],
    header: crate::primitives::BlockHeader,
) {
    let coinbase = match crate::primitives::Transaction::decode(&job.parts.coinbase(en1, en2), usize::MAX) {
        Ok(cb) => cb,
        Err(e) => {
            return warn!(target: "pool", job = %job.id, error = %e, "the pool's own coinbase does not decode")
        }
    };
    let block = job.template.block(coinbase, header);
    let hash = block.hash();
    let hexed = hex::encode(block.encode());
    let ledger = shared.ledger.clone();
    let (height, reward, record) = (job.template.height, job.template.coinbase_value.to_sat(), hexed.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        ledger.lock().unwrap_or_else(|e| e.into_inner()).block_found(
            height,
            hash.to_string(),
            reward,
            now_ms(),
            record,
        )
    })
    .await;
    match recorded {
        Ok(Ok(credits)) => info!(target: "pool", %hash, height, ?credits, "block found: round closed"),
        Ok(Err(e)) => warn!(target: "pool", %hash, error = %e, "block not recorded in the ledger"),
        Err(e) => warn!(target: "pool", %hash, error = %e, "block not recorded in the ledger"),
    }
    match shared.rpc.submitblock(hexed).await {
        Ok(None) => info!(target: "pool", %hash, height, "block accepted"),
        // The payout task drops its credits once it sees the node refused it.
        Ok(Some(why)) => warn!(target: "pool", %hash, why, "the node refused the block"),
        Err(e) => warn!(target: "pool", %hash, error = %e, "submitblock failed (the payout task retries)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        PoolConfig {
            rpc: crate::rpc::client::RpcConfig::new(
                "127.0.0.1:1".parse().unwrap(),
                std::path::Path::new("/nonexistent"),
                None,
            ),
            dir: "/nonexistent".into(),
            payout: super::super::Payout::Prop,
            lock: crate::primitives::Script::default(),
            start_difficulty: 1.0,
            min_difficulty: 1e-6,
            max_difficulty: 1e6,
            shares_per_minute: 20.0,
            score_c: 300.0,
            payouts: super::super::PayoutConfig {
                network: crate::consensus::Network::Dev,
                key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
                min_payout: 1,
                fee_rate: None,
                every: Duration::from_secs(1),
                confirmations: 1,
                enabled: false,
            },
        }
    }

    fn session(diff: f64) -> Session {
        Session {
            extranonce1: [0; 4],
            subscribed: true,
            workers: Vec::new(),
            diff,
            prev_diff: diff,
            changed_at: Instant::now(),
            window_start: Instant::now(),
            window_shares: 0,
        }
    }

    #[test]
    fn vardiff_settles_near_the_target_share_rate() {
        let config = config();
        // A miner doing 3000 difficulty-1 shares a minute: at difficulty d it finds
        // 3000 / d shares a minute; 20 a minute needs d = 150.
        for start in [0.01, 1.0, 10_000.0] {
            let mut s = session(start);
            let window = Duration::from_secs(20);
            for _ in 0..40 {
                s.window_shares = (3000.0 / s.diff * window.as_secs_f64() / 60.0).round() as u32;
                s.retarget_after(&config, window);
            }
            assert!((s.diff / 150.0 - 1.0).abs() < 0.15, "from {start}: settled at {}", s.diff);
            // Settled: no more changes.
            s.window_shares = (3000.0 / s.diff / 3.0).round() as u32;
            assert_eq!(s.retarget_after(&config, window), None, "from {start}");
        }
    }

    #[test]
    fn vardiff_steps_are_bounded_and_a_change_keeps_a_grace() {
        let config = config();
        let mut s = session(1.0);
        s.window_shares = 10_000;
        assert_eq!(s.retarget_after(&config, Duration::from_secs(60)), Some(4.0), "at most x4 a step");
        assert_eq!(s.required(), 1.0, "the previous difficulty is still accepted for a while");
        s.window_shares = 0;
        assert_eq!(s.retarget_after(&config, Duration::from_secs(60)), Some(1.0), "at most /4 a step");
        s.diff = config.min_difficulty;
        assert_eq!(s.retarget_after(&config, Duration::from_secs(60)), None, "never below --min-difficulty");
    }
}
