//! quarry: a proof-of-work blockchain full node.
//!
//! Layers, bottom up (see docs/ARCHITECTURE.md):
//! - [`primitives`]: hashes, amounts, transactions, headers, blocks, Merkle trees. Pure.
//! - [`script`]: the stack language, its interpreter and the standard templates. Pure.
//! - [`consensus`]: network parameters, proof of work, block and transaction rules. Pure.
//! - [`codec`]: the one place bincode is configured (storage and wire records).
//! - [`store`]: RocksDB column families and their readers/writers.
//! - [`chain`]: block index, most-work fork choice, reorgs, orphans, the UTXO cache, chain
//!   events.
//! - [`index`]: the tx and address indexes, built by a background thread that follows the
//!   chain.
//!
//! `primitives`, `script` and `consensus` never import tokio, libp2p or rocksdb.

pub mod chain;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod consensus;
pub mod daemon;
pub mod explorer;
#[doc(hidden)]
pub mod fuzzing;
pub mod httpd;
pub mod index;
pub mod mempool;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod p2p;
pub mod plot;
pub mod pool;
pub mod primitives;
pub mod rpc;
pub mod script;
pub mod sim;
pub mod store;
pub mod testkit;
pub mod testnet;
pub mod wallet;
