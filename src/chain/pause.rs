//! Pause points for aimed crash tests (test-only): `QUARRY_PAUSE_AT=flush,reorg` in a
//! node's environment lets a killer stop the node exactly inside a UTXO cache flush (after
//! the flush began, before its RocksDB batch is written) or inside a reorganisation (after
//! blocks were disconnected, before the new branch is connected).
//!
//! A listed point pauses only when armed: the file `<datadir>/pause-arm` holds the point's
//! name (`flush` or `reorg`). The node then removes the arm file, writes the marker
//! `<datadir>/paused-<point>` (its pid) and sleeps [`PAUSE`]; a killer that sees the marker
//! SIGKILLs it there. If nobody does, the node removes the marker and carries on. So one
//! setting serves a whole soak (no restart to aim) and an unarmed node never stops.
//!
//! The variable is read once, at start ([`install_from_env`]); unset, a pause point costs
//! one atomic load.

use super::ChainError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that lists the pause points.
pub const PAUSE_ENV: &str = "QUARRY_PAUSE_AT";
/// The arm file, in the data directory.
pub const ARM_FILE: &str = "pause-arm";
/// How long an armed point sleeps before carrying on.
pub const PAUSE: Duration = Duration::from_secs(30);

/// Where a node can pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PausePoint {
    /// Inside a UTXO cache flush, before its batch is written.
    Flush,
    /// Inside a reorganisation, after disconnecting, before connecting.
    Reorg,
}

impl PausePoint {
    /// Every point.
    pub const ALL: [PausePoint; 2] = [PausePoint::Flush, PausePoint::Reorg];

    /// Its name in [`PAUSE_ENV`] and in the arm file.
    pub fn name(self) -> &'static str {
        match self {
            PausePoint::Flush => "flush",
            PausePoint::Reorg => "reorg",
        }
    }

    /// The marker written into `datadir` while paused here.
    pub fn marker(self, datadir: &Path) -> PathBuf {
        datadir.join(format!("paused-{}", self.name()))
    }
}

struct Pauses {
    datadir: PathBuf,
    points: Vec<PausePoint>,
}

static PAUSES: OnceLock<Option<Pauses>> = OnceLock::new();

/// Parses a [`PAUSE_ENV`] value: comma-separated point names.
pub fn parse(value: &str) -> Result<Vec<PausePoint>, ChainError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            PausePoint::ALL
                .into_iter()
                .find(|p| p.name() == s)
                .ok_or_else(|| ChainError::PauseSetting { value: value.to_string(), bad: s.to_string() })
        })
        .collect()
}

/// Reads [`PAUSE_ENV`] (once per process; later calls keep the first answer) with `datadir`
/// as the place of the arm file and markers. Returns the points enabled.
pub fn install_from_env(datadir: &Path) -> Result<Vec<PausePoint>, ChainError> {
    let points = match std::env::var(PAUSE_ENV) {
        Ok(v) => parse(&v)?,
        Err(_) => Vec::new(),
    };
    let installed = PAUSES.get_or_init(|| {
        (!points.is_empty()).then(|| Pauses { datadir: datadir.to_path_buf(), points: points.clone() })
    });
    Ok(installed.as_ref().map_or_else(Vec::new, |p| p.points.clone()))
}

/// Called by the chain at `point`: pauses if the point is enabled and armed.
pub(crate) fn reached(point: PausePoint) {
    let Some(Some(p)) = PAUSES.get() else { return };
    if !p.points.contains(&point) {
        return;
    }
    let arm = p.datadir.join(ARM_FILE);
    match std::fs::read_to_string(&arm) {
        Ok(s) if s.trim() == point.name() => {}
        _ => return,
    }
    let _ = std::fs::remove_file(&arm);
    let marker = point.marker(&p.datadir);
    if let Err(e) = std::fs::write(&marker, std::process::id().to_string()) {
        tracing::warn!(target: "chain", error = %e, path = %marker.display(), "writing the pause marker failed");
        return;
    }
    tracing::warn!(target: "chain", point = point.name(), secs = PAUSE.as_secs(), "paused for a crash test ({PAUSE_ENV})");
    std::thread::sleep(PAUSE);
    let _ = std::fs::remove_file(&marker);
    tracing::warn!(target: "chain", point = point.name(), "pause over, not killed: carrying on");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_known_points_and_refuse_others() {
        assert_eq!(parse("flush").unwrap(), vec![PausePoint::Flush]);
        assert_eq!(parse(" flush , reorg ").unwrap(), vec![PausePoint::Flush, PausePoint::Reorg]);
        assert!(parse("").unwrap().is_empty());
        let e = parse("flush,connect").unwrap_err().to_string();
        assert!(e.contains("connect") && e.contains("flush, reorg"), "{e}");
    }
}
