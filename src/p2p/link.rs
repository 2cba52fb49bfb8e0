//! The contract between the network service and whatever owns the chain (the node core).
//!
//! The service never calls into the chain: it turns what peers send into [`NetWork`] items,
//! queues them through a [`CoreLink`] (implemented by the node, which `p2p` does not import)
//! and receives each result as a [`NetDone`] on one bounded completion channel, matched by
//! its token. No task is spawned per message. Pure data and one trait: no I/O here.
//!
//! The one place that decides whose fault a failure is ([`Blame`]) lives here too, so the
//! gossip path, the sync path and the RPC agree.

use super::compact::CompactBlock;
use super::peers::Misbehaviour;
use super::sync::{Action, Failure, ReqId};
use super::wire::{Request, Response};
use crate::chain::ChainError;
use crate::consensus::Fault;
use crate::mempool::MempoolError;
use crate::primitives::{Block, Hash256, Transaction};
use libp2p::PeerId;

/// What gossipsub should do with a message (mapped to libp2p's own type only in the
/// service).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid and new: forward it to the mesh.
    Accept,
    /// Invalid: the sender's fault; drop it and do not forward.
    Reject,
    /// Not forwarded, nobody's fault (duplicate, orphan, policy, our own limits).
    Ignore,
}

/// The core's verdict on a gossip message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What gossipsub should do with the message.
    pub acceptance: Acceptance,
    /// The sender's fault, if any.
    pub fault: Option<Misbehaviour>,
    /// Height of an accepted block.
    pub height: Option<u32>,
    /// Sync actions (an orphan asks its sender for headers).
    pub actions: Vec<Action<PeerId>>,
}

impl Verdict {
    /// Ignore, no fault, no actions.
    pub fn ignore() -> Verdict {
        Verdict { acceptance: Acceptance::Ignore, fault: None, height: None, actions: Vec::new() }
    }

    /// Reject, the sender's fault.
    pub fn reject(fault: Misbehaviour) -> Verdict {
        Verdict { acceptance: Acceptance::Reject, fault: Some(fault), height: None, actions: Vec::new() }
    }
}

/// An event for the sync state machine, which lives beside the chain.
#[derive(Clone, Debug)]
pub enum SyncEvent {
    /// A peer connected.
    Connected(PeerId),
    /// A peer's last connection closed.
    Disconnected(PeerId),
    /// The answer to our request `id`.
    Response { peer: PeerId, id: ReqId, response: Response },
    /// Our request `id` failed.
    Failure { peer: PeerId, id: ReqId, failure: Failure },
    /// The periodic tick: the connected peers (the machine's peer set is reconciled with
    /// them, repairing lost events) and the time the tick was queued (a request expires only
    /// if no answer had been queued by then).
    Tick { connected: Vec<PeerId>, queued_ms: u64 },
}

/// Work for the core.
#[derive(Clone, Debug)]
pub enum NetWork {
    /// Drive the sync machine.
    Sync(SyncEvent),
    /// Validate a gossiped block (decoded, proof of work already checked).
    GossipBlock { peer: PeerId, block: Block },
    /// Validate a gossiped transaction (decoded).
    GossipTx { peer: PeerId, tx: Transaction },
    /// Rebuild and validate a gossiped compact block (decoded, proof of work checked).
    GossipCompact { peer: PeerId, compact: CompactBlock },
    /// The answer to the `GetBlockTxn` asked for a compact block (the gossip message's
    /// verdict is still pending), or why there is none.
    BlockTxn { peer: PeerId, block: Hash256, answer: Result<Response, Failure> },
    /// Answer a peer's sync request.
    Serve { peer: PeerId, request: Request },
}

impl NetWork {
    /// Bytes this item holds, for the queue's byte bound.
    pub fn cost(&self) -> usize {
        match self {
            NetWork::GossipBlock { block, .. } => block.encoded_size(),
            NetWork::GossipTx { tx, .. } => tx.encoded_size(),
            NetWork::GossipCompact { compact, .. } => 96 + 6 * compact.short_ids.len(),
            NetWork::BlockTxn { answer: Ok(Response::BlockTxn { txs, .. }), .. } => {
                txs.iter().map(Transaction::encoded_size).sum()
            }
            NetWork::Sync(SyncEvent::Response { response: Response::Blocks(b), .. }) => {
                b.iter().map(Block::encoded_size).sum()
            }
            NetWork::Sync(SyncEvent::Response { response: Response::Headers(h), .. }) => 80 * h.len(),
            NetWork::Sync(SyncEvent::Tick { connected, .. }) => 64 * connected.len(),
            _ => 256,
        }
    }
}

/// A queued item and the token its result comes back with.
#[derive(Clone, Debug)]
pub struct NetJob {
    /// Chosen by the service; returned unchanged in [`NetDone`].
    pub token: u64,
    /// What to do.
    pub work: NetWork,
}

/// The result of a [`NetWork`] item.
#[derive(Clone, Debug)]
pub enum NetOutcome {
    /// Sync machine output (for [`NetWork::Sync`]).
    Actions(Vec<Action<PeerId>>),
    /// Gossip verdict (for [`NetWork::GossipBlock`] / [`NetWork::GossipTx`] /
    /// [`NetWork::GossipCompact`] / [`NetWork::BlockTxn`]).
    Verdict(Verdict),
    /// A compact block lacks transactions: send `request` (a `GetBlockTxn`) to the message's
    /// source and hand its answer back as [`NetWork::BlockTxn`]; the verdict waits.
    FetchTxs { block: Hash256, request: Request },
    /// Actions caused after an item's result was sent (a block relayed before connecting
    /// that then failed: its sender is penalised). Sent with [`FOLLOWUP_TOKEN`].
    Followup(Vec<Action<PeerId>>),
    /// The answer to a peer's request, and sync actions it caused (for [`NetWork::Serve`]).
    Response { response: Response, actions: Vec<Action<PeerId>> },
    /// The core could not run the item (shutting down): the service drops or answers Busy.
    Dropped,
}

/// The token of a [`NetOutcome::Followup`]: it answers no item.
pub const FOLLOWUP_TOKEN: u64 = u64::MAX;

/// How a node announces the blocks it produces (`quarry node --relay`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BlockRelay {
    /// A compact block on the compact topic (and the full block for peers that take only
    /// full blocks); compact blocks are relayed after the stateless checks.
    #[default]
    Compact,
    /// The full block on the blocks topic only (the relay of protocol version 1).
    Full,
}

/// A result coming back to the service.
#[derive(Clone, Debug)]
pub struct NetDone {
    /// The job's token.
    pub token: u64,
    /// Its result.
    pub outcome: NetOutcome,
}

/// Why the core did not take an item. Never the peer's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The core's network queue is full (count or bytes).
    #[error("node core is busy (network queue full)")]
    Busy,
    /// The core has stopped.
    #[error("node core has stopped")]
    Stopped,
}

/// How the service reaches the core. Never blocks: a full queue is [`LinkError::Busy`].
pub trait CoreLink: Send + Sync + 'static {
    /// Queues `job`; its [`NetDone`] arrives on the completion channel given at start. A
    /// refused job is given back (the service may offer it again).
    fn submit(&self, job: NetJob) -> Result<(), (LinkError, NetJob)>;
}

/// Whose fault a failure is: the one classification every path uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The peer sent something invalid: penalise it (the penalty depends on the kind).
    Peer(Misbehaviour),
    /// It may become valid later or elsewhere (too-new time, missing inputs, immature
    /// spend): not forwarded, no penalty, may be retried.
    Transient,
    /// Ours: known-invalid by our own decision, a full pool, policy, a database error.
    Ours,
}

impl Blame {
    /// The blame for a block the chain refused (or stored and then failed to connect).
    pub fn for_block(e: &ChainError) -> Blame {
        match (e.fault(), e) {
            (Fault::Sender, ChainError::Invalid { hash, error }) => {
                Blame::Peer(Misbehaviour::InvalidBlock { hash: *hash, error: error.clone() })
            }
            (Fault::Transient, _) => Blame::Transient,
            _ => Blame::Ours,
        }
    }

    /// The blame for a transaction the mempool refused.
    pub fn for_tx(e: &MempoolError) -> Blame {
        match e.fault() {
            Fault::Sender => Blame::Peer(Misbehaviour::InvalidTx(e.clone())),
            Fault::Transient => Blame::Transient,
            Fault::Local => Blame::Ours,
        }
    }
}
