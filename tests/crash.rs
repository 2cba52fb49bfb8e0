//! Crash consistency: a child process connecting blocks is killed with SIGKILL at random
//! moments; on reopen the tip is a block boundary and the UTXO set equals a rebuild from the
//! stored blocks. The child's coins cache is small (64 KiB: a flush every ~10 blocks, on its
//! background thread) and its blocks include a 50-block reorganisation, so kills land during
//! flushes and during the reorg too.

use quarry::chain::coins::CacheConfig;
use quarry::chain::Chain;
use quarry::consensus::validation::block_subsidy;
use quarry::consensus::{Network, Params};
use quarry::primitives::Hash256;
use quarry::primitives::{Amount, Block, OutPoint, TxOut};
use quarry::testkit::{assemble, coinbase, key, p2pkh_lock, spend_p2pkh};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOW: u64 = 2_000_000_000;
const CHILD_ENV: &str = "QUARRY_CRASH_CHILD_DIR";

fn params() -> &'static Params {
    Network::Regtest.params()
}

/// Extends `prefix` (a branch from genesis, heights 1..=len) by `n` blocks tagged `tag`;
/// from height 12 each block fans a matured coinbase out to 20 outputs and spends the
/// previous block's fan-out one by one (21 signatures a block). Returns the new blocks.
fn build_blocks(prefix: &[Block], n: u32, tag: &[u8]) -> Vec<Block> {
    let p = params();
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), p).unwrap();
    for b in prefix {
        chain.process_block(b.clone(), NOW).unwrap();
    }
    let k = key(1);
    let mut branch: Vec<Block> = prefix.to_vec();
    let start = prefix.len() as u32 + 1;
    for height in start..start + n {
        let tip = chain.tip().hash;
        let ctx = chain.header_context(&tip, NOW).unwrap();
        let mut txs = vec![coinbase(height, block_subsidy(p, height), p2pkh_lock(&k), tag)];
        if height >= 12 {
            let cb = &branch[(height - 11 - 1) as usize].txs[0];
            let coin = (OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone());
            let each = Amount::from_sat(coin.1.value.to_sat() / 20 - 100).unwrap();
            let outs = (0..20).map(|_| TxOut { value: each, lock: p2pkh_lock(&k) }).collect();
            txs.push(spend_p2pkh(&k, &[coin], outs, 0));
        }
        if height >= 13 {
            let fan_tx = &branch[(height - 2) as usize].txs[1];
            for (i, out) in fan_tx.outputs.iter().enumerate() {
                let op = OutPoint { txid: fan_tx.txid(), index: i as u32 };
                let v = Amount::from_sat(out.value.to_sat() - 10).unwrap();
                txs.push(spend_p2pkh(
                    &k,
                    &[(op, out.clone())],
                    vec![TxOut { value: v, lock: p2pkh_lock(&k) }],
                    0,
                ));
            }
        }
        let time = chain.record(&tip).unwrap().header.time + 5;
        let block = assemble(p, tip, time, ctx.expected_bits, txs);
        chain.process_block(block.clone(), NOW).unwrap();
        assert_eq!(chain.tip().hash, block.hash(), "test blocks must be valid");
        branch.push(block);
    }
    branch.split_off(prefix.len())
}

fn write_blocks(path: &Path, blocks: &[Block]) {
    let mut bytes = Vec::new();
    for b in blocks {
        let enc = b.encode();
        bytes.extend_from_slice(&(enc.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&enc);
    }
    std::fs::write(path, bytes).unwrap();
}

fn read_blocks(path: &Path) -> Vec<Block> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let n = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        out.push(Block::decode(&bytes[i + 4..i + 4 + n], usize::MAX).unwrap());
        i += 4 + n;
    }
    out
}

/// The child: connect every block in the file (skipping those already stored), then exit.
/// Does nothing unless started by the parent test with the environment variable set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = Path::new(&dir);
    let blocks = read_blocks(&dir.join("blocks.bin"));
    let cache = CacheConfig { limit_bytes: 64 << 10, ..CacheConfig::default() };
    let mut chain = Chain::open_with(&dir.join("chain"), params(), cache).unwrap();
    for b in blocks {
        chain.process_block(b, NOW).unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_leaves_a_block_boundary() {
    // Branch A to height 300, then branch B from A's block 250 to height 330: B's block 301
    // makes B the most-work branch (50 blocks disconnected, 51 connected).
    let a = build_blocks(&[], 300, b"a");
    let b = build_blocks(&a[..250], 80, b"b");
    let height_of: HashMap<Hash256, u32> = a
        .iter()
        .enumerate()
        .chain(b.iter().enumerate().map(|(i, x)| (i + 250, x)))
        .map(|(i, x)| (x.hash(), i as u32 + 1))
        .collect();
    let blocks: Vec<Block> = a.iter().chain(&b).cloned().collect();
    let final_tip = b.last().unwrap().hash();
    let work = tempfile::tempdir().unwrap();
    write_blocks(&work.path().join("blocks.bin"), &blocks);
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
    let mut last_height = 0;
    let mut kills = 0;
    let mut killed_mid_run = 0;
    let mut reorged = false;
    let mut max_delay = 300u64;
    for round in 0..24 {
        let mut child = Command::new(&exe)
            .args(["crash::crash_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(5 + (seed >> 33) % max_delay);
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
            child.wait().unwrap();
        } else {
            assert!(child.wait().unwrap().success(), "round {round}: the child failed on its own");
        }

        let chain = Chain::open(&work.path().join("chain"), params()).unwrap();
        let tip = chain.tip();
        assert!(tip.height >= last_height, "round {round}: the tip went backwards");
        last_height = tip.height;
        eprintln!("round {round}: killed {killed}, reopened at height {}", tip.height);
        if killed && tip.height > 0 && tip.hash != final_tip {
            killed_mid_run += 1;
        }
        if tip.height > 0 {
            assert_eq!(height_of.get(&tip.hash), Some(&tip.height), "round {round}: tip is a block boundary");
        }
        reorged |= tip.height > 300;
        // Rebuild from the stored blocks alone and compare UTXO sets.
        let fresh_dir = tempfile::tempdir().unwrap();
        let mut fresh = Chain::open(fresh_dir.path(), params()).unwrap();
        for h in 1..=tip.height {
            let stored = chain.store().get_block(&chain.hash_at(h).unwrap()).unwrap().unwrap();
            fresh.process_block(stored.into_block(), NOW).unwrap();
        }
        assert_eq!(fresh.tip(), tip);
        assert_eq!(fresh.utxo_digest().unwrap(), chain.utxo_digest().unwrap(), "round {round}");
        if tip.hash == final_tip {
            if killed_mid_run > 0 {
                break;
            }
            // The child connected everything before a kill landed mid-run (a fast machine):
            // start again on a fresh chainstate with shorter delays.
            drop((chain, fresh));
            std::fs::remove_dir_all(work.path().join("chain")).unwrap();
            last_height = 0;
            max_delay = (max_delay / 2).max(10);
        }
    }
    assert!(kills > 0 && killed_mid_run > 0, "at least one child must have been killed mid-run");
    eprintln!("{kills} kills, {killed_mid_run} mid-run, reorg reached: {reorged}");
    // Finally let the child finish: everything connects.
    let status = Command::new(&exe)
        .args(["crash::crash_child", "--exact", "--test-threads", "1"])
        .env(CHILD_ENV, work.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let chain = Chain::open(&work.path().join("chain"), params()).unwrap();
    assert_eq!(chain.tip().hash, final_tip);
}

fn quarry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).output().unwrap()
}

/// `quarry chain verify` on a stopped node's data directory: equal digests on a sound
/// chainstate (exit 0, JSON on stdout), a named difference and exit 1 once one stored coin is
/// deleted behind the chain's back.
#[test]
fn chain_verify_passes_a_sound_chainstate_and_fails_a_corrupted_one() {
    let blocks = build_blocks(&[], 30, b"v");
    let datadir = tempfile::tempdir().unwrap();
    let chain_dir = datadir.path().join("chainstate");
    {
        let cache = CacheConfig { limit_bytes: 4 << 10, ..CacheConfig::default() };
        let mut chain = Chain::open_with(&chain_dir, params(), cache).unwrap();
        for b in &blocks {
            chain.process_block(b.clone(), NOW).unwrap();
        }
    }
    let d = datadir.path().to_str().unwrap();
    let ok = quarry(&["chain", "verify", "--network", "regtest", "--datadir", d, "--json"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("stdout is the JSON report");
    assert_eq!(report["height"], 30);
    assert_eq!(report["node"], report["rebuilt"]);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    // These blocks' coinbases claim the subsidy alone (the fees are left unclaimed).
    assert!(report["node"]["total_sat"].as_u64().unwrap() < report["issued_sat"].as_u64().unwrap());
    let text = quarry(&["chain", "verify", "--network", "regtest", "--datadir", d]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("ok: the node's UTXO set equals the rebuild"));

    // Delete one unspent coin (the fan-out of block 29 is spent only by block 30's children).
    let fan = &blocks[29].txs[1];
    let op = OutPoint { txid: fan.txid(), index: 0 };
    quarry::chain::verify::corrupt_coin(&chain_dir, &op, None).unwrap();
    let bad = quarry(&["chain", "verify", "--network", "regtest", "--datadir", d, "--json"]);
    assert!(!bad.status.success(), "a corrupted chainstate must not verify");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("does not verify") && stderr.contains("differs from the rebuild"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("the report is still printed");
    assert_eq!(report["node"]["count"].as_u64().unwrap() + 1, report["rebuilt"]["count"].as_u64().unwrap());

    let none = quarry(&["chain", "verify", "--network", "regtest", "--datadir", &format!("{d}/nothing")]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no chainstate at"));
}

/// A short `quarry testnet soak`: four kills on a two-node testnet (one round of random,
/// mid-flush and mid-reorg, then one more), every restart verified, nothing lost, and the
/// aimed kills landed where aimed (their marker files were seen).
#[test]
fn a_short_soak_survives_random_mid_flush_and_mid_reorg_kills() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("soak");
    let out = quarry(&[
        "testnet",
        "--dir",
        run_dir.to_str().unwrap(),
        "--json",
        "soak",
        "--kills",
        "4",
        "--seed",
        "7",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is the JSON report ({e}); stderr:\n{stderr}"));
    assert!(out.status.success(), "soak failed: {report:#}\nstderr:\n{stderr}");
    assert_eq!(report["kills"], 4, "{report:#}");
    assert_eq!(report["survived"], 4, "{report:#}");
    assert_eq!(report["missing"], 0, "{report:#}");
    assert_eq!(report["digests_equal"], true, "{report:#}");
    assert_eq!(report["coins_add_up"], true, "{report:#}");
    assert_eq!(report["coins_sat"], report["issued_sat"]);
    let kinds = &report["by_kind"];
    assert!(kinds["flush"].as_u64().unwrap() >= 1, "a kill landed mid-flush: {report:#}");
    assert!(kinds["reorg"].as_u64().unwrap() >= 1, "a kill landed mid-reorg: {report:#}");
    assert!(report["txs_confirmed"].as_u64().unwrap() > 0, "the load confirmed transactions: {report:#}");
    for r in report["records"].as_array().unwrap() {
        if r["kind"] != "random" {
            assert_eq!(r["landed"], true, "aimed kill missed: {r}");
        }
    }
}
