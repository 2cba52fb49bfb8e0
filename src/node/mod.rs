//! The node core and its typed API.
//!
//! [`core`] runs the dedicated thread that owns the chainstate, the mempool and the miners;
//! [`api`] is how everything above reaches it: [`NodeHandle`] methods with typed replies,
//! queued in a bounded lane of the core's inbox ([`queue`]), never a closure over the core.
//! The network service reaches it through [`core::NetLink`], an implementation of
//! `p2p::link::CoreLink`, in the other lane. Script checks of incoming transactions run on the
//! [`verify`] pool's threads, whose results come back through a third lane. Wiring the node together (chainstate, core,
//! network, RPC, signals) is `crate::daemon`'s job, above this module.

mod admit;
pub mod adversary;
pub mod api;
pub mod core;
mod net;
mod queries;
mod queue;
mod relay;
pub mod tipmark;
mod verify;

pub use self::api::{
    AddressCoin, AttackView, BlockView, ChainInfo, ChainTipView, HeaderView, MiningInfo, NodeError,
    NodeHandle, StrategyInfo, SubmitOutcome, TemplateMark, TemplateView, TxLocation, TxOutView, TxView,
    UtxoSetInfo,
};
pub use self::core::{CoreConfig, CoreNet, Lifecycle, MiningConfig, NetLink, Started};
pub use crate::miner::MiningStrategy;
