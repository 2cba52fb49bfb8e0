//! Unit tests of the sync state machine, driven against an in-memory fake chain with real
//! regtest headers and blocks (proof of work ground by `testkit::assemble`).

use super::link::Blame;
use super::peers::Misbehaviour;
use super::sync::*;
use super::wire::{Request, Response, Status, MAX_HEADERS, PROTOCOL_VERSION};
use crate::consensus::pow::{block_work, check_proof_of_work, next_bits, target_from_compact};
use crate::consensus::{ConsensusError, HeaderState, Network, Params};
use crate::primitives::{Amount, Block, BlockHeader, DecodeError, Hash256};
use crate::testkit;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

type Peer = u32;
const A: Peer = 1;
const B: Peer = 2;
type Req = (Peer, ReqId, Vec<Hash256>);

fn params() -> &'static Params {
    Network::Regtest.params()
}

/// Far enough after genesis that no test header is too new.
fn now() -> u64 {
    (params().genesis_time as u64 + 100_000) * 1000
}

fn genesis_state() -> HeaderState {
    let p = params();
    HeaderState {
        hash: p.genesis_hash,
        height: 0,
        time: p.genesis_time,
        chain_work: block_work(&target_from_compact(p.genesis_bits).unwrap()),
        anchor_time: 0,
        recent_times: vec![p.genesis_time],
    }
}

/// `n` valid blocks on `parent`, one second apart; `tag` makes branches distinct.
fn build(parent: &HeaderState, n: usize, tag: u8) -> Vec<(HeaderState, Block)> {
    let p = params();
    let mut state = parent.clone();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let lock = testkit::p2pkh_lock(&testkit::key(1));
        let cb = testkit::coinbase(state.height + 1, Amount::ZERO, lock, &[tag]);
        let bits = next_bits(p, state.height, state.time, state.anchor_time);
        let block = testkit::assemble(p, state.hash, state.time + 1, bits, vec![cb]);
        state = state.child(&block.header, p, now() / 1000).expect("valid child");
        out.push((state.clone(), block));
    }
    out
}

fn headers(bs: &[(HeaderState, Block)]) -> Vec<BlockHeader> {
    bs.iter().map(|(_, b)| b.header).collect()
}

fn hashes(bs: &[(HeaderState, Block)]) -> Vec<Hash256> {
    bs.iter().map(|(s, _)| s.hash).collect()
}

fn status_of(s: &HeaderState) -> Status {
    Status {
        version: PROTOCOL_VERSION,
        genesis: params().genesis_hash,
        tip: s.hash,
        height: s.height,
        chain_work: s.chain_work,
    }
}

/// Stored blocks (hash -> state, header), the best tip and the known-invalid blocks.
struct FakeChain {
    stored: HashMap<Hash256, (HeaderState, BlockHeader)>,
    tip: Hash256,
    invalid: HashSet<Hash256>,
}

impl FakeChain {
    fn new() -> Self {
        let g = genesis_state();
        let stored = HashMap::from([(g.hash, (g.clone(), params().genesis.header))]);
        FakeChain { stored, tip: g.hash, invalid: HashSet::new() }
    }

    /// Stores a block whose parent is stored (panics otherwise: parent-first order).
    fn store(&mut self, header: &BlockHeader) {
        let parent = &self.stored.get(&header.prev).expect("parent stored first").0;
        let st = parent.child(header, params(), now() / 1000).expect("valid block");
        if st.chain_work > self.stored[&self.tip].0.chain_work {
            self.tip = st.hash;
        }
        self.stored.insert(st.hash, (st, *header));
    }

    fn tip_height(&self) -> u32 {
        self.stored[&self.tip].0.height
    }
}

impl ChainView for FakeChain {
    fn params(&self) -> &'static Params {
        params()
    }
    fn status(&self) -> Status {
        status_of(&self.stored[&self.tip].0)
    }
    fn header_state(&self, hash: &Hash256) -> Option<HeaderState> {
        self.stored.get(hash).filter(|_| !self.invalid.contains(hash)).map(|s| s.0.clone())
    }
    fn has_block(&self, hash: &Hash256) -> bool {
        self.stored.contains_key(hash) && !self.invalid.contains(hash)
    }
    fn is_known_invalid(&self, hash: &Hash256) -> bool {
        self.invalid.contains(hash)
    }
    fn locator(&self) -> Vec<Hash256> {
        let mut active = vec![self.tip];
        loop {
            let (s, h) = &self.stored[active.last().unwrap()];
            if s.height == 0 {
                break;
            }
            active.push(h.prev);
        }
        active.reverse();
        let (mut out, mut height, mut step) = (Vec::new(), active.len() as i64 - 1, 1i64);
        while height > 0 {
            out.push(active[height as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(active[0]);
        out
    }
}

fn get_blocks(acts: &[Action<Peer>]) -> Vec<Req> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send { peer, id, request: Request::GetBlocks(h) } => Some((*peer, *id, h.clone())),
            _ => None,
        })
        .collect()
}

fn get_headers(acts: &[Action<Peer>]) -> Vec<Req> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send { peer, id, request: Request::GetHeaders { locator, max } } => {
                assert_eq!(*max as usize, MAX_HEADERS);
                Some((*peer, *id, locator.clone()))
            }
            _ => None,
        })
        .collect()
}

fn penalties(acts: &[Action<Peer>]) -> Vec<(Peer, Misbehaviour)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Penalise { peer, why } => Some((*peer, why.clone())),
            _ => None,
        })
        .collect()
}

fn processes(acts: &[Action<Peer>]) -> Vec<Hash256> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Process { block, .. } => Some(block.hash()),
            _ => None,
        })
        .collect()
}

fn all_hashes(reqs: &[Req]) -> Vec<Hash256> {
    reqs.iter().flat_map(|r| r.2.iter().copied()).collect()
}

fn sorted(mut v: Vec<Hash256>) -> Vec<Hash256> {
    v.sort();
    v
}

/// The machine, the fake chain, and every block built (what peers can serve).
struct Net {
    m: SyncMachine<Peer>,
    chain: FakeChain,
    universe: HashMap<Hash256, (u32, Block)>,
    now: u64,
}

impl Net {
    fn new(branches: &[&[(HeaderState, Block)]]) -> Self {
        let universe =
            branches.iter().flat_map(|b| b.iter()).map(|(s, b)| (s.hash, (s.height, b.clone()))).collect();
        Net { m: SyncMachine::new(), chain: FakeChain::new(), universe, now: now() }
    }

    fn height(&self, h: &Hash256) -> u32 {
        self.universe[h].0
    }

    /// Connects `peer` and answers our status request with a status claiming `tip`.
    fn connect(&mut self, peer: Peer, tip: &HeaderState) -> Vec<Action<Peer>> {
        self.m.peer_connected(peer, self.now, &self.chain);
        let acts = self.m.drain();
        let [Action::Send { peer: p, id, request: Request::Status(s) }] = acts.as_slice() else {
            panic!("expected one status request, got {acts:?}");
        };
        assert_eq!((*p, s), (peer, &self.chain.status()));
        self.respond(peer, *id, Response::Status(status_of(tip)))
    }

    fn respond(&mut self, peer: Peer, id: ReqId, r: Response) -> Vec<Action<Peer>> {
        self.m.on_response(peer, id, r, self.now, &self.chain);
        self.m.drain()
    }

    /// Answers a block request with every asked block (in request order).
    fn answer(&mut self, peer: Peer, id: ReqId, hs: &[Hash256]) -> Vec<Action<Peer>> {
        let blocks = hs.iter().map(|h| self.universe[h].1.clone()).collect();
        self.respond(peer, id, Response::Blocks(blocks))
    }

    fn tick(&mut self, now: u64) -> Vec<Action<Peer>> {
        self.now = now;
        self.m.tick(now, &self.chain);
        self.m.drain()
    }

    /// Hands every `Process` block to the chain (stored, reported Ok), following the actions
    /// this produces; returns the processed hashes in order and the other actions.
    fn settle(&mut self, acts: Vec<Action<Peer>>) -> (Vec<Hash256>, Vec<Action<Peer>>) {
        let (mut done, mut others, mut queue) = (Vec::new(), Vec::new(), VecDeque::from(acts));
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Process { block, .. } => {
                    self.chain.store(&block.header);
                    done.push(block.hash());
                    self.m.on_processed(block.hash(), Ok(()), &self.chain);
                    queue.extend(self.m.drain());
                }
                other => others.push(other),
            }
        }
        (done, others)
    }

    /// Answers every block request at once with the blocks `has` allows, settling, until no
    /// request is left; returns the other actions.
    fn serve(&mut self, acts: Vec<Action<Peer>>, has: impl Fn(Peer, &Hash256) -> bool) -> Vec<Action<Peer>> {
        let (mut queue, mut others) = (VecDeque::from(acts), Vec::new());
        for _ in 0..100_000 {
            let Some(a) = queue.pop_front() else { return others };
            let (_, rest) = self.settle(vec![a]);
            for a in rest {
                match a {
                    Action::Send { peer, id, request: Request::GetBlocks(hs) } => {
                        let hs: Vec<Hash256> = hs.into_iter().filter(|h| has(peer, h)).collect();
                        queue.extend(self.answer(peer, id, &hs));
                    }
                    other => others.push(other),
                }
            }
        }
        panic!("serve did not settle");
    }
}

/// A net with `n` blocks on genesis that peer A claims; A's headers are accepted. Returns the
/// block requests that follow.
fn headers_synced(n: usize) -> (Net, Vec<(HeaderState, Block)>, Vec<Req>) {
    let bs = build(&genesis_state(), n, 1);
    let mut net = Net::new(&[&bs]);
    let acts = net.connect(A, &bs[n - 1].0);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("expected a headers request to A: {acts:?}") };
    let acts = net.respond(A, id, Response::Headers(headers(&bs)));
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert_eq!(net.m.pending_headers(), n);
    let reqs = get_blocks(&acts);
    (net, bs, reqs)
}

#[test]
fn connect_exchanges_status_and_asks_headers_only_of_a_better_peer() {
    let bs = build(&genesis_state(), 3, 1);
    let mut net = Net::new(&[&bs]);
    // Equal work: no headers request.
    let acts = net.connect(B, &genesis_state());
    assert!(get_headers(&acts).is_empty(), "{acts:?}");
    // More work: a locator ending with genesis.
    let acts = net.connect(A, &bs[2].0);
    let hs = get_headers(&acts);
    assert_eq!(hs.len(), 1, "{acts:?}");
    assert_eq!(hs[0].0, A);
    assert_eq!(hs[0].2, vec![params().genesis_hash]);
    assert_eq!(net.m.peer_tip(&A), Some((3, bs[2].0.chain_work)));
    // Another genesis, or another version: disconnected, never asked anything.
    for (c, bad) in [
        (3, Status { genesis: Hash256([7; 32]), ..status_of(&bs[2].0) }),
        (4, Status { version: PROTOCOL_VERSION + 1, ..status_of(&bs[2].0) }),
    ] {
        net.m.peer_connected(c, net.now, &net.chain);
        net.m.drain();
        net.m.on_status(c, bad, net.now, &net.chain);
        let acts = net.m.drain();
        assert!(matches!(acts.as_slice(), [Action::Disconnect { peer, .. }] if *peer == c), "{acts:?}");
        assert_eq!(net.m.peer_tip(&c), None);
    }
}

#[test]
fn headers_then_bodies_are_processed_parent_first() {
    let (mut net, bs, reqs) = headers_synced(40);
    assert!(reqs.len() <= REQUESTS_PER_PEER, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.0 == A && r.2.len() <= BLOCKS_PER_REQUEST), "{reqs:?}");
    assert_eq!(sorted(all_hashes(&reqs)), sorted(hashes(&bs)), "every block asked exactly once");
    // Answer the highest request first: nothing can be processed before its parents.
    let mut done = Vec::new();
    let mut by_top: Vec<&Req> = reqs.iter().collect();
    by_top.sort_by_key(|r| std::cmp::Reverse(r.2.iter().map(|h| net.height(h)).max()));
    for (i, (peer, id, hs)) in by_top.into_iter().enumerate() {
        let acts = net.answer(*peer, *id, hs);
        let (d, rest) = net.settle(acts);
        assert!(penalties(&rest).is_empty() && get_blocks(&rest).is_empty(), "{rest:?}");
        if i + 1 < reqs.len() {
            assert!(d.is_empty(), "processed before the parent arrived: {d:?}");
        }
        done.extend(d);
    }
    assert_eq!(done, hashes(&bs), "processed in height order");
    assert_eq!(net.m.pending_headers(), 0);
    assert_eq!(net.chain.tip, bs[39].0.hash);
    assert!(get_blocks(&net.tick(net.now + 1000)).is_empty());
}

#[test]
fn blocks_are_downloaded_from_two_peers_in_parallel() {
    let bs = build(&genesis_state(), 40, 1);
    let tip = bs[39].0.clone();
    let mut net = Net::new(&[&bs]);
    let acts = net.connect(A, &tip);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    let acts = net.connect(B, &tip);
    assert!(get_headers(&acts).is_empty(), "one headers sync at a time: {acts:?}");
    let acts = net.respond(A, id, Response::Headers(headers(&bs)));
    let reqs = get_blocks(&acts);
    for p in [A, B] {
        let mine: Vec<&Req> = reqs.iter().filter(|r| r.0 == p).collect();
        assert!(!mine.is_empty() && mine.len() <= REQUESTS_PER_PEER, "peer {p}: {reqs:?}");
    }
    assert_eq!(sorted(all_hashes(&reqs)), sorted(hashes(&bs)), "every block asked exactly once");
    let others = net.serve(acts, |_, _| true);
    assert!(penalties(&others).is_empty());
    assert_eq!(net.chain.tip, tip.hash);
    assert_eq!(net.m.pending_headers(), 0);
}

#[test]
fn stalled_peer_is_penalised_and_replaced() {
    let (mut net, bs, reqs) = headers_synced(40);
    let acts = net.connect(B, &bs[39].0);
    assert!(get_blocks(&acts).is_empty(), "everything already asked of A: {acts:?}");
    // Just before the timeout nothing happens (but the periodic status exchange).
    let acts = net.tick(now() + BLOCKS_TIMEOUT_MS);
    assert!(acts.iter().all(|a| matches!(a, Action::Send { request: Request::Status(_), .. })), "{acts:?}");
    let acts = net.tick(now() + BLOCKS_TIMEOUT_MS + 1);
    let pens = penalties(&acts);
    assert_eq!(pens.len(), reqs.len(), "{acts:?}");
    assert!(pens.iter().all(|(p, why)| *p == A && matches!(why, Misbehaviour::Stalled { .. })), "{pens:?}");
    let again = get_blocks(&acts);
    assert!(again.iter().all(|r| r.0 == B), "{again:?}");
    assert_eq!(sorted(all_hashes(&reqs)), sorted(all_hashes(&again)));
    // A's late answer is ignored; B's is used.
    let late = net.answer(A, reqs[0].1, &reqs[0].2);
    let (done, _) = net.settle(late);
    assert!(done.is_empty());
    let sends = acts.into_iter().filter(|a| matches!(a, Action::Send { .. })).collect();
    let others = net.serve(sends, |p, _| p == B);
    assert!(penalties(&others).is_empty(), "{others:?}");
    assert_eq!(net.chain.tip, bs[39].0.hash);
}

#[test]
fn locator_and_headers_across_a_fork() {
    let ours = build(&genesis_state(), 10, 1);
    let theirs = build(&ours[4].0, 15, 2); // heights 6..=20, forking after our block 5
    let mut net = Net::new(&[&ours, &theirs]);
    for (_, b) in &ours {
        net.chain.store(&b.header);
    }
    assert_eq!(net.chain.tip, ours[9].0.hash);
    let acts = net.connect(A, &theirs[14].0);
    let hs = get_headers(&acts);
    let [(A, id, ref locator)] = hs[..] else { panic!("{acts:?}") };
    assert_eq!(locator.first(), Some(&ours[9].0.hash), "our tip first");
    assert_eq!(locator.last(), Some(&params().genesis_hash), "genesis last");
    assert!(locator.contains(&ours[4].0.hash), "the fork point is in the locator");
    let acts = net.respond(A, id, Response::Headers(headers(&theirs)));
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert_eq!(sorted(all_hashes(&get_blocks(&acts))), sorted(hashes(&theirs)));
    assert_eq!(net.m.best_header(&net.chain).1, theirs[14].0.hash);
    net.serve(acts, |_, _| true);
    assert_eq!(net.chain.tip, theirs[14].0.hash);
}

#[test]
fn orphan_asks_its_sender_for_headers_even_without_more_work() {
    let mut net = Net::new(&[]);
    let acts = net.connect(A, &genesis_state());
    assert!(get_headers(&acts).is_empty(), "{acts:?}");
    for _ in 0..2 {
        net.m.on_orphan(A, net.now, &net.chain);
        let acts = net.m.drain();
        let hs = get_headers(&acts);
        let [(A, id, ref locator)] = hs[..] else { panic!("{acts:?}") };
        assert_eq!(locator.last(), Some(&params().genesis_hash));
        // Nothing new: A goes idle, but a second orphan still asks it at once.
        let acts = net.respond(A, id, Response::Headers(Vec::new()));
        assert!(acts.is_empty(), "{acts:?}");
    }
}

/// Peer A claims 3 blocks; its headers answer is `hs`. Returns the actions and the net.
fn feed_headers(bs: &[(HeaderState, Block)], hs: Vec<BlockHeader>) -> (Net, Vec<Action<Peer>>) {
    let mut net = Net::new(&[bs]);
    let acts = net.connect(A, &bs[bs.len() - 1].0);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    let acts = net.respond(A, id, Response::Headers(hs));
    assert!(processes(&acts).is_empty());
    (net, acts)
}

#[test]
fn bad_headers_are_penalised() {
    let p = params();
    let bs = build(&genesis_state(), 3, 1);
    // The second header does not link.
    let mut h2 = bs[1].1.header;
    h2.prev = Hash256([9; 32]);
    assert!(testkit::mine(&mut h2, p));
    let (net, acts) = feed_headers(&bs, vec![bs[0].1.header, h2]);
    assert!(matches!(penalties(&acts)[..], [(A, Misbehaviour::UnconnectedHeaders { .. })]), "{acts:?}");
    assert!(!all_hashes(&get_blocks(&acts)).contains(&h2.hash()));
    assert!(net.m.pending_headers() <= 1);
    // Proof of work not met.
    let mut h1 = bs[0].1.header;
    while check_proof_of_work(&h1.hash(), h1.bits, &p.pow_limit).is_ok() {
        h1.nonce += 1;
    }
    // Bits other than required (with valid work for them).
    let mut h1b = bs[0].1.header;
    h1b.bits = 0x207f_fffe;
    assert!(testkit::mine(&mut h1b, p));
    for bad in [h1, h1b] {
        let (net, acts) = feed_headers(&bs, vec![bad]);
        assert!(matches!(penalties(&acts)[..], [(A, Misbehaviour::InvalidHeaders { .. })]), "{acts:?}");
        assert!(get_blocks(&acts).is_empty());
        assert_eq!(net.m.pending_headers(), 0);
    }
    // First header's parent unknown.
    let (net, acts) = feed_headers(&bs, headers(&bs[1..]));
    assert!(matches!(penalties(&acts)[..], [(A, Misbehaviour::UnconnectedHeaders { .. })]), "{acts:?}");
    assert_eq!(net.m.pending_headers(), 0);
    // Extending a block known invalid: not followed, but not penalised either (the verdict
    // may be our own invalidateblock).
    let mut net = Net::new(&[&bs]);
    net.chain.store(&bs[0].1.header);
    net.chain.invalid.insert(bs[0].0.hash);
    let acts = net.connect(A, &bs[2].0);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    let acts = net.respond(A, id, Response::Headers(headers(&bs[1..])));
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert!(get_blocks(&acts).is_empty(), "{acts:?}");
    assert_eq!(net.m.pending_headers(), 0);
}

#[test]
fn unsolicited_and_duplicate_blocks_are_penalised_and_not_processed() {
    let (mut net, _, reqs) = headers_synced(40);
    let stranger = build(&genesis_state(), 1, 9).remove(0).1;
    let (peer, id, ref hs) = reqs[0];
    // Another peer answering A's request is ignored.
    net.m.peer_connected(B, net.now, &net.chain);
    net.m.drain();
    assert!(net.answer(B, id, hs).is_empty());
    let mut blocks: Vec<Block> = hs.iter().map(|h| net.universe[h].1.clone()).collect();
    blocks.insert(1, stranger.clone());
    blocks.push(blocks[0].clone());
    let acts = net.respond(peer, id, Response::Blocks(blocks));
    let pens = penalties(&acts);
    assert_eq!(pens.len(), 2, "{acts:?}");
    assert!(pens.iter().all(|(p, why)| *p == A && matches!(why, Misbehaviour::BlockNotAsked { .. })));
    let (done, _) = net.settle(acts);
    assert!(!done.contains(&stranger.hash()));
    assert_eq!(done, hs.clone(), "the asked blocks are still used");
}

#[test]
fn malformed_and_wrong_kind_answers_are_penalised() {
    let (mut net, bs, reqs) = headers_synced(40);
    let junk = DecodeError::TrailingBytes { what: "response", extra: 3 };
    net.m.on_failure(A, reqs[0].1, Failure::Malformed(junk.clone()), net.now, &net.chain);
    let acts = net.m.drain();
    assert_eq!(penalties(&acts), vec![(A, Misbehaviour::Malformed { what: "sync response", error: junk })]);
    assert!(processes(&acts).is_empty());
    assert_eq!(all_hashes(&get_blocks(&acts)), reqs[0].2, "released and asked again");
    let acts = net.respond(A, reqs[1].1, Response::Headers(headers(&bs[..2])));
    assert!(
        matches!(penalties(&acts)[..], [(A, Misbehaviour::WrongAnswer { asked: "blocks", got: "headers" })]),
        "{acts:?}"
    );
    assert!(processes(&acts).is_empty());
    assert_eq!(all_hashes(&get_blocks(&acts)), reqs[1].2, "released and asked again");
}

#[test]
fn invalid_block_penalises_its_sender_and_drops_descendants() {
    let bs = build(&genesis_state(), 40, 1);
    let mut net = Net::new(&[&bs]);
    let acts = net.connect(A, &bs[39].0);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    net.connect(B, &bs[39].0);
    let reqs = get_blocks(&net.respond(A, id, Response::Headers(headers(&bs))));
    let bad = bs[4].0.hash;
    let sender = reqs.iter().find(|r| r.2.contains(&bad)).unwrap().0;
    // Answer the requests holding blocks 1..=5; the rest stay in flight.
    let (low, high): (Vec<Req>, Vec<Req>) =
        reqs.into_iter().partition(|r| r.2.iter().any(|h| net.height(h) <= 5));
    let mut acts = Vec::new();
    for (p, id, hs) in &low {
        acts.extend(net.answer(*p, *id, hs));
    }
    let order = processes(&acts);
    assert_eq!(&order[..5], &hashes(&bs[..5])[..]);
    for h in &order[..4] {
        net.chain.store(&net.universe[h].1.header);
        net.m.on_processed(*h, Ok(()), &net.chain);
    }
    net.chain.invalid.insert(bad);
    let why = Misbehaviour::InvalidBlock { hash: bad, error: ConsensusError::NoTransactions };
    net.m.on_processed(bad, Err(Blame::Peer(why.clone())), &net.chain);
    let mut acts = net.m.drain();
    assert_eq!(penalties(&acts), vec![(sender, why)], "{acts:?}");
    assert_eq!(net.m.pending_headers(), 0, "descendants dropped");
    // The in-flight requests fail: nothing of the dead branch is asked again.
    for (p, id, _) in high {
        net.m.on_failure(p, id, Failure::Disconnected, net.now, &net.chain);
    }
    acts.extend(net.m.drain());
    assert!(get_blocks(&acts).is_empty(), "{acts:?}");
    assert!(penalties(&acts).len() == 1, "{acts:?}");
    // The peers still claim more work; offered the dead branch again, nothing is fetched (and
    // nobody is penalised again: a block known invalid may be our own invalidateblock).
    let hs = get_headers(&acts);
    let [(p, id, _)] = hs[..] else { panic!("{acts:?}") };
    let acts = net.respond(p, id, Response::Headers(headers(&bs[4..])));
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert!(get_blocks(&acts).is_empty(), "{acts:?}");
    assert_eq!(net.m.pending_headers(), 0);
}

#[test]
fn disconnected_peer_requests_go_to_another_peer() {
    let (mut net, bs, reqs) = headers_synced(40);
    net.connect(B, &bs[39].0);
    net.m.peer_disconnected(A, &net.chain);
    let acts = net.m.drain();
    let again = get_blocks(&acts);
    assert!(again.iter().all(|r| r.0 == B), "{again:?}");
    assert_eq!(sorted(all_hashes(&reqs)), sorted(all_hashes(&again)));
    assert_eq!(net.m.peer_tip(&A), None);
    net.serve(acts, |p, _| p == B);
    assert_eq!(net.chain.tip, bs[39].0.hash);
}

#[test]
fn blocks_a_peer_lacks_are_fetched_from_another() {
    let (mut net, bs, reqs) = headers_synced(40);
    net.connect(B, &bs[39].0);
    let (_, id, ref hs) = reqs[0];
    let acts = net.answer(A, id, &hs[..8]);
    let again = get_blocks(&acts);
    assert_eq!(again.len(), 1, "{acts:?}");
    assert_eq!((again[0].0, &again[0].2[..]), (B, &hs[8..]));
}

#[test]
fn requests_stay_within_the_window_of_the_lowest_missing_block() {
    let bs = build(&genesis_state(), 1000, 1);
    let tip = bs[999].0.clone();
    let mut net = Net::new(&[&bs]);
    let acts = net.connect(1, &tip);
    let [(1, hid, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    for p in 2..=6 {
        net.connect(p, &tip);
    }
    let mut queue = net.respond(1, hid, Response::Headers(headers(&bs)));
    let (mut outstanding, mut delivered, mut requested) =
        (Vec::<Req>::new(), BTreeSet::new(), HashSet::new());
    for round in 0.. {
        let (_, rest) = net.settle(queue);
        assert!(penalties(&rest).is_empty(), "{rest:?}");
        let lowest = (1..=1000u32).find(|h| !delivered.contains(h)).unwrap_or(1001);
        for r in get_blocks(&rest) {
            assert!(r.2.len() <= BLOCKS_PER_REQUEST);
            for h in &r.2 {
                let height = net.height(h);
                assert!(height < lowest + WINDOW, "height {height} asked while {lowest} is missing");
                assert!(requested.insert(*h), "height {height} asked twice");
            }
            outstanding.push(r);
        }
        for p in 1..=6 {
            assert!(outstanding.iter().filter(|r| r.0 == p).count() <= REQUESTS_PER_PEER);
        }
        if round == 0 {
            let heights: BTreeSet<u32> = requested.iter().map(|h| net.height(h)).collect();
            assert_eq!(
                heights,
                (1..WINDOW + 1).collect::<BTreeSet<u32>>(),
                "the whole first window, no more"
            );
        }
        // Slow answers for the low blocks: answer the request whose lowest block is highest.
        let Some(i) =
            (0..outstanding.len()).max_by_key(|&i| outstanding[i].2.iter().map(|h| net.height(h)).min())
        else {
            break;
        };
        let (p, id, hs) = outstanding.swap_remove(i);
        delivered.extend(hs.iter().map(|h| net.height(h)));
        queue = net.answer(p, id, &hs);
    }
    assert_eq!(net.chain.tip_height(), 1000);
    assert_eq!(net.m.pending_headers(), 0);
}

#[test]
fn busy_answers_release_requests_without_penalty() {
    // With another peer: the released blocks go to it at once.
    let (mut net, bs, reqs) = headers_synced(40);
    net.connect(B, &bs[39].0);
    let acts = net.respond(A, reqs[0].1, Response::Busy);
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    let again = get_blocks(&acts);
    assert_eq!(again.iter().map(|r| (r.0, &r.2)).collect::<Vec<_>>(), vec![(B, &reqs[0].2)]);
    // Alone: the busy peer gets a short rest, then is asked again.
    let (mut net, bs, reqs) = headers_synced(40);
    let acts = net.respond(A, reqs[0].1, Response::Busy);
    assert!(penalties(&acts).is_empty() && get_blocks(&acts).is_empty(), "{acts:?}");
    assert!(net.tick(now() + BUSY_COOLDOWN_MS - 1).is_empty());
    let acts = net.tick(now() + BUSY_COOLDOWN_MS + 1);
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert_eq!(all_hashes(&get_blocks(&acts)), reqs[0].2, "asked again");
    // Busy to a headers request: no penalty, asked again after the rest.
    let mut net = Net::new(&[&bs]);
    let acts = net.connect(A, &bs[39].0);
    let [(A, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    let acts = net.respond(A, id, Response::Busy);
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    let acts = net.tick(now() + BUSY_COOLDOWN_MS + 1);
    assert!(penalties(&acts).is_empty(), "{acts:?}");
    assert_eq!(get_headers(&acts).len(), 1, "{acts:?}");
}

#[test]
fn truncated_blocks_response_is_completed_later() {
    // node/net.rs stops a Blocks answer early at MAX_RESPONSE_BYTES; with one peer the blocks
    // it left out must still be fetched.
    let (mut net, bs, reqs) = headers_synced(40);
    let mut acts = Vec::new();
    for (i, (p, id, hs)) in reqs.iter().enumerate() {
        acts.extend(net.answer(*p, *id, if i == 0 { &hs[..4] } else { &hs[..] }));
    }
    net.serve(acts, |_, _| true);
    for t in 1..=10 {
        let acts = net.tick(now() + t * (STALL_COOLDOWN_MS + HEADERS_IDLE_MS));
        net.serve(acts, |_, _| true);
    }
    assert_eq!(net.chain.tip_height(), 40, "stuck at {}", net.chain.tip_height());
    assert_eq!(net.chain.tip, bs[39].0.hash);
}

#[test]
fn unobtainable_fork_header_does_not_stall_sync() {
    let fork = build(&genesis_state(), 3, 9);
    let main = build(&genesis_state(), WINDOW as usize + 50, 1);
    let mut net = Net::new(&[&fork, &main]);
    let (c, main_set): (Peer, HashSet<Hash256>) = (3, hashes(&main).into_iter().collect());
    // Peer C announces a short fork, then leaves before sending its blocks.
    let acts = net.connect(c, &fork[2].0);
    let [(_, id, _)] = get_headers(&acts)[..] else { panic!("{acts:?}") };
    net.respond(c, id, Response::Headers(headers(&fork)));
    net.m.peer_disconnected(c, &net.chain);
    net.m.drain();
    // Peer A has the main chain only.
    let acts = net.connect(A, &main.last().unwrap().0);
    let others = net.serve(acts, |_, h| main_set.contains(h));
    let [(A, id, _)] = get_headers(&others)[..] else { panic!("{others:?}") };
    let acts = net.respond(A, id, Response::Headers(headers(&main)));
    net.serve(acts, |_, h| main_set.contains(h));
    for t in 1..=5 {
        let acts = net.tick(now() + t * STALL_COOLDOWN_MS);
        net.serve(acts, |_, h| main_set.contains(h));
    }
    assert_eq!(net.chain.tip_height(), main.len() as u32, "stuck at {}", net.chain.tip_height());
}

/// ARCHITECTURE's memory bound "headers waiting for bodies": the pending set never holds more
/// than its cap, even when a peer's headers answers would take it past; the headers past the
/// cap are asked for again once bodies have connected, and the sync still ends at the tip.
#[test]
fn pending_headers_stop_at_the_cap_and_the_sync_resumes_as_bodies_connect() {
    const CAP: usize = 3_000;
    let n = 2 * MAX_HEADERS; // two full headers answers: the second one crosses the cap
    let bs = build(&genesis_state(), n, 1);
    let index: HashMap<Hash256, usize> = bs.iter().enumerate().map(|(i, (s, _))| (s.hash, i + 1)).collect();
    // The headers after the first locator entry A knows (genesis is index 0).
    let after = |locator: &[Hash256]| -> Vec<BlockHeader> {
        let from =
            locator.iter().find_map(|h| index.get(h).copied().or((*h == params().genesis_hash).then_some(0)));
        let from = from.expect("the locator ends with genesis");
        bs[from..].iter().take(MAX_HEADERS).map(|(_, b)| b.header).collect()
    };
    let mut net = Net::new(&[&bs]);
    net.m = SyncMachine::with_max_pending(CAP);
    let mut queue = net.connect(A, &bs[n - 1].0);
    let (mut peak, mut headers_answers) = (0, 0);
    for _ in 0..100 {
        assert!(penalties(&queue).is_empty(), "{queue:?}");
        // Headers first, so the pending set fills before any body arrives.
        if let Some((peer, id, locator)) = get_headers(&queue).into_iter().next() {
            queue.retain(|a| !matches!(a, Action::Send { id: i, .. } if *i == id));
            let acts = net.respond(peer, id, Response::Headers(after(&locator)));
            headers_answers += 1;
            queue.extend(acts);
        } else if !get_blocks(&queue).is_empty() {
            queue = net.serve(std::mem::take(&mut queue), |_, _| true);
        } else {
            break;
        }
        peak = peak.max(net.m.pending_headers());
        assert!(net.m.pending_headers() <= CAP, "{} pending headers, cap {CAP}", net.m.pending_headers());
    }
    assert_eq!(peak, CAP, "the second headers answer fills the pending set to the cap");
    assert_eq!(net.chain.tip_height() as usize, n, "synced to the peer's tip");
    assert!(
        headers_answers >= 3,
        "the headers past the cap were asked for again ({headers_answers} answers)"
    );
    assert_eq!(net.m.pending_headers(), 0);
}
