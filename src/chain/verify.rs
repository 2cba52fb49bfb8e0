//! `quarry chain verify`: the UTXO set a node's chainstate gives after its normal start-up
//! (the roll-forward from the flushed state to the tip, [`Chain::open_with`]) against a
//! rebuild from the stored blocks alone (every block of the active chain applied from
//! genesis to an empty set), compared by the digest `gettxoutsetinfo` reports.
//!
//! The rebuild shares the UTXO rules with the node ([`utxo_effect`]) but none of its cache,
//! flush, undo or replay machinery, which is what a crash can break. It also checks that the
//! store's active-chain records agree with the block index.

use super::coins::CacheConfig;
use super::{Chain, ChainError};
use crate::consensus::validation::block_subsidy;
use crate::consensus::{utxo_effect, Coin, CoinLookup, Params};
use crate::primitives::{Hash256, OutPoint};
use crate::store::{Store, StoreError, UtxoDigest};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A UTXO digest's figures, for reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestFigures {
    /// The digest (`gettxoutsetinfo`'s `hash_serialized_3`).
    pub hash: Hash256,
    /// Unspent outputs.
    pub count: u64,
    /// Their sum, base units.
    pub total_sat: u64,
}

impl From<&UtxoDigest> for DigestFigures {
    fn from(d: &UtxoDigest) -> DigestFigures {
        DigestFigures { hash: d.hash, count: d.count, total_sat: d.total }
    }
}

/// What `quarry chain verify` found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// The active tip after start-up.
    pub tip: Hash256,
    /// Its height.
    pub height: u32,
    /// The block the flushed UTXO set corresponded to before start-up (`utxo_best`).
    pub utxo_best_on_disk: Option<Hash256>,
    /// The tip recorded on disk before start-up.
    pub tip_on_disk: Option<Hash256>,
    /// True if start-up had to roll the flushed UTXO set to the tip.
    pub rolled_forward: bool,
    /// The node's UTXO set after start-up.
    pub node: DigestFigures,
    /// The set rebuilt from the stored blocks.
    pub rebuilt: DigestFigures,
    /// Block subsidies along the active chain (heights 1..=tip), base units: the coins a
    /// chain whose miners claim every subsidy and fee holds.
    pub issued_sat: u64,
    /// Empty when the node's set equals the rebuild and the active-chain records agree;
    /// else what differs.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when nothing differs.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The rebuilt set, keyed as the store keys coins (so it iterates in digest order).
struct Rebuilt(BTreeMap<[u8; 36], Coin>);

impl CoinLookup for Rebuilt {
    fn coin(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.0.get(&outpoint.to_bytes())
    }
}

/// Opens the chainstate in `dir` as a node would (rolling its UTXO set forward to the tip),
/// rebuilds the UTXO set from the stored blocks and compares. The node must be stopped
/// (RocksDB's lock refuses a second opener). A block that fails the rebuild's rules is an
/// error naming it.
pub fn verify_chainstate(dir: &Path, params: &'static Params) -> Result<VerifyReport, ChainError> {
    if !dir.join("CURRENT").is_file() {
        return Err(ChainError::NoChainstate { dir: dir.display().to_string() });
    }
    let store = Arc::new(Store::open(dir)?);
    let utxo_best_on_disk = store.utxo_best()?;
    let tip_on_disk = store.tip()?;
    // Inline flushes: the start-up replay writes its state before the digest is taken.
    let cache = CacheConfig { background: false, ..CacheConfig::default() };
    let chain = Chain::with_store(store, params, cache)?;
    let tip = chain.tip();
    let node = DigestFigures::from(&chain.utxo_digest()?);

    let mut problems = Vec::new();
    let mut set = Rebuilt(BTreeMap::new());
    let mut issued = 0u64;
    for h in 1..=tip.height {
        let hash = chain.hash_at(h).expect("heights up to the tip are active");
        match chain.store().hash_at(h)? {
            Some(stored) if stored == hash => {}
            stored => {
                if problems.len() < 10 {
                    problems.push(format!(
                        "the store's active-chain record at height {h} is {}, the block index says {hash}",
                        stored.map_or("missing".into(), |s| s.to_string())
                    ));
                }
            }
        }
        let block =
            chain.store().get_block(&hash)?.ok_or(StoreError::Missing { what: "block body", hash })?;
        let effect =
            utxo_effect(&block, h, params, &set).map_err(|error| ChainError::Invalid { hash, error })?;
        for (op, _) in &effect.spent {
            set.0.remove(&op.to_bytes());
        }
        for (op, coin) in effect.created {
            set.0.insert(op.to_bytes(), coin);
        }
        issued = issued.saturating_add(block_subsidy(params, h).to_sat());
    }
    let overlay: BTreeMap<[u8; 36], Option<&Coin>> = set.0.iter().map(|(k, c)| (*k, Some(c))).collect();
    let rebuilt = DigestFigures::from(&Store::memory().utxo_digest(&overlay)?);
    if rebuilt != node {
        problems.insert(
            0,
            format!(
                "UTXO set differs from the rebuild: node {} ({} coins, {} sat), rebuilt from the blocks {} ({} coins, {} sat)",
                node.hash, node.count, node.total_sat, rebuilt.hash, rebuilt.count, rebuilt.total_sat
            ),
        );
    }
    Ok(VerifyReport {
        tip: tip.hash,
        height: tip.height,
        rolled_forward: utxo_best_on_disk.is_some_and(|b| b != tip.hash),
        utxo_best_on_disk,
        tip_on_disk,
        node,
        rebuilt,
        issued_sat: issued,
        problems,
    })
}

/// Sets the stored coin at `outpoint` to `coin` (or deletes it) without touching anything
/// else: for tests of [`verify_chainstate`] that must see it fail.
pub fn corrupt_coin(dir: &Path, outpoint: &OutPoint, coin: Option<Coin>) -> Result<(), ChainError> {
    let store = Store::open(dir)?;
    let best = store.utxo_best()?.ok_or(StoreError::Missing { what: "utxo_best", hash: Hash256::ZERO })?;
    store.write_coins(std::iter::once((outpoint, &coin)), &best)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Network;
    use crate::testkit::{assemble, coinbase, key, p2pkh_lock};

    fn build(dir: &Path, blocks: u32) -> Vec<Hash256> {
        let p = Network::Regtest.params();
        let cache = CacheConfig { limit_bytes: 1 << 10, background: true, ..CacheConfig::default() };
        let mut chain = Chain::open_with(dir, p, cache).unwrap();
        let mut hashes = Vec::new();
        for h in 1..=blocks {
            let tip = chain.tip().hash;
            let ctx = chain.header_context(&tip, 2_000_000_000).unwrap();
            let time = chain.record(&tip).unwrap().header.time + 5;
            let txs = vec![coinbase(h, block_subsidy(p, h), p2pkh_lock(&key(1)), b"v")];
            let block = assemble(p, tip, time, ctx.expected_bits, txs);
            hashes.push(block.hash());
            chain.process_block(block, 2_000_000_000).unwrap();
        }
        hashes
    }

    #[test]
    fn a_sound_chainstate_verifies_and_a_corrupted_coin_fails() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = build(dir.path(), 30);
        let p = Network::Regtest.params();
        let report = verify_chainstate(dir.path(), p).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.height, 30);
        assert_eq!(report.node, report.rebuilt);
        assert_eq!(report.node.count, 30);
        assert_eq!(report.node.total_sat, report.issued_sat, "every coinbase claims its subsidy");
        // One coin's value changed in the store: the digest no longer matches.
        let op = OutPoint { txid: hashes_coinbase_txid(dir.path(), hashes[4]), index: 0 };
        let mut coin = Store::open(dir.path()).unwrap().get_coin(&op).unwrap().expect("stored coin");
        coin.out.value = crate::primitives::Amount::from_sat(coin.out.value.to_sat() + 1).unwrap();
        corrupt_coin(dir.path(), &op, Some(coin)).unwrap();
        let bad = verify_chainstate(dir.path(), p).unwrap();
        assert!(!bad.ok());
        assert!(bad.problems[0].contains("differs from the rebuild"), "{:?}", bad.problems);
        assert_eq!(bad.node.total_sat, bad.rebuilt.total_sat + 1);
    }

    fn hashes_coinbase_txid(dir: &Path, block: Hash256) -> Hash256 {
        let store = Store::open(dir).unwrap();
        store.get_block(&block).unwrap().unwrap().block().txs[0].txid()
    }

    #[test]
    fn a_missing_chainstate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = verify_chainstate(&dir.path().join("nothing"), Network::Regtest.params()).unwrap_err();
        assert!(e.to_string().contains("no chainstate at"), "{e}");
    }
}
