//! Chainstate storage: RocksDB on disk ([`Store::open`]) or ordered maps in memory
//! ([`Store::memory`], for the simulator and fast tests) behind one API, with the same keys
//! and byte-identical records (the backend layer, `backend.rs`, only moves bytes). Every
//! column family is declared in [`ColumnFamily`]; each block connect
//! and disconnect is one `WriteBatch` (undo + indexes + active-chain height + tip), so a
//! crash at any instant leaves the chain at the old tip or the new one, never between. The
//! UTXO column family is written by flushes of the chain's coins cache
//! ([`Store::write_coins`]), each recording the block it corresponds to (`utxo_best`); the
//! chain replays the blocks between that and the tip on open.
//!
//! On disk, writes go through RocksDB's write-ahead log, by default without fsync: a killed
//! process loses nothing acknowledged (the OS holds the log); a power cut may lose the blocks
//! written since the OS last flushed it, never atomicity (the log is replayed in order up to
//! its first damaged record). [`Store::open_with`] with `sync_writes` fsyncs the log on every
//! block write (body, connect, disconnect, tip) and every UTXO flush (`quarry node
//! --sync-writes`); the indexes are not synced (they are rebuilt from `index_best`).

use crate::codec::{self, CodecError};
use crate::consensus::{created_outputs, BlockConnect, CheckedBlock, Coin};
use crate::primitives::{Block, BlockHeader, DecodeError, Hash256, OutPoint, U256};
use backend::Backend;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, DB};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

mod backend;

/// Version of the on-disk layout; a store with another version is refused.
pub const SCHEMA_VERSION: u32 = 4;
/// The previous layout, upgraded in place on open (its UTXO set always matched the tip).
const SCHEMA_V3: u32 = 3;

/// Every column family, with what it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnFamily {
    /// block hash -> [`IndexRecord`] (header, height, cumulative work, status, first-seen order)
    Index,
    /// block hash -> canonical block bytes
    Blocks,
    /// 36-byte outpoint -> [`Coin`]
    Utxo,
    /// block hash -> undo data: the coins the block spent, `Vec<(OutPoint, Coin)>` (kept when
    /// the block is disconnected: a UTXO set flushed while it was connected may need it)
    Undo,
    /// height (u32 big-endian, so keys sort by height) -> block hash, for the active chain
    Active,
    /// fixed keys: `tip` -> block hash, `utxo_best` -> block hash (the block the UTXO column
    /// family corresponds to), `index_best` -> block hash (the block the three indexes match),
    /// `index_set` -> 2 bytes (tx index on, address indexes on), `schema` -> u32 LE
    Meta,
    /// txid -> hash of the active-chain block holding it (for getrawtransaction), written by
    /// the indexer
    TxIndex,
    /// SHA-256(locking script) ++ 36-byte outpoint -> empty: unspent outputs by address
    /// (getaddressutxos), written by the indexer
    Address,
    /// SHA-256(locking script) ++ height (u32 BE) ++ txid -> empty: every active-chain
    /// transaction paying or spending a script (getaddresstxids, wallet history)
    AddressHistory,
}

impl ColumnFamily {
    /// All column families.
    pub const ALL: [ColumnFamily; 9] = [
        ColumnFamily::Index,
        ColumnFamily::Blocks,
        ColumnFamily::Utxo,
        ColumnFamily::Undo,
        ColumnFamily::Active,
        ColumnFamily::Meta,
        ColumnFamily::TxIndex,
        ColumnFamily::Address,
        ColumnFamily::AddressHistory,
    ];

    /// The RocksDB name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnFamily::Index => "index",
            ColumnFamily::Blocks => "blocks",
            ColumnFamily::Utxo => "utxo",
            ColumnFamily::Undo => "undo",
            ColumnFamily::Active => "active",
            ColumnFamily::Meta => "meta",
            ColumnFamily::TxIndex => "txindex",
            ColumnFamily::Address => "address",
            ColumnFamily::AddressHistory => "address_history",
        }
    }
}

const META_TIP: &[u8] = b"tip";
const META_UTXO_BEST: &[u8] = b"utxo_best";
const META_INDEX_BEST: &[u8] = b"index_best";
const META_INDEX_SET: &[u8] = b"index_set";

/// One block's change to the indexes (see [`Store::write_indexes`]).
pub struct IndexStep<'a> {
    /// The block.
    pub block: &'a CheckedBlock,
    /// Its height.
    pub height: u32,
    /// The coins it spent (its undo data).
    pub spent: &'a [(OutPoint, Coin)],
    /// Index it (true) or unindex it (false).
    pub connect: bool,
}

/// Which indexes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSet {
    /// txid -> block (`--txindex`).
    pub tx: bool,
    /// Unspent outputs and history by address (`--addressindex`).
    pub address: bool,
}
const META_SCHEMA: &[u8] = b"schema";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (I/O, corruption, lock held by another process).
    #[error("database error: {0} (is another quarry process using this data directory?)")]
    Db(#[from] rocksdb::Error),
    /// A record did not decode: the database is corrupt or from another version.
    #[error("corrupt record in column family {cf}: {detail}")]
    Corrupt { cf: &'static str, detail: String },
    /// The database was written by another schema version.
    #[error("database schema version {got}, this build reads {expected}: use a new --datadir")]
    Schema { got: u32, expected: u32 },
    /// A record that must exist is missing.
    #[error("missing {what} for block {hash}")]
    Missing { what: &'static str, hash: Hash256 },
    /// Too little free disk space to write safely (RocksDB aborts the process when a write
    /// fails for lack of space, so the node stops before that).
    #[error(
        "disk space is too low: {free_mb} MB free in {dir}, need at least {need_mb} MB \
         (free some space or move --datadir to a bigger disk, then restart)"
    )]
    DiskSpaceLow { free_mb: u64, dir: String, need_mb: u64 },
}

/// Files RocksDB keeps open at most.
pub const MAX_OPEN_FILES: u32 = 256;
/// Memtable bytes across every column family at most (RocksDB's `db_write_buffer_size`):
/// past it the largest memtable is flushed. It also caps the write-ahead log's preallocated
/// block, which RocksDB otherwise sizes at 1.1 x the 64 MiB write buffer: a fresh
/// chainstate took 75 MB of disk while open (71 MB of it the empty log's preallocation).
/// The UTXO set's memory is the coins cache (`--dbcache`), not RocksDB's memtables.
pub const DB_WRITE_BUFFER_BYTES: usize = 16 << 20;

/// Free space below which the node stops rather than writing (Bitcoin Core's 50 MB).
pub const MIN_FREE_MB: u64 = 50;

/// Bytes available to this user on the file system holding `dir`, or `None` when unknown
/// (then nothing is refused).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is ours; statvfs writes only `st`.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Bytes available on the file system holding `dir` (unknown on this platform).
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Refuses when the file system holding `dir` has less than `need_mb` MB free.
pub fn check_disk_space(dir: &Path, need_mb: u64) -> Result<(), StoreError> {
    match free_bytes(dir) {
        Some(free) if free < need_mb.saturating_mul(1 << 20) => {
            Err(StoreError::DiskSpaceLow { free_mb: free >> 20, dir: dir.display().to_string(), need_mb })
        }
        _ => Ok(()),
    }
}

fn corrupt(cf: ColumnFamily) -> impl Fn(CodecError) -> StoreError {
    move |e| StoreError::Corrupt { cf: cf.name(), detail: e.to_string() }
}

/// Validation status of a block in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum BlockStatus {
    /// Passed the checks done so far (context-free, header context); body stored.
    Valid,
    /// Failed validation itself.
    Failed,
    /// Descends from a failed block.
    FailedChild,
}

impl BlockStatus {
    /// True for either failure.
    pub fn is_failed(self) -> bool {
        self != BlockStatus::Valid
    }
}

/// What the block index keeps per block.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct IndexRecord {
    /// The header.
    pub header: BlockHeader,
    /// Height (genesis 0).
    pub height: u32,
    /// Sum of the work of this block and all its ancestors.
    pub chain_work: U256,
    /// Validation status.
    pub status: BlockStatus,
    /// First-seen order: lower wins a tie in cumulative work.
    pub seq: u64,
}

/// A summary of the UTXO set, like `gettxoutsetinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtxoDigest {
    /// SHA-256d over every (key, value) record in key order (each length-prefixed).
    pub hash: Hash256,
    /// Number of unspent outputs.
    pub count: u64,
    /// Sum of their values in base units.
    pub total: u64,
}

/// The chainstate: RocksDB ([`Store::open`]) or memory ([`Store::memory`]), with the same
/// records either way.
pub struct Store {
    db: Backend,
    /// Fsync the write-ahead log on each chainstate write ([`Store::open_with`]).
    sync_writes: bool,
}

impl Store {
    /// Opens (or creates) the store at `path`, checking the schema version; writes are not
    /// fsynced (see the module documentation).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, false)
    }

    /// Opens (or creates) the store at `path`; with `sync_writes` every block write (body,
    /// connect, disconnect, tip) and every UTXO flush returns only once the write-ahead log
    /// is on disk (fsync), so a power cut loses no block the node reported connected.
    pub fn open_with(path: &Path, sync_writes: bool) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(MAX_OPEN_FILES as i32);
        opts.set_keep_log_file_num(3);
        opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
        // Replay the write-ahead log up to its first damaged record and stop there (the
        // default, set here on purpose): every block connect is one batch, so the store opens
        // at a block boundary after a torn or cut-short log. AbsoluteConsistency would refuse
        // to open after an ordinary power cut. The lost blocks go unnoticed by RocksDB; the
        // node compares with its tip marker (node::tipmark) and warns.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        let cache = Cache::new_lru_cache(16 << 20);
        let cfs = ColumnFamily::ALL.iter().map(|cf| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if matches!(cf, ColumnFamily::Utxo | ColumnFamily::Index | ColumnFamily::TxIndex) {
                // Missing-key lookups (new outputs, unknown blocks) skip the disk.
                table.set_bloom_filter(10.0, false);
            }
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store { db: Backend::Rocks(db), sync_writes };
        store.check_schema()?;
        Ok(store)
    }

    /// An empty chainstate in memory (the simulator, fast tests): the same records as on
    /// disk, gone with the value.
    pub fn memory() -> Store {
        let store = Store { db: Backend::memory(), sync_writes: false };
        store.check_schema().expect("an empty memory store takes the schema version");
        store
    }

    /// True when chainstate writes are fsynced ([`Store::open_with`]).
    pub fn sync_writes(&self) -> bool {
        self.sync_writes
    }

    /// Writes a chainstate batch (blocks, connects, disconnects, UTXO flushes), fsynced
    /// when the store was opened with `sync_writes`.
    fn write_durable(&self, batch: backend::Batch<'_>) -> Result<(), StoreError> {
        self.db.write(batch, self.sync_writes)
    }

    /// True for a [`Store::memory`] store.
    pub fn is_memory(&self) -> bool {
        self.db.is_memory()
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.db.get_with(ColumnFamily::Meta, META_SCHEMA, <[u8]>::to_vec)? {
            None => self.db.put(ColumnFamily::Meta, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes())?,
            Some(v) => {
                let got = v.as_slice().try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX);
                if got == SCHEMA_V3 {
                    // Version 3 wrote the UTXO set in every connect's batch: it is at the tip.
                    let meta = ColumnFamily::Meta;
                    let mut batch = self.db.batch();
                    if let Some(tip) = self.db.get_with(meta, META_TIP, <[u8]>::to_vec)? {
                        // Version 3 also wrote the indexes in that batch.
                        batch.put(meta, META_UTXO_BEST, &tip);
                        batch.put(meta, META_INDEX_BEST, tip);
                    }
                    batch.put(meta, META_SCHEMA, SCHEMA_VERSION.to_le_bytes());
                    self.db.write(batch, false)?;
                } else if got != SCHEMA_VERSION {
                    return Err(StoreError::Schema { got, expected: SCHEMA_VERSION });
                }
            }
        }
        Ok(())
    }

    /// Every index record, for loading the block index at start.
    pub fn load_index(&self) -> Result<Vec<(Hash256, IndexRecord)>, StoreError> {
        let mut out = Vec::new();
        self.db.scan(ColumnFamily::Index, &[], |k, v| {
            let hash = Hash256(k.try_into().map_err(|_| StoreError::Corrupt {
                cf: "index",
                detail: format!("key of {} bytes", k.len()),
            })?);
            out.push((hash, codec::decode(v).map_err(corrupt(ColumnFamily::Index))?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Writes (or overwrites) index records, e.g. status changes, in one batch.
    pub fn put_index(&self, records: &[(Hash256, &IndexRecord)]) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for (hash, rec) in records {
            batch.put(ColumnFamily::Index, hash.0, encode(rec));
        }
        self.write_durable(batch)
    }

    /// Stores a checked block's body and its index record in one batch.
    pub fn put_block(&self, block: &CheckedBlock, rec: &IndexRecord) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        batch.put(ColumnFamily::Blocks, block.hash().0, block.block().encode());
        batch.put(ColumnFamily::Index, block.hash().0, encode(rec));
        self.write_durable(batch)
    }

    /// A stored block.
    pub fn get_block(&self, hash: &Hash256) -> Result<Option<CheckedBlock>, StoreError> {
        let Some(block) =
            self.db.get_with(ColumnFamily::Blocks, &hash.0, |bytes| Block::decode(bytes, usize::MAX))?
        else {
            return Ok(None);
        };
        let block =
            block.map_err(|e: DecodeError| StoreError::Corrupt { cf: "blocks", detail: e.to_string() })?;
        Ok(Some(CheckedBlock::from_trusted_store(block)))
    }

    /// The coins at `outpoints` that are unspent (one batched lookup).
    pub fn get_coins(&self, outpoints: &[OutPoint]) -> Result<HashMap<OutPoint, Coin>, StoreError> {
        let mut keys: Vec<[u8; 36]> = outpoints.iter().map(OutPoint::to_bytes).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut out = HashMap::with_capacity(keys.len());
        self.db.multi_get(ColumnFamily::Utxo, &keys, |k, v| {
            let op = OutPoint::from_bytes(k).expect("36-byte key");
            out.insert(op, codec::decode(v).map_err(corrupt(ColumnFamily::Utxo))?);
            Ok(())
        })?;
        Ok(out)
    }

    /// One unspent coin.
    pub fn get_coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.db
            .get_with(ColumnFamily::Utxo, &outpoint.to_bytes(), codec::decode)?
            .transpose()
            .map_err(corrupt(ColumnFamily::Utxo))
    }

    /// The tip recorded by the last connect or disconnect.
    pub fn tip(&self) -> Result<Option<Hash256>, StoreError> {
        self.meta_hash(META_TIP)
    }

    /// The block the UTXO column family corresponds to (written by each flush).
    pub fn utxo_best(&self) -> Result<Option<Hash256>, StoreError> {
        self.meta_hash(META_UTXO_BEST)
    }

    fn meta_hash(&self, key: &[u8]) -> Result<Option<Hash256>, StoreError> {
        let Some(v) = self.db.get_with(ColumnFamily::Meta, key, <[u8]>::to_vec)? else { return Ok(None) };
        let h = v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
            cf: "meta",
            detail: format!("{} of {} bytes", String::from_utf8_lossy(key), v.len()),
        })?;
        Ok(Some(Hash256(h)))
    }

    /// Writes a flush of the coins cache in one batch: each change (`Some` a coin to put,
    /// `None` a coin to delete) and `best`, the block the UTXO set then corresponds to.
    pub fn write_coins<'a>(
        &self,
        changes: impl Iterator<Item = (&'a OutPoint, &'a Option<Coin>)>,
        best: &Hash256,
    ) -> Result<(), StoreError> {
        let utxo = ColumnFamily::Utxo;
        let mut batch = self.db.batch();
        for (op, coin) in changes {
            match coin {
                Some(c) => batch.put(utxo, op.to_bytes(), encode(c)),
                None => batch.delete(utxo, op.to_bytes()),
            }
        }
        batch.put(ColumnFamily::Meta, META_UTXO_BEST, best.0);
        self.write_durable(batch)
    }

    /// The undo data of a block (the coins it spent), if stored.
    pub fn get_undo(&self, hash: &Hash256) -> Result<Option<Vec<(OutPoint, Coin)>>, StoreError> {
        self.db
            .get_with(ColumnFamily::Undo, &hash.0, codec::decode)?
            .transpose()
            .map_err(corrupt(ColumnFamily::Undo))
    }

    /// The active-chain block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<Hash256>, StoreError> {
        let v = self.db.get_with(ColumnFamily::Active, &height.to_be_bytes(), |v| v.try_into().ok())?;
        Ok(v.flatten().map(Hash256))
    }

    /// Makes the genesis block the tip of an empty store (its outputs are not spendable).
    pub fn init_genesis(&self, genesis: &CheckedBlock, rec: &IndexRecord) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        batch.put(ColumnFamily::Blocks, genesis.hash().0, genesis.block().encode());
        batch.put(ColumnFamily::Index, genesis.hash().0, encode(rec));
        batch.put(ColumnFamily::Active, 0u32.to_be_bytes(), genesis.hash().0);
        batch.put(ColumnFamily::Meta, META_TIP, genesis.hash().0);
        batch.put(ColumnFamily::Meta, META_UTXO_BEST, genesis.hash().0);
        batch.put(ColumnFamily::Meta, META_INDEX_BEST, genesis.hash().0);
        self.write_durable(batch)
    }

    /// Connects a block: stores its undo data, records it at `height` in the active chain and
    /// makes it the tip. One atomic batch. (Its coins change in the chain's cache; the
    /// indexes follow in [`Store::write_indexes`].)
    pub fn connect_block(
        &self,
        block: &CheckedBlock,
        height: u32,
        effect: &BlockConnect,
    ) -> Result<(), StoreError> {
        let hash = block.hash();
        let mut batch = self.db.batch();
        batch.put(ColumnFamily::Undo, hash.0, encode(&effect.spent));
        batch.put(ColumnFamily::Active, height.to_be_bytes(), hash.0);
        batch.put(ColumnFamily::Meta, META_TIP, hash.0);
        self.write_durable(batch)
    }

    /// Disconnects the tip block at `height`: removes it from the active chain and makes its
    /// parent the tip. One atomic batch. Returns its undo data (the coins it spent), which is
    /// kept.
    pub fn disconnect_block(
        &self,
        block: &CheckedBlock,
        height: u32,
    ) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let hash = block.hash();
        let spent = self.get_undo(&hash)?.ok_or(StoreError::Missing { what: "undo data", hash })?;
        let mut batch = self.db.batch();
        batch.delete(ColumnFamily::Active, height.to_be_bytes());
        batch.put(ColumnFamily::Meta, META_TIP, block.header().prev.0);
        self.write_durable(batch)?;
        Ok(spent)
    }

    /// The block the indexes (tx index, address index, address history) were last brought
    /// to, written with their data.
    pub fn index_best(&self) -> Result<Option<Hash256>, StoreError> {
        self.meta_hash(META_INDEX_BEST)
    }

    /// Applies index changes in one batch with `best`, the block the indexes then match:
    /// for each step, a block at `height` with the coins it spent (its undo data), indexed
    /// (`connect`) or unindexed. `txindex` and `addressindex` choose which indexes are
    /// written.
    pub fn write_indexes(
        &self,
        steps: &[IndexStep<'_>],
        best: &Hash256,
        which: IndexSet,
    ) -> Result<(), StoreError> {
        let (addr, txindex, history) =
            (ColumnFamily::Address, ColumnFamily::TxIndex, ColumnFamily::AddressHistory);
        let mut batch = self.db.batch();
        for step in steps {
            let (block, height, spent) = (step.block, step.height, step.spent);
            let hash = block.hash();
            if which.tx {
                for txid in block.txids() {
                    if step.connect {
                        batch.put(txindex, txid.0, hash.0);
                    } else {
                        batch.delete(txindex, txid.0);
                    }
                }
            }
            if which.address {
                for (op, out) in created_outputs(block) {
                    let key = address_key(&out.lock.0, &op);
                    if step.connect {
                        batch.put(addr, key, []);
                    } else {
                        batch.delete(addr, key);
                    }
                }
                for (op, coin) in spent {
                    let key = address_key(&coin.out.lock.0, op);
                    if step.connect {
                        batch.delete(addr, key);
                    } else {
                        batch.put(addr, key, []);
                    }
                }
                for key in history_keys(block, height, spent) {
                    if step.connect {
                        batch.put(history, key, []);
                    } else {
                        batch.delete(history, key);
                    }
                }
            }
        }
        batch.put(ColumnFamily::Meta, META_INDEX_BEST, best.0);
        self.db.write(batch, false)
    }

    /// Makes the stored indexes match `which`: an index switched off since the last start is
    /// deleted; one switched on is cleared and every index rebuilt from genesis (its data
    /// would be stale). Returns whether a rebuild was set up.
    pub fn prepare_indexes(&self, which: IndexSet) -> Result<bool, StoreError> {
        let meta = ColumnFamily::Meta;
        let was = match self.db.get_with(meta, META_INDEX_SET, <[u8]>::to_vec)? {
            Some(v) if v.len() == 2 => IndexSet { tx: v[0] == 1, address: v[1] == 1 },
            // Older stores kept both.
            _ => IndexSet { tx: true, address: true },
        };
        let mut batch = self.db.batch();
        let clear = |batch: &mut backend::Batch<'_>, cf: ColumnFamily| {
            batch.delete_range(cf, &[][..], &[0xffu8; 80][..]);
        };
        if was.tx && !which.tx {
            clear(&mut batch, ColumnFamily::TxIndex);
        }
        if was.address && !which.address {
            clear(&mut batch, ColumnFamily::Address);
            clear(&mut batch, ColumnFamily::AddressHistory);
        }
        let rebuild = (which.tx && !was.tx) || (which.address && !was.address);
        if rebuild {
            for cf in [ColumnFamily::TxIndex, ColumnFamily::Address, ColumnFamily::AddressHistory] {
                clear(&mut batch, cf);
            }
            let genesis =
                self.hash_at(0)?.ok_or(StoreError::Missing { what: "genesis", hash: Hash256::ZERO })?;
            batch.put(meta, META_INDEX_BEST, genesis.0);
        }
        batch.put(meta, META_INDEX_SET, [which.tx as u8, which.address as u8]);
        self.db.write(batch, false)?;
        Ok(rebuild)
    }

    /// The index record of one block.
    pub fn get_index(&self, hash: &Hash256) -> Result<Option<IndexRecord>, StoreError> {
        self.db
            .get_with(ColumnFamily::Index, &hash.0, codec::decode)?
            .transpose()
            .map_err(corrupt(ColumnFamily::Index))
    }

    /// Active-chain transactions paying or spending exactly `lock`, oldest first, as (height,
    /// txid); at most `limit`.
    pub fn history_by_lock(&self, lock: &[u8], limit: usize) -> Result<Vec<(u32, Hash256)>, StoreError> {
        let prefix = Sha256::digest(lock);
        let mut out = Vec::new();
        self.db.scan(ColumnFamily::AddressHistory, prefix.as_slice(), |k, _| {
            if !k.starts_with(prefix.as_slice()) || out.len() >= limit {
                return Ok(false);
            }
            if k.len() != 68 {
                return Err(StoreError::Corrupt {
                    cf: "address_history",
                    detail: format!("key of {} bytes", k.len()),
                });
            }
            let height = u32::from_be_bytes(k[32..36].try_into().expect("4 bytes"));
            out.push((height, Hash256(k[36..68].try_into().expect("32 bytes"))));
            Ok(true)
        })?;
        Ok(out)
    }

    /// The active-chain block holding `txid`, if any.
    pub fn tx_block(&self, txid: &Hash256) -> Result<Option<Hash256>, StoreError> {
        let v = self.db.get_with(ColumnFamily::TxIndex, &txid.0, |v| v.try_into().ok())?;
        Ok(v.flatten().map(Hash256))
    }

    /// The outpoints of unspent coins locked by exactly `lock` (an address's script), at most
    /// `limit`, from the address index (the coins themselves: the chain's cache).
    pub fn outpoints_by_lock(&self, lock: &[u8], limit: usize) -> Result<Vec<OutPoint>, StoreError> {
        let prefix = Sha256::digest(lock);
        let mut ops = Vec::new();
        self.db.scan(ColumnFamily::Address, prefix.as_slice(), |k, _| {
            if !k.starts_with(prefix.as_slice()) || ops.len() >= limit {
                return Ok(false);
            }
            ops.push(
                OutPoint::from_bytes(&k[32..])
                    .map_err(|e| StoreError::Corrupt { cf: "address", detail: e.to_string() })?,
            );
            Ok(true)
        })?;
        Ok(ops)
    }

    /// Hashes the whole UTXO set in key order: two chainstates with equal digests hold the
    /// same coins. `overlay` (in key order) holds changes not yet written, which win over the
    /// column family (`None`: spent). O(set size).
    pub fn utxo_digest(&self, overlay: &BTreeMap<[u8; 36], Option<&Coin>>) -> Result<UtxoDigest, StoreError> {
        let mut h = Sha256::new();
        let (mut count, mut total) = (0u64, 0u64);
        let mut add = |k: &[u8], v: &[u8], coin: &Coin| {
            h.update((k.len() as u32).to_le_bytes());
            h.update(k);
            h.update((v.len() as u32).to_le_bytes());
            h.update(v);
            count += 1;
            total += coin.out.value.to_sat();
        };
        let mut pending = overlay.iter().peekable();
        let mut emit_overlay_below = |limit: Option<&[u8]>, add: &mut dyn FnMut(&[u8], &[u8], &Coin)| {
            while let Some((k, c)) = pending.next_if(|(k, _)| limit.is_none_or(|l| k.as_slice() < l)) {
                if let Some(c) = c {
                    add(k, &encode(*c), c);
                }
            }
        };
        self.db.scan(ColumnFamily::Utxo, &[], |k, v| {
            emit_overlay_below(Some(k), &mut add);
            if overlay.contains_key(k) {
                // Changed in memory: the overlay's entry (if a coin) is emitted in its turn,
                // before the next stored key.
                return Ok(true);
            }
            let coin: Coin = codec::decode(v).map_err(corrupt(ColumnFamily::Utxo))?;
            add(k, v, &coin);
            Ok(true)
        })?;
        emit_overlay_below(None, &mut add);
        Ok(UtxoDigest { hash: Hash256(Sha256::digest(h.finalize()).into()), count, total })
    }
}

/// Address-history keys of a block: for every transaction, each script it pays and each
/// script of the coins it spends (from `spent`, the undo data, or the block's own outputs).
fn history_keys(block: &CheckedBlock, height: u32, spent: &[(OutPoint, Coin)]) -> Vec<[u8; 68]> {
    let txs = &block.block().txs;
    let by_txid: HashMap<&Hash256, usize> = block.txids().iter().enumerate().map(|(i, t)| (t, i)).collect();
    let spent: HashMap<&OutPoint, &Coin> = spent.iter().map(|(op, c)| (op, c)).collect();
    let mut keys = Vec::new();
    for (tx, txid) in txs.iter().zip(block.txids()) {
        let mut scripts: Vec<&[u8]> = tx.outputs.iter().map(|o| o.lock.0.as_slice()).collect();
        if !tx.is_coinbase() {
            for input in &tx.inputs {
                let op = &input.prevout;
                if let Some(c) = spent.get(op) {
                    scripts.push(&c.out.lock.0);
                } else if let Some(o) =
                    by_txid.get(&op.txid).and_then(|&i| txs[i].outputs.get(op.index as usize))
                {
                    scripts.push(&o.lock.0);
                }
            }
        }
        scripts.sort_unstable();
        scripts.dedup();
        for s in scripts {
            let mut k = [0u8; 68];
            k[..32].copy_from_slice(&Sha256::digest(s));
            k[32..36].copy_from_slice(&height.to_be_bytes());
            k[36..].copy_from_slice(&txid.0);
            keys.push(k);
        }
    }
    keys
}

/// Address-index key: SHA-256 of the locking script, then the outpoint.
fn address_key(lock: &[u8], op: &OutPoint) -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..32].copy_from_slice(&Sha256::digest(lock));
    k[32..].copy_from_slice(&op.to_bytes());
    k
}

fn encode<T: bincode::Encode>(v: &T) -> Vec<u8> {
    codec::encode(v).expect("store records are far below the codec limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_below_the_threshold_is_refused_naming_both_figures() {
        let dir = tempfile::tempdir().unwrap();
        let free_mb = free_bytes(dir.path()).expect("statvfs works here") >> 20;
        assert!(check_disk_space(dir.path(), 0).is_ok());
        let need = free_mb + 1_000_000;
        let e = check_disk_space(dir.path(), need).unwrap_err().to_string();
        assert!(e.starts_with("disk space is too low: "), "{e}");
        assert!(e.contains(&format!("MB free in {}", dir.path().display())), "{e}");
        assert!(e.contains(&format!("need at least {need} MB")), "{e}");
    }
}
