//! The tip marker: a small file beside RocksDB's own (`<datadir>/chainstate/tip-marker`)
//! recording the best height and block the node reached, written at shutdown and, while
//! the tip moves, at most every [`MARK_EVERY`]. RocksDB replays its write-ahead log up to
//! the first damaged record and opens there without complaint (point-in-time recovery,
//! which keeps every block connect atomic), so a cut-short log silently opens the chain at
//! an older height; comparing with the marker turns that into a warning.

use crate::chain::Tip;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes at most this often while the tip moves (and always at shutdown).
pub const MARK_EVERY: Duration = Duration::from_secs(10);
/// A marker file longer than this is not a marker.
const MAX_MARKER_BYTES: u64 = 256;

/// Where the marker of the chainstate in `chain_dir` lives (inside it, so deleting the
/// chainstate deletes it too).
pub fn path(chain_dir: &Path) -> PathBuf {
    chain_dir.join("tip-marker")
}

/// Records `tip` (atomically: temporary file, rename). A failure only loses the warning.
pub fn write(chain_dir: &Path, tip: &Tip) {
    let path = path(chain_dir);
    let tmp = path.with_extension("tmp");
    let text = format!("height {} hash {}\n", tip.height, tip.hash);
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::debug!(target: "chain", path = %path.display(), error = %e, "could not write the tip marker");
    }
}

/// The recorded height and block hash, if the marker exists and reads.
fn read(chain_dir: &Path) -> Option<(u32, String)> {
    let path = path(chain_dir);
    if std::fs::metadata(&path).ok()?.len() > MAX_MARKER_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("height"), Some(h), Some("hash"), Some(hash)) => Some((h.parse().ok()?, hash.to_string())),
        _ => None,
    }
}

/// The warning to log when the chainstate opened at `tip` below the height the marker
/// recorded, else `None`.
pub fn check(chain_dir: &Path, tip: &Tip) -> Option<String> {
    let (height, hash) = read(chain_dir)?;
    (height > tip.height).then(|| {
        format!(
            "the chainstate in {} opened at height {} but the node had reached height {height} \
             (block {hash}): the newest RocksDB write-ahead log was cut short (a power cut, a full \
             disk, or a copy of a running node) and the last {} blocks were lost; they are \
             downloaded again from peers (or must be mined again); check the disk if this is unexpected",
            chain_dir.display(),
            tip.height,
            height - tip.height
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Hash256, U256};

    fn tip(height: u32) -> Tip {
        Tip { hash: Hash256([height as u8; 32]), height, chain_work: U256::default() }
    }

    #[test]
    fn opening_below_the_recorded_height_warns_with_both_heights() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), &tip(0)), None, "no marker, no warning");
        write(dir.path(), &tip(12));
        assert_eq!(check(dir.path(), &tip(12)), None);
        assert_eq!(check(dir.path(), &tip(20)), None);
        let w = check(dir.path(), &tip(7)).expect("a warning");
        assert!(
            w.contains("opened at height 7")
                && w.contains("reached height 12")
                && w.contains("last 5 blocks"),
            "{w}"
        );
        std::fs::write(path(dir.path()), "garbage").unwrap();
        assert_eq!(check(dir.path(), &tip(7)), None, "an unreadable marker is ignored");
    }
}
