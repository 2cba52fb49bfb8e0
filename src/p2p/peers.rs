//! Peer policy: misbehaviour scores, bans (persisted in `<datadir>/banned.json`), and the
//! inbound request rate limit. Pure bookkeeping over an injected clock.

use super::compact::CompactError;
use crate::consensus::ConsensusError;
use crate::mempool::MempoolError;
use crate::primitives::{DecodeError, Hash256};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};

/// A score at or below this disconnects and bans the peer.
pub const BAN_THRESHOLD: i32 = -100;
/// How long a ban lasts, seconds.
pub const BAN_SECONDS: u64 = 3_600;
/// Scores recover by one point per this many seconds of good behaviour.
pub const RECOVERY_SECONDS: u64 = 10;
/// Inbound sync requests a peer may make in a burst…
pub const REQUEST_BURST: f64 = 2_000.0;
/// …and per second sustained.
pub const REQUESTS_PER_SECOND: f64 = 1_000.0;

/// Something a peer did wrong, with the typed error or the values that show it. Only the
/// peer's own faults appear here: our busy core, our database errors, a block whose parent we
/// lack or a tx that conflicts with our mempool are never held against a peer (see
/// [`super::link::Blame`], the one classification every path uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A block that breaks a consensus rule (including its proof of work).
    InvalidBlock { hash: Hash256, error: ConsensusError },
    /// A transaction the mempool refused for a rule the sender could have checked.
    InvalidTx(MempoolError),
    /// A header with bad proof of work, bits or time.
    InvalidHeaders { hash: Hash256, error: ConsensusError },
    /// Headers that do not form a chain from a block we know: header `hash` names `prev`,
    /// which is not the block before it (nor a block we have).
    UnconnectedHeaders { hash: Hash256, prev: Hash256 },
    /// Bytes that do not decode: `what` is the message (a gossip topic, a sync request or
    /// response).
    Malformed { what: &'static str, error: DecodeError },
    /// A headers answer longer than the protocol allows.
    TooManyHeaders { got: usize, max: usize },
    /// A `GetBlockTxn` asking for a transaction index the block does not have.
    BlockTxnIndex { block: Hash256, index: u32, txs: usize },
    /// A block in a `Blocks` answer that was not asked for (or sent twice).
    BlockNotAsked { hash: Hash256 },
    /// An answer of another kind than the request.
    WrongAnswer { asked: &'static str, got: &'static str },
    /// A `BlockTxn` answer that does not fill the compact block it was asked for.
    BadBlockTxn(CompactError),
    /// A request it did not answer in time.
    Stalled { request: u64, asked: &'static str, blocks: usize },
    /// Requests faster than the rate limit.
    RequestFlood,
    /// A compact block whose short ids are not those of the block it announced.
    BadCompactBlock { hash: Hash256 },
    /// A compact block relayed after the stateless checks that then failed to connect (the
    /// relayer checked only those; a ban would let one invalid block with valid proof of
    /// work split the network).
    RelayedInvalidBlock { hash: Hash256, error: ConsensusError },
}

impl Misbehaviour {
    /// Points taken off the score.
    pub fn penalty(&self) -> i32 {
        match self {
            Misbehaviour::InvalidBlock { .. } | Misbehaviour::InvalidHeaders { .. } => 100,
            Misbehaviour::Malformed { .. }
            | Misbehaviour::TooManyHeaders { .. }
            | Misbehaviour::BlockTxnIndex { .. }
            | Misbehaviour::UnconnectedHeaders { .. }
            | Misbehaviour::BadCompactBlock { .. } => 50,
            Misbehaviour::InvalidTx(_)
            | Misbehaviour::BlockNotAsked { .. }
            | Misbehaviour::WrongAnswer { .. }
            | Misbehaviour::BadBlockTxn(_)
            | Misbehaviour::RelayedInvalidBlock { .. } => 20,
            Misbehaviour::Stalled { .. } => 10,
            Misbehaviour::RequestFlood => 5,
        }
    }
}

impl std::fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misbehaviour::InvalidBlock { hash, error } => write!(f, "invalid block: {hash}: {error}"),
            Misbehaviour::InvalidTx(e) => write!(f, "invalid transaction: {e}"),
            Misbehaviour::InvalidHeaders { hash, error } => write!(f, "invalid headers: header {hash}: {error}"),
            Misbehaviour::UnconnectedHeaders { hash, prev } => {
                write!(f, "headers do not connect: header {hash} builds on {prev}, which is not the header before it nor a block we have")
            }
            Misbehaviour::Malformed { what, error } => write!(f, "malformed message: {what}: {error}"),
            Misbehaviour::TooManyHeaders { got, max } => {
                write!(f, "oversized message: {got} headers, at most {max}")
            }
            Misbehaviour::BlockTxnIndex { block, index, txs } => write!(
                f,
                "malformed message: getblocktxn index {index} is outside block {block} of {txs} transactions"
            ),
            Misbehaviour::BlockNotAsked { hash } => write!(f, "unsolicited response: block {hash} was not asked for"),
            Misbehaviour::WrongAnswer { asked, got } => {
                write!(f, "unsolicited response: asked for {asked}, got {got}")
            }
            Misbehaviour::BadBlockTxn(e) => write!(f, "unsolicited response: {e}"),
            Misbehaviour::Stalled { request, asked, blocks } => {
                write!(f, "stalled: request {request} ({asked}, {blocks} blocks) unanswered")
            }
            Misbehaviour::RequestFlood => write!(f, "requests over the rate limit ({REQUESTS_PER_SECOND}/s)"),
            Misbehaviour::BadCompactBlock { hash } => write!(
                f,
                "bad compact block: the short ids announced for block {hash} are not those of its transactions"
            ),
            Misbehaviour::RelayedInvalidBlock { hash, error } => {
                write!(f, "relayed an invalid compact block: block {hash} is invalid: {error}")
            }
        }
    }
}

/// Score and rate-limit state of one connected peer.
#[derive(Clone, Debug)]
pub struct PeerScore {
    /// Current score (0 is neutral; lower is worse).
    pub score: i32,
    last_recovery: u64,
    tokens: f64,
    tokens_at: f64,
}

impl PeerScore {
    /// A fresh peer at `now` (seconds).
    pub fn new(now: u64) -> Self {
        PeerScore { score: 0, last_recovery: now, tokens: REQUEST_BURST, tokens_at: now as f64 }
    }

    /// Applies a penalty; true when the peer should now be banned.
    pub fn penalise(&mut self, m: &Misbehaviour) -> bool {
        self.score = self.score.saturating_sub(m.penalty());
        self.score <= BAN_THRESHOLD
    }

    /// Recovers a point per [`RECOVERY_SECONDS`] towards 0.
    pub fn tick(&mut self, now: u64) {
        let steps = now.saturating_sub(self.last_recovery) / RECOVERY_SECONDS;
        if steps > 0 {
            self.score = (self.score + steps.min(1_000) as i32).min(0);
            self.last_recovery += steps * RECOVERY_SECONDS;
        }
    }

    /// Takes a token for one inbound request at `now_secs` (fractional); false when the peer
    /// is over the rate limit.
    pub fn allow_request(&mut self, now_secs: f64) -> bool {
        let elapsed = (now_secs - self.tokens_at).max(0.0);
        self.tokens = (self.tokens + elapsed * REQUESTS_PER_SECOND).min(REQUEST_BURST);
        self.tokens_at = now_secs;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Banned peers, by peer id string, with the unix time each ban ends and why.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BanList {
    bans: HashMap<String, Ban>,
    #[serde(skip)]
    path: Option<PathBuf>,
    /// Set by [`BanList::from_json`] when bans had expired, so [`BanList::load`] rewrites the file.
    #[serde(skip)]
    expired_on_load: bool,
}

/// One ban.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ban {
    /// Unix time the ban ends.
    pub until: u64,
    /// Why it was imposed.
    pub reason: String,
}

/// Most bans kept (the oldest-ending are dropped beyond).
pub const MAX_BANS: usize = 10_000;
/// The ban file is never read past this size.
const MAX_BAN_FILE: u64 = 4 << 20;
/// Bad entries of a ban file logged one by one (the rest as a count).
const MAX_LOGGED_PROBLEMS: usize = 10;

/// The bans in a `banned.json` file (`{"bans": {"<peer id>": {"until": N, "reason": "…"}}}`),
/// and one line per entry that was skipped, naming the entry and what is wrong with it.
fn parse_bans(bytes: &[u8]) -> (HashMap<String, Ban>, Vec<String>) {
    let mut bans = HashMap::new();
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return (bans, vec![format!("not JSON ({e}); starting empty")]),
    };
    let Some(entries) = value.get("bans").and_then(|b| b.as_object()) else {
        return (bans, vec!["no \"bans\" object at the top level; starting empty".to_string()]);
    };
    let mut problems = Vec::new();
    for (peer, entry) in entries {
        if peer.is_empty() {
            problems.push("entry with an empty peer id skipped".to_string());
            continue;
        }
        match Ban::deserialize(entry) {
            Ok(ban) => {
                bans.insert(peer.clone(), ban);
            }
            Err(e) => problems.push(format!(
                "entry {peer:?} skipped: {e} (expected {{\"until\": <unix time>, \"reason\": \"...\"}})"
            )),
        }
    }
    (bans, problems)
}

impl BanList {
    /// Loads `path` (a missing file is an empty list; a file that is not a JSON ban list is
    /// logged and replaced), dropping expired bans. A bad entry is logged with its reason and
    /// skipped, never taking the good ones with it; past [`MAX_BANS`] the longest-lasting
    /// bans are kept.
    pub fn load(path: &Path, now: u64) -> BanList {
        let mut list = match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_BAN_FILE => {
                tracing::warn!(target: "p2p", path = %path.display(), bytes = m.len(), limit = MAX_BAN_FILE,
                    "ban list larger than the limit; starting empty (move the file away to keep it)");
                BanList::default()
            }
            Ok(_) => match std::fs::read(path) {
                Ok(bytes) => {
                    let (list, problems) = BanList::from_json(&bytes, now);
                    for p in problems.iter().take(MAX_LOGGED_PROBLEMS) {
                        tracing::warn!(target: "p2p", path = %path.display(), "ban list: {p}");
                    }
                    if problems.len() > MAX_LOGGED_PROBLEMS {
                        tracing::warn!(target: "p2p", path = %path.display(), skipped = problems.len(),
                            "ban list: {} more bad entries skipped", problems.len() - MAX_LOGGED_PROBLEMS);
                    }
                    list
                }
                Err(e) => {
                    tracing::warn!(target: "p2p", path = %path.display(), error = %e, "ban list unreadable; starting empty");
                    BanList::default()
                }
            },
            Err(_) => BanList::default(),
        };
        list.path = Some(path.to_path_buf());
        if list.expired_on_load {
            list.save();
        }
        list
    }

    /// The bans in force at `now` in the bytes of a `banned.json` file (untrusted: damaged or
    /// hand-edited), and one line per problem found (a bad entry names itself and is skipped,
    /// never taking the good ones with it; past [`MAX_BANS`] the longest-lasting bans are
    /// kept). The list has no file: [`BanList::load`] attaches it.
    pub fn from_json(bytes: &[u8], now: u64) -> (BanList, Vec<String>) {
        let (bans, mut problems) = parse_bans(bytes);
        let mut list = BanList { bans, ..BanList::default() };
        list.expired_on_load = !list.expire(now).is_empty();
        let over = list.bans.len().saturating_sub(MAX_BANS);
        if over > 0 {
            let mut by_end: Vec<(String, u64)> =
                list.bans.iter().map(|(k, b)| (k.clone(), b.until)).collect();
            by_end.sort_unstable_by_key(|(_, until)| *until);
            for (k, _) in by_end.into_iter().take(over) {
                list.bans.remove(&k);
            }
            // First, so that it is logged even when many entries were bad.
            problems.insert(
                0,
                format!(
                    "{over} more bans than the limit of {MAX_BANS}; kept the {MAX_BANS} that last longest"
                ),
            );
        }
        (list, problems)
    }

    /// Bans `peer` until `now + seconds`, and saves.
    pub fn ban(&mut self, peer: &str, now: u64, seconds: u64, reason: String) {
        self.bans.insert(peer.to_string(), Ban { until: now.saturating_add(seconds), reason });
        if self.bans.len() > MAX_BANS {
            if let Some(k) = self.bans.iter().min_by_key(|(_, b)| b.until).map(|(k, _)| k.clone()) {
                self.bans.remove(&k);
            }
        }
        self.save();
    }

    /// Lifts a ban; true if there was one.
    pub fn unban(&mut self, peer: &str) -> bool {
        let had = self.bans.remove(peer).is_some();
        if had {
            self.save();
        }
        had
    }

    /// True while `peer` is banned.
    pub fn is_banned(&self, peer: &str, now: u64) -> bool {
        self.bans.get(peer).is_some_and(|b| b.until > now)
    }

    /// Drops expired bans and returns the peers they covered.
    pub fn expire(&mut self, now: u64) -> Vec<String> {
        let gone: Vec<String> =
            self.bans.iter().filter(|(_, b)| b.until <= now).map(|(k, _)| k.clone()).collect();
        for k in &gone {
            self.bans.remove(k);
        }
        if !gone.is_empty() {
            self.save();
        }
        gone
    }

    /// Every ban in force.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Ban)> {
        self.bans.iter()
    }

    /// Writes the list atomically (temp file, rename). Failures are logged: a lost ban list
    /// only forgets bans.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            tracing::warn!(target: "p2p", path = %path.display(), error = %e, "could not save the ban list");
        }
    }
}

/// Score records kept at most (connected peers plus recently disconnected bad ones).
const MAX_SCORED_PEERS: usize = 10_000;

/// Scores of connected peers (and of disconnected peers with a negative score).
#[derive(Debug)]
pub struct Scores<P> {
    peers: HashMap<P, PeerScore>,
}

impl<P: Eq + Hash + Clone> Default for Scores<P> {
    fn default() -> Self {
        Scores { peers: HashMap::new() }
    }
}

impl<P: Eq + Hash + Clone> Scores<P> {
    /// The score entry of a peer, created on first use.
    pub fn entry(&mut self, peer: &P, now: u64) -> &mut PeerScore {
        self.peers.entry(peer.clone()).or_insert_with(|| PeerScore::new(now))
    }

    /// The score of a peer (0 if unknown).
    pub fn score(&self, peer: &P) -> i32 {
        self.peers.get(peer).map_or(0, |s| s.score)
    }

    /// A peer disconnected: a neutral score is forgotten; a negative one is kept (bounded),
    /// so reconnecting does not wipe a bad record. Bans live in the [`BanList`].
    pub fn remove(&mut self, peer: &P) {
        if self.peers.get(peer).is_some_and(|s| s.score >= 0) {
            self.peers.remove(peer);
        }
        if self.peers.len() > MAX_SCORED_PEERS {
            // Forget the mildest records first.
            if let Some(k) = self.peers.iter().max_by_key(|(_, s)| s.score).map(|(k, _)| k.clone()) {
                self.peers.remove(&k);
            }
        }
    }

    /// Recovery for everyone.
    pub fn tick(&mut self, now: u64) {
        for s in self.peers.values_mut() {
            s.tick(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_twice_bans_invalid_block_bans_at_once_stalls_do_not() {
        let mut s = PeerScore::new(0);
        let junk = || Misbehaviour::Malformed {
            what: "sync response",
            error: DecodeError::TrailingBytes { what: "response", extra: 1 },
        };
        assert!(!s.penalise(&junk()));
        assert!(s.penalise(&junk()));
        let mut s = PeerScore::new(0);
        assert!(s.penalise(&Misbehaviour::InvalidBlock {
            hash: Hash256::ZERO,
            error: ConsensusError::NoTransactions,
        }));
        let mut s = PeerScore::new(0);
        for _ in 0..9 {
            assert!(!s.penalise(&Misbehaviour::Stalled { request: 1, asked: "blocks", blocks: 1 }));
        }
        s.tick(100); // ten points recovered
        assert_eq!(s.score, -80);
        s.tick(10_000);
        assert_eq!(s.score, 0);
    }

    #[test]
    fn rate_limit_allows_bursts_then_refuses_then_refills() {
        let mut s = PeerScore::new(0);
        let allowed = (0..10_000).filter(|_| s.allow_request(0.0)).count();
        assert_eq!(allowed, REQUEST_BURST as usize);
        assert!(!s.allow_request(0.0));
        assert!(s.allow_request(1.0));
    }

    #[test]
    fn bans_persist_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banned.json");
        let mut list = BanList::load(&path, 0);
        list.ban("peerA", 100, 50, "invalid block".into());
        list.ban("peerB", 100, 500, "garbage".into());
        let mut list = BanList::load(&path, 120);
        assert!(list.is_banned("peerA", 120));
        assert_eq!(list.expire(200), vec!["peerA".to_string()]);
        let list = BanList::load(&path, 200);
        assert!(!list.is_banned("peerA", 200));
        assert!(list.is_banned("peerB", 200));
        std::fs::write(&path, b"not json").unwrap();
        assert_eq!(BanList::load(&path, 0).entries().count(), 0);
    }

    #[test]
    fn a_bad_ban_entry_is_skipped_and_the_good_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banned.json");
        let file = r#"{"bans": {
            "peerA": {"until": 500, "reason": "invalid block"},
            "peerB": {"until": "soon", "reason": "x"},
            "peerC": {"reason": "no end"},
            "peerD": {"until": 900, "reason": "garbage"}
        }}"#;
        std::fs::write(&path, file).unwrap();
        let list = BanList::load(&path, 100);
        let mut kept: Vec<&String> = list.entries().map(|(k, _)| k).collect();
        kept.sort();
        assert_eq!(kept, ["peerA", "peerD"]);
        let (_, problems) = parse_bans(file.as_bytes());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("\"peerB\"") && p.contains("invalid type")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("\"peerC\"") && p.contains("missing field `until`")),
            "{problems:?}"
        );
    }

    #[test]
    fn loading_more_bans_than_the_cap_keeps_the_longest_lasting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banned.json");
        let bans: serde_json::Map<String, serde_json::Value> = (0..2 * MAX_BANS as u64)
            .map(|i| (format!("peer{i}"), serde_json::json!({"until": 1_000 + i, "reason": "r"})))
            .collect();
        std::fs::write(&path, serde_json::to_vec(&serde_json::json!({ "bans": bans })).unwrap()).unwrap();
        let list = BanList::load(&path, 0);
        assert_eq!(list.entries().count(), MAX_BANS);
        let shortest = list.entries().map(|(_, b)| b.until).min().unwrap();
        assert_eq!(shortest, 1_000 + MAX_BANS as u64, "the shortest bans are the ones dropped");
    }
}
