//! The `quarry` command line: clap derive, one `Args` struct per concern, one module per
//! command (`node`, `rpc`, `wallet`, `testnet`, `pool`, `explorer`, `sim`, the benches), and
//! [`argv`] for options written before the command name.

pub mod argv;
mod bench_hash;
mod bench_p2p;
mod chain_verify;
mod connect;
mod explorer;
pub(crate) mod node;
mod pool;
pub(crate) mod rpc;
mod sim;
mod testnet;
mod wallet;

use crate::chain::{Chain, ChainEvent, ProcessOutcome};
use crate::consensus::validation::block_subsidy;
use crate::consensus::{Network, Params};
use crate::miner::{mine_blocks, CoinbaseOnly, Miner, MinerConfig};
use crate::primitives::{Hash256, Script};
use crate::script::templates::p2pkh;
use crate::testkit::{assemble, coinbase};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use bench_p2p::BenchP2pArgs;

/// quarry: a proof-of-work blockchain full node.
#[derive(Parser, Debug)]
#[command(name = "quarry", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inspect or extend a local chainstate directly (no node running).
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Make a throwaway key pair and its address (for regtest and dev experiments; the wallet
    /// keeps keys properly).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run a node: chainstate, mempool, optional miner and the JSON-RPC server.
    Node(NodeArgs),
    /// Call a JSON-RPC method on a running node (authenticates with its cookie).
    Rpc(RpcArgs),
    /// The wallet: keys, balance, sending, proof checks (talks to a node over JSON-RPC).
    Wallet(wallet::WalletArgs),
    /// The local multi-node testnet: up, status, down, scenarios, load.
    Testnet(testnet::TestnetArgs),
    /// Serve the web explorer on 127.0.0.1: the network, the fork tree across nodes with a
    /// reorg log, blocks, transactions, addresses and the mempool, updated live.
    Explorer(explorer::ExplorerArgs),
    /// Run a Stratum V1 mining pool on a node's getblocktemplate (`quarry pool stats`: the
    /// workers' shares and balances).
    Pool(pool::PoolArgs),
    /// Mine for a Stratum pool with this machine's hashing kernel.
    Miner(pool::MinerArgs),
    /// Measure this machine's block-hashing rate (per thread and in total) beside OpenSSL's
    /// single-stream SHA-256 as a reference ceiling.
    BenchHash(BenchHashArgs),
    /// Measure peer-to-peer performance with real nodes on loopback: initial-sync rate
    /// against the single-node block-connect rate, and block propagation hop latency across
    /// a 4-node line (A-B-C-D) for ~1 MB blocks.
    BenchP2p(BenchP2pArgs),
    /// Measure one node's memory and disk with a large chainstate (default 1,000,000 UTXOs)
    /// and a full mempool, and the rate its blocks are mined and connected.
    BenchUtxo(bench_p2p::utxo::BenchUtxoArgs),
    /// Load and attack one node on loopback while an honest peer keeps syncing from it: many
    /// concurrent RPC clients, connection floods, half-open, slow and random-bytes sockets,
    /// malformed and flooding libp2p peers; reports latency, memory and who was cut off.
    BenchAbuse(bench_p2p::abuse::BenchAbuseArgs),
    /// Cut the power under a node N times, without and with --sync-writes (root: an ext4
    /// image on a loop device, shut down with FS_IOC_SHUTDOWN), and report the blocks lost
    /// and whether the chainstate stayed consistent.
    BenchDurability(bench_p2p::durability::BenchDurabilityArgs),
    /// Simulate a network in virtual time over quarry's fork choice (deterministic: the same
    /// seed gives the same output), and run experiments beside the theory: double-spend,
    /// selfish, stale, partition.
    Sim(sim::SimArgs),
}

/// `quarry node`. Every flag may also be set in `<datadir>/quarry.toml` (same names with
/// underscores, e.g. `rpc_bind = "127.0.0.1:19443"`, `mine = true`); flags win.
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub rpc: RpcServerArgs,
    #[command(flatten)]
    pub mining: MiningArgs,
    #[command(flatten)]
    pub p2p: P2pArgs,
    /// Memory for the UTXO cache, MiB: coin changes are kept in memory and written to the
    /// chainstate when the cache is full, every 5 minutes and at shutdown (like bitcoind's
    /// -dbcache). Default 100.
    #[arg(long, value_name = "MiB")]
    pub dbcache: Option<usize>,
    /// Fsync the chainstate on every block: each block write, connect and disconnect (and
    /// each UTXO-cache flush) returns only once RocksDB's write-ahead log is on disk. Off by
    /// default: a power cut (not a crash of the process) may then lose the blocks connected
    /// since the OS last wrote the log out, and the node resyncs them from peers; the
    /// chainstate stays consistent either way. Costs blocks/s (see BENCHMARKS.md).
    #[arg(long)]
    pub sync_writes: bool,
    /// Keep the transaction index (txid -> block), which getrawtransaction and gettxoutproof
    /// need for confirmed transactions. Built in the background; switching it back on
    /// rebuilds the indexes from genesis.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub txindex: Option<bool>,
    /// Keep the address indexes (unspent outputs and history by address), which
    /// getaddressutxos, getaddresstxids and the wallet need. Built in the background.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub addressindex: Option<bool>,
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Free disk space, MB, below which the node stops (tests set it high to check the
    /// refusal without filling a disk).
    #[arg(long, hide = true, default_value_t = crate::store::MIN_FREE_MB)]
    pub min_free_mb: u64,
}

/// Default of `--max-peers`.
pub const DEFAULT_MAX_PEERS: u32 = 64;
/// The HTTP API (for the explorer and scripts) and the metrics endpoint.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTP API and metrics")]
pub struct ObserveArgs {
    /// Serve the read-only HTTP API (JSON under /api/, Server-Sent Events at /api/events)
    /// on this address, e.g. 127.0.0.1:19480. Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Serve Prometheus/OpenMetrics text at /metrics on this address, e.g. 127.0.0.1:19490.
    /// Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow --http and --metrics on an address other than loopback (both are
    /// unauthenticated).
    #[arg(long)]
    pub public_http: bool,
}

/// Peer-to-peer settings.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Peer-to-peer")]
pub struct P2pArgs {
    /// Multiaddr to listen on for peers, repeatable [default: /ip4/127.0.0.1/tcp/19444 regtest,
    /// /ip4/127.0.0.1/tcp/19544 dev]. Use /ip4/0.0.0.0/tcp/PORT to accept peers from the LAN,
    /// port 0 for any free port (getnetworkinfo shows it).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<libp2p::Multiaddr>,
    /// Listen on 127.0.0.1 at this TCP port (shorthand for --listen /ip4/127.0.0.1/tcp/PORT).
    #[arg(long, value_name = "PORT", conflicts_with = "listen")]
    pub p2p_port: Option<u16>,
    /// A peer to connect to and keep connected, repeatable, e.g.
    /// /ip4/127.0.0.1/tcp/19444/p2p/12D3KooW... (getnetworkinfo's listenaddrs).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootnode: Vec<libp2p::Multiaddr>,
    /// Discover peers on the local network with mDNS.
    #[arg(long)]
    pub mdns: bool,
    /// Most peer connections [default: 64].
    #[arg(long)]
    pub max_peers: Option<u32>,
    /// How the blocks this node produces are announced: `compact` (a compact block, rebuilt
    /// by peers from their mempools, and the full block for peers that only take full
    /// blocks) or `full` (the full block, as protocol version 1) [default: compact]. Both
    /// kinds are always received.
    #[arg(long, value_enum)]
    pub relay: Option<crate::p2p::link::BlockRelay>,
    /// Run without any networking (no listening, no peers).
    #[arg(long, conflicts_with_all = ["listen", "p2p_port", "bootnode", "mdns"])]
    pub no_p2p: bool,
}

/// JSON-RPC server settings.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "JSON-RPC")]
pub struct RpcServerArgs {
    /// Address to listen on [default: 127.0.0.1:19443 regtest, 127.0.0.1:19543 dev]. Binding a
    /// non-loopback address exposes the node to the network: keep it on loopback.
    #[arg(long)]
    pub rpc_bind: Option<std::net::SocketAddr>,
    /// A user name accepted besides the cookie (needs --rpc-password).
    #[arg(long, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// The password for --rpc-user.
    #[arg(long, requires = "rpc_user")]
    pub rpc_password: Option<String>,
    /// Seconds a connection may stay silent or take to send a request's headers, and a
    /// request may take to send its body, before the server closes it [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub rpc_server_timeout: Option<u64>,
}

/// Mining settings.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Mining")]
pub struct MiningArgs {
    /// Mine continuously on the node's chain (needs --miner-address).
    #[arg(long)]
    pub mine: bool,
    /// Address the mined coinbases pay (bech32m, this network's prefix).
    #[arg(long)]
    pub miner_address: Option<String>,
    /// Mining threads, also used by generatetoaddress [default: the number of CPUs].
    #[arg(long)]
    pub mine_threads: Option<usize>,
    /// Most hashes per second of the continuous miner, over all its threads (e.g. 500000,
    /// 500k, 2M); set it well below the machine's speed and hash shares between nodes are
    /// exact on a shared machine [default: no limit].
    #[arg(long, value_name = "H/S", value_parser = parse_hashrate)]
    pub mine_hashrate: Option<f64>,
    /// How the continuous miner publishes: honest (every block at once) or selfish
    /// (Eyal-Sirer: withhold, race a tie, release when the lead of two is cut to one)
    /// [default: honest].
    #[arg(long, value_enum)]
    pub strategy: Option<crate::node::MiningStrategy>,
}

/// A hash rate: a positive number, optionally ending in k, M or G.
pub(crate) fn parse_hashrate(s: &str) -> Result<f64, String> {
    let (digits, scale) = match s.trim().strip_suffix(['k', 'K']) {
        Some(d) => (d, 1e3),
        None => match s.trim().strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => match s.trim().strip_suffix('G') {
                Some(d) => (d, 1e9),
                None => (s.trim(), 1.0),
            },
        },
    };
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{s:?} is not a hash rate: pass a positive number of hashes per second, e.g. 250000 or 250k"
        )),
    }
}

/// `quarry key ...`
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Print a fresh random ed25519 secret, its public key and P2PKH address as JSON. The
    /// secret is printed in clear: use it only for test networks.
    New {
        #[arg(long, default_value = "regtest", value_parser = parse_network)]
        network: Network,
    },
}

/// `quarry rpc`
#[derive(Args, Debug)]
pub struct RpcArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub conn: connect::ConnectArgs,
    #[command(flatten)]
    pub call: rpc::CallArgs,
}

/// `quarry bench-hash`
#[derive(Args, Debug)]
pub struct BenchHashArgs {
    /// Hashing threads [default: the number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds to measure (after a half-second warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Hashing kernel: auto (fastest this CPU supports), shani, or portable.
    #[arg(long, default_value = "auto", value_parser = ["auto", "shani", "portable"])]
    pub kernel: String,
    /// Skip the OpenSSL reference measurement.
    #[arg(long)]
    pub no_openssl: bool,
}

/// Where the data lives and which network it belongs to.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// Network: regtest (instant blocks, for tests) or dev (the local testnet).
    #[arg(long, global = true, default_value = "regtest", value_parser = parse_network)]
    pub network: Network,
    /// Data directory [default: ~/.quarry/<network>].
    #[arg(long, global = true)]
    pub datadir: Option<PathBuf>,
}

fn parse_network(s: &str) -> Result<Network, String> {
    s.parse()
}

impl DataArgs {
    /// The data directory.
    pub fn base_dir(&self) -> Result<PathBuf> {
        Ok(match &self.datadir {
            Some(d) => d.clone(),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set: pass --datadir")?;
                PathBuf::from(home).join(".quarry").join(self.network.name())
            }
        })
    }

    /// The chainstate directory.
    pub fn chainstate_dir(&self) -> Result<PathBuf> {
        Ok(self.base_dir()?.join("chainstate"))
    }

    fn open(&self) -> Result<Chain> {
        let dir = self.chainstate_dir()?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Chain::open(&dir, self.network.params()).with_context(|| {
            format!("opening the chainstate at {} (pass --datadir to use another)", dir.display())
        })
    }
}

/// `quarry chain ...`
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Show the tip, cumulative work, UTXO-set digest and branch tips.
    Info(#[command(flatten)] DataArgs),
    /// Mine coinbase-only blocks on the local chainstate with the multithreaded miner.
    Mine {
        #[command(flatten)]
        data: DataArgs,
        /// Number of blocks.
        #[arg(long, default_value_t = 10)]
        blocks: u32,
        /// Mining threads [default: the number of CPUs].
        #[arg(long)]
        threads: Option<usize>,
        /// 64-hex-digit public key hash to pay the coinbase to (P2PKH). Default: an
        /// OP_RETURN output (the subsidy is burned).
        #[arg(long)]
        pay_to: Option<String>,
    },
    /// Check a stopped node's chainstate: open it as the node does (rolling the UTXO set
    /// forward to the tip), rebuild the UTXO set from the stored blocks along the active
    /// chain, and compare the digests (exit 1 if they differ).
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// Print the report as JSON (the only output on stdout).
        #[arg(long)]
        json: bool,
    },
    /// Build two competing branches in a fresh temporary regtest chainstate and show the
    /// node switching to the branch with the most work.
    ForkDemo,
    /// Print the consensus parameters of a network.
    Params {
        #[arg(long, default_value = "regtest", value_parser = parse_network)]
        network: Network,
    },
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Chain(ChainCommand::Info(data)) => info(&data),
        Command::Chain(ChainCommand::Mine { data, blocks, threads, pay_to }) => {
            mine(&data, blocks, threads, pay_to.as_deref())
        }
        Command::Chain(ChainCommand::Verify { data, json }) => chain_verify::run(&data, json),
        Command::BenchHash(args) => crate::cli::bench_hash::run(&args),
        Command::BenchP2p(args) => bench_p2p::run(&args),
        Command::BenchUtxo(args) => bench_p2p::utxo::run(&args),
        Command::BenchAbuse(args) => bench_p2p::abuse::run(&args),
        Command::BenchDurability(args) => bench_p2p::durability::run(&args),
        Command::Node(args) => node::run_node(args),
        Command::Explorer(args) => explorer::run(args),
        Command::Pool(args) => pool::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Miner(args) => pool::run_miner(args),
        Command::Key(KeyCommand::New { network }) => {
            let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let pk = sk.verifying_key().to_bytes();
            let hash = crate::script::templates::pubkey_hash(&pk);
            let address = crate::primitives::Address {
                hrp: network.address_hrp(),
                kind: crate::primitives::AddressKind::P2pkh,
                hash,
            };
            let v = serde_json::json!({
                "secret": hex::encode(sk.to_bytes()),
                "public_key": hex::encode(pk),
                "address": address.encode(),
                "network": network.name(),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Rpc(args) => rpc::run_rpc(args),
        Command::Wallet(args) => wallet::run(args),
        Command::Testnet(args) => testnet::run(args),
        Command::Chain(ChainCommand::ForkDemo) => fork_demo(),
        Command::Chain(ChainCommand::Params { network }) => {
            print_params(network.params());
            Ok(())
        }
    }
}

fn info(data: &DataArgs) -> Result<()> {
    let chain = data.open()?;
    let tip = chain.tip();
    let digest = chain.utxo_digest()?;
    println!("network        {}", data.network);
    println!("tip            {}", tip.hash);
    println!("height         {}", tip.height);
    println!("chain work     {}", tip.chain_work);
    println!("utxo count     {}", digest.count);
    println!("utxo total     {} sat", digest.total);
    println!("utxo digest    {}", digest.hash);
    let mut tips = chain.tips();
    tips.sort_by_key(|(_, r)| std::cmp::Reverse(r.height));
    println!("branch tips    {}", tips.len());
    for (h, r) in tips {
        let status = if chain.is_active(&h) {
            "active"
        } else if r.status.is_failed() {
            "invalid"
        } else {
            "valid-fork"
        };
        println!("  {h} height {} {status}", r.height);
    }
    Ok(())
}

fn pay_to_script(pay_to: Option<&str>) -> Result<Script> {
    match pay_to {
        None => Ok(crate::script::templates::op_return(b"quarry chain mine")),
        Some(s) => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(s, &mut h)
                .map_err(|e| anyhow::anyhow!("--pay-to must be 64 hex digits (a public key hash): {e}"))?;
            Ok(p2pkh(&h))
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn mine(data: &DataArgs, blocks: u32, threads: Option<usize>, pay_to: Option<&str>) -> Result<()> {
    let lock = pay_to_script(pay_to)?;
    let mut chain = data.open()?;
    let miner = Miner::start(MinerConfig::new(threads.unwrap_or_else(default_threads)));
    for _ in 0..blocks {
        let hashes = mine_blocks(&mut chain, &miner, &CoinbaseOnly { lock: lock.clone() }, 1, &now)?;
        let tip = chain.tip();
        println!("mined {} height {}", hashes[0], tip.height);
    }
    Ok(())
}

fn print_events(events: &[ChainEvent]) {
    for e in events {
        match e {
            ChainEvent::Connected { block, height } => {
                println!("    + connected    {} at height {height}", block.hash())
            }
            ChainEvent::Disconnected { block, height } => {
                println!("    - disconnected {} at height {height}", block.hash())
            }
        }
    }
}

fn fork_demo() -> Result<()> {
    let dir = tempfile_dir()?;
    let params = Network::Regtest.params();
    let mut chain = Chain::open(&dir, params)?;
    let lock = pay_to_script(None)?;
    let add = |chain: &mut Chain, parent: Hash256, tag: &str| -> Result<Hash256> {
        let ctx = chain.header_context(&parent, now()).context("parent is indexed")?;
        let time = chain.record(&parent).context("parent is indexed")?.header.time + 1;
        let cb = coinbase(ctx.height, block_subsidy(params, ctx.height), lock.clone(), tag.as_bytes());
        let block = assemble(params, parent, time, ctx.expected_bits, vec![cb]);
        let hash = block.hash();
        let outcome = chain.process_block(block, now())?;
        println!("  {tag:<9} block {hash} height {}", ctx.height);
        if let ProcessOutcome::Accepted { events, .. } = outcome {
            print_events(&events);
        }
        Ok(hash)
    };
    println!("fork demo in {} (regtest)", dir.display());
    println!("1. the main branch grows to height 4:");
    let mut main = params.genesis_hash;
    let mut at2 = main;
    for h in 1..=4 {
        main = add(&mut chain, main, "main")?;
        if h == 2 {
            at2 = main;
        }
    }
    println!("2. a rival branch forks at height 2; equal work keeps the first-seen tip:");
    let mut rival = at2;
    for _ in 0..2 {
        rival = add(&mut chain, rival, "rival")?;
    }
    if chain.tip().hash != main {
        bail!("fork demo: the tip moved on equal work");
    }
    println!("3. one more rival block gives it more work: reorganisation:");
    add(&mut chain, rival, "rival")?;
    let tip = chain.tip();
    println!("tip is now {} at height {} (chain work {})", tip.hash, tip.height, tip.chain_work);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("quarry-fork-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn print_params(p: &Params) {
    println!("network             {}", p.network);
    println!("genesis             {}", p.genesis_hash);
    println!("genesis bits        0x{:08x}", p.genesis_bits);
    println!("pow limit           {}", p.pow_limit);
    println!("target spacing      {} s", p.target_spacing);
    match p.asert_halflife {
        Some(h) => println!("retarget            ASERT, half-life {h} s, anchored at height 1"),
        None => println!("retarget            none"),
    }
    println!("initial subsidy     {}", p.initial_subsidy);
    println!("halving interval    {} blocks", p.halving_interval);
    println!("coinbase maturity   {} blocks", p.coinbase_maturity);
    println!("max block size      {} bytes", p.max_block_size);
    println!("max block sigops    {}", p.max_block_sigops);
    println!("max tx size         {} bytes", p.max_tx_size);
    println!("max future drift    {} s", p.max_future_drift);
}
