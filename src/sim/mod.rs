//! `quarry sim`: a deterministic discrete-event network simulator in virtual time, over
//! quarry's own fork choice, with experiments checked against the closed forms.
//!
//! - `net`: topologies (random regular graph, complete graph, a file of edges) and link
//!   latency distributions.
//! - `engine`: the event queue, Poisson mining by hash share, block relay over links with
//!   latency and bandwidth, partitions; each node runs the real `Chain` on the memory store
//!   ([`engine::ChainMode::Full`]) or the same fork-choice rule on block ids
//!   ([`engine::ChainMode::Index`], for 1,000 nodes x 10,000 blocks).
//! - `race`: attacker-versus-network races driving the strategy state machines of
//!   `miner::strategy` (double spend, selfish mining) for many trials.
//! - `theory`: Nakamoto, Rosenfeld, the strictly-ahead race, Eyal-Sirer, 1 - e^(-d/T), the
//!   Skellam tie chance.
//! - `experiments`: the sweeps, their JSON points and charts; `plot`: a dependency-free PNG
//!   chart writer.
//!
//! No threads, no sockets, no wall clock: one seeded RNG (`StdRng`, ChaCha12, pinned by
//! Cargo.lock) consumed in event order, so the same seed gives the same output byte for byte.

pub mod engine;
pub mod experiments;
pub mod net;
pub mod plot;
pub mod race;
pub mod theory;

use std::path::Path;

/// Errors from the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A setting is out of range or a file does not parse.
    #[error("{0}")]
    Config(String),
    /// A node's chain refused a simulated block (a simulator bug, or a consensus change the
    /// block builder does not follow).
    #[error("chain refused a simulated block: {0}")]
    Chain(String),
    /// An invariant of the simulator broke.
    #[error("simulator invariant broken: {0}")]
    Internal(&'static str),
    /// Writing the results failed.
    #[error("writing {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// Writes `<dir>/<name>.json` (the experiment with its points) and `<dir>/<name>.png` (its
/// chart); returns the two paths.
pub fn write_experiment(exp: &experiments::Experiment, dir: &Path) -> Result<Vec<String>, SimError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| SimError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json_path = dir.join(format!("{}.json", exp.name));
    let mut text = serde_json::to_string_pretty(exp).expect("experiments serialise");
    text.push('\n');
    std::fs::write(&json_path, text).map_err(io(&json_path))?;
    let mut out = vec![json_path.display().to_string()];
    if let Some(chart) = &exp.chart {
        let png = dir.join(format!("{}.png", exp.name));
        std::fs::write(&png, plot::render_png(chart)).map_err(io(&png))?;
        out.push(png.display().to_string());
    }
    Ok(out)
}
