//! Network parameters and genesis blocks. Every number here is listed in docs/PROTOCOL.md.

use super::pow::{target_from_compact, target_to_compact};
use crate::primitives::amount::COIN;
use crate::primitives::merkle::merkle_root;
use crate::primitives::{
    Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut, U256,
};
use crate::script::opcodes::{push_data, push_int};
use crate::script::templates::op_return;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The networks quarry knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// For tests: trivial target (about every second hash wins), no retarget, small maturity
    /// and halving interval.
    Regtest,
    /// The local multi-node testnet: 5-second blocks, per-block ASERT retarget.
    Dev,
}

impl Network {
    /// Every network, for help text and parsing.
    pub const ALL: [Network; 2] = [Network::Regtest, Network::Dev];

    /// Lower-case name used on the command line, in data directories and topic names.
    pub fn name(self) -> &'static str {
        match self {
            Network::Regtest => "regtest",
            Network::Dev => "dev",
        }
    }

    /// The human-readable prefix of this network's addresses.
    pub fn address_hrp(self) -> &'static str {
        match self {
            Network::Regtest => "qrt",
            Network::Dev => "qdev",
        }
    }

    /// Default JSON-RPC port (on 127.0.0.1).
    pub fn default_rpc_port(self) -> u16 {
        match self {
            Network::Regtest => 19443,
            Network::Dev => 19543,
        }
    }

    /// Default peer-to-peer TCP port.
    pub fn default_p2p_port(self) -> u16 {
        match self {
            Network::Regtest => 19444,
            Network::Dev => 19544,
        }
    }

    /// The parameters of this network.
    pub fn params(self) -> &'static Params {
        static REGTEST: OnceLock<Params> = OnceLock::new();
        static DEV: OnceLock<Params> = OnceLock::new();
        match self {
            Network::Regtest => REGTEST.get_or_init(Params::regtest),
            Network::Dev => DEV.get_or_init(Params::dev),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Network::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| format!("unknown network {s:?}: expected one of regtest, dev"))
    }
}

/// Consensus parameters of a network.
#[derive(Clone, Debug)]
pub struct Params {
    /// Which network.
    pub network: Network,
    /// Easiest allowed target.
    pub pow_limit: U256,
    /// Bits of the genesis block (and of every block without retargeting).
    pub genesis_bits: u32,
    /// Genesis block time.
    pub genesis_time: u32,
    /// Ideal seconds between blocks.
    pub target_spacing: u32,
    /// ASERT half-life in seconds; `None` disables retargeting.
    pub asert_halflife: Option<u32>,
    /// Subsidy of the first era.
    pub initial_subsidy: Amount,
    /// Blocks per subsidy halving.
    pub halving_interval: u32,
    /// Confirmations before a coinbase output may be spent: spending at height `h` an output
    /// created at height `c` requires `h - c >= coinbase_maturity`.
    pub coinbase_maturity: u32,
    /// Largest canonical block encoding, bytes.
    pub max_block_size: usize,
    /// Most signature operations per block.
    pub max_block_sigops: usize,
    /// Largest canonical transaction encoding, bytes.
    pub max_tx_size: usize,
    /// How far a block's time may be ahead of the validating node's clock, seconds.
    pub max_future_drift: u32,
    /// Median-time-past window (blocks).
    pub median_time_span: usize,
    /// The genesis block.
    pub genesis: Block,
    /// The genesis block id.
    pub genesis_hash: Hash256,
}

/// Builds a genesis block: a coinbase at height 0 carrying `message`, one zero-value
/// OP_RETURN output (genesis outputs never enter the UTXO set).
fn genesis_block(message: &str, time: u32, bits: u32, nonce: u32) -> Block {
    let mut unlock = Vec::new();
    push_int(&mut unlock, 0);
    push_data(&mut unlock, message.as_bytes());
    let coinbase = Transaction {
        version: 1,
        inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Script(unlock) }],
        outputs: vec![TxOut { value: Amount::ZERO, lock: op_return(message.as_bytes()) }],
        lock_time: 0,
    };
    let (merkle_root, _) = merkle_root(&[coinbase.txid()]);
    let header = BlockHeader { version: 1, prev: Hash256::ZERO, merkle_root, time, bits, nonce };
    Block { header, txs: vec![coinbase] }
}

/// 2026-01-01T00:00:00Z.
const GENESIS_TIME: u32 = 1_767_225_600;

impl Params {
    fn common(network: Network, pow_limit: U256, genesis: Block) -> Params {
        let genesis_hash = genesis.hash();
        Params {
            network,
            pow_limit,
            genesis_bits: genesis.header.bits,
            genesis_time: genesis.header.time,
            target_spacing: 5,
            asert_halflife: None,
            initial_subsidy: Amount::from_sat(50 * COIN).expect("in range"),
            halving_interval: 150,
            coinbase_maturity: 10,
            max_block_size: 4_000_000,
            max_block_sigops: 80_000,
            max_tx_size: 1_000_000,
            max_future_drift: 2 * 60 * 60,
            median_time_span: 11,
            genesis,
            genesis_hash,
        }
    }

    /// Regtest: bits 0x207fffff (target just under 2^255), no retarget, maturity 10,
    /// halving every 150 blocks.
    pub fn regtest() -> Params {
        let bits = 0x207f_ffff;
        let genesis = genesis_block("quarry regtest genesis", GENESIS_TIME, bits, 0);
        let limit = target_from_compact(bits).expect("valid bits");
        Params::common(Network::Regtest, limit, genesis)
    }

    /// Dev: genesis target 2^234 (about 4 million hashes a block), which is also the easiest
    /// allowed; 5-second spacing; ASERT half-life 120 s; maturity 20; halving every 100,000.
    pub fn dev() -> Params {
        let limit = U256::ONE.shl(234);
        let bits = target_to_compact(&limit);
        let genesis = genesis_block("quarry dev genesis", GENESIS_TIME, bits, DEV_GENESIS_NONCE);
        Params {
            asert_halflife: Some(120),
            coinbase_maturity: 20,
            halving_interval: 100_000,
            ..Params::common(Network::Dev, limit, genesis)
        }
    }
}

/// Nonce that gives the dev genesis header a hash below 2^234 (found once, checked by a test).
const DEV_GENESIS_NONCE: u32 = 90_159;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::pow::check_proof_of_work;

    #[test]
    fn genesis_blocks_meet_their_own_proof_of_work() {
        for n in Network::ALL {
            let p = n.params();
            check_proof_of_work(&p.genesis_hash, p.genesis_bits, &p.pow_limit)
                .unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(n.name().parse::<Network>().unwrap(), n);
        }
        assert_eq!(Network::Dev.params().genesis_bits, 0x1e04_0000);
    }
}
