//! Part 1 of `quarry bench-p2p`: the initial-sync measurement (in-process connect rate
//! against node B syncing from node A over the network).

use super::{
    listen_addr, regtest_address, secs, wait_height, BenchP2pArgs, Cluster, Coin, Rpc, GENERATE_BATCH,
};
use crate::chain::{Chain, ProcessOutcome};
use crate::consensus::Network;
use crate::primitives::Hash256;
use crate::primitives::{Block, OutPoint};
use crate::rpc::api::QuarryApiClient;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Part 1. Leaves nodes A (index 0) and B (index 1) running at height N; returns key 0's
/// mature coinbases, largest first, and clients for A and B.
pub(super) fn sync_bench(cluster: &mut Cluster, args: &BenchP2pArgs) -> Result<(Vec<Coin>, Rpc, Rpc)> {
    let n = args.blocks;
    let params = Network::Regtest.params();
    println!();
    println!("== Initial sync: {n} coinbase-only blocks ==");
    let relay = if args.relay == super::RelayChoice::Full { "full" } else { "compact" };
    let (a, mut rpc_a) = cluster.start("a", &["--max-peers", "1", "--relay", relay])?;
    let address = regtest_address(0);
    let t = Instant::now();
    let mut made = 0;
    while made < n {
        let k = GENERATE_BATCH.min(n - made);
        rpc_a.wait(rpc_a.generatetoaddress(k as i64, address.clone()))?;
        made += k;
    }
    let tip = rpc_a.wait(rpc_a.getblockcount())? as u64;
    if tip != n as u64 {
        bail!("node a is at height {tip} after generating {n} blocks");
    }
    println!("{:<28} {n} blocks in {:.2} s", "generate on A", secs(t.elapsed()));

    // Fetch every block once, before any timing.
    let t = Instant::now();
    let mut blocks: Vec<Block> = Vec::with_capacity(n as usize);
    let mut bytes = 0usize;
    for start in (1..=n).step_by(GENERATE_BATCH as usize) {
        let end = (start + GENERATE_BATCH - 1).min(n);
        let hashes =
            rpc_a.batch::<Hash256>("getblockhash", (start..=end).map(|h| vec![json!(h)]).collect())?;
        let hashes: Vec<Hash256> =
            hashes.into_iter().map(|r| r.map_err(|e| anyhow!("getblockhash: {e}"))).collect::<Result<_>>()?;
        let raw =
            rpc_a.batch::<String>("getblock", hashes.iter().map(|h| vec![json!(h), json!(0)]).collect())?;
        for (hash, r) in hashes.iter().zip(raw) {
            let hexstr = r.map_err(|e| anyhow!("getblock {hash}: {e}"))?;
            let bin = hex::decode(&hexstr).with_context(|| format!("getblock {hash}: not hex"))?;
            bytes += bin.len();
            let block = Block::decode(&bin, params.max_block_size)
                .map_err(|e| anyhow!("getblock {hash}: block does not decode: {e}"))?;
            if block.hash() != *hash {
                bail!("getblock {hash}: the block hashes to {}", block.hash());
            }
            blocks.push(block);
        }
    }
    println!(
        "{:<28} {n} blocks, {:.1} MB, in {:.2} s (not timed below)",
        "fetch from A",
        bytes as f64 / 1e6,
        secs(t.elapsed())
    );
    let maturity = params.coinbase_maturity as u64;
    let mut coins: Vec<Coin> = blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64 + 1) + maturity <= n as u64)
        .filter_map(|(_, b)| {
            let cb = b.txs.first()?;
            let out = cb.outputs.first()?.clone();
            Some(Coin { outpoint: OutPoint { txid: cb.txid(), index: 0 }, out })
        })
        .collect();
    coins.sort_by_key(|c| std::cmp::Reverse(c.out.value.to_sat()));

    // (a) Single node: the same blocks into a fresh in-process chainstate.
    let dir = cluster.dir.join("inprocess");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut chain = Chain::open(&dir, params).context("opening the in-process chainstate")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = Instant::now();
    for (i, block) in blocks.into_iter().enumerate() {
        match chain.process_block(block, now) {
            Ok(ProcessOutcome::Accepted { .. }) => {}
            Ok(other) => bail!("in-process connect: block at height {} was not accepted: {other:?}", i + 1),
            Err(e) => bail!("in-process connect: block at height {}: {e}", i + 1),
        }
    }
    let single = t.elapsed();
    if chain.tip().height as u64 != n as u64 {
        bail!("in-process connect ended at height {} of {n}", chain.tip().height);
    }
    drop(chain);
    let single_rate = n as f64 / secs(single);
    println!(
        "{:<28} {n} blocks in {:.2} s = {:.0} blocks/s (Chain::process_block, one thread calling)",
        "single-node connect",
        secs(single),
        single_rate
    );

    // (b) Network: node B syncs from A.
    let a_addr = listen_addr(&mut rpc_a)?;
    let t0 = Instant::now();
    // Three: A, C and (with --relay both) the second origin E.
    let (b, mut rpc_b) = cluster.start("b", &["--bootnode", &a_addr, "--max-peers", "3"])?;
    let rpc_up = t0.elapsed();
    let (first, done) = wait_height(cluster, b, &mut rpc_b, n as u64, t0)?;
    let tip_a = rpc_a.wait(rpc_a.getbestblockhash())?;
    let tip_b = rpc_b.wait(rpc_b.getbestblockhash())?;
    if tip_a != tip_b {
        bail!("node b synced to {tip_b}, node a's tip is {tip_a}");
    }
    cluster.check_alive(a)?;
    let net_rate = n as f64 / secs(done);
    let first = first.unwrap_or(done);
    println!(
        "{:<28} {n} blocks in {:.2} s = {:.0} blocks/s (from B's spawn; RPC up at {:.2} s, first block at {:.2} s; {:.0} blocks/s after the first)",
        "network sync A -> B",
        secs(done),
        net_rate,
        secs(rpc_up),
        secs(first),
        (n as f64 - 1.0) / secs(done.saturating_sub(first)).max(1e-9)
    );
    let ratio = net_rate / single_rate;
    println!(
        "{:<28} {ratio:.2} (network / single-node; target >= 0.90: {})",
        "ratio",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
    Ok((coins, rpc_a, rpc_b))
}
