//! `quarry wallet ...`: keys, balance, sending and proof checks, talking to a node only
//! through its JSON-RPC.

use super::connect::{ConnectArgs, Target};
use super::DataArgs;
use crate::primitives::{Address, Amount, Hash256};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::client::BlockingClient;
use crate::wallet::keystore::Wallet;
use crate::wallet::ops::{self, WalletError};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `quarry wallet`
#[derive(Args, Debug)]
pub struct WalletArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub conn: ConnectArgs,
    #[command(flatten)]
    pub opts: WalletOpts,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The wallet's own options (shared by `quarry wallet` and `quarry testnet wallet NODE`).
#[derive(Args, Debug, Clone)]
pub struct WalletOpts {
    /// Wallet file [default: <datadir>/wallet.json].
    #[arg(long, global = true)]
    pub wallet: Option<PathBuf>,
    /// Passphrase of an encrypted wallet.
    #[arg(long, global = true, env = "QUARRY_WALLET_PASSPHRASE", hide_env_values = true)]
    pub passphrase: Option<String>,
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
    /// Confirmed transactions that paid or spent the wallet, oldest first.
    History {
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Pay AMOUNT coins to ADDRESS; prints the txid.
    Send {
        /// Recipient (bech32m address of this network).
        address: String,
        /// Amount in coins, e.g. 1.5 (at most 8 decimals).
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// Fee rate in sat per 1000 bytes (sat/kB; 1 coin = 100000000 sat) [default: the node's
        /// minimum].
        #[arg(long)]
        fee_rate: Option<u64>,
        /// Wait until the transaction has this many confirmations.
        #[arg(long)]
        wait: Option<u32>,
        /// Lock the payment until this block height (CLTV): it pays a P2SH address whose
        /// redeem script checks the height; if the recipient is this wallet it is remembered
        /// and later spent with `unlock`.
        #[arg(long)]
        lock_until: Option<u32>,
    },
    /// Spend a height-locked coin of this wallet (TXID:VOUT) to ADDRESS.
    Unlock {
        /// The locked coin, TXID:VOUT.
        coin: String,
        /// Where to send it.
        address: String,
        /// Fee rate in sat/kB (1 coin = 100000000 sat) [default: the node's minimum].
        #[arg(long)]
        fee_rate: Option<u64>,
    },
    /// Multisig escrow: create, spend with a partially signed file, sign, finalize.
    #[command(subcommand)]
    Multisig(MultisigCommand),
    /// Print the seed phrase (anyone who sees it can spend the wallet's coins).
    ExportSeed,
    /// Check locally that a transaction is in the node's chain: fetch its Merkle proof and
    /// block header, verify the proof of work and the log2(n)-hash proof.
    VerifyTx {
        /// Transaction id.
        txid: String,
    },
}

/// `quarry wallet multisig ...`
#[derive(Subcommand, Debug)]
pub enum MultisigCommand {
    /// Make a THRESHOLD-of-N escrow from N public keys (hex, from `list-addresses`): prints
    /// its P2SH address and redeem script, and remembers it if one key is this wallet's.
    Create {
        /// How many of the keys must sign a spend (1 to the number of keys).
        threshold: usize,
        /// The members' public keys, 64 hex digits each (`list-addresses` shows them), 1 to 20.
        #[arg(required = true, num_args = 1..=20)]
        pubkeys: Vec<String>,
    },
    /// Build a spend of the escrow's coins into a partially signed file (then `sign`,
    /// `finalize`).
    Spend {
        /// The escrow's address.
        escrow: String,
        /// Recipient address.
        to: String,
        /// Amount in coins.
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
        /// Fee rate in sat/kB (1 coin = 100000000 sat) [default: the node's minimum].
        #[arg(long)]
        fee_rate: Option<u64>,
    },
    /// Add this wallet's signatures to a partially signed file (in place). Checks every input
    /// against the node and shows the outputs and fee; signs only with --yes (without it,
    /// it shows them, changes nothing and exits 0).
    Sign {
        /// The partially signed file (from `spend`).
        file: PathBuf,
        /// Sign after reviewing the outputs and fee shown.
        #[arg(long)]
        yes: bool,
    },
    /// Check the threshold is met, assemble the transaction and broadcast it.
    Finalize {
        /// The partially signed file, signed by at least THRESHOLD members.
        file: PathBuf,
    },
}

fn read_psbt(file: &std::path::Path) -> Result<crate::wallet::multisig::Psbt> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    crate::wallet::multisig::Psbt::from_json(&text)
        .with_context(|| format!("{} is not a partially signed transaction file", file.display()))
}

fn write_psbt(file: &std::path::Path, p: &crate::wallet::multisig::Psbt) -> Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(p)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

/// `1 input`, `2 inputs`; `hash` takes `es`.
pub(super) fn plural(n: u64, one: &str) -> String {
    match (n, one.ends_with('h') || one.ends_with('s')) {
        (1, _) => format!("1 {one}"),
        (_, true) => format!("{n} {one}es"),
        _ => format!("{n} {one}s"),
    }
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
    run_on(&Target::from_args(&args.data, &args.conn)?, &args.opts, args.json, &args.command)
}

/// Runs a wallet command against `target`'s node, with the wallet in its data directory
/// unless `--wallet` names another.
pub(super) fn run_on(target: &Target, opts: &WalletOpts, json: bool, command: &WalletCommand) -> Result<()> {
    let network = target.network;
    let datadir = target.datadir().to_path_buf();
    let path = opts.wallet.clone().unwrap_or_else(|| datadir.join("wallet.json"));
    let pass = opts.passphrase.as_deref();
    let rpc = || target.client(crate::rpc::client::DEFAULT_TIMEOUT);
    let j = json;
    match command {
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
            let pk = hex::encode(w.key(i).verifying_key().to_bytes());
            print(j, json!({ "index": i, "address": a.encode(), "public_key": pk }), || a.encode());
        }
        WalletCommand::ListAddresses => {
            let w = Wallet::open(&path, network, pass)?;
            let pk = |i: u32| hex::encode(w.key(i).verifying_key().to_bytes());
            let list: Vec<_> = w
                .addresses()
                .into_iter()
                .map(|(i, a)| json!({ "index": i, "address": a.encode(), "public_key": pk(i) }))
                .collect();
            print(j, json!(list), || {
                w.addresses()
                    .into_iter()
                    .map(|(i, a)| format!("{i:>4}  {a}  pubkey {}", pk(i)))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WalletCommand::Balance => {
            let w = Wallet::open(&path, network, pass)?;
            let b = ops::balance(&w, &rpc()?)?;
            print(
                j,
                json!({ "confirmed": b.confirmed.to_string(), "unconfirmed": b.unconfirmed.to_string(),
                        "immature": b.immature.to_string(), "spending": b.spending.to_string(),
                        "locked": b.locked.to_string() }),
                || {
                    format!(
                        "confirmed    {}\nunconfirmed  {}\nimmature     {}\nspending     {} (confirmed coins spent by unconfirmed transactions)\nlocked       {} (height-locked: spend with `unlock`)",
                        b.confirmed, b.unconfirmed, b.immature, b.spending, b.locked
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
        WalletCommand::Unlock { coin, address, fee_rate } => {
            let (txid, vout) =
                coin.split_once(':').ok_or_else(|| anyhow::anyhow!("COIN is TXID:VOUT, got {coin:?}"))?;
            let txid: Hash256 = txid.parse().map_err(|e| anyhow::anyhow!("TXID: {e}"))?;
            let vout: u32 = vout.parse().map_err(|e| anyhow::anyhow!("VOUT: {e}"))?;
            let to = Address::decode(address, network.address_hrp()).map_err(WalletError::from)?;
            let w = Wallet::open(&path, network, pass)?;
            let rpc = rpc()?;
            let addrs: Vec<String> = w.locked().iter().map(|r| r.address.clone()).collect();
            let coins = ops::utxos_of(&rpc, &addrs)?;
            let c = coins.iter().find(|u| u.outpoint.txid == txid && u.outpoint.index == vout).ok_or_else(
                || anyhow::anyhow!("{coin} is not an unspent height-locked coin of this wallet"),
            )?;
            let rec = w.locked().iter().find(|r| r.address == c.address).ok_or_else(|| {
                anyhow::anyhow!("the node reported {coin} at an address this wallet did not ask about")
            })?;
            let rate = ops::choose_fee_rate(&rpc, *fee_rate)?;
            let tx = ops::build_unlock(&w, rec, c, &to, rate)?;
            let txid = rpc.wait(rpc.sendrawtransaction(hex::encode(tx.encode())))?;
            print(j, json!({ "txid": txid, "lock_time": rec.height }), || txid.to_string());
        }
        WalletCommand::Send { address, amount, fee_rate, wait, lock_until } => {
            let to = Address::decode(address, network.address_hrp()).map_err(WalletError::from)?;
            let amount = Amount::from_coins_str(amount).map_err(WalletError::from)?;
            let rpc = rpc()?;
            let rate = ops::choose_fee_rate(&rpc, *fee_rate)?;
            // Nothing is written or broadcast before every check has passed: on the error
            // paths below the wallet file is unchanged.
            let mut w = Wallet::open(&path, network, pass)?;
            let (pay_to, locked) = match lock_until {
                None => (crate::script::templates::address_lock(&to), None),
                Some(h) => {
                    if to.kind != crate::primitives::AddressKind::P2pkh {
                        bail!("--lock-until needs a key (P2PKH) address as recipient");
                    }
                    let redeem = crate::script::templates::with_height_lock(
                        *h,
                        &crate::script::templates::p2pkh(&to.hash),
                    );
                    let p2sh = crate::script::templates::p2sh(&redeem);
                    let addr =
                        crate::script::templates::lock_address(&p2sh.0, network.address_hrp()).expect("P2SH");
                    (p2sh, Some((*h, redeem, addr)))
                }
            };
            let coins = ops::spendable(&w, &rpc)?;
            let signed = ops::build_send(&mut w, &coins, &pay_to, amount, rate)?;
            if let Some((h, redeem, addr)) = &locked {
                if let Some((key_index, _)) = w.key_for_hash(&to.hash) {
                    w.add_locked(crate::wallet::keystore::LockedRecord {
                        height: *h,
                        key_index,
                        redeem_script_hex: hex::encode(&redeem.0),
                        address: addr.encode(),
                    })?;
                } else {
                    eprintln!(
                        "note: the recipient must keep this redeem script to spend the locked coin: {}",
                        hex::encode(&redeem.0)
                    );
                }
            }
            let txid = rpc.wait(rpc.sendrawtransaction(hex::encode(signed.tx.encode())))?;
            if let Some(n) = wait {
                wait_confirmations(&rpc, &txid, *n)?;
            }
            print(
                j,
                json!({ "txid": txid.to_string(), "fee": signed.fee.to_string(),
                        "locked_until": locked.as_ref().map(|(h, r, a)| json!({ "height": h, "address": a.encode(), "redeem_script": hex::encode(&r.0) })),
                        "change": signed.change.as_ref().map(|(a, v)| json!({ "address": a.encode(), "amount": v.to_string() })) }),
                || txid.to_string(),
            );
        }
        WalletCommand::Multisig(m) => multisig(opts, j, m, &path, network, &rpc)?,
        WalletCommand::History { limit } => {
            let w = Wallet::open(&path, network, pass)?;
            let h = ops::history(&w, &rpc()?, *limit)?;
            let signed = |n: i128| {
                let a = Amount::from_sat(n.unsigned_abs() as u64).unwrap_or_default();
                format!("{}{a}", if n < 0 { "-" } else { "+" })
            };
            let list: Vec<_> = h
                .iter()
                .map(|e| json!({ "txid": e.txid.to_string(), "height": e.height, "confirmations": e.confirmations,
                                  "received": e.received.to_string(), "sent": e.sent.to_string(), "net": signed(e.net()) }))
                .collect();
            print(j, json!(list), || {
                h.iter()
                    .map(|e| {
                        format!(
                            "height {:<7} {:>20}  {}  ({})",
                            e.height,
                            signed(e.net()),
                            e.txid,
                            plural(e.confirmations as u64, "confirmation")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
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
                        "verified: {txid} is in block {} (height {}), {}\nproof: {} for a block of {}, checked locally against the header's Merkle root and proof of work",
                        p.block, p.height, plural(p.confirmations as u64, "confirmation"), plural(p.proof_hashes as u64, "hash"), plural(p.leaf_count as u64, "transaction")
                    )
                },
            );
        }
    }
    Ok(())
}

fn wait_confirmations(rpc: &BlockingClient, txid: &Hash256, n: u32) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(tx) = rpc.wait(rpc.transaction_info(txid)) {
            if tx.confirmations.unwrap_or(0) >= n {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("{txid} did not reach {n} confirmations within an hour");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn multisig(
    args: &WalletOpts,
    j: bool,
    cmd: &MultisigCommand,
    path: &std::path::Path,
    network: crate::consensus::Network,
    rpc: &dyn Fn() -> Result<BlockingClient>,
) -> Result<()> {
    use crate::wallet::keystore::MultisigRecord;
    use crate::wallet::multisig::{escrow, parse_pubkey, Psbt};
    let pass = args.passphrase.as_deref();
    match cmd {
        MultisigCommand::Create { threshold, pubkeys } => {
            let keys: Vec<[u8; 32]> = pubkeys.iter().map(|k| parse_pubkey(k)).collect::<Result<_, _>>()?;
            let (redeem, addr) = escrow(network.address_hrp(), *threshold, &keys)?;
            let rec = MultisigRecord {
                threshold: *threshold,
                pubkeys: keys.clone(),
                redeem_script_hex: hex::encode(&redeem.0),
                address: addr.encode(),
            };
            let mut remembered = false;
            if path.exists() {
                let mut w = Wallet::open(path, network, pass)?;
                let member = keys.iter().any(|pk| {
                    w.key_for_hash(&crate::script::templates::pubkey_hash(pk))
                        .is_some_and(|(_, sk)| sk.verifying_key().to_bytes() == *pk)
                });
                if member {
                    w.add_multisig(rec.clone())?;
                    remembered = true;
                }
            }
            print(
                j,
                json!({ "address": rec.address, "redeem_script": rec.redeem_script_hex, "threshold": threshold,
                        "keys": pubkeys, "remembered": remembered }),
                || {
                    format!(
                        "{threshold}-of-{} escrow address: {}\nredeem script: {}\n{}",
                        keys.len(),
                        rec.address,
                        rec.redeem_script_hex,
                        if remembered {
                            "remembered in this wallet (one key is ours)"
                        } else {
                            "not remembered: no key of this wallet is a member"
                        }
                    )
                },
            );
        }
        MultisigCommand::Spend { escrow: esc, to, amount, out, fee_rate } => {
            let w = Wallet::open(path, network, pass)?;
            let rec = w.multisig().iter().find(|r| r.address == *esc).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown escrow {esc}: run `quarry wallet multisig create` with its keys first"
                )
            })?;
            let to = Address::decode(to, network.address_hrp()).map_err(WalletError::from)?;
            let amount = Amount::from_coins_str(amount).map_err(WalletError::from)?;
            let rpc = rpc()?;
            let rate = ops::choose_fee_rate(&rpc, *fee_rate)?;
            let coins: Vec<_> = ops::utxos_of(&rpc, std::slice::from_ref(esc))?
                .into_iter()
                .filter(|u| !u.spent_in_mempool)
                .collect();
            let psbt = Psbt::create(network.name(), &rec, &coins, &to, amount, rate)?;
            if out.exists() {
                bail!("{} exists: refusing to overwrite it", out.display());
            }
            write_psbt(out, &psbt)?;
            print(j, json!({ "file": out.display().to_string(), "inputs": psbt.inputs.len() }), || {
                format!(
                    "wrote {} ({}): each cosigner runs `quarry wallet multisig sign {}`",
                    out.display(),
                    plural(psbt.inputs.len() as u64, "input"),
                    out.display()
                )
            });
        }
        MultisigCommand::Sign { file, yes } => {
            let w = Wallet::open(path, network, pass)?;
            let mut psbt = read_psbt(file)?;
            let member = psbt.pubkeys.iter().filter_map(|k| parse_pubkey(k).ok()).any(|pk| {
                w.key_for_hash(&crate::script::templates::pubkey_hash(&pk))
                    .is_some_and(|(_, sk)| sk.verifying_key().to_bytes() == pk)
            });
            if !member {
                bail!("this wallet holds none of the escrow's keys: it cannot sign");
            }
            if !w.multisig().iter().any(|r| r.redeem_script_hex == psbt.redeem_script) {
                bail!(
                    "unknown escrow: run `quarry wallet multisig create` with its keys first, to remember it"
                );
            }
            // The file's claims about each coin must match the node's UTXO set: signatures
            // commit to the value, so a lie would only make them invalid, but the fee shown
            // below would be wrong.
            let tx =
                crate::primitives::Transaction::decode(&hex::decode(&psbt.tx).context("tx hex")?, 1_000_000)
                    .map_err(|e| anyhow::anyhow!("the file's transaction does not decode: {e}"))?;
            let rpc = rpc()?;
            for (i, (input, claim)) in tx.inputs.iter().zip(&psbt.inputs).enumerate() {
                let coin =
                    rpc.wait(rpc.gettxout(input.prevout.txid.to_string(), input.prevout.index, Some(true)))?;
                let matches = coin.is_some_and(|c| {
                    crate::rpc::types::amount_of_coins(c.value).map(|a| a.to_sat()) == Some(claim.value)
                        && c.script_pubkey.hex == claim.lock
                });
                if !matches {
                    bail!(
                        "input {i} ({}) is spent or differs from what the file claims: refusing to sign",
                        input.prevout
                    );
                }
            }
            let (outs, fee) = psbt.describe(network.address_hrp())?;
            if !yes {
                let have = psbt.signature_count();
                print(
                    j,
                    json!({ "signed": false, "signatures": have, "threshold": psbt.threshold, "fee": fee.to_string(),
                            "outputs": outs.iter().map(|(a, v)| json!({ "address": a, "amount": v.to_string() })).collect::<Vec<_>>() }),
                    || {
                        let mut text: Vec<String> =
                            outs.iter().map(|(who, v)| format!("  pays {v} to {who}")).collect();
                        text.push(format!("  fee  {fee}"));
                        text.push(format!(
                            "not signed yet ({have} of {} signatures): if the outputs and fee above are right, re-run with --yes",
                            psbt.threshold
                        ));
                        text.join("\n")
                    },
                );
                return Ok(());
            }
            let added = psbt.sign(&w)?;
            write_psbt(file, &psbt)?;
            let have = psbt.signature_count();
            print(
                j,
                json!({ "added": added, "signatures": have, "threshold": psbt.threshold, "fee": fee.to_string(),
                        "outputs": outs.iter().map(|(a, v)| json!({ "address": a, "amount": v.to_string() })).collect::<Vec<_>>() }),
                || format!("signed: {have} of {} signatures", psbt.threshold),
            );
        }
        MultisigCommand::Finalize { file } => {
            let psbt = read_psbt(file)?;
            let tx = psbt.finalize(network.name())?;
            let rpc = rpc()?;
            let txid = rpc.wait(rpc.sendrawtransaction(hex::encode(tx.encode())))?;
            print(j, json!({ "txid": txid }), || txid.to_string());
        }
    }
    Ok(())
}
