//! `quarry bench-utxo`: one regtest node with a large chainstate and a full mempool, for the
//! memory target (issue 13: RSS <= 300 MB with 1,000,000 UTXOs, the UTXO cache at its
//! default and a full 64 MiB mempool). The bench makes the coins with fan-out transactions
//! (1,500 outputs each) mined into ~1 MB blocks, measuring how fast those blocks are mined
//! and connected; then fills the mempool with one-input spends of those coins until it
//! refuses ("mempool is full"), and times one full block of them mined and connected against
//! the big UTXO set. RSS is read from /proc, disk use by walking the data directory.

use super::{regtest_address, secs, Cluster, Rpc};
use crate::primitives::{Amount, OutPoint, Transaction, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::testkit::{key, p2pkh_lock, spend_p2pkh};
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::time::Instant;

/// `quarry bench-utxo` options.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchUtxoArgs {
    /// Coins to create in the chainstate.
    #[arg(long, default_value_t = 1_000_000)]
    pub utxos: usize,
    /// Fill the mempool to its cap after building the chainstate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub fill_mempool: bool,
    /// Keep the work directory afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Outputs per fan-out transaction (~52 KB, under the 100 KB relay limit).
const OUTPUTS: usize = 1_500;
/// Value of each created coin, sat.
const VALUE: u64 = 10_000;
/// Fee of a fan-out (about 20 sat/byte).
const FAN_FEE: u64 = 1_000_000;
/// Fee of a one-input one-output spend (203 bytes): just above the relay minimum, so the
/// pool fills with the cheapest transactions it takes.
const SPEND_FEE: u64 = 300;

/// Resident memory now and at its peak (MiB) of process `pid`.
pub(super) fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bytes under `dir`.
fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Sends `txs` in batches. Returns how many were accepted and the first refusal, if any;
/// stops at the first batch with a refusal when `stop_on_refusal`.
fn send(rpc: &Rpc, txs: &[Transaction], stop_on_refusal: bool) -> Result<(usize, Option<String>)> {
    let mut accepted = 0;
    let mut first = None;
    // Calls of at most 1,000 transactions and ~8 MB of hex (the server takes 16 MB bodies).
    let mut chunks: Vec<&[Transaction]> = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, tx) in txs.iter().enumerate() {
        let size = 2 * tx.encoded_size();
        if i > start && (i - start == crate::rpc::types::MAX_SEND_BATCH || bytes + size > 8 << 20) {
            chunks.push(&txs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < txs.len() {
        chunks.push(&txs[start..]);
    }
    for chunk in chunks {
        let hexes = chunk.iter().map(|t| hex::encode(t.encode())).collect();
        for outcome in rpc.wait(rpc.sendrawtransactions(hexes))? {
            match outcome.error {
                None => accepted += 1,
                Some(e) => {
                    first.get_or_insert(format!("error code {}: {}", e.code, e.message));
                }
            }
        }
        if stop_on_refusal && first.is_some() {
            break;
        }
    }
    Ok((accepted, first))
}

/// Mines blocks until the mempool is empty; returns (blocks, seconds).
fn mine_until_empty(rpc: &Rpc, address: &str) -> Result<(u32, f64)> {
    let t = Instant::now();
    let mut blocks = 0;
    while rpc.wait(rpc.getmempoolinfo())?.size > 0 {
        rpc.wait(rpc.generatetoaddress(1, address.to_string()))?;
        blocks += 1;
        if blocks > 10_000 {
            bail!("the mempool did not empty after 10,000 blocks");
        }
    }
    Ok((blocks, secs(t.elapsed())))
}

/// Runs the bench and prints its report.
pub fn run(args: &BenchUtxoArgs) -> Result<()> {
    if !(OUTPUTS..=10_000_000).contains(&args.utxos) {
        bail!("--utxos must be in {OUTPUTS}..=10000000, got {}", args.utxos);
    }
    let mut cluster = Cluster::new(args.keep, crate::testnet::hosts::Hosts::Loopback)?;
    println!(
        "quarry bench-utxo: one regtest node on loopback, default --dbcache and mempool cap, {} CPUs, work directory {}",
        super::super::default_threads(),
        cluster.dir.display()
    );
    let (index, rpc) = cluster.start("A", &[])?;
    let pid = cluster.nodes[index].child.id();
    let address = regtest_address(0);
    let k0 = key(0);

    // Mature coinbases: each funds fan-outs (subsidy / (OUTPUTS * VALUE + FAN_FEE) of them).
    let fans = args.utxos.div_ceil(OUTPUTS);
    let per_fan = OUTPUTS as u64 * VALUE + FAN_FEE;
    let params = crate::consensus::Network::Regtest.params();
    let subsidy = crate::consensus::block_subsidy(params, 1).to_sat();
    let fans_per_coinbase = ((subsidy - FAN_FEE) / per_fan).clamp(1, 1_000) as usize;
    let coinbases = fans.div_ceil(fans_per_coinbase);
    let maturity = params.coinbase_maturity as u64;
    let hashes = rpc.wait(rpc.generatetoaddress((coinbases as u64 + maturity) as i64, address.clone()))?;
    let mut fund: Vec<(OutPoint, TxOut)> = Vec::new();
    for h in hashes.iter().take(coinbases) {
        let block = rpc.wait(rpc.block_bytes(h))?;
        let block =
            crate::primitives::Block::decode(&block, 4_000_000).map_err(|e| anyhow!("block {h}: {e}"))?;
        let cb = block.txs.first().ok_or_else(|| anyhow!("block {h} has no coinbase"))?;
        fund.push((OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone()));
    }

    // Level 1: each coinbase splits into fan-out funding coins; level 2: the fan-outs.
    let t = Instant::now();
    let mut level1 = Vec::new();
    let mut fan_inputs = Vec::new();
    for coin in fund {
        let n = fans_per_coinbase.min(fans - fan_inputs.len());
        if n == 0 {
            break;
        }
        let mut outs: Vec<TxOut> = (0..n)
            .map(|_| TxOut { value: Amount::from_sat(per_fan).expect("in range"), lock: p2pkh_lock(&k0) })
            .collect();
        let change = coin.1.value.to_sat() - per_fan * n as u64 - FAN_FEE;
        outs.push(TxOut { value: Amount::from_sat(change)?, lock: p2pkh_lock(&k0) });
        let tx = spend_p2pkh(&k0, &[coin], outs, 0);
        for (i, out) in tx.outputs.iter().take(n).enumerate() {
            fan_inputs.push((OutPoint { txid: tx.txid(), index: i as u32 }, out.clone()));
        }
        level1.push(tx);
    }
    if let (_, Some(e)) = send(&rpc, &level1, true)? {
        bail!("the node refused a funding transaction: {e}");
    }
    mine_until_empty(&rpc, &address)?;
    let lock = p2pkh_lock(&key(1));
    let fan_txs: Vec<Transaction> = fan_inputs
        .par_iter()
        .enumerate()
        .map(|(i, input)| {
            let count = OUTPUTS.min(args.utxos - i * OUTPUTS);
            let outs: Vec<TxOut> = (0..count)
                .map(|_| TxOut { value: Amount::from_sat(VALUE).expect("in range"), lock: lock.clone() })
                .collect();
            let paid = VALUE * count as u64;
            let mut outs = outs;
            let change = input.1.value.to_sat() - paid - FAN_FEE;
            if change > 0 {
                outs.push(TxOut {
                    value: Amount::from_sat(change).expect("in range"),
                    lock: p2pkh_lock(&k0),
                });
            }
            spend_p2pkh(&k0, std::slice::from_ref(input), outs, 0)
        })
        .collect();
    let prep = secs(t.elapsed());
    let bytes: usize = fan_txs.iter().map(Transaction::encoded_size).sum();
    let t = Instant::now();
    // In slices the mempool can hold at once (64 MiB cap).
    let mut blocks = 0;
    let mut mine_secs = 0.0;
    for slice in fan_txs.chunks(400) {
        if let (_, Some(e)) = send(&rpc, slice, true)? {
            bail!("the node refused a fan-out transaction: {e}");
        }
        let (b, s) = mine_until_empty(&rpc, &address)?;
        blocks += b;
        mine_secs += s;
    }
    let build = secs(t.elapsed());
    let coins: Vec<(OutPoint, TxOut)> = fan_txs
        .iter()
        .flat_map(|tx| {
            let txid = tx.txid();
            tx.outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.lock == lock)
                .map(move |(i, o)| (OutPoint { txid, index: i as u32 }, o.clone()))
        })
        .collect();
    let info = rpc.wait(rpc.gettxoutsetinfo())?;
    let (now, peak) = rss(pid);
    let datadir = cluster.nodes[index].datadir.clone();
    println!("signing (not timed)          {} fan-outs of {OUTPUTS} outputs in {prep:.1} s", fan_txs.len());
    println!(
        "chainstate                   {} UTXOs after {blocks} blocks of fan-outs ({:.1} MB): submitted and mined in {build:.1} s ({:.1} s mining+connecting, {:.0} created outputs/s)",
        info.txouts,
        bytes as f64 / 1e6,
        mine_secs,
        coins.len() as f64 / build
    );
    println!(
        "disk                         {:.1} MB in {}",
        disk_bytes(&datadir) as f64 / 1e6,
        datadir.display()
    );
    println!("node RSS                     {now:.0} MiB now, {peak:.0} MiB peak");

    if !args.fill_mempool {
        return Ok(());
    }
    // Spends until the pool refuses, each slice signed in parallel first (not timed).
    let spend_lock = p2pkh_lock(&key(2));
    let mut sent = 0;
    let mut refusal: Option<String> = None;
    let mut fill = 0.0;
    for slice in coins.chunks(20_000) {
        let spends: Vec<Transaction> = slice
            .par_iter()
            .map(|c| {
                let value = Amount::from_sat(VALUE - SPEND_FEE).expect("in range");
                spend_p2pkh(
                    &key(1),
                    std::slice::from_ref(c),
                    vec![TxOut { value, lock: spend_lock.clone() }],
                    0,
                )
            })
            .collect();
        let t = Instant::now();
        let (ok, first) = send(&rpc, &spends, false)?;
        fill += secs(t.elapsed());
        sent += ok;
        if let Some(e) = first {
            let full = e.contains("mempool is full");
            refusal = Some(e);
            if full {
                break;
            }
        }
    }
    let pool = rpc.wait(rpc.getmempoolinfo())?;
    let (now, peak) = rss(pid);
    println!(
        "mempool                      {} txs, {:.1} MiB usage of {:.0} MiB cap, {sent} accepted in {fill:.1} s ({:.0} tx/s over RPC batches){}",
        pool.size,
        pool.usage as f64 / 1048576.0,
        pool.maxmempool as f64 / 1048576.0,
        sent as f64 / fill,
        refusal.map(|e| format!("; then refused: {e}")).unwrap_or_default()
    );
    println!("node RSS                     {now:.0} MiB now, {peak:.0} MiB peak (target <= 300 MB)");
    // One block of the pool's best transactions, against the big UTXO set.
    let t = Instant::now();
    let h = rpc.wait(rpc.generatetoaddress(1, address.clone()))?;
    let hash = h.first().ok_or_else(|| anyhow!("no block mined"))?;
    let block = rpc.wait(rpc.block_txids(hash)).context("reading the block")?;
    println!(
        "one full block               {} txs mined and connected in {:.0} ms (UTXO cache warm from the fill)",
        block.tx.len(),
        secs(t.elapsed()) * 1000.0
    );
    let (now, peak) = rss(pid);
    println!("node RSS                     {now:.0} MiB now, {peak:.0} MiB peak");
    Ok(())
}
