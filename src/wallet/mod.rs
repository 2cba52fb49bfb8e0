//! The wallet: keys and the wallet file ([`keystore`]).

pub mod keystore;
pub mod multisig;
pub mod ops;
