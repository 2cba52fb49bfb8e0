//! Compact block relay (PROTOCOL §13.6a) between real nodes, and against a hand-driven peer
//! that lies.

use super::*;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response;
use quarry::p2p::behaviour::{build_swarm, BehaviourEvent, SwarmSettings};
use quarry::p2p::compact::CompactBlock;
use quarry::p2p::wire::{Request, Response, SyncRequest, Topic};
use std::net::SocketAddr;

/// `quarry_relay_compact_blocks_total{outcome=..}` of a node's metrics endpoint.
fn compact_count(metrics: SocketAddr, outcome: &str) -> u64 {
    let (status, text) = quarry::httpd::get(metrics, "/metrics", Duration::from_secs(10), 8 << 20).unwrap();
    assert_eq!(status, 200, "{text}");
    let series = format!("quarry_relay_compact_blocks_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// A hand-driven peer subscribed to the blocks topic and not the compact one receives the
/// block `a` mines meanwhile, in full.
fn full_block_only_peer_gets_blocks(a: &Node) {
    let a_p2p: libp2p::Multiaddr = a.p2p_addr().parse().unwrap();
    let before = a.rpc("getconnectioncount", json!([])).as_u64().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client = a.client();
    let got_one = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = got_one.clone();
    let miner = std::thread::spawn(move || {
        // The RPC client blocks, so it runs on its own thread: once the peer is in, a block
        // every 300 ms until the peer has one (no guess at when subscriptions and the node's
        // full-only flag have settled); the peer's block must be one of these.
        wait_for(30, "the peer connected", || client.wait(client.getconnectioncount()).unwrap() > before);
        let to = address(Network::Regtest, 3);
        let mut mined = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && mined.len() < 100 {
            mined
                .push(client.wait(client.generatetoaddress(1u32.into(), to.clone())).unwrap()[0].to_string());
            std::thread::sleep(Duration::from_millis(300));
        }
        mined
    });
    let got = rt.block_on(async {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let settings = SwarmSettings { network: Network::Regtest, max_connections: 8, mdns: false };
        let mut swarm = build_swarm(key, &settings).unwrap();
        swarm
            .behaviour_mut()
            .gossipsub
            .unsubscribe(&IdentTopic::new(Topic::CompactBlocks.name(Network::Regtest)));
        swarm.dial(a_p2p).unwrap();
        let blocks = IdentTopic::new(Topic::Blocks.name(Network::Regtest)).hash();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no full block came on the blocks topic");
            let Ok(event) = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await
            else {
                continue;
            };
            if let libp2p::swarm::SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                gossipsub::Event::Message { message, .. },
            )) = event
            {
                if message.topic == blocks {
                    return quarry::primitives::Block::decode(&message.data, 4_000_000).unwrap().hash();
                }
            }
        }
    });
    got_one.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(rt);
    let mined = miner.join().unwrap();
    assert!(mined.contains(&got.to_string()), "{got} is not one of the mined blocks {mined:?}");
}

fn start_with_metrics(dir: &Path, bootnodes: &[String], extra: &[&str]) -> (Node, SocketAddr) {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let m = metrics.to_string();
    let mut args: Vec<&str> = vec!["--mine-threads", "1", "--metrics", &m];
    for b in bootnodes {
        args.extend(["--bootnode", b]);
    }
    args.extend(extra);
    (Node::start(dir, "regtest", Some(free_port()), &args), metrics)
}

/// B rebuilds A's blocks from its mempool, asks once for a transaction it lacks, and a node
/// announcing with `--relay full` is followed all the same.
#[test]
fn compact_blocks_are_rebuilt_from_the_mempool_or_after_one_getblocktxn() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, _) = start_with_metrics(dirs[0].path(), &[], &[]);
    let (b, mb) = start_with_metrics(dirs[1].path(), &[a.p2p_addr()], &[]);
    wait_for(30, "A and B connected", || connected(&a, 1) && connected(&b, 1));
    generate(&a, 12, 0);
    wait_for(30, "B at A's tip", || same_tip(&[&a, &b]));
    assert_eq!(compact_count(mb, "mempool"), 12, "empty blocks rebuild from the coinbase alone");

    // tx1 reaches both mempools; tx2 only A's (B is offline meanwhile).
    let tx1 = send(&a, &spend_coinbase_at(&a, 0, 1, 1));
    wait_for(30, "tx1 in B's mempool", || mempool(&b).contains(&tx1));
    assert_eq!(b.rpc("setnetworkactive", json!([false])), json!(false));
    wait_for(30, "A and B apart", || !connected(&a, 1));
    let tx2 = send(&a, &spend_coinbase_at(&a, 0, 1, 2));
    assert_eq!(b.rpc("setnetworkactive", json!([true])), json!(true));
    wait_for(30, "A and B together again", || connected(&a, 1) && connected(&b, 1));
    assert!(!mempool(&b).contains(&tx2));

    let mined = generate(&a, 1, 0)[0].clone();
    wait_for(30, "B at A's new block", || tip(&b) == mined);
    assert_eq!(compact_count(mb, "fetched"), 1, "one GetBlockTxn round trip");
    assert_eq!(compact_count(mb, "fallback"), 0);
    let block = b.rpc("getblock", json!([mined, 1]));
    let txs: Vec<&str> = block["tx"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert!(txs.contains(&tx1.as_str()) && txs.contains(&tx2.as_str()), "{block}");
    assert!(mempool(&b).is_empty());

    // A node announcing full blocks only is followed by both.
    let (c, _) = start_with_metrics(dirs[2].path(), &[a.p2p_addr()], &["--relay", "full"]);
    wait_for(60, "C synced", || same_tip(&[&a, &c]));
    let mined = generate(&c, 1, 2)[0].clone();
    wait_for(30, "C's block everywhere", || [&a, &b, &c].iter().all(|n| tip(n) == mined));
    assert_eq!(compact_count(mb, "fallback"), 0);
    for p in b.rpc("getpeerinfo", json!([])).as_array().unwrap() {
        assert_eq!(p["score"], json!(0), "honest relay costs nothing: {p}");
    }
    for n in [a, b, c] {
        n.stop();
    }
}

/// A peer asking for transaction indexes outside a block, answering GetBlockTxn with a
/// transaction that does not have the announced short id, and announcing short ids that
/// are not the block's, is penalised for each (50 + 20 + 50: banned), while the node
/// still gets the real block (by sync, from the same peer) and its chainstate stays right.
/// Before that, a peer subscribed to the full-block topic alone gets the node's blocks there.
/// A did not relay the lie (it fell back to the full block), so once the block connects A
/// announces it itself: its other peer C gets it as a compact block at once (rebuilt from
/// C's mempool), not from its next status exchange.
#[test]
fn a_lying_compact_announcer_is_penalised_and_the_block_still_arrives() {
    let da = tempfile::tempdir().unwrap();
    let dc = tempfile::tempdir().unwrap();
    let a = start(da.path(), &[]);
    generate(&a, 12, 0);
    full_block_only_peer_gets_blocks(&a);
    let (c, mc) = start_with_metrics(dc.path(), &[a.p2p_addr()], &[]);
    wait_for(60, "C at A's tip", || connected(&c, 1) && same_tip(&[&a, &c]));
    let x = spend_coinbase_at(&a, 0, 1, 1);
    let xid = send(&a, &x);
    wait_for(30, "x in C's mempool", || mempool(&c).contains(&xid));
    let rebuilt_before = compact_count(mc, "mempool");
    let params = Network::Regtest.params();
    let tip_before = tip(&a);
    let tip_header = a.rpc("getblockheader", json!([tip_before, true]));
    let height = tip_header["height"].as_u64().unwrap() as u32 + 1;
    let time = tip_header["time"].as_u64().unwrap() as u32 + 1;
    let cb =
        coinbase(height, Amount::from_sat(50 * 100_000_000 + 10_000).unwrap(), p2pkh_lock(&key(9)), b"b1");
    let b1 = assemble(params, tip_before.parse().unwrap(), time, params.genesis_bits, vec![cb, x.clone()]);
    let mut lie = CompactBlock::from_block(&b1, &b1.txids(), 5);
    lie.short_ids[0] ^= 1;

    let a_p2p: libp2p::Multiaddr = a.p2p_addr().parse().unwrap();
    let a_id = a_peer(&a);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let evil = rt.block_on(async {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let settings = SwarmSettings { network: Network::Regtest, max_connections: 8, mdns: false };
        let mut swarm = build_swarm(key, &settings).unwrap();
        let me = *swarm.local_peer_id();
        let compact_topic = IdentTopic::new(Topic::CompactBlocks.name(Network::Regtest));
        // Only the full-block topic: A must send its own blocks there too.
        swarm.behaviour_mut().gossipsub.unsubscribe(&compact_topic);
        swarm.dial(a_p2p.clone()).unwrap();
        let mut answered_out_of_range = false;
        let mut published = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while swarm.is_connected(&a_id) || !published {
            assert!(tokio::time::Instant::now() < deadline, "A never banned the liar");
            let subscribed = swarm
                .behaviour()
                .gossipsub
                .all_peers()
                .any(|(_, t)| t.iter().any(|t| **t == compact_topic.hash()));
            if subscribed && !answered_out_of_range && !published {
                // Step 1: indexes outside A's tip block (1 transaction).
                let request = Request::GetBlockTxn { block: tip_before.parse().unwrap(), indexes: vec![7] };
                swarm.behaviour_mut().sync.send_request(&a_id, request.into());
                answered_out_of_range = true;
            }
            let Ok(event) = tokio::time::timeout(Duration::from_millis(50), swarm.select_next_some()).await
            else {
                continue;
            };
            let libp2p::swarm::SwarmEvent::Behaviour(event) = event else { continue };
            match event {
                BehaviourEvent::Sync(request_response::Event::Message { message, .. }) => match message {
                    request_response::Message::Response { response, .. } => {
                        if let Response::BlockTxn { txs, .. } = response {
                            assert!(txs.is_empty(), "out-of-range indexes get no transactions");
                            // Step 2: the lie, on the compact topic (published without subscribing).
                            swarm
                                .behaviour_mut()
                                .gossipsub
                                .publish(compact_topic.clone(), lie.encode())
                                .unwrap();
                            published = true;
                        }
                    }
                    request_response::Message::Request { request, channel, .. } => {
                        let SyncRequest::Request(request) = request else {
                            panic!("A sent a malformed request: {request:?}")
                        };
                        let response = match request {
                            Request::Status(s) => Response::Status(s),
                            Request::GetHeaders { .. } if published => Response::Headers(vec![b1.header]),
                            Request::GetHeaders { .. } => Response::Headers(vec![]),
                            Request::GetBlocks(_) => Response::Blocks(vec![b1.clone()]),
                            // The real transaction: not the short id the lie announced.
                            Request::GetBlockTxn { .. } => {
                                Response::BlockTxn { block: b1.hash(), txs: vec![x.clone()] }
                            }
                        };
                        let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                    }
                },
                _ => {}
            }
        }
        me.to_string()
    });
    drop(rt);
    let banned = a.rpc("listbanned", json!([]));
    let entry = banned.as_array().unwrap().iter().find(|b| b["peerid"] == json!(evil)).expect("liar banned");
    assert!(entry["ban_reason"].as_str().unwrap().contains("bad compact block"), "{entry}");
    assert_eq!(tip(&a), b1.hash().to_string(), "the real block arrived by sync");
    assert!(mempool(&a).is_empty());
    wait_for(30, "C at b1", || tip(&c) == b1.hash().to_string());
    assert_eq!(
        compact_count(mc, "mempool"),
        rebuilt_before + 1,
        "C got b1 as A's compact announcement, not by sync"
    );
    c.stop();
    a.stop();
}
