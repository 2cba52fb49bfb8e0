//! Saving the pool on shutdown and re-admitting it on start.
//!
//! File layout (all integers little-endian): the magic `QMEMPOOL`, a u32 version (1), a u32
//! entry count, then per entry its u64 entry time and its canonical transaction encoding
//! prefixed by a u32 length, parents before children; last, the SHA-256d of everything
//! before it. Written to a temporary file and renamed over the old one, so a crash leaves
//! either the old file or the new one.

use super::{Accepted, Mempool, MempoolError, UtxoSource};
use crate::primitives::encode::{put_var_bytes, Reader};
use crate::primitives::sha256d;
use crate::primitives::tx::MIN_ENCODED_TX_SIZE;
use crate::primitives::Transaction;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"QMEMPOOL";
const VERSION: u32 = 1;

/// What [`Mempool::load`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Entries in the file.
    pub read: usize,
    /// Admitted again.
    pub accepted: usize,
    /// Older than the expiry age: skipped.
    pub expired: usize,
    /// Already in the pool.
    pub already: usize,
    /// Refused by admission (confirmed meanwhile, conflicting, invalid now).
    pub failed: usize,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MempoolError + '_ {
    move |e| MempoolError::Io { path: path.display().to_string(), detail: e.to_string() }
}

/// The bytes of a mempool file holding `entries` (entry time, transaction), in that order.
/// The one writer of the layout: [`Mempool::save`] uses it, and for any `bytes` that
/// [`parse`] accepts, `encode(&parse(bytes)?)` gives `bytes` back (the fuzz target checks it).
pub fn encode<'a>(entries: impl ExactSizeIterator<Item = (u64, &'a Transaction)>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (time, tx) in entries {
        buf.extend_from_slice(&time.to_le_bytes());
        put_var_bytes(&mut buf, &tx.encode());
    }
    let sum = sha256d(&buf);
    buf.extend_from_slice(&sum.0);
    buf
}

/// Parses the bytes of a mempool file (untrusted: a damaged or foreign file) into (entry
/// time, transaction) pairs; every count is checked against the bytes that remain before
/// anything is allocated. The error names what is wrong.
pub fn parse(bytes: &[u8], max_tx_size: usize) -> Result<Vec<(u64, Transaction)>, String> {
    if bytes.len() < MAGIC.len() + 8 + 32 {
        return Err(format!("{} bytes is shorter than the smallest file", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if sha256d(body).0 != sum {
        return Err("checksum mismatch".to_string());
    }
    let mut r = Reader::new(body);
    let magic: [u8; 8] = r.array("magic").map_err(|e| e.to_string())?;
    if &magic != MAGIC {
        return Err(format!("bad magic {}", hex::encode(magic)));
    }
    let version = r.u32("version").map_err(|e| e.to_string())?;
    if version != VERSION {
        return Err(format!("unsupported version {version}, expected {VERSION}"));
    }
    let count = r.count("entries", 8 + 4 + MIN_ENCODED_TX_SIZE).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let time = r.u64("entry time").map_err(|e| format!("entry {i}: {e}"))?;
        let bytes = r.var_bytes("transaction").map_err(|e| format!("entry {i}: {e}"))?;
        let tx = Transaction::decode(bytes, max_tx_size).map_err(|e| format!("entry {i}: {e}"))?;
        out.push((time, tx));
    }
    r.finish("mempool file").map_err(|e| e.to_string())?;
    Ok(out)
}

impl Mempool {
    /// Writes every entry (parents before children, with entry times) to `path`
    /// atomically. Returns the number written.
    pub fn save(&self, path: &Path) -> Result<usize, MempoolError> {
        let entries = self.graph.in_order();
        let buf = encode(entries.iter().map(|e| (e.time, &e.tx)));

        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        let mut f = std::fs::File::create(tmp).map_err(io_err(tmp))?;
        f.write_all(&buf).map_err(io_err(tmp))?;
        f.sync_all().map_err(io_err(tmp))?;
        drop(f);
        std::fs::rename(tmp, path).map_err(io_err(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; not every platform can open a directory.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(entries.len())
    }

    /// Re-admits the entries saved in `path` through normal admission (keeping their entry
    /// times), skipping expired and no longer valid ones. A missing file is an empty pool; a
    /// corrupt one is an error and leaves the pool unchanged.
    pub fn load(
        &mut self,
        path: &Path,
        source: &dyn UtxoSource,
        now: u64,
    ) -> Result<LoadStats, MempoolError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoadStats::default()),
            Err(e) => return Err(io_err(path)(e)),
        };
        let corrupt = |detail: String| MempoolError::CorruptFile { path: path.display().to_string(), detail };
        let limit = self.config.max_bytes.saturating_mul(2).saturating_add(1 << 20) as u64;
        if meta.len() > limit {
            return Err(corrupt(format!("{} bytes exceeds the limit of {limit} bytes", meta.len())));
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let entries = parse(&bytes, self.config.max_tx_size).map_err(corrupt)?;
        let mut stats = LoadStats { read: entries.len(), ..LoadStats::default() };
        for (time, tx) in entries {
            if now.saturating_sub(time) >= self.config.expiry_secs {
                stats.expired += 1;
                continue;
            }
            match self.accept_one(tx, source, now, time, false) {
                Ok(Accepted::Added(_)) => stats.accepted += 1,
                Ok(Accepted::Orphan { .. }) => unreachable!("orphans are not allowed here"),
                Err(MempoolError::AlreadyInPool { .. }) => stats.already += 1,
                Err(error) => {
                    tracing::debug!(target: "mempool", %error, "saved transaction refused");
                    stats.failed += 1;
                }
            }
        }
        tracing::info!(
            target: "mempool",
            read = stats.read,
            accepted = stats.accepted,
            expired = stats.expired,
            failed = stats.failed,
            "mempool loaded"
        );
        Ok(stats)
    }
}
