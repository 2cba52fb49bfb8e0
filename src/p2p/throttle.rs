//! Rate limits for log lines that peers can cause.
//!
//! A peer that sends the same refused thing thousands of times must not write thousands of
//! lines (3,000 future-dated blocks once wrote 942 KB of WARN lines, more than the bytes
//! received). Each kind of line is written at most once per [`LOG_INTERVAL`]; the next one
//! written after a quiet spell says how many were held back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one line of a kind per this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Kinds remembered at most (the oldest are forgotten first, so a flood of distinct kinds
/// costs bounded memory).
pub const MAX_KINDS: usize = 256;

/// Per-kind last-written time and the count of lines held back since.
#[derive(Default)]
pub struct LogThrottle {
    kinds: HashMap<&'static str, (Instant, u64)>,
}

impl LogThrottle {
    /// Whether a line of `kind` may be written at `now`; if so, how many lines of that kind
    /// were suppressed before it (to append as "(N similar lines suppressed)").
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        if let Some((last, held)) = self.kinds.get_mut(kind) {
            if now.saturating_duration_since(*last) < LOG_INTERVAL {
                *held += 1;
                return None;
            }
            let n = *held;
            *last = now;
            *held = 0;
            return Some(n);
        }
        if self.kinds.len() >= MAX_KINDS {
            if let Some(oldest) = self.kinds.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
                self.kinds.remove(oldest);
            }
        }
        self.kinds.insert(kind, (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_per_kind_with_the_held_back_count() {
        let mut t = LogThrottle::default();
        let t0 = Instant::now();
        assert_eq!(t.allow("future", t0), Some(0));
        for i in 1..=2999 {
            assert_eq!(t.allow("future", t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow("other", t0), Some(0), "kinds are independent");
        assert_eq!(t.allow("future", t0 + LOG_INTERVAL), Some(2999));
        assert_eq!(t.allow("future", t0 + LOG_INTERVAL + Duration::from_secs(1)), None);
    }
}
