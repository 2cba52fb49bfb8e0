//! Every integration test, in one test binary (`autotests = false` in Cargo.toml): the crate and
//! its dependencies are linked once instead of once per file. Each file below is one module, so
//! `cargo nextest run -E 'test(/^node::/)'` (or `cargo test --test suite node::`) runs one file's
//! tests. A new test file must be added here, or it is not built.

mod common;

mod abuse;
mod chain;
mod cli;
mod crash;
mod encoding;
mod explorer;
mod fuzz_corpus;
mod layering;
mod miner;
mod node;
mod node_regressions;
mod p2p;
mod pool;
mod protocol_doc;
mod readme;
mod testnet;
mod vectors;
mod wallet;
