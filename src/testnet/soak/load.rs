//! The soak's load: a thread that, every [`TICK`], sends one transaction from each allowed
//! node's wallet to that node (its largest confirmed coin split in two, back to itself) and
//! records which of the transactions it sent it has seen confirmed [`CONFIRMED_DEPTH`]
//! deep on an allowed node. The soak disallows a node before it kills or isolates it, so
//! transactions only go to, and confirmations are only read from, nodes in the network.

use crate::primitives::{Amount, Hash256, Transaction, TxIn, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::{BlockingClient, RpcConfig, RpcError};
use crate::script::templates::address_lock;
use crate::wallet::keystore::Wallet;
use crate::wallet::ops::{self, WalletError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often each allowed node gets a transaction.
pub const TICK: Duration = Duration::from_millis(250);
/// Confirmations after which a transaction counts as confirmed (a soak's provoked
/// reorganisations are 2-4 blocks deep; a transaction only in a branch that lost, whose
/// node was then killed with it in its mempool, is legitimately gone).
pub const CONFIRMED_DEPTH: u32 = 6;
/// Fee of a spam transaction (one input, two outputs, about 190 bytes).
const FEE: u64 = 2_000;
/// Smallest coin split.
const MIN_COIN: u64 = 100_000;

/// What the load saw.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    /// Transactions a node accepted.
    pub sent: HashSet<Hash256>,
    /// Of those, seen [`CONFIRMED_DEPTH`] deep: txid -> (node, height).
    pub confirmed: HashMap<Hash256, (String, u32)>,
    /// Sends refused or failed (the node was being killed, a coin was spent meanwhile).
    pub refused: usize,
}

/// One node as the load sees it.
pub struct LoadNode {
    /// Its name.
    pub name: String,
    /// Its RPC address and data directory (the cookie is read again at every tick).
    pub rpc: RpcConfig,
    /// Its wallet.
    pub wallet: Wallet,
}

/// The running load.
pub struct Load {
    allowed: Arc<Mutex<Vec<bool>>>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<LoadStats>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts the load on `nodes` (all allowed).
    pub fn start(nodes: Vec<LoadNode>) -> Load {
        let allowed = Arc::new(Mutex::new(vec![true; nodes.len()]));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let (a, s, st) = (allowed.clone(), stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || run(nodes, a, s, st));
        Load { allowed, stop, stats, thread: Some(thread) }
    }

    /// Lets the load use node `i` (or not).
    pub fn allow(&self, i: usize, yes: bool) {
        if let Some(a) = self.allowed.lock().expect("lock").get_mut(i) {
            *a = yes;
        }
    }

    /// Stops the thread and returns what it saw.
    pub fn finish(mut self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.stats.lock().expect("lock"))
    }

    /// Transactions sent and seen confirmed so far.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.stats.lock().expect("lock");
        (s.sent.len(), s.confirmed.len())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    nodes: Vec<LoadNode>,
    allowed: Arc<Mutex<Vec<bool>>>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<LoadStats>>,
) {
    // Heights already scanned for confirmations, per node.
    let mut scanned: Vec<u32> = vec![0; nodes.len()];
    while !stop.load(Ordering::Relaxed) {
        for (i, node) in nodes.iter().enumerate() {
            if !allowed.lock().expect("lock")[i] {
                continue;
            }
            let Ok(rpc) = BlockingClient::new(&node.rpc) else { continue };
            match send_one(node, &rpc) {
                Ok(Some(txid)) => {
                    stats.lock().expect("lock").sent.insert(txid);
                }
                Ok(None) => {}
                Err(_) => stats.lock().expect("lock").refused += 1,
            }
            let _ = scan(node, &rpc, &mut scanned[i], &stats);
        }
        std::thread::sleep(TICK);
    }
}

/// Splits the wallet's largest spendable coin in two; `None` if it has none big enough.
fn send_one(node: &LoadNode, rpc: &BlockingClient) -> Result<Option<Hash256>, WalletError> {
    let coins = ops::spendable(&node.wallet, rpc)?;
    let Some(coin) = coins.iter().filter(|c| c.out.value.to_sat() >= MIN_COIN).max_by_key(|c| c.out.value)
    else {
        return Ok(None);
    };
    let half = (coin.out.value.to_sat() - FEE) / 2;
    let lock = address_lock(&node.wallet.address(0));
    let out = |v: u64| -> Result<TxOut, WalletError> {
        Ok(TxOut { value: Amount::from_sat(v)?, lock: lock.clone() })
    };
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: coin.outpoint, unlock: Default::default() }],
        outputs: vec![out(half)?, out(coin.out.value.to_sat() - FEE - half)?],
        lock_time: 0,
    };
    ops::sign_p2pkh_inputs(&node.wallet, &mut tx, std::slice::from_ref(&coin.out))?;
    Ok(Some(rpc.wait(rpc.sendrawtransaction(hex::encode(tx.encode())))?))
}

/// Records sent transactions in blocks now [`CONFIRMED_DEPTH`] deep on this node.
fn scan(
    node: &LoadNode,
    rpc: &BlockingClient,
    scanned: &mut u32,
    stats: &Mutex<LoadStats>,
) -> Result<(), RpcError> {
    let tip = rpc.wait(rpc.getblockcount())?;
    let deep = (tip + 1).saturating_sub(CONFIRMED_DEPTH);
    while *scanned < deep {
        let h = *scanned + 1;
        let hash = rpc.wait(rpc.getblockhash(h as i64))?;
        let block = rpc.wait(rpc.block_txids(&hash))?;
        let mut s = stats.lock().expect("lock");
        for txid in block.tx {
            if s.sent.contains(&txid) {
                s.confirmed.entry(txid).or_insert((node.name.clone(), h));
            }
        }
        *scanned = h;
    }
    Ok(())
}
