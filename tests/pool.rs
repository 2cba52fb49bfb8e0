//! Mining through a pool: `getblocktemplate` (fields, long polling) against a real node,
//! and the Stratum pool (`quarry pool`) end to end on loopback.

mod common;

use common::{address, Node};
use quarry::consensus::Network;
use quarry::primitives::{Amount, Block, OutPoint, TxOut};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::types::TemplateRequest;
use quarry::testkit::{key, p2pkh_lock, spend_p2pkh};
use std::time::{Duration, Instant};

fn regtest_node(dir: &std::path::Path) -> Node {
    Node::start(dir, "regtest", Some(common::free_port()), &["--no-p2p"])
}

#[test]
fn getblocktemplate_gives_the_tip_the_mempool_fees_and_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let node = regtest_node(dir.path());
    let c = node.client();
    let hashes = c.wait(c.generatetoaddress(11, address(Network::Regtest, 1))).unwrap();
    // Spend block 1's coinbase (mature at height 11), then spend that spend: a parent and
    // a child in the mempool.
    let block1 = Block::decode(&c.wait(c.block_bytes(&hashes[0])).unwrap(), 4_000_000).unwrap();
    let cb = &block1.txs[0];
    let coin = (OutPoint { txid: cb.txid(), index: 0 }, cb.outputs[0].clone());
    let v1 = cb.outputs[0].value.to_sat() - 10_000;
    let parent = spend_p2pkh(
        &key(1),
        &[coin],
        vec![TxOut { value: Amount::from_sat(v1).unwrap(), lock: p2pkh_lock(&key(1)) }],
        0,
    );
    let coin2 = (OutPoint { txid: parent.txid(), index: 0 }, parent.outputs[0].clone());
    let child = spend_p2pkh(
        &key(1),
        &[coin2],
        vec![TxOut { value: Amount::from_sat(v1 - 25_000).unwrap(), lock: p2pkh_lock(&key(2)) }],
        0,
    );
    for tx in [&parent, &child] {
        c.wait(c.sendrawtransaction(hex::encode(tx.encode()))).unwrap();
    }

    let t = c.wait(c.getblocktemplate(None)).unwrap();
    assert_eq!(t.previousblockhash, *hashes.last().unwrap());
    assert_eq!(t.height, 12);
    assert_eq!(t.bits, "207fffff");
    assert_eq!(t.target, format!("7fffff{}", "0".repeat(58)));
    assert!(t.mintime <= t.curtime, "mintime {} curtime {}", t.mintime, t.curtime);
    assert_eq!(t.transactions.len(), 2);
    assert_eq!(t.transactions[0].txid, parent.txid());
    assert_eq!(t.transactions[0].data, hex::encode(parent.encode()));
    assert_eq!(t.transactions[0].fee, 10_000);
    assert!(t.transactions[0].depends.is_empty());
    assert_eq!(t.transactions[1].txid, child.txid());
    assert_eq!(t.transactions[1].fee, 25_000);
    assert_eq!(t.transactions[1].depends, vec![1], "the child spends transaction 1");
    assert_eq!(t.coinbasevalue, 50 * 100_000_000 + 35_000, "subsidy plus both fees");
    assert!(t.longpollid.starts_with(&t.previousblockhash.to_string()), "{}", t.longpollid);

    // The same state gives the same long-poll id; a stale id answers at once.
    let again = c.wait(c.getblocktemplate(None)).unwrap();
    assert_eq!(again.longpollid, t.longpollid);
    let stale = TemplateRequest { longpollid: Some("stale".into()), ..Default::default() };
    let start = Instant::now();
    c.wait(c.getblocktemplate(Some(stale))).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "a stale longpollid does not wait");

    // A proposal is refused, naming the mode.
    let e = node.rpc_err("getblocktemplate", serde_json::json!([{"mode": "proposal"}]));
    assert_eq!(e["code"], -8, "{e}");
    assert!(e["message"].as_str().unwrap().contains("proposal"), "{e}");
}

#[test]
fn a_long_poll_waits_for_a_new_block_and_wakes_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = regtest_node(dir.path());
    let c = node.client();
    c.wait(c.generatetoaddress(1, address(Network::Regtest, 1))).unwrap();
    let t = c.wait(c.getblocktemplate(None)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let config = node.config();
    let id = t.longpollid.clone();
    std::thread::spawn(move || {
        let c = quarry::rpc::client::BlockingClient::new(&config).unwrap();
        let req = TemplateRequest { longpollid: Some(id), ..Default::default() };
        let _ = tx.send(c.wait(c.getblocktemplate(Some(req))));
    });
    // Nothing changes: the poll is still waiting.
    assert!(rx.recv_timeout(Duration::from_millis(700)).is_err(), "the long poll answered without a change");
    let new = c.wait(c.generatetoaddress(1, address(Network::Regtest, 2))).unwrap();
    let woke =
        rx.recv_timeout(Duration::from_secs(20)).expect("the long poll woke on the new block").unwrap();
    assert_eq!(woke.previousblockhash, new[0]);
    assert_eq!(woke.height, t.height + 1);
    assert_ne!(woke.longpollid, t.longpollid);
}
