//! Part 2 of `quarry bench-p2p`: block propagation across the 4-node line A-B-C-D.

use super::{
    listen_addr, percentile, regtest_address, secs, wait_height, BenchP2pArgs, Cluster, Coin, RelayChoice,
    Rpc, RpcTarget, CHILD_FEE, FAN_FEE, FAN_OUTPUTS, FAN_VALUE, PROPAGATION_TIMEOUT, SEND_BATCH,
};
use crate::primitives::{Amount, Hash256, OutPoint, Transaction, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::testkit::{key, p2pkh_lock, spend_p2pkh};
use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Transactions of one round: the fan-outs (confirmed first) and the children that fill the
/// timed block.
fn fan_out(coins: &mut Vec<Coin>, children: usize) -> Result<(Vec<Transaction>, Vec<(OutPoint, TxOut)>)> {
    let k0 = key(0);
    let fan_lock = p2pkh_lock(&key(1));
    let mut txs = Vec::new();
    let mut outputs = Vec::with_capacity(children);
    let mut left = children;
    while left > 0 {
        let count = left.min(FAN_OUTPUTS);
        let need = count as u64 * FAN_VALUE + FAN_FEE;
        let coin = coins.first().cloned().ok_or_else(|| {
            anyhow!("out of mature coinbases to fund the transactions: raise --blocks or lower --rounds/--block-bytes")
        })?;
        let value = coin.out.value.to_sat();
        if value < need + FAN_VALUE {
            bail!(
                "the largest mature coinbase left holds {value} sat, a fan-out needs {need}: raise --blocks or lower --rounds/--block-bytes"
            );
        }
        coins.remove(0);
        let mut outs: Vec<TxOut> = (0..count)
            .map(|_| TxOut { value: Amount::from_sat(FAN_VALUE).expect("in range"), lock: fan_lock.clone() })
            .collect();
        outs.push(TxOut { value: Amount::from_sat(value - need).expect("in range"), lock: p2pkh_lock(&k0) });
        let tx = spend_p2pkh(&k0, &[(coin.outpoint, coin.out)], outs, 0);
        let txid = tx.txid();
        for (i, out) in tx.outputs.iter().take(count).enumerate() {
            outputs.push((OutPoint { txid, index: i as u32 }, out.clone()));
        }
        txs.push(tx);
        left -= count;
    }
    Ok((txs, outputs))
}

fn child(input: &(OutPoint, TxOut)) -> Transaction {
    let half = (FAN_VALUE - CHILD_FEE) / 2;
    let outs = vec![
        TxOut { value: Amount::from_sat(half).expect("in range"), lock: p2pkh_lock(&key(2)) },
        TxOut {
            value: Amount::from_sat(FAN_VALUE - CHILD_FEE - half).expect("in range"),
            lock: p2pkh_lock(&key(3)),
        },
    ];
    spend_p2pkh(&key(1), std::slice::from_ref(input), outs, 0)
}

/// Sends `txs` to the node in batches; fails on the first rejection.
fn send_all(rpc: &mut Rpc, txs: &[Transaction]) -> Result<()> {
    for chunk in txs.chunks(SEND_BATCH) {
        let results = rpc.batch::<Hash256>(
            "sendrawtransaction",
            chunk.iter().map(|t| vec![json!(hex::encode(t.encode()))]).collect(),
        )?;
        for (tx, r) in chunk.iter().zip(results) {
            if let Err(e) = r {
                bail!("node {} refused transaction {}: {e}", rpc.target.name, tx.txid());
            }
        }
    }
    Ok(())
}

fn mempool_size(rpc: &mut Rpc) -> Result<u64> {
    Ok(rpc.wait(rpc.getmempoolinfo())?.size)
}

/// Mines one block on the node; returns its id.
fn mine_one(rpc: &Rpc, address: &str) -> Result<String> {
    let hashes = rpc.wait(rpc.generatetoaddress(1, address.to_string()))?;
    let first = hashes
        .first()
        .ok_or_else(|| anyhow!("node {}: generatetoaddress 1 returned no block", rpc.target.name))?;
    Ok(first.to_string())
}

/// Waits until every node's tip is `hash`.
fn wait_tip(rpcs: &mut [Rpc], hash: &str) -> Result<()> {
    let start = Instant::now();
    for rpc in rpcs.iter_mut() {
        loop {
            if rpc.wait(rpc.getbestblockhash())?.to_string() == hash {
                break;
            }
            if start.elapsed() > PROPAGATION_TIMEOUT {
                bail!(
                    "node {} did not reach block {hash} within {} s",
                    rpc.target.name,
                    PROPAGATION_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Polls the node's tip until it differs from `prev`; returns the new tip and when it was
/// first seen. Reports readiness (one answered poll) on `ready` first.
fn watch_tip(
    target: RpcTarget,
    prev: &str,
    poll: Duration,
    ready: mpsc::Sender<Result<(), String>>,
    stop: &AtomicBool,
) -> Result<(String, Instant)> {
    let rpc = match Rpc::new(target) {
        Ok(rpc) => rpc,
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    match rpc.wait(rpc.getbestblockhash()).map(|h| h.to_string()) {
        Ok(t) if t == prev => {
            let _ = ready.send(Ok(()));
        }
        Ok(t) => {
            let e = format!("node {} tip {t} is not the expected {prev} before mining", rpc.target.name);
            let _ = ready.send(Err(e.clone()));
            bail!(e);
        }
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    }
    let start = Instant::now();
    loop {
        let tip = rpc.wait(rpc.getbestblockhash())?.to_string();
        if tip != prev {
            return Ok((tip, Instant::now()));
        }
        if stop.load(Ordering::SeqCst) {
            bail!("stopped");
        }
        if start.elapsed() > PROPAGATION_TIMEOUT {
            bail!("node {} saw no new tip within {} s", rpc.target.name, PROPAGATION_TIMEOUT.as_secs());
        }
        if !poll.is_zero() {
            std::thread::sleep(poll);
        }
    }
}

/// `--hosts netns`: the rounds over clear links.
const CLEAR: &str = "0ms-links";
/// `--hosts netns`: the rounds over delayed links.
const DELAYED: &str = "delayed";

struct Round {
    /// The origin's relay mode.
    mode: &'static str,
    size: u64,
    txs: u64,
    /// Mempool sizes of the origin, B, C, D just before mining.
    pools: [u64; 4],
    /// Times the origin, B, C, D first reported the block, ms from the origin's (negative if
    /// before it).
    seen: [f64; 4],
    /// Payload bytes C received from B, and D from C, while the block crossed.
    hop_bytes: [u64; 2],
}

impl Round {
    /// One relay hop: B->D over two (B->C and C->D).
    fn hop(&self) -> f64 {
        (self.seen[3] - self.seen[1]) / 2.0
    }
}

/// Bytes `rpc`'s node has received from peer `from` (payloads, as getpeerinfo counts).
fn bytes_from(rpc: &mut Rpc, from: &str) -> Result<u64> {
    let peers = rpc.wait(rpc.getpeerinfo())?;
    peers
        .iter()
        .find(|p| p.peerid == from)
        .map(|p| p.bytesrecv)
        .ok_or_else(|| anyhow!("node {} is not connected to {from}", rpc.target.name))
}

fn peer_id(rpc: &mut Rpc) -> Result<String> {
    Ok(rpc.wait(rpc.getnetworkinfo())?.peerid)
}

/// Waits (20 s at most) until every node has the connections of the line.
fn wait_line(rpcs: &mut [Rpc], want: &[u64]) -> Result<()> {
    let start = Instant::now();
    loop {
        let mut bad = None;
        for (rpc, &w) in rpcs.iter_mut().zip(want) {
            let got = rpc.wait(rpc.getconnectioncount())?;
            if got != w {
                bad = Some(format!("node {} has {got} connections, the line needs {w}", rpc.target.name));
                break;
            }
        }
        match bad {
            None => return Ok(()),
            Some(e) if start.elapsed() > Duration::from_secs(20) => bail!(e),
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Part 2: the A-B-C-D line (and origin E on B with `--relay both`).
pub(super) fn propagation_bench(
    cluster: &mut Cluster,
    args: &BenchP2pArgs,
    mut coins: Vec<Coin>,
    rpc_a: Rpc,
    rpc_b: Rpc,
) -> Result<()> {
    let both = args.relay == RelayChoice::Both;
    println!();
    println!(
        "== Block propagation: line A-B-C-D{}, blocks of about {} bytes, {} rounds, relay {:?}, {}% of transactions missing ==",
        if both { " (and E-B)" } else { "" },
        args.block_bytes,
        args.rounds,
        args.relay,
        args.missing_percent
    );
    // Nodes a and b are running (indices 0 and 1).
    let mut rpcs: Vec<Rpc> = vec![rpc_a, rpc_b];
    let b_addr = listen_addr(&mut rpcs[1])?;
    let height = rpcs[0].wait(rpcs[0].getblockcount())? as u64;
    // D starts once C has synced: a node syncing from a peer that is itself still syncing
    // learns only the height that peer had when they connected (see BENCHMARKS.md).
    let t0 = Instant::now();
    let (c, rpc_c) = cluster.start("c", &["--bootnode", &b_addr, "--max-peers", "2"])?;
    rpcs.push(rpc_c);
    let (_, c_done) = wait_height(cluster, c, &mut rpcs[2], height, t0)?;
    let c_addr = listen_addr(&mut rpcs[2])?;
    let t0 = Instant::now();
    let (d, rpc_d) = cluster.start("d", &["--bootnode", &c_addr, "--max-peers", "1"])?;
    rpcs.push(rpc_d);
    let (_, d_done) = wait_height(cluster, d, &mut rpcs[3], height, t0)?;
    if both {
        let t0 = Instant::now();
        let (e, rpc_e) =
            cluster.start("e", &["--bootnode", &b_addr, "--max-peers", "1", "--relay", "full"])?;
        rpcs.push(rpc_e);
        wait_height(cluster, e, &mut rpcs[4], height, t0)?;
    }
    println!(
        "{:<28} C synced {height} blocks from B in {:.2} s, then D from C in {:.2} s",
        "line setup",
        secs(c_done),
        secs(d_done)
    );
    let want: Vec<u64> = if both { vec![1, 3, 2, 1, 1] } else { vec![1, 2, 2, 1] };
    wait_line(&mut rpcs, &want)?;
    let (id_b, id_c) = (peer_id(&mut rpcs[1])?, peer_id(&mut rpcs[2])?);
    // Origins: A announces compact blocks unless --relay full; E (with both) full blocks.
    let netns = cluster.fabric.is_some();
    let origins: Vec<(usize, &'static str)> = match args.relay {
        _ if netns => vec![(0, CLEAR), (0, DELAYED)],
        RelayChoice::Both => vec![(0, "compact"), (4, "full")],
        RelayChoice::Compact => vec![(0, "compact")],
        RelayChoice::Full => vec![(0, "full")],
    };

    let sample = child(&(
        OutPoint { txid: Hash256([0; 32]), index: 0 },
        TxOut { value: Amount::from_sat(FAN_VALUE).expect("in range"), lock: p2pkh_lock(&key(1)) },
    ));
    let child_size = sample.encoded_size();
    // Header, transaction count and a coinbase of about 100 bytes.
    let children = (args.block_bytes.saturating_sub(200)).div_ceil(child_size).max(1);
    let missing = children * args.missing_percent as usize / 100;
    println!(
        "{:<28} {children} P2PKH transactions of {child_size} bytes (1 input, 2 outputs) per block, {missing} of them only in the origin's mempool",
        "block contents"
    );
    let poll = Duration::from_millis(args.poll_ms);
    let miner_address = regtest_address(4);
    let mut rounds: Vec<Round> = Vec::new();
    println!(
        "{:>5} {:>8} {:>10} {:>6} {:>23} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "round",
        "relay",
        "bytes",
        "txs",
        "mempool O/B/C/D",
        "O->B ms",
        "O->C ms",
        "O->D ms",
        "hop ms",
        "hop bytes"
    );
    for round in 1..=args.rounds {
        let (origin, mode) = origins[(round as usize - 1) % origins.len()];
        // Setup block: confirms this round's fan-out transactions.
        let (fans, outputs) = fan_out(&mut coins, children)?;
        send_all(&mut rpcs[0], &fans)?;
        let setup = mine_one(&rpcs[0], &miner_address)?;
        wait_tip(&mut rpcs, &setup)?;
        // Fill the mempools through the origin; gossip relays to the others.
        let txs: Vec<Transaction> = outputs.par_iter().map(child).collect();
        let (shared, private) = txs.split_at(txs.len() - missing);
        send_all(&mut rpcs[origin], shared)?;
        // Let relay settle: every pool holds all, or none grew for 2 s (30 s at most).
        let line = [origin, 1, 2, 3];
        let (mut pools, mut last_change, settle) = ([0u64; 4], Instant::now(), Instant::now());
        loop {
            let mut now_pools = [0u64; 4];
            for (p, &i) in now_pools.iter_mut().zip(&line) {
                *p = mempool_size(&mut rpcs[i])?;
            }
            if now_pools != pools {
                (pools, last_change) = (now_pools, Instant::now());
            }
            if pools.iter().all(|&p| p >= pools[0])
                || last_change.elapsed() > Duration::from_secs(2)
                || settle.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !private.is_empty() {
            // The origin alone gets these: offline while they are sent.
            rpcs[origin].wait(rpcs[origin].setnetworkactive(false))?;
            let start = Instant::now();
            while rpcs[origin].wait(rpcs[origin].getconnectioncount())? > 0 {
                if start.elapsed() > Duration::from_secs(10) {
                    bail!("origin {} still connected after setnetworkactive false", rpcs[origin].target.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            send_all(&mut rpcs[origin], private)?;
            rpcs[origin].wait(rpcs[origin].setnetworkactive(true))?;
            wait_line(&mut rpcs, &want)?;
            std::thread::sleep(Duration::from_millis(1500)); // gossip meshes graft again
            pools[0] = mempool_size(&mut rpcs[origin])?;
        }
        wait_line(&mut rpcs, &want)?;
        let before = [bytes_from(&mut rpcs[2], &id_b)?, bytes_from(&mut rpcs[3], &id_c)?];

        // The timed block (netns: over links delayed just now, or clear ones).
        cluster.shape(if mode == DELAYED { args.latency_ms } else { 0.0 })?;
        let targets: Vec<RpcTarget> = line.iter().map(|&i| rpcs[i].target.clone()).collect();
        let stop = AtomicBool::new(false);
        let (mined, seen) = std::thread::scope(|s| -> Result<(String, Vec<(String, Instant)>)> {
            let (ready_tx, ready_rx) = mpsc::channel();
            let handles: Vec<_> = targets
                .into_iter()
                .map(|t| {
                    let (ready, stop, prev) = (ready_tx.clone(), &stop, setup.as_str());
                    s.spawn(move || watch_tip(t, prev, poll, ready, stop))
                })
                .collect();
            let result = (|| -> Result<String> {
                for _ in 0..handles.len() {
                    match ready_rx.recv_timeout(Duration::from_secs(20)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => bail!("tip watcher: {e}"),
                        Err(_) => bail!("tip watchers did not start within 20 s"),
                    }
                }
                mine_one(&rpcs[origin], &miner_address)
            })();
            if result.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            let mut seen = Vec::new();
            let mut first_err = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(x)) => seen.push(x),
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(anyhow!("a tip watcher panicked"));
                    }
                }
            }
            let mined = result?;
            if let Some(e) = first_err {
                return Err(e);
            }
            Ok((mined, seen))
        })?;
        for ((tip, _), &i) in seen.iter().zip(&line) {
            if *tip != mined {
                bail!("node {} moved to {tip}, not the mined block {mined}", rpcs[i].target.name);
            }
        }
        wait_tip(&mut rpcs, &mined)?;
        cluster.shape(0.0)?;
        // Late gossip (a compact relay's Accept arrives before the connect) has landed by now.
        std::thread::sleep(Duration::from_millis(200));
        let after = [bytes_from(&mut rpcs[2], &id_b)?, bytes_from(&mut rpcs[3], &id_c)?];
        let mined_hash: Hash256 = mined.parse().map_err(|e| anyhow!("mined block id {mined:?}: {e}"))?;
        let info = rpcs[0].wait(rpcs[0].block_txids(&mined_hash))?;
        let (size, ntx) = (info.size, info.tx.len() as u64);
        // Signed: the origin announces its own block before connecting it, so another node's
        // tip may move before the origin's.
        let base = seen[0].1;
        let at = |i: usize| {
            let t = seen[i].1;
            match t.checked_duration_since(base) {
                Some(d) => d.as_secs_f64() * 1e3,
                None => -(base.duration_since(t).as_secs_f64() * 1e3),
            }
        };
        let hop_bytes = [after[0] - before[0], after[1] - before[1]];
        let r = Round { mode, size, txs: ntx, pools, seen: [0.0, at(1), at(2), at(3)], hop_bytes };
        println!(
            "{round:>5} {:>8} {:>10} {:>6} {:>23} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            r.mode,
            r.size,
            r.txs,
            format!("{}/{}/{}/{}", r.pools[0], r.pools[1], r.pools[2], r.pools[3]),
            r.seen[1],
            r.seen[2],
            r.seen[3],
            r.hop(),
            (r.hop_bytes[0] + r.hop_bytes[1]) / 2
        );
        rounds.push(r);
        for i in 0..rpcs.len() {
            cluster.check_alive(i)?;
        }
    }

    println!();
    let mut p50s = Vec::new();
    for (_, mode) in &origins {
        let rs: Vec<&Round> = rounds.iter().filter(|r| r.mode == *mode).collect();
        if rs.is_empty() {
            continue;
        }
        println!("{mode} relay ({} rounds):", rs.len());
        // The hop is B->D / 2: two relay hops between nodes that did not mine the block (the
        // origin announces before it connects, so O's tip time is not when the block left
        // it). A node relaying before it connects may be passed by the next one, so a single
        // hop can be negative: hence two hops together.
        let sorted = |f: &dyn Fn(&Round) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(|r| f(r)).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v
        };
        let hops = sorted(&|r| r.hop());
        let p50 = percentile(&hops, 50.0);
        p50s.push((*mode, p50));
        println!(
            "{:<28} p50 {:.1} ms, p99 {:.1} ms (B->D / 2, {} rounds)",
            "  hop latency",
            p50,
            percentile(&hops, 99.0),
            hops.len()
        );
        for (i, name) in ["O->B (first hop)", "O->C", "O->D (3 hops)"].iter().enumerate() {
            let h = sorted(&|r| r.seen[i + 1]);
            println!(
                "{:<28} p50 {:.1} ms, p99 {:.1} ms",
                format!("  {name}"),
                percentile(&h, 50.0),
                percentile(&h, 99.0)
            );
        }
        let mut share: Vec<f64> = rs
            .iter()
            .flat_map(|r| r.hop_bytes.iter().map(move |&b| b as f64 / r.size.max(1) as f64 * 100.0))
            .collect();
        share.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<28} p50 {:.1}% of the block, max {:.1}% (B->C and C->D payload bytes while the block crossed)",
            "  bytes per hop",
            percentile(&share, 50.0),
            share.last().copied().unwrap_or(f64::NAN)
        );
        let sizes: Vec<u64> = rs.iter().map(|r| r.size).collect();
        println!(
            "{:<28} mean {:.0} bytes (min {}, max {}), {} transactions",
            "  block size",
            sizes.iter().sum::<u64>() as f64 / sizes.len() as f64,
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
            rs[0].txs
        );
        let full =
            rs.iter().filter(|r| r.pools[1..].iter().all(|&p| p + missing as u64 >= r.pools[0])).count();
        println!(
            "{:<28} {full} of {} rounds had every shared transaction in all four mempools before mining",
            "  relayed mempools",
            rs.len()
        );
    }
    match p50s[..] {
        [(_, zero), (_, delayed)] if netns => {
            let expected = args.latency_ms + zero;
            println!(
                "{:<28} {delayed:.1} ms vs {:.0} ms + {zero:.1} ms (the 0 ms hop) = {expected:.1} ms: ratio {:.3}, {:+.1}%",
                "delayed hop p50",
                args.latency_ms,
                delayed / expected,
                (delayed / expected - 1.0) * 100.0
            );
        }
        [(_, compact), (_, full)] => {
            println!(
                "{:<28} {:.3} (compact hop p50 / full hop p50, same run)",
                "compact / full",
                compact / full
            );
        }
        _ => {}
    }
    println!(
        "{:<28} every {} ms per node over keep-alive JSON-RPC (getbestblockhash)",
        "tip polling", args.poll_ms
    );
    Ok(())
}
