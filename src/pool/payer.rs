//! The payout task: every [`PayoutConfig::every`] it settles found blocks (mature, orphaned,
//! or submitted again after a crash), follows the payouts in flight (confirmed, still
//! waiting, re-broadcast, or abandoned), and, while fewer than [`MAX_PAYOUTS_IN_FLIGHT`] are
//! in flight, makes the next one ([`super::payout`]) from coins no payout in flight spends:
//! recorded in the ledger before it is broadcast, so a crash at any instant never pays twice
//! (docs/PROTOCOL.md §12d "Payouts").

use super::accounting::{BlockRec, BlockStatus, Ledger, PayoutTx};
use super::payout::{parse_addresses, payout_address, plan, sign, Coin};
use super::{PoolConfig, PoolError};
use crate::primitives::{Address, AddressKind, Amount, Hash256, OutPoint, Script, Transaction, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{RpcClient, RpcError};
use crate::rpc::types::{amount_of_coins, AddressQuery, GetRawTransaction};
use crate::script::templates::pubkey_hash;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Runs the ledger closure on the blocking pool (it fsyncs).
async fn with_ledger<T: Send + 'static>(
    ledger: &Arc<Mutex<Ledger>>,
    f: impl FnOnce(&mut Ledger) -> Result<T, super::LedgerError> + Send + 'static,
) -> Result<T, PoolError> {
    let ledger = ledger.clone();
    tokio::task::spawn_blocking(move || f(&mut ledger.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .map_err(|e| PoolError::Stratum(format!("ledger task: {e}")))?
        .map_err(PoolError::from)
}

/// Payouts in flight at once (recorded, not yet `confirmations` deep); a pass makes at most
/// one new payout, and none while this many are in flight.
pub const MAX_PAYOUTS_IN_FLIGHT: usize = 16;

/// The pool's address (its coinbases and change pay it).
pub fn pool_address(config: &PoolConfig) -> Address {
    let hash = pubkey_hash(&config.payouts.key.verifying_key().to_bytes());
    Address { hrp: config.payouts.network.address_hrp(), kind: AddressKind::P2pkh, hash }
}

/// Runs payout passes until the task is aborted.
pub async fn run(config: PoolConfig, rpc: RpcClient, ledger: Arc<Mutex<Ledger>>) {
    loop {
        if let Err(e) = pass(&config, &rpc, &ledger).await {
            warn!(target: "pool::payout", error = %e, "payout pass failed; retrying");
        }
        tokio::time::sleep(config.payouts.every).await;
    }
}

/// One pass: blocks, then the payouts in flight, then a new payout.
pub async fn pass(
    config: &PoolConfig,
    rpc: &RpcClient,
    ledger: &Arc<Mutex<Ledger>>,
) -> Result<(), PoolError> {
    let tip = rpc.getblockcount().await?;
    let (blocks, pending) = {
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        let blocks: Vec<BlockRec> =
            l.blocks().iter().filter(|b| b.status == BlockStatus::Immature).cloned().collect();
        (blocks, l.pending_payouts().to_vec())
    };
    for b in blocks {
        settle_block(config, rpc, ledger, &b, tip).await?;
    }
    for p in pending {
        follow_payout(config, rpc, ledger, &p, tip).await?;
    }
    if ledger.lock().unwrap_or_else(|e| e.into_inner()).pending_payouts().len() >= MAX_PAYOUTS_IN_FLIGHT {
        return Ok(()); // the next waits until one of these is paid
    }
    make_payout(config, rpc, ledger, tip).await
}

fn not_found(e: &RpcError) -> bool {
    matches!(e, RpcError::Call { .. })
}

/// A found block: mature once on the active chain with `coinbase_maturity` confirmations
/// (its coinbase can be spent in the next block); orphaned if refused, or if another block
/// holds its height that deep; submitted again if the node does not know it.
async fn settle_block(
    config: &PoolConfig,
    rpc: &RpcClient,
    ledger: &Arc<Mutex<Ledger>>,
    b: &BlockRec,
    tip: u32,
) -> Result<(), PoolError> {
    let maturity = config.payouts.network.params().coinbase_maturity;
    let f = &b.found;
    let hash =
        Hash256::from_str(&f.hash).map_err(|e| PoolError::Template(format!("block id {}: {e}", f.hash)))?;
    let deep = (tip + 1).saturating_sub(f.height) >= maturity;
    let active = match rpc.getblockhash(i64::from(f.height)).await {
        Ok(h) => Some(h),
        Err(e) => {
            let e = RpcError::from(e);
            if !not_found(&e) {
                return Err(e.into());
            }
            None
        }
    };
    if active == Some(hash) {
        if deep {
            info!(target: "pool::payout", height = f.height, hash = %f.hash, "block mature: its credits are owed");
            let h = f.hash.clone();
            with_ledger(ledger, move |l| l.matured(&h)).await?;
        }
        return Ok(());
    }
    // Not on the active chain (yet): does the node know it?
    match rpc.getblockheader(f.hash.clone(), Some(true)).await.map_err(RpcError::from) {
        Ok(_) => {
            if deep {
                let why = format!("block {} at height {} is not on the active chain", f.hash, f.height);
                warn!(target: "pool::payout", why, "block orphaned: its credits are dropped");
                let h = f.hash.clone();
                with_ledger(ledger, move |l| l.orphaned(&h, &why)).await?;
            }
            Ok(())
        }
        Err(e) if not_found(&e) => {
            if f.block.is_empty() {
                let why = format!("the node does not know block {}", f.hash);
                let h = f.hash.clone();
                return with_ledger(ledger, move |l| l.orphaned(&h, &why)).await;
            }
            // Recorded but perhaps never submitted (a crash before submitblock answered).
            match rpc.submitblock(f.block.clone()).await.map_err(RpcError::from)? {
                None => {
                    info!(target: "pool::payout", hash = %f.hash, "a recorded block was submitted again and accepted")
                }
                Some(why) if why == "duplicate" => {}
                Some(why) if why.starts_with("inconclusive") => {}
                Some(why) => {
                    warn!(target: "pool::payout", hash = %f.hash, why, "a recorded block was refused: its credits are dropped");
                    let h = f.hash.clone();
                    with_ledger(ledger, move |l| l.orphaned(&h, &why)).await?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The active block (at or after `from`) holding `txid` and its height, if any. Scans blocks
/// rather than asking the tx index, which is built in the background and may lag.
async fn confirmed_in(
    rpc: &RpcClient,
    txid: &Hash256,
    from: u32,
    tip: u32,
) -> Result<Option<(Hash256, u32)>, PoolError> {
    for h in from..=tip {
        let hash = rpc.getblockhash(i64::from(h)).await?;
        if rpc.block_txids(&hash).await?.tx.contains(txid) {
            return Ok(Some((hash, h)));
        }
    }
    Ok(None)
}

/// A payout in flight: confirmed deep enough ([`super::PayoutConfig::confirmations`]) → record;
/// confirmed less deep or in the mempool → wait (a reorg that drops it from the chain finds
/// it missing on a later pass and sends it again); otherwise broadcast it
/// again, and abandon it only if the node refuses it *and* one of its inputs is gone (spent
/// by something else or never there), so it can never confirm.
async fn follow_payout(
    config: &PoolConfig,
    rpc: &RpcClient,
    ledger: &Arc<Mutex<Ledger>>,
    p: &PayoutTx,
    tip: u32,
) -> Result<(), PoolError> {
    let maturity = config.payouts.network.params().coinbase_maturity;
    let txid = Hash256::from_str(&p.txid)
        .map_err(|e| PoolError::Template(format!("payout txid {}: {e}", p.txid)))?;
    // A reorg may have moved it below the tip it was made at: look from a maturity back.
    if let Some((block, height)) =
        confirmed_in(rpc, &txid, p.tip.saturating_sub(maturity).max(1), tip).await?
    {
        let depth = tip + 1 - height;
        if depth < config.payouts.confirmations {
            info!(target: "pool::payout", txid = %p.txid, %block, depth, needed = config.payouts.confirmations, "payout in a block, not yet deep enough");
            return Ok(());
        }
        info!(target: "pool::payout", txid = %p.txid, %block, payments = ?p.payments, "payout confirmed");
        let (t, b) = (p.txid.clone(), block.to_string());
        return with_ledger(ledger, move |l| l.payout_confirmed(&t, &b)).await;
    }
    match rpc.getrawtransaction(p.txid.clone(), Some(true.into())).await.map_err(RpcError::from) {
        Ok(GetRawTransaction::Info(t)) if t.blockhash.is_none() => return Ok(()), // in the mempool
        Ok(_) => return Ok(()), // confirmed after our scan: the next pass records it
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let refused = match rpc.sendrawtransaction(p.tx.clone()).await.map_err(RpcError::from) {
        Ok(_) => {
            info!(target: "pool::payout", txid = %p.txid, "payout broadcast again");
            return Ok(());
        }
        Err(e @ RpcError::Call { .. }) => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    let bytes = hex::decode(&p.tx).map_err(|e| PoolError::Template(format!("payout {}: {e}", p.txid)))?;
    let tx = Transaction::decode(&bytes, usize::MAX)
        .map_err(|e| PoolError::Template(format!("payout {}: {e}", p.txid)))?;
    for input in &tx.inputs {
        let op = input.prevout;
        if rpc.gettxout(op.txid.to_string(), op.index, Some(false)).await?.is_none() {
            let why = format!("refused ({refused}) and its input {}:{} is spent or gone", op.txid, op.index);
            warn!(target: "pool::payout", txid = %p.txid, why, "payout abandoned: its amounts are owed again");
            let t = p.txid.clone();
            return with_ledger(ledger, move |l| l.payout_abandoned(&t, &why)).await;
        }
    }
    warn!(target: "pool::payout", txid = %p.txid, error = refused, "payout refused; trying again next pass");
    Ok(())
}

/// Whether a payout may spend a coin created at `height` with the tip at `tip`: a coinbase
/// once mature (spendable in the next block), any other coin (a payout's change) once
/// `confirmations` deep. So a reorg shallower than `confirmations`, which can send a payout
/// in flight again, never takes away the input of another payout in flight.
pub fn settled_coin(coinbase: bool, height: u32, tip: u32, maturity: u32, confirmations: u32) -> bool {
    let depth = (tip + 1).saturating_sub(height);
    depth >= if coinbase { maturity } else { confirmations }
}

/// The coins the payouts in flight spend.
fn in_flight_inputs(pending: &[PayoutTx]) -> Result<BTreeSet<OutPoint>, PoolError> {
    let mut taken = BTreeSet::new();
    for p in pending {
        let bytes = hex::decode(&p.tx).map_err(|e| PoolError::Template(format!("payout {}: {e}", p.txid)))?;
        let tx = Transaction::decode(&bytes, usize::MAX)
            .map_err(|e| PoolError::Template(format!("payout {}: {e}", p.txid)))?;
        taken.extend(tx.inputs.iter().map(|i| i.prevout));
    }
    Ok(taken)
}

/// The pool's coins a new payout may spend: [`settled_coin`], not spent in the mempool, not
/// an input of a payout in flight (`taken`: the node may have dropped it from its mempool).
async fn spendable(
    config: &PoolConfig,
    rpc: &RpcClient,
    tip: u32,
    taken: &BTreeSet<OutPoint>,
) -> Result<Vec<Coin>, PoolError> {
    let maturity = config.payouts.network.params().coinbase_maturity;
    let addr = pool_address(config).encode();
    let mut coins = Vec::new();
    for u in rpc.getaddressutxos(AddressQuery::One(addr)).await? {
        let outpoint = OutPoint { txid: u.txid, index: u.output_index };
        if u.spent_in_mempool.is_some()
            || !settled_coin(u.coinbase, u.height, tip, maturity, config.payouts.confirmations)
            || taken.contains(&outpoint)
        {
            continue;
        }
        let value =
            Amount::from_sat(u.satoshis).map_err(|e| PoolError::Template(format!("coin value: {e:?}")))?;
        let lock =
            Script(hex::decode(&u.script).map_err(|e| PoolError::Template(format!("coin script: {e}")))?);
        coins.push(Coin { outpoint, out: TxOut { value, lock }, height: u.height });
    }
    Ok(coins)
}

/// The registered payout addresses (`<pool dir>/addresses.txt`), read at each pass.
fn registered(config: &PoolConfig) -> BTreeMap<String, String> {
    let path = config.dir.join("addresses.txt");
    let Ok(text) = std::fs::read_to_string(&path) else { return BTreeMap::new() };
    let (map, bad) = parse_addresses(&text);
    if !bad.is_empty() {
        warn!(target: "pool::payout", path = %path.display(), lines = ?bad, "lines that are not `WORKER ADDRESS` are ignored");
    }
    map
}

async fn fee_rate(config: &PoolConfig, rpc: &RpcClient) -> Result<u64, PoolError> {
    if let Some(r) = config.payouts.fee_rate {
        return Ok(r);
    }
    let info = rpc.getmempoolinfo().await?;
    let coins = info.mempoolminfee.max(info.minrelaytxfee);
    amount_of_coins(coins)
        .map(|a| a.to_sat())
        .ok_or_else(|| PoolError::Template(format!("the node's minimum fee rate {coins} coins/kB")))
}

/// Plans, records, then broadcasts the next payout (if anyone can be paid).
async fn make_payout(
    config: &PoolConfig,
    rpc: &RpcClient,
    ledger: &Arc<Mutex<Ledger>>,
    tip: u32,
) -> Result<(), PoolError> {
    let Some(record) = prepare(config, rpc, ledger, tip).await? else { return Ok(()) };
    if let Err(e) = rpc.sendrawtransaction(record.tx).await {
        // The next pass broadcasts it again, or abandons it if it can never confirm.
        warn!(target: "pool::payout", txid = %record.txid, error = %RpcError::from(e), "payout broadcast failed");
    }
    Ok(())
}

/// Plans, signs and records (fsynced) the next payout, without broadcasting it: from here on
/// its amounts are "paying", never paid again. `None` when nobody can be paid now. (Public so
/// a test can stop here, as a crash would.)
pub async fn prepare(
    config: &PoolConfig,
    rpc: &RpcClient,
    ledger: &Arc<Mutex<Ledger>>,
    tip: u32,
) -> Result<Option<PayoutTx>, PoolError> {
    let (owed, taken) = {
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        (l.owed(), in_flight_inputs(l.pending_payouts())?)
    };
    if owed.iter().all(|(_, a)| *a < config.payouts.min_payout) {
        return Ok(None);
    }
    let mut coins = spendable(config, rpc, tip, &taken).await?;
    let reg = registered(config);
    let hrp = config.payouts.network.address_hrp();
    let rate = fee_rate(config, rpc).await?;
    let Some(mut planned) =
        plan(&owed, |w| payout_address(w, &reg, hrp), &coins, rate, config.payouts.min_payout, &config.lock)
    else {
        return Ok(None);
    };
    // The address index is built in the background: check the chosen coins are unspent.
    let mut gone = Vec::new();
    for i in &planned.tx.inputs {
        let op = i.prevout;
        if rpc.gettxout(op.txid.to_string(), op.index, Some(true)).await?.is_none() {
            gone.push(op);
        }
    }
    if !gone.is_empty() {
        coins.retain(|c| !gone.contains(&c.outpoint));
        match plan(
            &owed,
            |w| payout_address(w, &reg, hrp),
            &coins,
            rate,
            config.payouts.min_payout,
            &config.lock,
        ) {
            Some(p) => planned = p,
            None => return Ok(None),
        }
    }
    let tx = sign(&planned, &config.payouts.key);
    let record = PayoutTx {
        txid: tx.txid().to_string(),
        tx: hex::encode(tx.encode()),
        payments: planned.payments.clone(),
        outputs: planned.outputs.clone(),
        fee: planned.fee,
        dust: planned.dust,
        tip,
    };
    info!(target: "pool::payout", txid = %record.txid, payments = ?record.payments, fee = record.fee, "payout recorded; broadcasting");
    let kept = record.clone();
    with_ledger(ledger, move |l| l.payout_made(kept)).await?;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::settled_coin;

    #[test]
    fn a_payout_spends_mature_coinbases_and_change_confirmations_deep() {
        // Maturity 20, 6 confirmations; tip 100.
        assert!(settled_coin(true, 81, 100, 20, 6), "20 deep: spendable in block 101");
        assert!(!settled_coin(true, 82, 100, 20, 6), "19 deep: not yet");
        assert!(settled_coin(false, 95, 100, 20, 6), "change 6 deep");
        assert!(!settled_coin(false, 96, 100, 20, 6), "change 5 deep: a reorg could still take it");
        assert!(settled_coin(false, 100, 100, 20, 1), "one confirmation asked: in the tip is enough");
        assert!(!settled_coin(false, 101, 100, 20, 1), "above the tip (an index ahead of the count)");
    }
}
