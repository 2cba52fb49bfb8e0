//! Mempool tests: every admission rule with its exact error, packages and limits, RBF,
//! eviction, orphans, expiry, chain events on a real regtest chainstate, templates and
//! persistence. Most use an in-memory UTXO set ([`MemoryUtxos`]); `chain.rs` uses RocksDB.

mod admission;
mod chain;
mod orphans;
mod packages;
mod persist;

use super::*;
use crate::consensus::{check_block, CheckedBlock, Network};
use crate::primitives::{sha256d, Script, TxOut};
use crate::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};

/// The clock in tests.
pub(super) const NOW: u64 = 2_000_000_000;

pub(super) fn params() -> &'static Params {
    Network::Regtest.params()
}

/// Where test outputs pay (key 1's P2PKH).
pub(super) fn lock() -> Script {
    p2pkh_lock(&key(1))
}

pub(super) fn txout(value: u64) -> TxOut {
    TxOut { value: Amount::from_sat(value).unwrap(), lock: lock() }
}

/// A signed spend of key 1's coins `inputs` paying `values` back to key 1.
pub(super) fn pay(inputs: &[(OutPoint, TxOut)], values: &[u64]) -> Transaction {
    spend_p2pkh(&key(1), inputs, values.iter().map(|v| txout(*v)).collect(), 0)
}

/// Output `index` of `tx`, as an input for [`pay`].
pub(super) fn out(tx: &Transaction, index: u32) -> (OutPoint, TxOut) {
    (OutPoint { txid: tx.txid(), index }, tx.outputs[index as usize].clone())
}

/// Size of a [`pay`] transaction with `n_in` inputs and `n_out` outputs (values do not
/// change sizes).
pub(super) fn size_of(n_in: usize, n_out: usize) -> usize {
    let inputs: Vec<(OutPoint, TxOut)> =
        (0..n_in).map(|i| (OutPoint { txid: Hash256([9; 32]), index: i as u32 }, txout(1))).collect();
    pay(&inputs, &vec![0; n_out]).encoded_size()
}

/// The admission, or a panic naming what happened instead.
pub(super) fn added(r: Result<Accepted, MempoolError>) -> Admission {
    match r {
        Ok(Accepted::Added(a)) => a,
        other => panic!("expected admission, got {other:?}"),
    }
}

/// A checked block at `height` (no parent context: for the mempool only).
pub(super) fn block_of(height: u32, txs: Vec<Transaction>) -> CheckedBlock {
    let p = params();
    let mut all = vec![coinbase(height, Amount::ZERO, lock(), b"test")];
    all.extend(txs);
    check_block(assemble(p, Hash256::ZERO, 1, p.genesis_bits, all), p).unwrap()
}

/// A pool over an in-memory UTXO set at height 100.
pub(super) struct Fx {
    pub utxos: MemoryUtxos,
    pub pool: Mempool,
    pub cache: Arc<ScriptCache>,
    n: u64,
}

impl Fx {
    pub fn new() -> Fx {
        Fx::with(MempoolConfig::default())
    }

    pub fn with(config: MempoolConfig) -> Fx {
        let cache = Arc::new(ScriptCache::new(1000));
        Fx {
            utxos: MemoryUtxos { coins: HashMap::new(), height: 100 },
            pool: Mempool::new(params(), config, cache.clone()),
            cache,
            n: 0,
        }
    }

    /// A fresh confirmed (non-coinbase, height 1) coin of key 1 worth `value`.
    pub fn fund(&mut self, value: u64) -> (OutPoint, TxOut) {
        self.fund_at(value, 1, false)
    }

    pub fn fund_at(&mut self, value: u64, height: u32, is_coinbase: bool) -> (OutPoint, TxOut) {
        self.n += 1;
        let op = OutPoint { txid: sha256d(&self.n.to_le_bytes()), index: 0 };
        let out = txout(value);
        self.utxos.coins.insert(op, Coin { out: out.clone(), height, is_coinbase });
        (op, out)
    }

    /// Submits `tx` at [`NOW`] and checks the graph's cached totals.
    pub fn accept(&mut self, tx: Transaction) -> Result<Accepted, MempoolError> {
        self.accept_at(tx, NOW)
    }

    pub fn accept_at(&mut self, tx: Transaction, now: u64) -> Result<Accepted, MempoolError> {
        let r = self.pool.accept(tx, &self.utxos, now);
        self.pool.graph.assert_consistent();
        r
    }

    /// Submits `tx`, which must be admitted.
    pub fn add(&mut self, tx: Transaction) -> Admission {
        added(self.accept(tx))
    }

    /// The pool's txids, sorted (order-independent comparisons).
    pub fn ids(&self) -> Vec<Hash256> {
        let mut v = self.pool.txids();
        v.sort();
        v
    }
}

/// `ids` sorted.
pub(super) fn sorted(mut ids: Vec<Hash256>) -> Vec<Hash256> {
    ids.sort();
    ids
}

#[test]
fn mempool_can_move_to_the_chain_thread() {
    fn send<T: Send>() {}
    send::<Mempool>();
}
