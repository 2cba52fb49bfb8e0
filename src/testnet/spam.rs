//! `quarry testnet spam`: load the testnet with valid P2PKH transactions and measure
//! submitted vs confirmed transactions per second, confirmation latency and mempool sizes.
//!
//! Preparation (not timed): every running node's wallet splits its coins into many small
//! outputs (fan-out transactions), a block confirms them, and every spam transaction is
//! signed in advance (one input, one output back to the same wallet), so the run measures the
//! nodes, not the signer. The run submits them round-robin across the nodes at the target
//! rate in `sendrawtransactions` calls from several threads, while one thread follows new blocks and
//! records when each transaction confirmed. A node that answers "busy" (-28: its verifier
//! pool is full) gets the transaction again after a pause, as a real client would; every
//! other refusal is counted by its reason. At the end every offered transaction is either
//! confirmed, refused (with a reason), or reported as unaccounted. The report has each
//! node's CPU seconds and memory over the run and a per-second series, written as JSON and
//! as an SVG chart.

use super::error::{Result, ResultExt, TestnetError};
use super::Testnet;
use crate::primitives::{Amount, Hash256, OutPoint, Transaction, TxIn, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{BlockingClient, RpcConfig};
use crate::script::templates::address_lock;
use crate::wallet::ops;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Spam settings.
#[derive(Clone, Debug)]
pub struct SpamOptions {
    /// Target submission rate, transactions per second (all nodes together).
    pub tps: f64,
    /// How long to submit.
    pub seconds: f64,
    /// How long to wait for the last confirmations after submitting.
    pub drain_seconds: f64,
    /// Mine the preparation block on this node (default: the first running node).
    pub miner: Option<String>,
    /// Where the JSON series and the chart go (`None`: not written).
    pub out: Option<std::path::PathBuf>,
}

/// One node's resource use over the submission and drain window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeUsage {
    /// The node.
    pub name: String,
    /// CPU seconds (user + system) used during the run.
    pub cpu_seconds: f64,
    /// Resident memory at the end, MiB.
    pub rss_mib: f64,
    /// Largest resident memory sampled during the run, MiB.
    pub max_rss_mib: f64,
}

/// One second of the run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Second {
    /// Seconds since the first submission (the bucket's start).
    pub t: u32,
    /// Transactions accepted by a node in this second.
    pub submitted: usize,
    /// Transactions seen confirmed in this second.
    pub confirmed: usize,
    /// Largest mempool (transactions) sampled on any node in this second.
    pub mempool: u64,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpamReport {
    /// Transactions prepared and offered.
    pub offered: usize,
    /// Accepted by a node.
    pub submitted: usize,
    /// Refused by a node (first error kept in `first_error`, counts by reason in `refusals`).
    pub refused: usize,
    /// Refusals by reason (RPC error code and message, ids and numbers elided).
    pub refusals: std::collections::BTreeMap<String, usize>,
    /// Resubmissions after a "busy" answer (not counted as refusals unless they ran out).
    pub busy_retries: usize,
    /// Accepted but neither seen confirmed nor refused by the end (should be 0).
    pub unaccounted: usize,
    /// Confirmed in a block by the end.
    pub confirmed: usize,
    /// Submission window, seconds.
    pub submit_seconds: f64,
    /// Submitted per second.
    pub submitted_tps: f64,
    /// Confirmed per second, over the time from the first submission to the last confirmation.
    pub confirmed_tps: f64,
    /// Confirmation latency percentiles, seconds (p50, p90, p99, max); `None` when nothing
    /// was confirmed.
    pub latency: Option<[f64; 4]>,
    /// Largest mempool seen on any node.
    pub max_mempool: u64,
    /// Blocks that confirmed spam.
    pub blocks: usize,
    /// The first refusal, if any.
    pub first_error: Option<String>,
    /// Each node's CPU and memory.
    pub nodes: Vec<NodeUsage>,
    /// Per-second series.
    pub series: Vec<Second>,
}

/// A "busy" transaction is offered again after this pause…
const BUSY_PAUSE: Duration = Duration::from_millis(50);
/// …at most this many times before it counts as refused.
const BUSY_TRIES: usize = 100;

/// The refusal's reason for counting: the RPC code and message with ids and numbers elided.
fn reason(e: &crate::rpc::client::RpcError) -> String {
    static IDS: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"[0-9a-f]{64}(:\d+)?|\d+").expect("valid regex"));
    match e {
        crate::rpc::client::RpcError::Call { code, message } => {
            format!("{code}: {}", IDS.replace_all(message, "N"))
        }
        other => format!("transport: {}", IDS.replace_all(&other.to_string(), "N")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::client::RpcError;

    #[test]
    fn refusal_reasons_keep_the_code_and_elide_ids_and_numbers() {
        let call = |message: &str| RpcError::Call { code: -26, message: message.into() };
        let a = reason(&call(&format!("transaction {} is already in the mempool", "ab".repeat(32))));
        let b = reason(&call(&format!("transaction {} is already in the mempool", "cd".repeat(32))));
        assert_eq!(a, "-26: transaction N is already in the mempool");
        assert_eq!(a, b, "one reason for every txid");
        assert_eq!(reason(&call("fee 200 sat below 203")), "-26: fee N sat below N");
        assert!(reason(&RpcError::Client("connection refused".into())).starts_with("transport: "));
    }
}

/// Calls `f` again while the node answers "busy" (at most [`BUSY_TRIES`] times, [`BUSY_PAUSE`]
/// apart): the watcher's reads queue behind the load on the same node, and one busy answer
/// must not end the run.
fn patient<T>(
    mut f: impl FnMut() -> Result<T, crate::rpc::client::RpcError>,
) -> Result<T, crate::rpc::client::RpcError> {
    let mut tries = 1;
    loop {
        match f() {
            Err(e) if tries < BUSY_TRIES && is_busy(&e) => {
                tries += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            answer => return answer,
        }
    }
}

/// A "busy" answer (-28 with "busy" in it; -28 also means shutting down, not retried).
fn is_busy(e: &crate::rpc::client::RpcError) -> bool {
    e.code() == Some(crate::rpc::codes::IN_WARMUP) && e.to_string().contains("busy")
}

/// CPU seconds (user + system) and resident memory (MiB) of process `pid`, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some((ticks / hz, rss_kb / 1024.0))
}

/// Fee of a spam transaction (one input, one output: about 150 bytes at 1000 sat/kB, doubled).
const SPAM_FEE: u64 = 300;
/// Outputs per fan-out transaction.
const FANOUT: usize = 1_800;
/// Most transactions per `sendrawtransactions` call (a call holds at most a tenth of a
/// second's worth, so a low rate is sent as it is asked for, not in bursts).
const BATCH: usize = crate::rpc::types::MAX_SEND_BATCH;

/// Gives every running node `per_node` outputs of `value` (to its address 0), paid by fan-out
/// transactions from any wallet's spendable coins (the miners' wallets hold most of them),
/// then mines a block and waits for it everywhere.
fn prepare(t: &mut Testnet, nodes: &[String], per_node: usize, value: Amount, miner: &str) -> Result<()> {
    let fee = Amount::from_sat(100_000)?;
    split_large_coins(t, nodes, value.to_sat() * FANOUT as u64 + fee.to_sat(), miner)?;
    let mut need: Vec<(String, usize)> = nodes.iter().map(|n| (n.clone(), per_node)).collect();
    let locks: HashMap<String, crate::primitives::Script> = nodes
        .iter()
        .map(|n| Ok((n.clone(), address_lock(&t.wallet(n)?.address(0)))))
        .collect::<Result<_>>()?;
    for source in nodes {
        if need.iter().all(|(_, k)| *k == 0) {
            break;
        }
        let rpc = t.rpc(source)?;
        let wallet = t.wallet(source)?;
        let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet_of(source))?;
        for coin in coins.iter().filter(|c| c.out.value > value && !c.spent_in_mempool) {
            let Some((target, left)) = need.iter_mut().find(|(_, k)| *k > 0) else { break };
            let room = (coin.out.value.to_sat().saturating_sub(fee.to_sat()) / value.to_sat()) as usize;
            let n = room.min(FANOUT).min(*left);
            if n == 0 {
                continue;
            }
            let lock = locks[target.as_str()].clone();
            let mut outputs: Vec<TxOut> = (0..n).map(|_| TxOut { value, lock: lock.clone() }).collect();
            let change = coin.out.value.to_sat() - fee.to_sat() - value.to_sat() * n as u64;
            if change > 1_000 {
                outputs.push(TxOut { value: Amount::from_sat(change)?, lock: coin.out.lock.clone() });
            }
            spend_one(t, source, &wallet, coin, outputs)?;
            *left -= n;
        }
    }
    for (name, left) in &need {
        if *left > 0 {
            eprintln!(
                "  {name}: {left} of {per_node} outputs missing (not enough mature coins in the wallets)"
            );
        }
    }
    let address = t.wallet(miner)?.address(0).encode();
    let names = nodes.to_vec();
    // Let the fan-out transactions reach the miner's mempool, then confirm them.
    std::thread::sleep(Duration::from_millis(500));
    t.ask(miner, |c| c.wait(c.generatetoaddress(1, address)))?;
    t.wait_until("the fan-out block everywhere", Duration::from_secs(120), |t| t.same_tip(Some(&names)))?;
    Ok(())
}

/// First level of the fan-out: every wallet splits each coin worth at least two `chunk`s
/// into pieces of `chunk` (at most 100 per coin), confirmed in one block, so that the second
/// level has one coin per fan-out transaction.
fn split_large_coins(t: &mut Testnet, nodes: &[String], chunk: u64, miner: &str) -> Result<()> {
    let mut sent = 0;
    for name in nodes {
        let rpc = t.rpc(name)?;
        let wallet = t.wallet(name)?;
        let lock = address_lock(&wallet.address(0));
        let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet_of(name))?;
        for coin in coins.iter().filter(|c| c.out.value.to_sat() >= 2 * chunk && !c.spent_in_mempool) {
            let pieces = ((coin.out.value.to_sat() - 100_000) / chunk).min(100);
            let mut outputs: Vec<TxOut> = (0..pieces)
                .map(|_| Ok(TxOut { value: Amount::from_sat(chunk)?, lock: lock.clone() }))
                .collect::<Result<_>>()?;
            let change = coin.out.value.to_sat() - 100_000 - pieces * chunk;
            if change > 1_000 {
                outputs.push(TxOut { value: Amount::from_sat(change)?, lock: lock.clone() });
            }
            spend_one(t, name, &wallet, coin, outputs)?;
            sent += 1;
        }
    }
    if sent == 0 {
        return Ok(());
    }
    let address = t.wallet(miner)?.address(0).encode();
    let names = nodes.to_vec();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..10 {
        t.ask(miner, |c| c.wait(c.generatetoaddress(1, address.clone())))?;
        t.wait_until("the split block everywhere", Duration::from_secs(120), |t| t.same_tip(Some(&names)))?;
        if t.ask(miner, |c| c.wait(c.getmempoolinfo()))?.size == 0 {
            return Ok(());
        }
    }
    Err(TestnetError::failed("the coin-splitting transactions did not confirm"))
}

/// Signs a spend of one wallet coin to `outputs` and submits it to `node`.
fn spend_one(
    t: &Testnet,
    node: &str,
    wallet: &crate::wallet::keystore::Wallet,
    coin: &ops::Utxo,
    outputs: Vec<TxOut>,
) -> Result<Transaction> {
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: coin.outpoint, unlock: Default::default() }],
        outputs,
        lock_time: 0,
    };
    ops::sign_p2pkh_inputs(wallet, &mut tx, std::slice::from_ref(&coin.out)).map_err(TestnetError::wallet)?;
    t.ask(node, |c| c.wait(c.sendrawtransaction(hex::encode(tx.encode()))))?;
    Ok(tx)
}

/// Runs the load. The testnet must be up.
pub fn run(t: &mut Testnet, opts: &SpamOptions) -> Result<SpamReport> {
    let nodes = t.running();
    if nodes.is_empty() {
        return Err(TestnetError::refused(format!(
            "no node is running: start the testnet with `{}`",
            super::hint(&t.dir, "up")
        )));
    }
    if !(opts.tps.is_finite() && opts.tps > 0.0 && opts.seconds.is_finite() && opts.seconds > 0.0) {
        return Err(TestnetError::refused("--tps and --seconds must be positive numbers"));
    }
    if !(opts.drain_seconds.is_finite() && opts.drain_seconds >= 0.0) {
        return Err(TestnetError::refused("--drain must be zero or more seconds"));
    }
    if opts.tps * opts.seconds > 1_000_000.0 {
        return Err(TestnetError::refused(format!(
            "--tps x --seconds = {:.0} transactions; at most 1,000,000 per run",
            opts.tps * opts.seconds
        )));
    }
    // Without a continuously mining node nothing would ever confirm.
    let mining: Vec<String> = nodes
        .iter()
        .filter(|n| t.ask(n, |c| c.wait(c.getmininginfo())).is_ok_and(|m| m.mining))
        .cloned()
        .collect();
    if mining.is_empty() {
        return Err(TestnetError::refused(format!(
            "no running node mines, so no spam transaction would confirm: start a testnet with miners (`{}`)",
            super::hint(&t.dir, "up --clean --miners 1")
        )));
    }
    let miner = opts.miner.clone().unwrap_or_else(|| nodes[0].clone());
    let total = (opts.tps * opts.seconds).ceil() as usize;
    let per_node = total.div_ceil(nodes.len());
    let value = Amount::from_sat(100_000)?;
    eprintln!("preparing {total} transactions ({per_node} coins per node, fan-out confirmed in one block)…");
    prepare(t, &nodes, per_node, value, &miner)?;

    // Sign every spam transaction up front.
    let mut txs: Vec<(usize, Hash256, String)> = Vec::with_capacity(total);
    for (i, name) in nodes.iter().enumerate() {
        let rpc = t.rpc(name)?;
        let wallet = t.wallet(name)?;
        let lock = address_lock(&wallet.address(0));
        let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet_of(name))?;
        for coin in coins.iter().filter(|c| c.out.value == value && !c.coinbase).take(per_node) {
            let mut tx = Transaction {
                version: 1,
                inputs: vec![TxIn { prevout: OutPoint { ..coin.outpoint }, unlock: Default::default() }],
                outputs: vec![TxOut {
                    value: Amount::from_sat(value.to_sat() - SPAM_FEE)?,
                    lock: lock.clone(),
                }],
                lock_time: 0,
            };
            ops::sign_p2pkh_inputs(&wallet, &mut tx, std::slice::from_ref(&coin.out))
                .map_err(TestnetError::wallet)?;
            txs.push((i, tx.txid(), hex::encode(tx.encode())));
        }
    }
    // Interleave the nodes so the load is spread evenly over time.
    txs.sort_by_key(|(i, txid, _)| (txid.0[0] as usize, *i));
    let offered = txs.len();
    if offered == 0 {
        return Err(TestnetError::refused("no spendable coins to spam with"));
    }
    eprintln!(
        "submitting {offered} transactions at {} tx/s for {} s across {} nodes…",
        opts.tps,
        opts.seconds,
        nodes.len()
    );

    let configs: Vec<RpcConfig> = nodes.iter().map(|n| t.rpc_config(n)).collect::<Result<_>>()?;
    let configs = Arc::new(configs);
    let last_send: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sent_at: Arc<Mutex<HashMap<Hash256, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(offered)));
    let refused = Arc::new(Mutex::new(Refusals::default()));
    let accepted_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(offered)));
    let pids: Vec<(String, Option<u32>)> =
        nodes.iter().map(|n| Ok((n.clone(), t.node(n)?.pid))).collect::<Result<_>>()?;
    let cpu_before: Vec<f64> =
        pids.iter().map(|(_, p)| p.and_then(proc_usage).map_or(0.0, |u| u.0)).collect();
    let mut max_rss: Vec<f64> = vec![0.0; pids.len()];
    let start = Instant::now();
    let senders = 4usize;
    let batch = ((opts.tps / 10.0).ceil() as usize).clamp(1, BATCH);
    let batches: Vec<Vec<(usize, Hash256, String)>> = txs.chunks(batch).map(|c| c.to_vec()).collect();
    let batch_interval = batch as f64 / opts.tps;
    let batches = Arc::new(batches);
    let mut handles = Vec::new();
    for s in 0..senders {
        let (batches, configs, sent_at, refused) =
            (batches.clone(), configs.clone(), sent_at.clone(), refused.clone());
        let (last_send, accepted_at) = (last_send.clone(), accepted_at.clone());
        handles.push(std::thread::spawn(move || {
            // One client (keep-alive connection) per node for this thread.
            let clients: Vec<Result<BlockingClient, String>> =
                configs.iter().map(|c| BlockingClient::new(c).map_err(|e| e.to_string())).collect();
            let mut k = s;
            while k < batches.len() {
                let due = start + Duration::from_secs_f64(k as f64 * batch_interval);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Each batch goes to the node that owns most of it (round-robin otherwise).
                let node = batches[k].first().map_or(0, |b| b.0) % clients.len();
                let mut pending: Vec<&(usize, Hash256, String)> = batches[k].iter().collect();
                let mut tries = 0;
                while !pending.is_empty() {
                    let hexes: Vec<String> = pending.iter().map(|(_, _, hex)| hex.clone()).collect();
                    // Recorded before posting (the first time), so a block the watcher reads
                    // while the answer is on its way still counts; refused transactions are
                    // taken out again below.
                    let now = Instant::now();
                    {
                        let mut map = sent_at.lock().expect("lock");
                        for (_, txid, _) in &pending {
                            map.entry(*txid).or_insert(now);
                        }
                    }
                    let answer = match &clients[node] {
                        Ok(c) => c.wait(c.sendrawtransactions(hexes)),
                        Err(e) => Err(crate::rpc::client::RpcError::Client(e.clone())),
                    };
                    {
                        let mut l = last_send.lock().expect("lock");
                        let done = Instant::now();
                        *l = Some(l.map_or(done, |x| x.max(done)));
                    }
                    let retry = tries < BUSY_TRIES;
                    let mut busy = Vec::new();
                    let refuse = |item: &(usize, Hash256, String), why: String, text: String| {
                        sent_at.lock().expect("lock").remove(&item.1);
                        refused.lock().expect("lock").add(why, text);
                    };
                    match answer {
                        Ok(answers) => {
                            // Answers come in call order; a missing one counts as refused.
                            for (j, item) in pending.iter().enumerate() {
                                let answer = answers.get(j).map(|a| match &a.error {
                                    None => Ok(()),
                                    Some(e) => Err(crate::rpc::client::RpcError::Call {
                                        code: e.code,
                                        message: e.message.clone(),
                                    }),
                                });
                                match answer {
                                    Some(Ok(())) => accepted_at.lock().expect("lock").push(Instant::now()),
                                    Some(Err(e)) if retry && is_busy(&e) => busy.push(*item),
                                    Some(Err(e)) => refuse(item, reason(&e), e.to_string()),
                                    None => refuse(
                                        item,
                                        "no answer in the batch reply".into(),
                                        "no answer in the batch reply".into(),
                                    ),
                                }
                            }
                        }
                        Err(e) if retry && is_busy(&e) => busy = pending.clone(),
                        Err(e) => {
                            for item in &pending {
                                refuse(item, reason(&e), e.to_string());
                            }
                        }
                    }
                    if !busy.is_empty() {
                        refused.lock().expect("lock").busy_retries += busy.len();
                        std::thread::sleep(BUSY_PAUSE);
                    }
                    pending = busy;
                    tries += 1;
                }
                k += senders;
            }
        }));
    }

    // Follow the chain on the first node while sending, then drain.
    let watcher = &nodes[0];
    let watch = t.rpc(watcher)?;
    let mut next_height =
        patient(|| watch.wait(watch.getblockcount())).map_err(TestnetError::rpc(watcher))? as u64 + 1;
    let mut latencies: Vec<f64> = Vec::new();
    // A transaction confirmed twice (its first block reorganised away) counts once.
    let mut counted: std::collections::HashSet<Hash256> = std::collections::HashSet::new();
    let mut confirmed_at: Vec<Instant> = Vec::new();
    let mut mempool_samples: Vec<(Instant, u64)> = Vec::new();
    let mut max_mempool = 0u64;
    let mut blocks = 0usize;
    let deadline = start + Duration::from_secs_f64(opts.seconds + opts.drain_seconds);
    let mut sending_done = false;
    loop {
        if !sending_done && handles.iter().all(|h| h.is_finished()) {
            sending_done = true;
        }
        let mut largest = 0;
        for n in &nodes {
            if let Ok(v) = t.ask(n, |c| c.wait(c.getmempoolinfo())) {
                largest = largest.max(v.size);
            }
        }
        max_mempool = max_mempool.max(largest);
        mempool_samples.push((Instant::now(), largest));
        for (i, (_, pid)) in pids.iter().enumerate() {
            if let Some((_, rss)) = pid.and_then(proc_usage) {
                max_rss[i] = max_rss[i].max(rss);
            }
        }
        let height =
            patient(|| watch.wait(watch.getblockcount())).map_err(TestnetError::rpc(watcher))? as u64;
        while next_height <= height {
            let hash = patient(|| watch.wait(watch.getblockhash(next_height as i64)))
                .map_err(TestnetError::rpc(watcher))?;
            let block =
                patient(|| watch.wait(watch.block_txids(&hash))).map_err(TestnetError::rpc(watcher))?;
            let now = Instant::now();
            let map = sent_at.lock().expect("lock");
            let mut hit = false;
            for id in block.tx {
                if let (Some(t0), true) = (map.get(&id), counted.insert(id)) {
                    latencies.push(now.duration_since(*t0).as_secs_f64());
                    confirmed_at.push(now);
                    hit = true;
                }
            }
            blocks += hit as usize;
            next_height += 1;
        }
        let submitted = sent_at.lock().expect("lock").len();
        if sending_done && latencies.len() >= submitted {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for h in handles {
        let _ = h.join();
    }
    let usage: Vec<NodeUsage> = pids
        .iter()
        .enumerate()
        .map(|(i, (name, pid))| {
            let now = pid.and_then(proc_usage);
            NodeUsage {
                name: name.clone(),
                cpu_seconds: now.map_or(0.0, |u| u.0 - cpu_before[i]),
                rss_mib: now.map_or(0.0, |u| u.1),
                max_rss_mib: max_rss[i].max(now.map_or(0.0, |u| u.1)),
            }
        })
        .collect();
    // Batch k is due at k intervals: the window of n batches is n intervals (the last
    // batch stands for the interval after it), or longer if the sending fell behind.
    let submit_seconds = last_send
        .lock()
        .expect("lock")
        .map_or(opts.seconds, |l| l.duration_since(start).as_secs_f64())
        .max(batches.len() as f64 * batch_interval);
    let submitted = sent_at.lock().expect("lock").len();
    let refusals = std::mem::take(&mut *refused.lock().expect("lock"));
    let series = per_second(start, &accepted_at.lock().expect("lock"), &confirmed_at, &mempool_samples);
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> f64 { latencies[((latencies.len() - 1) as f64 * p).round() as usize] };
    let span = confirmed_at.iter().max().map_or(0.0, |last| last.duration_since(start).as_secs_f64());
    let report = SpamReport {
        offered,
        submitted,
        refused: refusals.count,
        refusals: refusals.by_reason,
        busy_retries: refusals.busy_retries,
        unaccounted: submitted.saturating_sub(latencies.len()),
        confirmed: latencies.len(),
        submit_seconds,
        submitted_tps: submitted as f64 / submit_seconds,
        confirmed_tps: if span > 0.0 { latencies.len() as f64 / span } else { 0.0 },
        latency: (!latencies.is_empty()).then(|| [pct(0.5), pct(0.9), pct(0.99), pct(1.0)]),
        max_mempool,
        blocks,
        first_error: refusals.first,
        nodes: usage,
        series,
    };
    if let Some(dir) = &opts.out {
        write_outputs(dir, opts, &report)?;
    }
    Ok(report)
}

/// Refusals seen by the sender threads.
#[derive(Default)]
struct Refusals {
    count: usize,
    first: Option<String>,
    by_reason: std::collections::BTreeMap<String, usize>,
    busy_retries: usize,
}

impl Refusals {
    fn add(&mut self, why: String, text: String) {
        self.count += 1;
        self.first.get_or_insert(text);
        *self.by_reason.entry(why).or_default() += 1;
    }
}

/// Buckets the run into seconds from `start`.
fn per_second(
    start: Instant,
    accepted: &[Instant],
    confirmed: &[Instant],
    mempool: &[(Instant, u64)],
) -> Vec<Second> {
    let sec = |i: &Instant| i.saturating_duration_since(start).as_secs() as usize;
    let last = accepted.iter().chain(confirmed).chain(mempool.iter().map(|(i, _)| i)).map(sec).max();
    let Some(last) = last else { return Vec::new() };
    let mut out: Vec<Second> =
        (0..=last).map(|t| Second { t: t as u32, submitted: 0, confirmed: 0, mempool: 0 }).collect();
    for i in accepted {
        out[sec(i)].submitted += 1;
    }
    for i in confirmed {
        out[sec(i)].confirmed += 1;
    }
    for (i, n) in mempool {
        let m = &mut out[sec(i)].mempool;
        *m = (*m).max(*n);
    }
    out
}

/// The report as JSON and the series as a chart, in `dir` (`spam-<unix time>.json`/`.svg`).
fn write_outputs(dir: &std::path::Path, opts: &SpamOptions, r: &SpamReport) -> Result<()> {
    use crate::plot::{Chart, Series};
    std::fs::create_dir_all(dir).io("creating", dir)?;
    let stamp = crate::clock::unix_secs();
    let json = dir.join(format!("spam-{stamp}.json"));
    let svg = dir.join(format!("spam-{stamp}.svg"));
    let points = |f: &dyn Fn(&Second) -> f64| -> Vec<(f64, f64)> {
        r.series.iter().map(|s| (s.t as f64 + 0.5, f(s))).collect()
    };
    let chart = Chart {
        title: format!(
            "quarry testnet spam: {} tx/s offered for {} s ({} nodes)",
            opts.tps,
            opts.seconds,
            r.nodes.len()
        ),
        x_label: "seconds since the first submission".into(),
        y_label: "transactions per second / in mempool".into(),
        series: vec![
            Series::line("accepted tx/s", points(&|s| s.submitted as f64)),
            Series::line("confirmed tx/s", points(&|s| s.confirmed as f64)),
            Series { dashed: true, ..Series::line("largest mempool", points(&|s| s.mempool as f64)) },
        ],
        y_from_zero: true,
    };
    let text = serde_json::to_string_pretty(r)
        .map_err(|source| TestnetError::Encode { what: "the spam report", source })?;
    std::fs::write(&json, text).io("writing", &json)?;
    std::fs::write(&svg, chart.to_svg()).io("writing", &svg)?;
    eprintln!("series written to {} and {}", json.display(), svg.display());
    Ok(())
}

/// The report as text.
pub fn report_text(r: &SpamReport) -> String {
    let latency = match r.latency {
        Some([p50, p90, p99, max]) => {
            format!("p50 {p50:.2} s  p90 {p90:.2} s  p99 {p99:.2} s  max {max:.2} s")
        }
        None => "- (nothing confirmed)".into(),
    };
    let mut out = format!(
        "offered      {}\nsubmitted    {} ({:.1} tx/s over {:.1} s; {} resubmissions after \"busy\")\nrefused      {}{}\n",
        r.offered, r.submitted, r.submitted_tps, r.submit_seconds, r.busy_retries, r.refused,
        r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
    );
    for (why, n) in &r.refusals {
        out.push_str(&format!("  {n:>8}  {why}\n"));
    }
    out.push_str(&format!(
        "confirmed    {} ({:.1} tx/s from first submission to last confirmation, {} blocks)\nunaccounted  {}\nlatency      {latency}\nmax mempool  {} txs\n",
        r.confirmed, r.confirmed_tps, r.blocks, r.unaccounted, r.max_mempool,
    ));
    for n in &r.nodes {
        out.push_str(&format!(
            "node {:<8} cpu {:>7.1} s  rss {:>6.0} MiB (max {:.0} MiB)\n",
            n.name, n.cpu_seconds, n.rss_mib, n.max_rss_mib
        ));
    }
    out
}

/// An error when some submitted transactions did not confirm within the drain time (the
/// report is printed first), so scripts see the failure in the exit status.
pub fn check_complete(r: &SpamReport, drain_seconds: f64) -> Result<()> {
    if r.confirmed < r.submitted {
        return Err(TestnetError::check_failed(format!(
            "{} of {} submitted transactions were not confirmed within the --drain of {drain_seconds} s",
            r.submitted - r.confirmed,
            r.submitted
        )));
    }
    if r.submitted == 0 {
        return Err(TestnetError::check_failed(format!(
            "no transaction was accepted{}",
            r.first_error.as_deref().map(|e| format!(" (first refusal: {e})")).unwrap_or_default()
        )));
    }
    Ok(())
}
