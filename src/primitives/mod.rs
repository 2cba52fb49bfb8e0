//! Consensus data types and their byte encodings. Pure: no I/O, no async, no storage.

pub mod address;
pub mod amount;
pub mod block;
pub mod encode;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod tx;
pub mod txproof;
pub mod uint;

pub use address::{Address, AddressError, AddressKind};
pub use amount::{Amount, AmountError};
pub use block::Block;
pub use encode::DecodeError;
pub use hash::{sha256, sha256d, Hash256};
pub use header::BlockHeader;
pub use merkle::{merkle_root, MerkleProof};
pub use tx::{OutPoint, Script, Transaction, TxIn, TxOut};
pub use txproof::TxProof;
pub use uint::U256;
