//! `quarry wallet ...`: keys, balance, sending and proof checks, talking to a node only
//! through its JSON-RPC.

use super::DataArgs;
use crate::primitives::{Address, Amount, Hash256};
use crate::wallet::keystore::Wallet;
use crate::wallet::ops::{self, WalletError};
use crate::wallet::rpc::NodeRpc;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `quarry wallet`
#[derive(Args, Debug)]
pub struct WalletArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Wallet file [default: <datadir>/wallet.json].
    #[arg(long, global = true)]
    pub wallet: Option<PathBuf>,
    /// Node RPC address [default: this network's RPC port on 127.0.0.1].
    #[arg(long, global = true)]
    pub rpc_connect: Option<SocketAddr>,
    /// RPC user instead of the node's cookie.
    #[arg(long, global = true, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// Password for --rpc-user.
    #[arg(long, global = true, requires = "rpc_user")]
    pub rpc_password: Option<String>,
    /// Passphrase of an encrypted wallet.
    #[arg(long, global = true, env = "QUARRY_WALLET_PASSPHRASE", hide_env_values = true)]
    pub passphrase: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// Wallet commands.
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Create a wallet file (prints the seed phrase once: write it down).
    Create {
        /// Restore from a 24-word seed phrase instead of a fresh random seed.
        #[arg(long)]
        import_seed: Option<String>,
        /// Encrypt the file with --passphrase (Argon2id + XChaCha20-Poly1305).
        #[arg(long)]
        encrypt: bool,
    },
    /// Hand out a new receiving address.
    NewAddress,
    /// List the addresses handed out so far.
    ListAddresses,
    /// Confirmed, unconfirmed and immature balance.
    Balance,
    /// The wallet's unspent outputs.
    ListUnspent,
    /// Pay AMOUNT coins to ADDRESS; prints the txid.
    Send {
        /// Recipient (bech32m address of this network).
        address: String,
        /// Amount in coins, e.g. 1.5 (at most 8 decimals).
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// Fee rate in base units per 1000 bytes [default: the node's minimum].
        #[arg(long)]
        fee_rate: Option<u64>,
        /// Wait until the transaction has this many confirmations.
        #[arg(long)]
        wait: Option<u32>,
    },
    /// Print the seed phrase (anyone who sees it can spend the wallet's coins).
    ExportSeed,
    /// Check locally that a transaction is in the node's chain: fetch its Merkle proof and
    /// block header, verify the proof of work and the log2(n)-hash proof.
    VerifyTx {
        /// Transaction id.
        txid: String,
    },
}

fn print(json_mode: bool, v: serde_json::Value, text: impl FnOnce() -> String) {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
    } else {
        println!("{}", text());
    }
}

/// Runs a wallet command.
pub fn run(args: WalletArgs) -> Result<()> {
    let network = args.data.network;
    let datadir = args.data.base_dir()?;
    let path = args.wallet.clone().unwrap_or_else(|| datadir.join("wallet.json"));
    let pass = args.passphrase.as_deref();
    let rpc = || {
        let addr = args
            .rpc_connect
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, network.default_rpc_port())));
        NodeRpc::new(addr, datadir.clone(), args.rpc_user.clone().zip(args.rpc_password.clone()))
    };
    let j = args.json;
    match &args.command {
        WalletCommand::Create { import_seed, encrypt } => {
            if *encrypt && pass.is_none() {
                bail!("--encrypt needs --passphrase (or QUARRY_WALLET_PASSPHRASE)");
            }
            let seed = import_seed.as_deref().map(Wallet::seed_from_phrase).transpose()?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let w = Wallet::create(&path, network, seed, if *encrypt { pass } else { None })?;
            let phrase = w.seed_phrase();
            print(
                j,
                json!({ "wallet": path.display().to_string(), "address": w.address(0).encode(), "seed_phrase": phrase }),
                || {
                    format!(
                    "created {}\nfirst address: {}\nseed phrase (write it down; it restores every key):\n  {phrase}",
                    path.display(),
                    w.address(0)
                )
                },
            );
        }
        WalletCommand::NewAddress => {
            let mut w = Wallet::open(&path, network, pass)?;
            let (i, a) = w.new_address()?;
            print(j, json!({ "index": i, "address": a.encode() }), || a.encode());
        }
        WalletCommand::ListAddresses => {
            let w = Wallet::open(&path, network, pass)?;
            let list: Vec<_> = w
                .addresses()
                .into_iter()
                .map(|(i, a)| json!({ "index": i, "address": a.encode() }))
                .collect();
            print(j, json!(list), || {
                w.addresses().into_iter().map(|(i, a)| format!("{i:>4}  {a}")).collect::<Vec<_>>().join("\n")
            });
        }
        WalletCommand::Balance => {
            let w = Wallet::open(&path, network, pass)?;
            let b = ops::balance(&w, &rpc()?)?;
            print(
                j,
                json!({ "confirmed": b.confirmed.to_string(), "unconfirmed": b.unconfirmed.to_string(),
                        "immature": b.immature.to_string(), "spending": b.spending.to_string() }),
                || {
                    format!(
                        "confirmed    {}\nunconfirmed  {}\nimmature     {}\nspending     {} (confirmed coins spent by unconfirmed transactions)",
                        b.confirmed, b.unconfirmed, b.immature, b.spending
                    )
                },
            );
        }
        WalletCommand::ListUnspent => {
            let w = Wallet::open(&path, network, pass)?;
            let coins = ops::utxos(&w, &rpc()?)?;
            let list: Vec<_> = coins
                .iter()
                .map(|u| json!({ "txid": u.outpoint.txid.to_string(), "vout": u.outpoint.index, "amount": u.out.value.to_string(),
                                  "address": u.address, "height": u.height, "coinbase": u.coinbase, "spent_in_mempool": u.spent_in_mempool }))
                .collect();
            print(j, json!(list), || {
                coins
                    .iter()
                    .map(|u| {
                        format!(
                            "{}  {:>18}  height {:<6} {}{}",
                            u.outpoint,
                            u.out.value,
                            u.height,
                            u.address,
                            if u.spent_in_mempool { "  (being spent)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WalletCommand::Send { address, amount, fee_rate, wait } => {
            let to = Address::decode(address, network.address_hrp()).map_err(WalletError::from)?;
            let amount = Amount::from_coins_str(amount).map_err(WalletError::from)?;
            let rpc = rpc()?;
            let minimum = ops::node_min_fee_rate(&rpc)?;
            let rate = fee_rate.unwrap_or(minimum);
            if rate < minimum {
                return Err(WalletError::FeeRateTooLow { given: rate, minimum }.into());
            }
            // Nothing is written or broadcast before every check has passed: on the error
            // paths below the wallet file is unchanged.
            let mut w = Wallet::open(&path, network, pass)?;
            let coins = ops::spendable(&w, &rpc)?;
            let signed = ops::build_send(&mut w, &coins, &to, amount, rate)?;
            let txid = rpc.call("sendrawtransaction", vec![json!(hex::encode(signed.tx.encode()))])?;
            let txid: Hash256 =
                txid.as_str().unwrap_or("").parse().context("the node returned a malformed txid")?;
            if let Some(n) = wait {
                wait_confirmations(&rpc, &txid, *n)?;
            }
            print(
                j,
                json!({ "txid": txid.to_string(), "fee": signed.fee.to_string(),
                        "change": signed.change.as_ref().map(|(a, v)| json!({ "address": a.encode(), "amount": v.to_string() })) }),
                || txid.to_string(),
            );
        }
        WalletCommand::ExportSeed => {
            let w = Wallet::open(&path, network, pass)?;
            print(j, json!({ "seed_phrase": w.seed_phrase() }), || w.seed_phrase());
        }
        WalletCommand::VerifyTx { txid } => {
            let txid: Hash256 =
                txid.parse().map_err(|e| anyhow::anyhow!("TXID must be 64 hex digits: {e}"))?;
            let p = ops::verify_tx(&rpc()?, network, &txid)?;
            print(
                j,
                json!({ "txid": txid.to_string(), "block": p.block.to_string(), "height": p.height,
                        "confirmations": p.confirmations, "transactions_in_block": p.leaf_count, "proof_hashes": p.proof_hashes, "verified": true }),
                || {
                    format!(
                        "verified: {txid} is in block {} (height {}), {} confirmations\nproof: {} hashes for a block of {} transactions, checked locally against the header's Merkle root and proof of work",
                        p.block, p.height, p.confirmations, p.proof_hashes, p.leaf_count
                    )
                },
            );
        }
    }
    Ok(())
}

fn wait_confirmations(rpc: &NodeRpc, txid: &Hash256, n: u32) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(v) = rpc.call("getrawtransaction", vec![json!(txid.to_string()), json!(true)]) {
            if v["confirmations"].as_u64().unwrap_or(0) >= n as u64 {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("{txid} did not reach {n} confirmations within an hour");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
