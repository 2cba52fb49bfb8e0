//! Link conditions between the nodes of a `--hosts netns` testnet: latency, jitter, loss,
//! bandwidth, and cuts. Pure: the parameters as topology files and scenario steps write them,
//! the table of every node pair the shaper ([`super::shaper`]) reads from `links.json`, and
//! the per-frame arithmetic (drop or deliver when), so it is unit tested without devices.

use super::error::{Result, ResultExt, TestnetError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// File in the testnet directory holding the current [`LinkTable`].
pub const LINKS_FILE: &str = "links.json";
/// File the shaper writes with the generation of the table it applies.
pub const APPLIED_FILE: &str = "shaper.applied";

/// Conditions of one link, applied to each direction separately (as netem does per
/// interface): every frame waits `latency_ms` plus a uniform jitter in `[-jitter_ms,
/// +jitter_ms]` (frames of one direction never overtake each other), `loss_percent` of frames
/// are dropped at random, and with `rate_kbit` frames queue behind each other at that rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkParams {
    /// One-way delay in milliseconds.
    #[serde(default, deserialize_with = "number")]
    pub latency_ms: f64,
    /// Delay variation in milliseconds (uniform, +-).
    #[serde(default, deserialize_with = "number")]
    pub jitter_ms: f64,
    /// Percent of frames dropped (0 to 100; 100 carries nothing).
    #[serde(default, deserialize_with = "number")]
    pub loss_percent: f64,
    /// Bandwidth in kbit/s (none: unlimited).
    #[serde(default)]
    pub rate_kbit: Option<u64>,
}

/// A number written as an integer or a float (`latency_ms = 200` or `200.5`).
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }
    Ok(match Num::deserialize(d)? {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    })
}

fn some_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    number(d).map(Some)
}

/// Why link conditions or a link table are refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A latency or jitter out of range.
    #[error("{name} must be 0 to {MAX_DELAY_MS}, got {value}")]
    Delay {
        /// "latency_ms" or "jitter_ms".
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// More jitter than latency.
    #[error("jitter_ms ({jitter_ms}) cannot exceed latency_ms ({latency_ms})")]
    JitterAboveLatency {
        /// The jitter.
        jitter_ms: f64,
        /// The latency.
        latency_ms: f64,
    },
    /// A loss out of range.
    #[error("loss_percent must be 0 to 100, got {0}")]
    Loss(f64),
    /// A rate out of range.
    #[error("rate_kbit must be 8 to 100000000, got {0}")]
    Rate(u64),
    /// A table for too many nodes.
    #[error("{0} nodes: at most 64")]
    TooManyNodes(usize),
    /// A table without one entry per pair.
    #[error("{got} links for {nodes} nodes, expected {expected}")]
    Count {
        /// Entries.
        got: usize,
        /// Nodes.
        nodes: usize,
        /// One per pair.
        expected: usize,
    },
    /// An entry not where its pair belongs.
    #[error("link {index} ({a}-{b}) is out of place")]
    OutOfPlace {
        /// Its position.
        index: usize,
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
    },
    /// The conditions of the link between `a` and `b` (node names or indices).
    #[error("link {a}-{b}")]
    Pair {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// What is out of range.
        #[source]
        source: Box<LinkError>,
    },
    /// `links.json` is larger than any table.
    #[error("{} is {bytes} bytes, more than a link table can be", path.display())]
    FileTooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// `links.json` holds a table that is refused.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<LinkError>,
    },
}

/// Largest latency or jitter accepted (60 s).
pub const MAX_DELAY_MS: f64 = 60_000.0;

impl LinkParams {
    /// Values in range: delays 0 to 60 s, jitter not above latency, loss 0 to 100, rate >= 8.
    pub fn check(&self) -> Result<(), LinkError> {
        for (name, v) in [("latency_ms", self.latency_ms), ("jitter_ms", self.jitter_ms)] {
            if !(0.0..=MAX_DELAY_MS).contains(&v) {
                return Err(LinkError::Delay { name, value: v });
            }
        }
        if self.jitter_ms > self.latency_ms {
            return Err(LinkError::JitterAboveLatency {
                jitter_ms: self.jitter_ms,
                latency_ms: self.latency_ms,
            });
        }
        if !(0.0..=100.0).contains(&self.loss_percent) {
            return Err(LinkError::Loss(self.loss_percent));
        }
        if let Some(r) = self.rate_kbit {
            if !(8..=100_000_000).contains(&r) {
                return Err(LinkError::Rate(r));
            }
        }
        Ok(())
    }

    /// True if the link is perfect (no delay, loss or limit).
    pub fn is_clear(&self) -> bool {
        *self == LinkParams::default()
    }

    /// `self` with the fields of a `shape` step that are set replacing its own.
    pub fn with(&self, change: &ParamChange) -> LinkParams {
        LinkParams {
            latency_ms: change.latency_ms.unwrap_or(self.latency_ms),
            jitter_ms: change.jitter_ms.unwrap_or(self.jitter_ms),
            loss_percent: change.loss_percent.unwrap_or(self.loss_percent),
            rate_kbit: change.rate_kbit.or(self.rate_kbit),
        }
    }

    /// Short text: `200 ms +-10 ms, 1% loss, 1000 kbit/s` (or `clear`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.latency_ms > 0.0 || self.jitter_ms > 0.0 {
            parts.push(if self.jitter_ms > 0.0 {
                format!("{} ms +-{} ms", self.latency_ms, self.jitter_ms)
            } else {
                format!("{} ms", self.latency_ms)
            });
        }
        if self.loss_percent > 0.0 {
            parts.push(format!("{}% loss", self.loss_percent));
        }
        if let Some(r) = self.rate_kbit {
            parts.push(format!("{r} kbit/s"));
        }
        if parts.is_empty() {
            "clear".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The fields a `shape` step sets (the others keep their values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamChange {
    /// New one-way delay (ms).
    #[serde(default, deserialize_with = "some_number")]
    pub latency_ms: Option<f64>,
    /// New jitter (ms).
    #[serde(default, deserialize_with = "some_number")]
    pub jitter_ms: Option<f64>,
    /// New loss (percent).
    #[serde(default, deserialize_with = "some_number")]
    pub loss_percent: Option<f64>,
    /// New bandwidth (kbit/s).
    pub rate_kbit: Option<u64>,
}

/// A `[[link]]` of a topology file: the conditions between two nodes. The keys of
/// [`LinkParams`] sit flat beside `nodes` (serde's `flatten` would accept unknown keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The two nodes (names).
    pub nodes: [String; 2],
    /// One-way delay (ms).
    #[serde(default, deserialize_with = "number")]
    pub latency_ms: f64,
    /// Jitter (ms, +-).
    #[serde(default, deserialize_with = "number")]
    pub jitter_ms: f64,
    /// Loss (percent).
    #[serde(default, deserialize_with = "number")]
    pub loss_percent: f64,
    /// Bandwidth (kbit/s).
    #[serde(default)]
    pub rate_kbit: Option<u64>,
}

impl LinkSpec {
    /// Its conditions.
    pub fn params(&self) -> LinkParams {
        let LinkSpec { latency_ms, jitter_ms, loss_percent, rate_kbit, .. } = *self;
        LinkParams { latency_ms, jitter_ms, loss_percent, rate_kbit }
    }
}

/// One node pair's entry in the table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Index of one node (the smaller).
    pub a: usize,
    /// Index of the other.
    pub b: usize,
    /// Conditions, both directions.
    pub params: LinkParams,
    /// Cut (`partition`): nothing passes, and what was in flight is lost.
    pub cut: bool,
}

/// Conditions of every node pair, as written to `links.json` for the shaper. Each change
/// raises `generation`; the shaper writes the generation it applied to `shaper.applied`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkTable {
    /// Raised on every change.
    pub generation: u64,
    /// Number of nodes (ports).
    pub nodes: usize,
    /// One entry per pair `a < b`, in order (index `pair_index(a, b)`).
    pub links: Vec<Link>,
}

/// Position of the pair `{a, b}` (a != b) in [`LinkTable::links`].
pub fn pair_index(n: usize, a: usize, b: usize) -> usize {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    // Pairs (0,1)..(0,n-1), (1,2).., ...: rows before `a` hold sum_{i<a} (n-1-i).
    a * (2 * n - a - 1) / 2 + (b - a - 1)
}

impl LinkTable {
    /// Every pair of `n` nodes with `default`, then `specs` (by node index) on top.
    pub fn new(n: usize, default: LinkParams, specs: &[(usize, usize, LinkParams)]) -> LinkTable {
        let mut links = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for a in 0..n {
            for b in a + 1..n {
                links.push(Link { a, b, params: default, cut: false });
            }
        }
        let mut t = LinkTable { generation: 1, nodes: n, links };
        for &(a, b, p) in specs {
            if let Some(l) = t.get_mut(a, b) {
                l.params = p;
            }
        }
        t
    }

    /// The link between `a` and `b` (None for a == b or out of range).
    pub fn get(&self, a: usize, b: usize) -> Option<&Link> {
        if a == b || a >= self.nodes || b >= self.nodes {
            return None;
        }
        self.links.get(pair_index(self.nodes, a, b))
    }

    /// The link between `a` and `b`, mutable.
    pub fn get_mut(&mut self, a: usize, b: usize) -> Option<&mut Link> {
        if a == b || a >= self.nodes || b >= self.nodes {
            return None;
        }
        let i = pair_index(self.nodes, a, b);
        self.links.get_mut(i)
    }

    /// Checks the shape read back from a file: one entry per pair, in order, each in range.
    pub fn check(&self) -> Result<(), LinkError> {
        let n = self.nodes;
        if n > 64 {
            return Err(LinkError::TooManyNodes(n));
        }
        if self.links.len() != n * n.saturating_sub(1) / 2 {
            return Err(LinkError::Count {
                got: self.links.len(),
                nodes: n,
                expected: n * n.saturating_sub(1) / 2,
            });
        }
        for (i, l) in self.links.iter().enumerate() {
            if l.a >= l.b || l.b >= n || pair_index(n, l.a, l.b) != i {
                return Err(LinkError::OutOfPlace { index: i, a: l.a, b: l.b });
            }
            l.params.check().map_err(|e| LinkError::Pair {
                a: l.a.to_string(),
                b: l.b.to_string(),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    /// Writes the table to `dir/links.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(LINKS_FILE);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self)
            .map_err(|source| TestnetError::Encode { what: "the link table", source })?;
        std::fs::write(&tmp, json).io("writing", &tmp)?;
        std::fs::rename(&tmp, &path).io("writing", &path)?;
        Ok(())
    }

    /// Reads `dir/links.json` (bounded to 4 MiB) and checks it.
    pub fn load(dir: &Path) -> Result<LinkTable> {
        let path = dir.join(LINKS_FILE);
        let meta = std::fs::metadata(&path).io("reading", &path)?;
        if meta.len() > 4 << 20 {
            return Err(LinkError::FileTooLarge { path, bytes: meta.len() }.into());
        }
        let bytes = std::fs::read(&path).io("reading", &path)?;
        let t: LinkTable = serde_json::from_slice(&bytes).map_err(|source| TestnetError::Json {
            path: path.clone(),
            verdict: "is not a link table",
            source,
        })?;
        t.check().map_err(|e| LinkError::File { path, source: Box::new(e) })?;
        Ok(t)
    }
}

/// What happens to one frame on one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Dropped (cut, random loss, or the queue is full).
    Drop,
    /// Delivered this long after it was sent.
    After(Duration),
}

/// Frames one direction of a link may hold in flight before it drops more (netem's default
/// limit).
pub const QUEUE_LIMIT: usize = 1000;

/// The running state of one direction of a link: when its transmitter is free (bandwidth)
/// and when its last frame is delivered (no overtaking), both as offsets from a clock origin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Direction {
    /// The transmitter is busy until then.
    pub busy_until: Duration,
    /// The last queued frame arrives then.
    pub last_delivery: Duration,
    /// Frames queued now.
    pub queued: usize,
}

impl Direction {
    /// The fate of a frame of `len` bytes sent at `now` under `params` (`cut` drops it);
    /// `loss_draw` and `jitter_draw` are uniform in [0, 1). Returns the delivery time as an
    /// offset from the same origin as `now`.
    pub fn admit(
        &mut self,
        params: &LinkParams,
        cut: bool,
        now: Duration,
        len: usize,
        loss_draw: f64,
        jitter_draw: f64,
    ) -> Option<Duration> {
        if cut || loss_draw * 100.0 < params.loss_percent || self.queued >= QUEUE_LIMIT {
            return None;
        }
        let mut sent = now;
        if let Some(rate) = params.rate_kbit {
            let start = self.busy_until.max(now);
            self.busy_until = start + Duration::from_secs_f64(len as f64 * 8.0 / (rate as f64 * 1000.0));
            sent = self.busy_until;
        }
        let jitter = params.jitter_ms * (2.0 * jitter_draw - 1.0);
        let delay = Duration::from_secs_f64(((params.latency_ms + jitter).max(0.0)) / 1000.0);
        let at = (sent + delay).max(self.last_delivery);
        self.last_delivery = at;
        self.queued += 1;
        Some(at)
    }

    /// A queued frame was delivered or discarded.
    pub fn done(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }
}

/// [`Direction::admit`] as a [`Fate`] relative to `now` (for tests and reports).
pub fn fate(
    dir: &mut Direction,
    params: &LinkParams,
    cut: bool,
    now: Duration,
    len: usize,
    draws: (f64, f64),
) -> Fate {
    match dir.admit(params, cut, now, len, draws.0, draws.1) {
        None => Fate::Drop,
        Some(at) => Fate::After(at.saturating_sub(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    #[test]
    fn pair_indices_cover_every_pair_once() {
        for n in 2..10 {
            let mut seen = vec![false; n * (n - 1) / 2];
            for a in 0..n {
                for b in a + 1..n {
                    let i = pair_index(n, a, b);
                    assert!(!seen[i], "{n} {a} {b}");
                    seen[i] = true;
                    assert_eq!(pair_index(n, b, a), i);
                }
            }
            assert!(seen.iter().all(|s| *s));
        }
        let t = LinkTable::new(
            4,
            LinkParams::default(),
            &[(2, 1, LinkParams { latency_ms: 5.0, ..Default::default() })],
        );
        t.check().unwrap();
        assert_eq!(t.get(1, 2).unwrap().params.latency_ms, 5.0);
        assert_eq!(t.get(2, 1).unwrap().params.latency_ms, 5.0);
        assert_eq!(t.get(0, 3).unwrap().params.latency_ms, 0.0);
        assert!(t.get(1, 1).is_none() && t.get(0, 4).is_none());
    }

    #[test]
    fn delay_jitter_loss_rate_and_cut() {
        let now = ms(1000.0);
        let p = LinkParams { latency_ms: 200.0, ..Default::default() };
        let mut d = Direction::default();
        assert_eq!(fate(&mut d, &p, false, now, 100, (0.5, 0.5)), Fate::After(ms(200.0)));
        // Jitter: the draw spans [-j, +j]; a later frame never overtakes an earlier one.
        let p = LinkParams { latency_ms: 200.0, jitter_ms: 50.0, ..Default::default() };
        let mut d = Direction::default();
        assert_eq!(fate(&mut d, &p, false, now, 100, (0.5, 1.0)), Fate::After(ms(250.0)));
        assert_eq!(fate(&mut d, &p, false, now, 100, (0.5, 0.0)), Fate::After(ms(250.0)));
        // Loss: drawn below the percentage drops.
        let p = LinkParams { loss_percent: 10.0, ..Default::default() };
        let mut d = Direction::default();
        assert_eq!(fate(&mut d, &p, false, now, 100, (0.05, 0.5)), Fate::Drop);
        assert_eq!(fate(&mut d, &p, false, now, 100, (0.15, 0.5)), Fate::After(Duration::ZERO));
        let all = LinkParams { loss_percent: 100.0, ..Default::default() };
        assert_eq!(fate(&mut d, &all, false, now, 100, (0.999_999, 0.5)), Fate::Drop);
        // Cut.
        assert_eq!(fate(&mut d, &LinkParams::default(), true, now, 100, (0.9, 0.5)), Fate::Drop);
        // Rate: 1000 kbit/s moves 125 bytes per ms; frames queue behind each other.
        let p = LinkParams { latency_ms: 10.0, rate_kbit: Some(1000), ..Default::default() };
        let mut d = Direction::default();
        assert_eq!(fate(&mut d, &p, false, now, 1250, (0.5, 0.5)), Fate::After(ms(20.0)));
        assert_eq!(fate(&mut d, &p, false, now, 1250, (0.5, 0.5)), Fate::After(ms(30.0)));
        // The queue limit drops.
        let mut d = Direction { queued: QUEUE_LIMIT, ..Default::default() };
        assert_eq!(fate(&mut d, &LinkParams::default(), false, now, 1, (0.9, 0.5)), Fate::Drop);
        d.done();
        assert_ne!(fate(&mut d, &LinkParams::default(), false, now, 1, (0.9, 0.5)), Fate::Drop);
    }

    #[test]
    fn params_are_checked_and_changed_field_by_field() {
        assert!(LinkParams { jitter_ms: 5.0, ..Default::default() }.check().is_err());
        assert!(LinkParams { loss_percent: 101.0, ..Default::default() }.check().is_err());
        assert!(LinkParams { latency_ms: -1.0, ..Default::default() }.check().is_err());
        assert!(LinkParams { rate_kbit: Some(0), ..Default::default() }.check().is_err());
        let p = LinkParams { latency_ms: 200.0, loss_percent: 1.0, ..Default::default() };
        p.check().unwrap();
        let q = p.with(&ParamChange { loss_percent: Some(100.0), ..Default::default() });
        assert_eq!(q, LinkParams { latency_ms: 200.0, loss_percent: 100.0, ..Default::default() });
        assert_eq!(q.describe(), "200 ms, 100% loss");
        assert_eq!(LinkParams::default().describe(), "clear");
    }

    #[test]
    fn a_bad_table_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = LinkTable::new(3, LinkParams::default(), &[]);
        t.save(dir.path()).unwrap();
        assert_eq!(LinkTable::load(dir.path()).unwrap(), t);
        t.links.swap(0, 1);
        t.save(dir.path()).unwrap();
        assert!(LinkTable::load(dir.path()).unwrap_err().chain().to_string().contains("out of place"));
        std::fs::write(dir.path().join(LINKS_FILE), b"{").unwrap();
        assert!(LinkTable::load(dir.path()).is_err());
    }
}
