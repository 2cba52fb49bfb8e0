//! The wall clock, in one place. Pure layers never read it: they take the time as an
//! argument; the node, the network service and the tools read it here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Milliseconds since the Unix epoch (the sync machine's clock).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_agree() {
        let s = super::unix_secs();
        let ms = super::unix_ms();
        assert!(s > 1_600_000_000, "clock is after 2020: {s}");
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1, "{ms} ms vs {s} s");
    }
}
