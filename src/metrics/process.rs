//! Process figures from `/proc/self` (Linux): resident memory, CPU time, open file
//! descriptors, threads, start time. Elsewhere they stay 0.

use super::FGauge;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Default)]
pub(super) struct Process {
    rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    fds: Gauge,
    threads: Gauge,
    start: FGauge,
}

impl Process {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register_with_unit("process_resident_memory", "Resident memory", Unit::Bytes, self.rss.clone());
        r.register_with_unit("process_cpu", "User and system CPU time", Unit::Seconds, self.cpu.clone());
        r.register("process_open_fds", "Open file descriptors", self.fds.clone());
        r.register("process_threads", "OS threads", self.threads.clone());
        r.register_with_unit("process_start_time", "Start time, Unix", Unit::Seconds, self.start.clone());
    }

    /// Reads /proc/self now.
    pub(super) fn sample(&self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sysconf only reads a configuration value.
            let (tick, page) =
                unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
            if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
                // Fields after the command name (which may hold spaces): state is field 3.
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    if tick > 0 {
                        let cpu = (num(14) + num(15)) as f64 / tick as f64;
                        let before = self.cpu.get();
                        if cpu > before {
                            self.cpu.inc_by(cpu - before);
                        }
                        if self.start.get() == 0.0 {
                            let boot = std::fs::read_to_string("/proc/stat")
                                .ok()
                                .and_then(|s| {
                                    s.lines().find_map(|l| {
                                        l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok())
                                    })
                                })
                                .unwrap_or(0);
                            self.start.set(boot as f64 + num(22) as f64 / tick as f64);
                        }
                    }
                    self.threads.set(num(20) as i64);
                    self.rss.set((num(24) as i64).saturating_mul(page.max(0) as i64));
                }
            }
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                self.fds.set(dir.count() as i64);
            }
        }
    }
}
