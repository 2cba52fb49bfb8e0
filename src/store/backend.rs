//! The key-value layer under [`super::Store`]: RocksDB on disk, or ordered maps in memory
//! (the simulator and fast tests). Both hold the same column families with the same keys and
//! values, so every record is encoded once, in `Store`, and a batch is atomic in both.
//!
//! Enum dispatch rather than a trait object: the two backends are known, the calls stay
//! static, and `Store` (shared as `Arc<Store>` with the indexer thread) keeps one type.

use super::{ColumnFamily, StoreError};
use rocksdb::{IteratorMode, WriteBatch, DB};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// One ordered map per column family.
type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; ColumnFamily::ALL.len()];

/// Where the records live.
pub(super) enum Backend {
    /// RocksDB, one column family per [`ColumnFamily`].
    Rocks(DB),
    /// In memory: nothing survives the process.
    Memory(RwLock<Tables>),
}

fn slot(cf: ColumnFamily) -> usize {
    ColumnFamily::ALL.iter().position(|c| *c == cf).expect("every column family is in ALL")
}

enum MemOp {
    Put(ColumnFamily, Vec<u8>, Vec<u8>),
    Delete(ColumnFamily, Vec<u8>),
    DeleteRange(ColumnFamily, Vec<u8>, Vec<u8>),
}

/// Writes applied together by [`Backend::write`]: all or none.
pub(super) struct Batch<'a> {
    backend: &'a Backend,
    inner: BatchInner,
}

enum BatchInner {
    Rocks(WriteBatch),
    Memory(Vec<MemOp>),
}

impl Batch<'_> {
    /// Puts `value` at `key`.
    pub(super) fn put(&mut self, cf: ColumnFamily, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        match &mut self.inner {
            BatchInner::Rocks(b) => b.put_cf(self.backend.handle(cf), key, value),
            BatchInner::Memory(ops) => {
                ops.push(MemOp::Put(cf, key.as_ref().to_vec(), value.as_ref().to_vec()))
            }
        }
    }

    /// Deletes `key`.
    pub(super) fn delete(&mut self, cf: ColumnFamily, key: impl AsRef<[u8]>) {
        match &mut self.inner {
            BatchInner::Rocks(b) => b.delete_cf(self.backend.handle(cf), key),
            BatchInner::Memory(ops) => ops.push(MemOp::Delete(cf, key.as_ref().to_vec())),
        }
    }

    /// Deletes every key in `from..to`.
    pub(super) fn delete_range(&mut self, cf: ColumnFamily, from: &[u8], to: &[u8]) {
        match &mut self.inner {
            BatchInner::Rocks(b) => b.delete_range_cf(self.backend.handle(cf), from, to),
            BatchInner::Memory(ops) => ops.push(MemOp::DeleteRange(cf, from.to_vec(), to.to_vec())),
        }
    }
}

impl Backend {
    /// An empty in-memory backend.
    pub(super) fn memory() -> Backend {
        Backend::Memory(RwLock::new(std::array::from_fn(|_| BTreeMap::new())))
    }

    fn handle(&self, cf: ColumnFamily) -> &rocksdb::ColumnFamily {
        match self {
            Backend::Rocks(db) => {
                db.cf_handle(cf.name()).expect("every column family is opened in Store::open")
            }
            Backend::Memory(_) => unreachable!("no column family handles in memory"),
        }
    }

    fn tables(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        match self {
            // A panic while holding the lock left the maps as they were before the batch
            // (batches apply after the lock is taken and cannot fail half-way).
            Backend::Memory(t) => t.read().unwrap_or_else(|e| e.into_inner()),
            Backend::Rocks(_) => unreachable!("only the memory backend has tables"),
        }
    }

    /// True for the in-memory backend.
    pub(super) fn is_memory(&self) -> bool {
        matches!(self, Backend::Memory(_))
    }

    /// A new, empty batch.
    pub(super) fn batch(&self) -> Batch<'_> {
        let inner = match self {
            Backend::Rocks(_) => BatchInner::Rocks(WriteBatch::default()),
            Backend::Memory(_) => BatchInner::Memory(Vec::new()),
        };
        Batch { backend: self, inner }
    }

    /// Applies a batch atomically; with `sync` RocksDB fsyncs its write-ahead log before
    /// returning (the memory backend has nothing to sync).
    pub(super) fn write(&self, batch: Batch<'_>, sync: bool) -> Result<(), StoreError> {
        match (self, batch.inner) {
            (Backend::Rocks(db), BatchInner::Rocks(b)) => {
                let mut opts = rocksdb::WriteOptions::default();
                opts.set_sync(sync);
                Ok(db.write_opt(b, &opts)?)
            }
            (Backend::Memory(t), BatchInner::Memory(ops)) => {
                let mut t = t.write().unwrap_or_else(|e| e.into_inner());
                for op in ops {
                    match op {
                        MemOp::Put(cf, k, v) => {
                            t[slot(cf)].insert(k, v);
                        }
                        MemOp::Delete(cf, k) => {
                            t[slot(cf)].remove(&k);
                        }
                        MemOp::DeleteRange(cf, from, to) => {
                            let map = &mut t[slot(cf)];
                            let doomed: Vec<Vec<u8>> = map.range(from..to).map(|(k, _)| k.clone()).collect();
                            for k in doomed {
                                map.remove(&k);
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => unreachable!("a batch is written to the backend that made it"),
        }
    }

    /// Puts one record outside a batch.
    pub(super) fn put(&self, cf: ColumnFamily, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut b = self.batch();
        b.put(cf, key, value);
        self.write(b, false)
    }

    /// Calls `f` with the value at `key`, if any (no copy on RocksDB: a pinned slice).
    pub(super) fn get_with<T>(
        &self,
        cf: ColumnFamily,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Backend::Rocks(db) => Ok(db.get_pinned_cf(self.handle(cf), key)?.map(|v| f(&v))),
            Backend::Memory(_) => Ok(self.tables()[slot(cf)].get(key).map(|v| f(v))),
        }
    }

    /// Calls `f` with the value of each of `keys` that exists (`keys` sorted, one batched
    /// lookup on RocksDB).
    pub(super) fn multi_get<const N: usize>(
        &self,
        cf: ColumnFamily,
        keys: &[[u8; N]],
        mut f: impl FnMut(&[u8; N], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Rocks(db) => {
                for (k, v) in keys.iter().zip(db.batched_multi_get_cf(self.handle(cf), keys, true)) {
                    if let Some(v) = v? {
                        f(k, &v)?;
                    }
                }
            }
            Backend::Memory(_) => {
                let t = self.tables();
                for k in keys {
                    if let Some(v) = t[slot(cf)].get(k.as_slice()) {
                        f(k, v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with each record from `from` on, in key order, while it returns true.
    pub(super) fn scan(
        &self,
        cf: ColumnFamily,
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Rocks(db) => {
                let mode = if from.is_empty() {
                    IteratorMode::Start
                } else {
                    IteratorMode::From(from, rocksdb::Direction::Forward)
                };
                for item in db.iterator_cf(self.handle(cf), mode) {
                    let (k, v) = item?;
                    if !f(&k, &v)? {
                        break;
                    }
                }
            }
            Backend::Memory(_) => {
                let t = self.tables();
                for (k, v) in t[slot(cf)].range(from.to_vec()..) {
                    if !f(k, v)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
