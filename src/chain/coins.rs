//! The UTXO cache: connect and disconnect change coins in memory; the changes reach RocksDB
//! in one batch per flush, written on a background thread.
//!
//! Three layers answer a lookup, newest first: the cache's own entries, the layer being
//! flushed (read-only while its batch is written), and the store. An entry is either a coin
//! or a tombstone (spent); `fresh` means the store does not hold the coin, so spending it
//! drops the entry instead of leaving a tombstone to write (a coin created and spent between
//! two flushes never touches the disk).
//!
//! Crash safety does not depend on flushes: every connect writes the block's undo data and
//! the new tip in its own batch, and a flush records the block the UTXO column family then
//! corresponds to (`utxo_best`). On open, [`super::Chain`] replays from `utxo_best` to the tip
//! (back across a reorg with undo data, forward with the stored blocks).

use crate::consensus::{created_outputs, BlockConnect, CheckedBlock, Coin};
use crate::primitives::{Hash256, OutPoint};
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// Maps keyed by outpoint (std's keyed SipHash: txids can be ground by an attacker; aHash
/// measured no faster on the 1 MB connect bench, 10.53 vs 10.28 ms).
type OutPointMap<V> = HashMap<OutPoint, V>;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default bound of the cache (`--dbcache`), in MiB.
pub const DEFAULT_DBCACHE_MIB: usize = 100;
/// Largest `--dbcache` accepted, in MiB (1 TiB).
pub const MAX_DBCACHE_MIB: usize = 1 << 20;
/// Test-only environment variable: the node's cache bound in bytes, below `--dbcache`'s
/// 1 MiB floor (a crash soak sets 2 KiB to see a flush every block or two).
pub const DBCACHE_BYTES_ENV: &str = "QUARRY_DBCACHE_BYTES";
/// The cache is flushed at least this often while blocks connect.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(300);
/// Bytes an entry costs beyond its locking script: the key, the coin, hash-map overhead.
const ENTRY_BYTES: usize = 128;

#[derive(Clone, Debug)]
struct Entry {
    /// `None`: spent (a tombstone to write as a delete).
    coin: Option<Coin>,
    /// The store does not hold this coin.
    fresh: bool,
}

fn entry_bytes(coin: &Option<Coin>) -> usize {
    ENTRY_BYTES + coin.as_ref().map_or(0, |c| c.out.lock.0.len())
}

/// A flush in progress: its changes, readable until the write is done, and the thread
/// writing them (joined, so its handle on the store is gone once the flush is collected).
struct Flushing {
    changes: Arc<OutPointMap<Option<Coin>>>,
    thread: std::thread::JoinHandle<Result<(), StoreError>>,
}

fn join(thread: std::thread::JoinHandle<Result<(), StoreError>>) -> Result<(), StoreError> {
    thread.join().unwrap_or_else(|_| {
        Err(StoreError::Corrupt { cf: "utxo", detail: "the UTXO flush thread panicked".into() })
    })
}

/// Settings of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Flush when the entries take more than this many bytes (estimated).
    pub limit_bytes: usize,
    /// Flush at least this often.
    pub interval: Duration,
    /// Write flushes on a background thread (false: inline, for tests and tools).
    pub background: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { limit_bytes: DEFAULT_DBCACHE_MIB << 20, interval: FLUSH_INTERVAL, background: true }
    }
}

/// What the cache holds, for `getchainstateinfo`-style reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries (coins and tombstones).
    pub entries: usize,
    /// Estimated bytes.
    pub bytes: usize,
    /// Flushes written since open.
    pub flushes: u64,
}

/// The coins cache over the store's UTXO column family.
pub struct CoinsCache {
    entries: OutPointMap<Entry>,
    bytes: usize,
    flushing: Option<Flushing>,
    config: CacheConfig,
    last_flush: Instant,
    flushes: u64,
}

impl CoinsCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> CoinsCache {
        CoinsCache {
            entries: OutPointMap::new(),
            bytes: 0,
            flushing: None,
            config,
            last_flush: Instant::now(),
            flushes: 0,
        }
    }

    /// Entries, bytes and flushes.
    pub fn stats(&self) -> CacheStats {
        CacheStats { entries: self.entries.len(), bytes: self.bytes, flushes: self.flushes }
    }

    /// The unspent coins among `outpoints`, as of the last connect.
    pub fn coins(
        &self,
        store: &Store,
        outpoints: &[OutPoint],
    ) -> Result<HashMap<OutPoint, Coin>, StoreError> {
        let mut out = HashMap::with_capacity(outpoints.len());
        let mut misses = Vec::new();
        for op in outpoints {
            match self.lookup(op) {
                Some(Some(coin)) => {
                    out.insert(*op, coin.clone());
                }
                Some(None) => {}
                None => misses.push(*op),
            }
        }
        if !misses.is_empty() {
            out.extend(store.get_coins(&misses)?);
        }
        Ok(out)
    }

    /// One coin.
    pub fn coin(&self, store: &Store, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        match self.lookup(outpoint) {
            Some(c) => Ok(c.cloned()),
            None => store.get_coin(outpoint),
        }
    }

    /// What the memory layers say: `Some(None)` spent, `Some(Some)` unspent, `None` ask the
    /// store.
    fn lookup(&self, op: &OutPoint) -> Option<Option<&Coin>> {
        if let Some(e) = self.entries.get(op) {
            return Some(e.coin.as_ref());
        }
        self.flushing.as_ref().and_then(|f| f.changes.get(op)).map(|c| c.as_ref())
    }

    fn set(&mut self, op: OutPoint, entry: Entry) {
        self.bytes += entry_bytes(&entry.coin);
        if let Some(old) = self.entries.insert(op, entry) {
            self.bytes -= entry_bytes(&old.coin);
        }
    }

    fn remove(&mut self, op: &OutPoint) {
        if let Some(old) = self.entries.remove(op) {
            self.bytes -= entry_bytes(&old.coin);
        }
    }

    fn spend(&mut self, op: &OutPoint) {
        match self.entries.get(op) {
            // Created since the last flush began: the store never held it.
            Some(e) if e.fresh => self.remove(op),
            // On disk, or about to be by the flush in progress: write a delete.
            _ => self.set(*op, Entry { coin: None, fresh: false }),
        }
    }

    fn create(&mut self, op: OutPoint, coin: Coin) {
        let fresh = match self.entries.get(&op) {
            Some(e) => e.fresh,
            None => match self.flushing.as_ref().and_then(|f| f.changes.get(&op)) {
                // A delete being written: the store will not hold it.
                Some(None) => true,
                Some(Some(_)) => false,
                None => true,
            },
        };
        self.set(op, Entry { coin: Some(coin), fresh });
    }

    /// Applies a connected block's effect.
    pub fn connect(&mut self, effect: &BlockConnect) {
        for (op, _) in &effect.spent {
            self.spend(op);
        }
        for (op, coin) in &effect.created {
            self.create(*op, coin.clone());
        }
    }

    /// Undoes a block: the coins it created leave the set, the coins it spent (`spent`, its
    /// undo data) come back.
    pub fn disconnect(&mut self, block: &CheckedBlock, spent: &[(OutPoint, Coin)]) {
        for (op, _) in created_outputs(block) {
            self.spend(&op);
        }
        for (op, coin) in spent {
            self.create(*op, coin.clone());
        }
    }

    /// Whether a flush is due: over the size bound or the interval.
    pub fn flush_due(&self) -> bool {
        self.bytes > self.config.limit_bytes
            || (!self.entries.is_empty() && self.last_flush.elapsed() >= self.config.interval)
    }

    /// Finishes the flush in progress, if any (waits for it).
    pub fn wait(&mut self) -> Result<(), StoreError> {
        match self.flushing.take() {
            Some(f) => join(f.thread),
            None => Ok(()),
        }
    }

    /// Drops the flushing layer if its write has finished (returns its error, if it failed).
    pub fn poll(&mut self) -> Result<(), StoreError> {
        if self.flushing.as_ref().is_some_and(|f| f.thread.is_finished()) {
            return self.wait();
        }
        Ok(())
    }

    /// Writes every change to the store with `best` as the block the UTXO set then
    /// corresponds to: on a background thread if so configured and `sync` is false (the
    /// changes stay readable meanwhile), else before returning. Waits for an earlier flush
    /// first (one at a time).
    pub fn flush(&mut self, store: &Arc<Store>, best: Hash256, sync: bool) -> Result<(), StoreError> {
        self.wait()?;
        self.last_flush = Instant::now();
        if self.entries.is_empty() {
            if store.utxo_best()? != Some(best) {
                store.write_coins(std::iter::empty(), &best)?;
            }
            return Ok(());
        }
        // Taken, not drained: a drained map keeps its table (~80 MiB at the default
        // --dbcache), resident while the cache refills from empty; a new one grows as needed.
        let changes: OutPointMap<Option<Coin>> = std::mem::take(&mut self.entries)
            .into_iter()
            // A fresh tombstone is a coin the store never held: nothing to write.
            .filter(|(_, e)| !(e.fresh && e.coin.is_none()))
            .map(|(op, e)| (op, e.coin))
            .collect();
        self.bytes = 0;
        self.flushes += 1;
        if sync || !self.config.background {
            super::pause::reached(super::pause::PausePoint::Flush);
            return store.write_coins(changes.iter(), &best);
        }
        let changes = Arc::new(changes);
        let (store, layer) = (store.clone(), changes.clone());
        let thread = std::thread::Builder::new()
            .name("utxo-flush".into())
            .spawn(move || {
                super::pause::reached(super::pause::PausePoint::Flush);
                store.write_coins(layer.iter(), &best)
            })
            .map_err(|e| StoreError::Corrupt {
                cf: "utxo",
                detail: format!("starting the flush thread: {e}"),
            })?;
        self.flushing = Some(Flushing { changes, thread });
        Ok(())
    }

    /// The memory layers merged (cache over flushing layer), in store key order, for a digest
    /// of the whole set.
    pub fn overlay(&self) -> BTreeMap<[u8; 36], Option<&Coin>> {
        let mut out = BTreeMap::new();
        if let Some(f) = &self.flushing {
            for (op, c) in f.changes.iter() {
                out.insert(op.to_bytes(), c.as_ref());
            }
        }
        for (op, e) in &self.entries {
            out.insert(op.to_bytes(), e.coin.as_ref());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Amount, Script, TxOut};

    fn coin(v: u64) -> Coin {
        Coin {
            out: TxOut { value: Amount::from_sat(v).unwrap(), lock: Script(vec![0x51; 25]) },
            height: 1,
            is_coinbase: false,
        }
    }

    fn op(i: u8) -> OutPoint {
        OutPoint { txid: Hash256([i; 32]), index: i as u32 }
    }

    fn effect(spent: &[(OutPoint, Coin)], created: &[(OutPoint, Coin)]) -> BlockConnect {
        BlockConnect { spent: spent.to_vec(), created: created.to_vec(), fees: Amount::ZERO }
    }

    fn digest(cache: &CoinsCache, store: &Store) -> crate::store::UtxoDigest {
        store.utxo_digest(&cache.overlay()).unwrap()
    }

    #[test]
    fn a_coin_created_and_spent_between_flushes_never_reaches_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut cache = CoinsCache::new(CacheConfig { background: false, ..CacheConfig::default() });
        cache.connect(&effect(&[], &[(op(1), coin(10)), (op(2), coin(20))]));
        cache.connect(&effect(&[(op(1), coin(10))], &[]));
        assert_eq!(cache.stats().entries, 1, "the fresh coin's entry is gone, no tombstone");
        assert_eq!(cache.coin(&store, &op(1)).unwrap(), None);
        cache.flush(&store, Hash256([9; 32]), true).unwrap();
        assert_eq!(store.get_coin(&op(1)).unwrap(), None);
        assert_eq!(store.get_coin(&op(2)).unwrap(), Some(coin(20)));
        assert_eq!(store.utxo_best().unwrap(), Some(Hash256([9; 32])));
        // Spending a stored coin leaves a tombstone that the next flush writes as a delete.
        cache.connect(&effect(&[(op(2), coin(20))], &[]));
        assert_eq!(cache.coin(&store, &op(2)).unwrap(), None, "the tombstone hides the stored coin");
        assert_eq!(store.get_coin(&op(2)).unwrap(), Some(coin(20)));
        cache.flush(&store, Hash256([8; 32]), true).unwrap();
        assert_eq!(store.get_coin(&op(2)).unwrap(), None);
    }

    #[test]
    fn lookups_and_digests_agree_before_during_and_after_a_background_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut cache = CoinsCache::new(CacheConfig::default());
        cache.connect(&effect(&[], &(1..=50).map(|i| (op(i), coin(i as u64))).collect::<Vec<_>>()));
        cache.flush(&store, Hash256([1; 32]), true).unwrap();
        // Spend some stored coins, create new ones, spend one of those.
        let spent: Vec<_> = (1..=10).map(|i| (op(i), coin(i as u64))).collect();
        let created: Vec<_> = (60..=70).map(|i| (op(i), coin(i as u64))).collect();
        cache.connect(&effect(&spent, &created));
        cache.connect(&effect(&[(op(60), coin(60))], &[]));
        let before = digest(&cache, &store);
        assert_eq!(before.count, 50 - 10 + 11 - 1);
        cache.flush(&store, Hash256([2; 32]), false).unwrap();
        // While the batch may still be in flight, the flushing layer answers.
        assert_eq!(cache.coin(&store, &op(5)).unwrap(), None);
        assert_eq!(cache.coin(&store, &op(65)).unwrap(), Some(coin(65)));
        // A change on top of the flush in progress: spend a coin the flush is writing, and
        // re-create nothing; then create and spend within the new generation.
        cache.connect(&effect(&[(op(65), coin(65))], &[(op(80), coin(80))]));
        cache.connect(&effect(&[(op(80), coin(80))], &[]));
        let during = digest(&cache, &store);
        assert_eq!(during.count, before.count - 1);
        cache.wait().unwrap();
        assert_eq!(digest(&cache, &store), during, "the digest does not depend on what is flushed");
        cache.flush(&store, Hash256([3; 32]), true).unwrap();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(store.utxo_digest(&BTreeMap::new()).unwrap(), during);
        assert_eq!(store.get_coin(&op(65)).unwrap(), None);
        assert_eq!(store.get_coin(&op(80)).unwrap(), None);
        assert_eq!(store.utxo_best().unwrap(), Some(Hash256([3; 32])));
    }
}
