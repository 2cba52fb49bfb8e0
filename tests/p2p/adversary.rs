//! The live selfish miner (`--strategy selfish`): its withheld blocks reach no peer, not even
//! its own RPC view, until the strategy publishes them; when the honest network catches up
//! it releases its branch and the honest node reorganises onto it.

use super::*;
use quarry::rpc::types::{GetBlock, TipStatus};

/// Who the coinbase of `hash` on `n` pays.
fn payee(n: &Node, hash: &str) -> String {
    let c = n.client();
    let GetBlock::Full(b) = c.wait(c.getblock(hash.to_string(), Some(2u8.into()))).unwrap() else {
        panic!("getblock 2 answered another form")
    };
    b.tx[0].vout[0].script_pubkey.address.clone().unwrap_or_default()
}

#[test]
fn a_selfish_miner_withholds_until_the_network_catches_up_then_releases() {
    let dir = tempfile::tempdir().unwrap();
    let selfish_addr = address(Network::Regtest, 1);
    // Regtest: about every second hash solves a block, so 2 H/s is about a block a second.
    let s = Node::start(
        &dir.path().join("s"),
        "regtest",
        Some(free_port()),
        &[
            "--mine",
            "--miner-address",
            &selfish_addr,
            "--strategy",
            "selfish",
            "--mine-hashrate",
            "2",
            "--mine-threads",
            "1",
        ],
    );
    let h = start(&dir.path().join("h"), &[s.p2p_addr()]);
    wait_for(30, "h connected to s", || connected(&h, 1));
    let sc = s.client();
    // With no honest block, the strategy withholds everything it finds.
    let mut info = sc.wait(sc.getstrategyinfo()).unwrap();
    wait_for(60, "three withheld blocks", || {
        info = sc.wait(sc.getstrategyinfo()).unwrap();
        info.withheld >= 3
    });
    assert_eq!((info.strategy.as_str(), info.published), ("selfish", 0), "{info:?}");
    let head = info.mine_on.expect("a selfish miner mines on its private head").to_string();
    // Nobody knows the withheld head: not the peer (gossip, sync), not the miner's chain.
    for n in [&s, &h] {
        let c = n.client();
        assert_eq!(c.wait(c.getblockcount()).unwrap(), 0);
        let e = c.wait(c.getblockheader(head.clone(), Some(true))).unwrap_err();
        assert_eq!(e.code(), Some(-5), "{e}");
    }
    // The honest node mines; once it is within one block of the selfish branch, that branch
    // is published and, being longer, adopted.
    let mut mined = 0;
    wait_for(120, "h to adopt the selfish branch", || {
        generate(&h, 1, 2);
        mined += 1;
        std::thread::sleep(Duration::from_millis(300));
        payee(&h, &tip(&h)) == selfish_addr
    });
    let info = sc.wait(sc.getstrategyinfo()).unwrap();
    assert!(info.published >= 3 && info.longest_withheld >= 3, "{info:?}");
    // h abandoned its own blocks for the longer branch.
    let hc = h.client();
    let tips = hc.wait(hc.getchaintips()).unwrap();
    assert!(tips.iter().any(|t| t.status == TipStatus::ValidFork), "{tips:?} after {mined} honest blocks");
    h.stop();
    s.stop();
}

/// The withheld-block bound (docs/ARCHITECTURE.md, memory bounds): a selfish miner that no
/// honest block ever catches up with holds at most `MAX_WITHHELD` blocks, then publishes its
/// whole branch and starts withholding afresh.
#[test]
fn a_selfish_miner_alone_publishes_everything_at_the_withheld_limit() {
    use quarry::node::adversary::MAX_WITHHELD;
    let dir = tempfile::tempdir().unwrap();
    let s = Node::start(
        &dir.path().join("s"),
        "regtest",
        None,
        &[
            "--mine",
            "--miner-address",
            &address(Network::Regtest, 1),
            "--strategy",
            "selfish",
            "--mine-threads",
            "1",
        ],
    );
    let sc = s.client();
    let mut info = sc.wait(sc.getstrategyinfo()).unwrap();
    wait_for(180, "the selfish miner to reach its withheld limit", || {
        info = sc.wait(sc.getstrategyinfo()).unwrap();
        info.published >= MAX_WITHHELD as u64
    });
    assert_eq!(info.longest_withheld, MAX_WITHHELD as u64, "{info:?}");
    assert!(info.withheld < MAX_WITHHELD as u64, "{info:?}");
    assert_eq!(info.abandoned, 0, "{info:?}");
    // The published branch is the chain: every block of it connected.
    let height = sc.wait(sc.getblockcount()).unwrap();
    assert!(height as usize >= MAX_WITHHELD, "height {height} after {info:?}");
    s.stop();
}

#[test]
fn double_spend_and_strategy_refusals_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // --strategy without --mine.
    let out = common::quarry(&[
        "node",
        "--network",
        "regtest",
        "--datadir",
        dir.path().join("x").to_str().unwrap(),
        "--strategy",
        "selfish",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --mine too"));
    let out = common::quarry(&["node", "--network", "regtest", "--mine-hashrate", "fast"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a hash rate"));
    // startdoublespend on a node without the continuous miner.
    let n = start(&dir.path().join("n"), &[]);
    let c = n.client();
    let coin = TxOut { value: Amount::from_sat(100_000).unwrap(), lock: p2pkh_lock(&key(1)) };
    let out = TxOut { value: Amount::from_sat(90_000).unwrap(), lock: p2pkh_lock(&key(1)) };
    let tx = spend_p2pkh(&key(1), &[(OutPoint { txid: Hash256::ZERO, index: 0 }, coin)], vec![out], 0);
    let e = c.wait(c.startdoublespend("00".repeat(32), hex::encode(tx.encode()), 1, 1)).unwrap_err();
    assert!(e.to_string().contains("--mine"), "{e}");
    let info = c.wait(c.getstrategyinfo()).unwrap();
    assert_eq!((info.strategy.as_str(), info.mining, info.attack), ("honest", false, None));
    n.stop();
}
