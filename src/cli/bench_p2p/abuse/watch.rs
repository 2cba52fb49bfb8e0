//! The honest side of `quarry bench-abuse`, watched from a thread of its own: every 100 ms
//! the honest RPC client asks A for its height (the latency measured), B is asked for its
//! height (the sync lag), and A's resident memory is read from /proc.

use super::super::{Rpc, RpcTarget};
use super::{Latency, PhaseReport};
use crate::rpc::api::QuarryApiClient;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// What the probes saw since the phase began.
#[derive(Default)]
struct Seen {
    latencies: Vec<f64>,
    errors: BTreeMap<String, u64>,
    height_start: u64,
    height_a: u64,
    max_lag: u64,
    rss_max: f64,
}

/// The probing thread; stopped and joined on drop.
pub(super) struct Watcher {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts probing A (`pid`, `a`) and B.
    pub(super) fn start(pid: u32, a: RpcTarget, b: RpcTarget) -> Result<Watcher> {
        let (honest, peer) = (Rpc::new(a)?, Rpc::new(b)?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("abuse-watch".into()).spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let t = Instant::now();
                // The client's own wait: its error keeps its kind (the bench's wraps it).
                let client: &crate::rpc::client::BlockingClient = &honest;
                let a = client.wait(client.getblockcount());
                let elapsed = t.elapsed().as_secs_f64();
                let b = peer.wait(peer.getblockcount()).ok();
                let (rss, _) = super::super::utxo::rss(pid);
                let mut seen = s.lock().unwrap_or_else(|e| e.into_inner());
                match a {
                    Ok(h) => {
                        seen.latencies.push(elapsed);
                        seen.height_a = h as u64;
                        if let Some(b) = b {
                            seen.max_lag = seen.max_lag.max((h as u64).saturating_sub(b as u64));
                        }
                    }
                    Err(e) => *seen.errors.entry(super::rpc_load::kind(&e)).or_default() += 1,
                }
                if rss.is_finite() {
                    seen.rss_max = seen.rss_max.max(rss);
                }
                drop(seen);
                std::thread::sleep(PROBE_EVERY.saturating_sub(t.elapsed()));
            }
        })?;
        Ok(Watcher { seen, stop, thread: Some(thread) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a phase: forgets what was seen before.
    pub(super) fn begin(&self) {
        let mut seen = self.lock();
        let height = seen.height_a;
        *seen = Seen { height_start: height, height_a: height, ..Seen::default() };
    }

    /// Ends phase `name` after `elapsed`: what was seen during it (`catch_up_s` unset).
    pub(super) fn end(&self, name: &'static str, elapsed: Duration) -> PhaseReport {
        let seen = std::mem::take(&mut *self.lock());
        let height_a = seen.height_a;
        *self.lock() = Seen { height_start: height_a, height_a, ..Seen::default() };
        PhaseReport {
            phase: name,
            seconds: elapsed.as_secs_f64(),
            honest_rpc: Latency::of(seen.latencies),
            honest_rpc_errors: seen.errors,
            height: (seen.height_start, height_a),
            max_sync_lag: seen.max_lag,
            catch_up_s: None,
            rss_max_mib: seen.rss_max,
        }
    }

    /// Seconds until B's height reaches `height` (polled every 100 ms), or None after
    /// `timeout`. A failed call is tried again (the client's keep-alive connection may have
    /// been closed by the server's idle timeout while the phase ran).
    pub(super) fn catch_up(&self, b: &Rpc, height: u64, timeout: Duration) -> Result<Option<f64>> {
        let t = Instant::now();
        let mut last_error = None;
        while t.elapsed() < timeout {
            match b.wait(b.getblockcount()) {
                Ok(h) if h as u64 >= height => return Ok(Some(t.elapsed().as_secs_f64())),
                Ok(_) => last_error = None,
                Err(e) => last_error = Some(e),
            }
            std::thread::sleep(PROBE_EVERY);
        }
        match last_error {
            Some(e) => Err(e.context(format!("waiting for node B to reach height {height}"))),
            None => Ok(None),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
