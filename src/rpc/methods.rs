//! The method table: every method of [`super::api::QuarryApi`] with its parameters in order,
//! what each one expects and a line of help. `quarry rpc help [METHOD]` prints it, and
//! [`check`] uses it to explain a call's parameters in words (which parameter, what it
//! expects, what was given) before the call is sent, instead of serde's
//! `invalid type: string "abc", expected i64 at line 1 column 6`.
//!
//! Each parameter is judged by deserializing it into the very type `api.rs` declares for it
//! (`accepts`), so the table cannot accept what the server refuses or the reverse; a unit
//! test checks that the names, order and optionality match `api.rs` method by method.

use super::client::{RawParams, RpcError};
use super::types::{AddressQuery, CreateInput, TemplateRequest, Verbosity};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its name (Bitcoin Core's), as `-named` takes it.
    pub name: &'static str,
    /// May be left out (or null).
    pub optional: bool,
    /// What it expects, in words.
    pub expected: &'static str,
    accepts: fn(&Value) -> bool,
}

/// One method.
#[derive(Clone, Copy, Debug)]
pub struct Method {
    /// Its name.
    pub name: &'static str,
    /// Its parameters in order.
    pub params: &'static [Param],
    /// What it does.
    pub help: &'static str,
}

fn is<T: DeserializeOwned>(v: &Value) -> bool {
    T::deserialize(v).is_ok()
}

const fn req(name: &'static str, expected: &'static str, accepts: fn(&Value) -> bool) -> Param {
    Param { name, optional: false, expected, accepts }
}

const fn opt(name: &'static str, expected: &'static str, accepts: fn(&Value) -> bool) -> Param {
    Param { name, optional: true, expected, accepts }
}

const HASH: &str = "a block hash (64 hex digits)";
const TXID: &str = "a txid (64 hex digits)";

/// Every method the node serves, in `api.rs` order.
pub static METHODS: &[Method] = &[
    Method { name: "getblockcount", params: &[], help: "Height of the active tip." },
    Method { name: "getbestblockhash", params: &[], help: "Id of the active tip." },
    Method { name: "getblockchaininfo", params: &[], help: "State of the chain: tip, headers, work, sync." },
    Method {
        name: "getblockhash",
        params: &[req("height", "an integer (a height; -8 when out of range)", is::<i64>)],
        help: "Id of the active block at a height.",
    },
    Method {
        name: "getblock",
        params: &[
            req("blockhash", HASH, is::<String>),
            opt(
                "verbosity",
                "0 (hex), 1 (txids, the default), 2 (transactions) or a boolean",
                is::<Verbosity>,
            ),
        ],
        help: "A block: hex, with txids, or with full transactions.",
    },
    Method {
        name: "getblockheader",
        params: &[
            req("blockhash", HASH, is::<String>),
            opt("verbose", "a boolean (default true)", is::<bool>),
        ],
        help: "A block header: JSON, or its 80 bytes as hex.",
    },
    Method {
        name: "getrawtransaction",
        params: &[req("txid", TXID, is::<String>), opt("verbose", "a boolean or a number", is::<Verbosity>)],
        help: "A transaction from the mempool or the chain: hex, or JSON when verbose.",
    },
    Method {
        name: "sendrawtransaction",
        params: &[req("hexstring", "a signed transaction as hex", is::<String>)],
        help: "Submits a transaction to the mempool and relays it; prints its txid.",
    },
    Method {
        name: "sendrawtransactions",
        params: &[req(
            "hexstrings",
            "an array of signed transactions as hex (at most 1000)",
            is::<Vec<String>>,
        )],
        help: "Submits many transactions at once (their signature checks batched); one txid or error each.",
    },
    Method {
        name: "submitblock",
        params: &[req("hexdata", "a block as hex", is::<String>)],
        help: "Submits a block: nothing when accepted, else the reason (BIP 22).",
    },
    Method { name: "getmempoolinfo", params: &[], help: "State of the mempool." },
    Method {
        name: "getrawmempool",
        params: &[opt("verbose", "a boolean (default false)", is::<bool>)],
        help: "Mempool txids, or (verbose) each entry.",
    },
    Method { name: "getmininginfo", params: &[], help: "Mining state and this node's hash rate." },
    Method {
        name: "getstrategyinfo",
        params: &[],
        help: "How the continuous miner publishes: strategy, withheld blocks, lead, double spend.",
    },
    Method {
        name: "startdoublespend",
        params: &[
            req("txid", "the txid of a payment in this node's mempool", is::<String>),
            req("hexstring", "a signed transaction spending an input of that payment, as hex", is::<String>),
            req("confirmations", "an integer, at least 1 (the merchant's)", is::<u32>),
            req("maxdeficit", "an integer, at least 1 (blocks behind to give up at)", is::<u32>),
        ],
        help: "Double-spends a payment with a private branch (attack demo; needs --mine).",
    },
    Method {
        name: "getblocktemplate",
        params: &[opt(
            "template_request",
            "an object {mode?, longpollid?, capabilities?, rules?}",
            is::<TemplateRequest>,
        )],
        help: "A block template for an outside miner (BIP 22); with longpollid, waits for a change.",
    },
    Method {
        name: "generatetoaddress",
        params: &[
            req("nblocks", "an integer, 1 to 10000", is::<i64>),
            req("address", "an address of this network", is::<String>),
        ],
        help: "Mines blocks paying an address; prints their ids.",
    },
    Method {
        name: "gettxout",
        params: &[
            req("txid", TXID, is::<String>),
            req("n", "an output index (an integer from 0)", is::<u32>),
            opt("include_mempool", "a boolean (default true)", is::<bool>),
        ],
        help: "An unspent output (nothing if spent or unknown).",
    },
    Method { name: "gettxoutsetinfo", params: &[], help: "Statistics and a digest of the UTXO set." },
    Method { name: "getchaintips", params: &[], help: "Every known branch tip, highest first." },
    Method {
        name: "invalidateblock",
        params: &[req("blockhash", HASH, is::<String>)],
        help: "Marks a block and its descendants invalid and reorganises away from them.",
    },
    Method {
        name: "reconsiderblock",
        params: &[req("blockhash", HASH, is::<String>)],
        help: "Undoes invalidateblock.",
    },
    Method {
        name: "gettxoutproof",
        params: &[
            req("txids", "a JSON array of one txid, e.g. '[\"<txid>\"]'", is::<Vec<String>>),
            opt("blockhash", HASH, is::<String>),
        ],
        help: "A Merkle proof (hex) that a transaction is in a block.",
    },
    Method {
        name: "verifytxoutproof",
        params: &[req("proof", "a proof as hex (from gettxoutproof)", is::<String>)],
        help: "The txid a proof commits to ([] if it does not verify).",
    },
    Method {
        name: "getaddressutxos",
        params: &[req(
            "addresses",
            "an address, or '{\"addresses\": [...]}' (at most 100)",
            is::<AddressQuery>,
        )],
        help: "Unspent outputs paying the addresses.",
    },
    Method {
        name: "getaddresstxids",
        params: &[req(
            "addresses",
            "an address, or '{\"addresses\": [...]}' (at most 100)",
            is::<AddressQuery>,
        )],
        help: "Txids of the transactions touching the addresses, oldest first.",
    },
    Method {
        name: "createrawtransaction",
        params: &[
            req(
                "inputs",
                "a JSON array '[{\"txid\": \"<txid>\", \"vout\": N}, ...]'",
                is::<Vec<CreateInput>>,
            ),
            req(
                "outputs",
                "a JSON object '{\"<address>\": <coins>, \"data\": \"<hex>\"}'",
                is::<serde_json::Map<String, Value>>,
            ),
            opt("locktime", "an integer from 0 (default 0)", is::<u32>),
        ],
        help: "An unsigned transaction as hex (amounts in coins, at most 8 decimals).",
    },
    Method {
        name: "signrawtransactionwithkey",
        params: &[
            req("hexstring", "a transaction as hex", is::<String>),
            req(
                "privkeys",
                "a JSON array of secrets (64 hex digits each), e.g. '[\"<secret>\"]'",
                is::<Vec<String>>,
            ),
        ],
        help: "Signs the P2PKH inputs whose keys are given.",
    },
    Method { name: "stop", params: &[], help: "Stops the node." },
    Method { name: "getpeerinfo", params: &[], help: "Connected peers." },
    Method { name: "getconnectioncount", params: &[], help: "Number of connected peers." },
    Method {
        name: "getnetworkinfo",
        params: &[],
        help: "Our peer id, listen addresses, topics and connections.",
    },
    Method {
        name: "addnode",
        params: &[
            req("node", "a multiaddr ending in /p2p/<peer id>", is::<String>),
            req("command", "add, remove or onetry", is::<String>),
        ],
        help: "Adds (keeps connected), removes or tries once a peer.",
    },
    Method {
        name: "disconnectnode",
        params: &[req("address", "a peer id, multiaddr or numeric id", is::<String>)],
        help: "Disconnects a peer.",
    },
    Method {
        name: "setnetworkactive",
        params: &[req("state", "true or false", is::<bool>)],
        help: "Turns networking off or on; prints the new state.",
    },
    Method { name: "listbanned", params: &[], help: "Bans in force." },
    Method {
        name: "setban",
        params: &[
            req("subnet", "a peer id", is::<String>),
            req("command", "add or remove", is::<String>),
            opt("bantime", "seconds, an integer from 0 (default: the node's ban time)", is::<u64>),
        ],
        help: "Bans (and disconnects) a peer, or lifts its ban.",
    },
    Method { name: "clearbanned", params: &[], help: "Lifts every ban." },
];

/// Wallet methods of bitcoind that are `quarry wallet` commands here (the node keeps no
/// wallet), with the command that does the job.
pub static WALLET_METHODS: &[(&str, &str)] = &[
    ("getnewaddress", "quarry wallet new-address"),
    ("getrawchangeaddress", "quarry wallet new-address"),
    ("getbalance", "quarry wallet balance"),
    ("getbalances", "quarry wallet balance"),
    ("getunconfirmedbalance", "quarry wallet balance"),
    ("getwalletinfo", "quarry wallet balance"),
    ("sendtoaddress", "quarry wallet send ADDRESS AMOUNT"),
    ("sendmany", "quarry wallet send ADDRESS AMOUNT"),
    ("send", "quarry wallet send ADDRESS AMOUNT"),
    ("listunspent", "quarry wallet list-unspent"),
    ("listtransactions", "quarry wallet history"),
    ("listsinceblock", "quarry wallet history"),
    ("gettransaction", "quarry wallet history"),
    ("listreceivedbyaddress", "quarry wallet list-addresses"),
    ("getaddressesbylabel", "quarry wallet list-addresses"),
    ("listaddressgroupings", "quarry wallet list-addresses"),
    ("getaddressinfo", "quarry wallet list-addresses"),
    ("createwallet", "quarry wallet create"),
    ("loadwallet", "quarry wallet --wallet FILE"),
    ("listwallets", "quarry wallet --wallet FILE"),
    ("encryptwallet", "quarry wallet create --encrypt"),
    ("walletpassphrase", "quarry wallet --passphrase"),
    ("dumpprivkey", "quarry wallet export-seed"),
    ("dumpwallet", "quarry wallet export-seed"),
    ("backupwallet", "quarry wallet export-seed"),
    ("importprivkey", "quarry wallet create --import-seed"),
    ("addmultisigaddress", "quarry wallet multisig create"),
    ("createmultisig", "quarry wallet multisig create"),
    ("walletcreatefundedpsbt", "quarry wallet multisig spend"),
    ("walletprocesspsbt", "quarry wallet multisig sign"),
    ("finalizepsbt", "quarry wallet multisig finalize"),
    ("signrawtransactionwithwallet", "quarry wallet send (or signrawtransactionwithkey)"),
    ("fundrawtransaction", "quarry wallet send"),
];

/// The method named `name`.
pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Edit distance (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// What to tell a user who typed `name`, which is not a method: the `quarry wallet`
/// command for a bitcoind wallet method, or the nearest method names.
pub fn unknown_method_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if let Some((_, cmd)) = WALLET_METHODS.iter().find(|(m, _)| *m == lower) {
        return format!(
            "{name} is a wallet method: the node keeps no wallet; use `{cmd}` (see `quarry wallet --help`)"
        );
    }
    if let Some(m) = find(&lower) {
        return format!("method names are lower case: did you mean {}?", m.name);
    }
    let mut near: Vec<(usize, &str)> = METHODS
        .iter()
        .map(|m| (distance(&lower, m.name), m.name))
        .filter(|(d, m)| *d <= 3.max(lower.len() / 4) || (lower.len() >= 5 && m.contains(lower.as_str())))
        .collect();
    near.sort();
    let near: Vec<&str> = near.into_iter().take(3).map(|(_, m)| m).collect();
    let list = "`quarry rpc help` lists the methods";
    match near.as_slice() {
        [] => format!("unknown method {name:?}: {list}"),
        [one] => format!("unknown method {name:?}: did you mean {one}? ({list})"),
        many => format!("unknown method {name:?}: did you mean one of {}? ({list})", many.join(", ")),
    }
}

/// `name PARAM [OPTIONAL]` as `help` shows it.
pub fn usage(m: &Method) -> String {
    let mut out = m.name.to_string();
    for p in m.params {
        if p.optional {
            out += &format!(" [{}]", p.name);
        } else {
            out += &format!(" {}", p.name);
        }
    }
    out
}

/// `help`: one line per method.
pub fn help_all() -> String {
    let width = METHODS.iter().map(|m| usage(m).len()).max().unwrap_or(0);
    let mut out = String::from(
        "Methods (quarry rpc help METHOD for its parameters; [optional]; wallet commands are `quarry wallet`):\n",
    );
    for m in METHODS {
        out += &format!("  {:<width$}  {}\n", usage(m), m.help);
    }
    out
}

/// `help METHOD`.
pub fn help_one(m: &Method) -> String {
    let mut out = format!("{}\n\n{}\n", usage(m), m.help);
    if m.params.is_empty() {
        out += "\nNo parameters.\n";
    } else {
        out += "\nParameters (positional in this order, or NAME=VALUE with -named):\n";
        for (i, p) in m.params.iter().enumerate() {
            let opt = if p.optional { ", optional" } else { "" };
            out += &format!("  {}. {}{opt}: {}\n", i + 1, p.name, p.expected);
        }
    }
    out
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn problem(method: &Method, text: String) -> RpcError {
    RpcError::Params { method: method.name.to_string(), problem: text }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Checks a call's parameters against the table: the right number, every required one
/// given, no unknown name, each of the type the method declares. An unknown method is not
/// judged here (the node answers it).
pub fn check(method: &str, params: &RawParams) -> Result<(), RpcError> {
    let Some(m) = find(method) else { return Ok(()) };
    let judge = |i: usize, p: &Param, v: &Value| -> Result<(), RpcError> {
        if (p.optional && v.is_null()) || (p.accepts)(v) {
            return Ok(());
        }
        Err(problem(m, format!("parameter {} ({}) must be {}, got {}", i + 1, p.name, p.expected, shown(v))))
    };
    match params {
        RawParams::Positional(values) => {
            if values.len() > m.params.len() {
                let takes = match m.params.len() {
                    0 => "takes no parameters".to_string(),
                    n => format!("takes at most {} ({})", plural(n, "parameter"), usage(m)),
                };
                let extra: Vec<String> = values[m.params.len()..].iter().map(shown).collect();
                return Err(problem(m, format!("{takes}, got {}: extra {}", values.len(), extra.join(" "))));
            }
            for (i, p) in m.params.iter().enumerate() {
                match values.get(i) {
                    Some(v) => judge(i, p, v)?,
                    None if p.optional => {}
                    None => {
                        return Err(problem(
                            m,
                            format!(
                                "missing parameter {} ({}): {}; usage: {}",
                                i + 1,
                                p.name,
                                p.expected,
                                usage(m)
                            ),
                        ))
                    }
                }
            }
        }
        RawParams::Named(map) => {
            if let Some(k) = map.keys().find(|k| !m.params.iter().any(|p| p.name == k.as_str())) {
                let names: Vec<&str> = m.params.iter().map(|p| p.name).collect();
                let takes = if names.is_empty() { "none".into() } else { names.join(", ") };
                return Err(problem(m, format!("takes no parameter named {k:?} (its parameters: {takes})")));
            }
            for (i, p) in m.params.iter().enumerate() {
                match map.get(p.name) {
                    Some(v) => judge(i, p, v)?,
                    None if p.optional => {}
                    None => {
                        return Err(problem(
                            m,
                            format!("missing parameter {}={}: {}", p.name, p.expected, usage(m)),
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// The parameters of a request as [`check`] takes them: an array, an object, or none.
pub fn raw_params(json: Option<&str>) -> Option<RawParams> {
    match json.map(serde_json::from_str::<Value>) {
        None => Some(RawParams::Positional(Vec::new())),
        Some(Ok(Value::Array(a))) => Some(RawParams::Positional(a)),
        Some(Ok(Value::Object(m))) => Some(RawParams::Named(m)),
        // Anything else is jsonrpsee's to refuse.
        _ => None,
    }
}

/// Server middleware: a call whose parameters do not fit [`METHODS`] is answered -32602 with
/// [`check`]'s words (`getblockhash: parameter 1 (height) must be an integer ..., got "abc"`)
/// before jsonrpsee's own decoding would answer `invalid type: string "abc", expected i64
/// at line 1 column 6`.
#[derive(Clone, Debug)]
pub struct ParamCheck<S> {
    /// The next service.
    pub inner: S,
}

impl<'a, S> jsonrpsee::server::middleware::rpc::RpcServiceT<'a> for ParamCheck<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT<'a> + Send + Sync,
    S::Future: 'a,
{
    type Future = futures::future::Either<futures::future::Ready<jsonrpsee::MethodResponse>, S::Future>;

    fn call(&self, request: jsonrpsee::types::Request<'a>) -> Self::Future {
        let params = request.params();
        let problem = raw_params(params.as_str()).and_then(|p| check(request.method_name(), &p).err());
        match problem {
            Some(RpcError::Params { method, problem }) => {
                let err = jsonrpsee::types::ErrorObjectOwned::owned(
                    jsonrpsee::types::error::INVALID_PARAMS_CODE,
                    format!("{method}: {problem}"),
                    None::<()>,
                );
                futures::future::Either::Left(futures::future::ready(jsonrpsee::MethodResponse::error(
                    request.id(),
                    err,
                )))
            }
            _ => futures::future::Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (name, [(param, optional)]) of every `#[method]` in api.rs, read from its source.
    fn api_methods() -> Vec<(String, Vec<(String, bool)>)> {
        let src = include_str!("api.rs");
        let mut out = Vec::new();
        for chunk in src.split("#[method(name = \"").skip(1) {
            let name = chunk.split('"').next().unwrap().to_string();
            let sig: String = chunk.split("async fn").nth(1).unwrap().split_whitespace().collect();
            let args = sig.split_once("(&self").unwrap().1.split(")->RpcResult").next().unwrap();
            let mut params = Vec::new();
            let mut depth = 0;
            let mut cur = String::new();
            for c in args.chars().chain(std::iter::once(',')) {
                match c {
                    '<' => depth += 1,
                    '>' => depth -= 1,
                    ',' if depth == 0 => {
                        if let Some((n, ty)) = cur.split_once(':') {
                            params.push((n.to_string(), ty.starts_with("Option<")));
                        }
                        cur.clear();
                        continue;
                    }
                    _ => {}
                }
                cur.push(c);
            }
            out.push((name, params));
        }
        out
    }

    #[test]
    fn the_table_matches_api_rs_method_by_method() {
        let api = api_methods();
        assert!(api.len() > 30, "{api:?}");
        let table: Vec<(String, Vec<(String, bool)>)> = METHODS
            .iter()
            .map(|m| {
                (m.name.to_string(), m.params.iter().map(|p| (p.name.to_string(), p.optional)).collect())
            })
            .collect();
        assert_eq!(table, api);
    }

    #[test]
    fn every_method_is_in_protocol_md_and_no_wallet_method_is_served() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        for m in METHODS {
            assert!(
                doc.contains(&format!("| {} ", m.name)) || doc.contains(&format!(" {} |", m.name)),
                "{}",
                m.name
            );
        }
        for (w, _) in WALLET_METHODS {
            assert!(find(w).is_none(), "{w}");
        }
    }

    fn pos(v: Value) -> RawParams {
        RawParams::Positional(v.as_array().unwrap().clone())
    }

    fn msg(method: &str, p: RawParams) -> String {
        check(method, &p).unwrap_err().to_string()
    }

    #[test]
    fn parameter_errors_name_the_parameter_the_expectation_and_the_value() {
        let m = msg("getblockhash", pos(json!(["abc"])));
        assert!(m.contains("parameter 1 (height) must be an integer") && m.contains("\"abc\""), "{m}");
        let m = msg("getblockhash", pos(json!([])));
        assert!(m.contains("missing parameter 1 (height)"), "{m}");
        let m = msg("getblockhash", pos(json!([1, 2])));
        assert!(m.contains("takes at most 1 parameter (getblockhash height), got 2: extra 2"), "{m}");
        let m = msg("getblockcount", pos(json!([1])));
        assert!(m.contains("takes no parameters"), "{m}");
        let m = msg("gettxout", pos(json!(["ab", -1])));
        assert!(m.contains("parameter 2 (n) must be an output index"), "{m}");
        let m = msg("getblock", RawParams::Named(json!({"hash": "ab"}).as_object().unwrap().clone()));
        assert!(m.contains("no parameter named \"hash\"") && m.contains("blockhash, verbosity"), "{m}");
        assert!(check("getblock", &pos(json!(["ab", 2]))).is_ok());
        assert!(check("getblock", &pos(json!(["ab", true]))).is_ok());
        assert!(check("getblock", &pos(json!(["ab", null]))).is_ok());
        assert!(check("getaddressutxos", &pos(json!([{"addresses": ["a"]}]))).is_ok());
        assert!(check("createrawtransaction", &pos(json!([[{"txid": "ab", "vout": 0}], {"a": 1}]))).is_ok());
        let m = msg("createrawtransaction", pos(json!([[{"txid": "ab"}], {}])));
        assert!(m.contains("parameter 1 (inputs)"), "{m}");
        assert!(check("nosuchmethod", &pos(json!([1, 2, 3]))).is_ok());
    }

    #[test]
    fn unknown_methods_get_a_suggestion_or_the_wallet_command() {
        assert!(unknown_method_hint("getblokcount").contains("did you mean getblockcount?"));
        assert!(unknown_method_hint("getBlockCount").contains("did you mean getblockcount?"));
        let h = unknown_method_hint("getnewaddress");
        assert!(h.contains("quarry wallet new-address"), "{h}");
        assert!(unknown_method_hint("getbalance").contains("quarry wallet balance"));
        let h = unknown_method_hint("zzzzzzzzzzzzzzzzzz");
        assert!(!h.contains("did you mean") && h.contains("quarry rpc help"), "{h}");
    }

    #[test]
    fn help_lists_every_method_with_its_parameters() {
        let all = help_all();
        for m in METHODS {
            assert!(all.contains(&usage(m)), "{}", m.name);
        }
        assert!(all.contains("getblock blockhash [verbosity]"));
        let one = help_one(find("gettxout").unwrap());
        assert!(
            one.contains("2. n: an output index") && one.contains("3. include_mempool, optional"),
            "{one}"
        );
    }
}
