//! The miner against a real chainstate: regtest and a low-target dev network, cancellation,
//! exactly-once delivery and extra-nonce rolling.

use quarry::chain::Chain;
use quarry::consensus::pow::target_to_compact;
use quarry::consensus::{Network, Params};
use quarry::miner::kernel::Kernel;
use quarry::miner::template::BlockTemplate;
use quarry::miner::{mine_blocks, CoinbaseOnly, HashRateMeter, Miner, MinerConfig};
use quarry::primitives::{Amount, Hash256, Script, U256};
use quarry::script::opcodes::{Instruction, Instructions};
use quarry::testkit::{key, p2pkh_lock};
use std::time::{Duration, Instant};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// `base` with an easiest (and genesis) target of `2^bits`.
fn with_limit(base: Params, bits: u32) -> &'static Params {
    let limit = U256::ONE.shl(bits);
    Box::leak(Box::new(Params { pow_limit: limit, genesis_bits: target_to_compact(&limit), ..base }))
}

#[test]
fn mined_regtest_blocks_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), Network::Regtest.params()).unwrap();
    let miner = Miner::start(MinerConfig::new(2));
    let mined =
        mine_blocks(&mut chain, &miner, &CoinbaseOnly { lock: p2pkh_lock(&key(1)) }, 5, &now).unwrap();
    assert_eq!(chain.tip().height, 5);
    assert_eq!(chain.tip().hash, *mined.last().unwrap());
    assert_eq!(chain.utxo_digest().unwrap().count, 5, "every coinbase pays key 1");
}

#[test]
fn mined_dev_blocks_with_a_low_target_are_accepted() {
    // The dev network's rules (ASERT retargeting, 5 s spacing) with a 2^246 limit.
    let params = with_limit(Params::dev(), 246);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), params).unwrap();
    let miner = Miner::start(MinerConfig::new(2));
    mine_blocks(&mut chain, &miner, &CoinbaseOnly { lock: p2pkh_lock(&key(2)) }, 4, &now).unwrap();
    assert_eq!(chain.tip().height, 4);
    // Mined far ahead of the 5-second schedule, the later blocks carry harder targets.
    let bits = chain.record(&chain.tip().hash).unwrap().header.bits;
    assert_ne!(bits, params.genesis_bits, "ASERT raised the difficulty");
}

fn wait_until(what: &str, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

fn impossible_template(prev: u8) -> BlockTemplate {
    // bits 0x03000001: target 1, which no hash meets.
    BlockTemplate::new(Hash256([prev; 32]), 1, 1, 0x0300_0001, Script::default(), Amount::ZERO, vec![])
}

#[test]
fn every_thread_switches_when_the_tip_changes() {
    for kernel in [Kernel::detect(), Kernel::Portable] {
        let miner = Miner::start(MinerConfig { kernel, ..MinerConfig::new(2) });
        let a = miner.set_template(impossible_template(1));
        wait_until("all threads on job A", || miner.working_on().iter().all(|j| *j == a));
        let before = miner.hashes();
        let b = miner.set_template(impossible_template(2));
        let took = wait_until("all threads on job B", || miner.working_on().iter().all(|j| *j == b));
        eprintln!("{kernel:?}: all threads switched jobs in {took:?}");
        assert!(miner.hashes().iter().zip(&before).all(|(a, b)| a > b), "threads were hashing");
        let mut meter = HashRateMeter::new(Duration::from_secs(10));
        meter.sample(&miner);
        // Counters move once per scanned chunk: wait (bounded) until every thread's has, so a
        // loaded machine cannot make a thread look idle.
        let first = miner.hashes();
        wait_until("every thread to count hashes", || miner.hashes().iter().zip(&first).all(|(a, b)| a > b));
        meter.sample(&miner);
        let rate = meter.rate();
        assert_eq!(rate.per_thread.len(), 2);
        assert!(rate.per_thread.iter().all(|r| *r > 0.0) && rate.total > 0.0);
        miner.clear();
        wait_until("all threads idle", || miner.working_on().iter().all(|j| *j == 0));
        assert!(miner.take_found(Duration::from_millis(50)).is_none());
    }
}

#[test]
fn no_stale_block_and_one_block_per_job() {
    let miner = Miner::start(MinerConfig::new(2));
    let easy = |prev: u8| {
        BlockTemplate::new(Hash256([prev; 32]), 1, 1, 0x207f_ffff, Script::default(), Amount::ZERO, vec![])
    };
    for round in 0..20u8 {
        miner.set_template(easy(2 * round));
        // The tip changes at once: whatever job A found must never come out.
        miner.set_template(easy(2 * round + 1));
        let block = miner.take_found(Duration::from_secs(10)).expect("a block for job B");
        assert_eq!(block.header.prev, Hash256([2 * round + 1; 32]), "round {round}: stale block");
        assert!(
            miner.take_found(Duration::from_millis(30)).is_none(),
            "round {round}: a second block for one job"
        );
    }
}

#[test]
fn extra_nonce_rolls_when_the_nonce_range_is_spent() {
    // Target 2^248: about 256 hashes a block; only 40 nonces per extra nonce.
    let params = with_limit(Params::regtest(), 248);
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::open(dir.path(), params).unwrap();
    let miner = Miner::start(MinerConfig { max_nonce: 39, ..MinerConfig::new(1) });
    let mut rolled = false;
    for _ in 0..5 {
        let hash =
            mine_blocks(&mut chain, &miner, &CoinbaseOnly { lock: p2pkh_lock(&key(3)) }, 1, &now).unwrap()[0];
        let block = chain.store().get_block(&hash).unwrap().unwrap();
        assert!(block.header().nonce <= 39);
        // The coinbase's second push is the 8-byte extra nonce (thread << 32 | counter).
        let unlock = &block.block().txs[0].inputs[0].unlock.0;
        let pushes: Vec<Instruction> = Instructions::new(unlock).map(|i| i.unwrap().1).collect();
        let Instruction::Push(extra) = pushes[1] else { panic!("no extra-nonce push: {pushes:?}") };
        let extra = u64::from_le_bytes(extra.try_into().unwrap());
        rolled |= extra & 0xffff_ffff > 0;
    }
    assert!(rolled, "some block needed more than one extra nonce");
    assert_eq!(chain.tip().height, 5);
}
