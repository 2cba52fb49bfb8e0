//! `quarry rpc <method> [params]`: one raw call through the RPC client, printed like
//! bitcoin-cli prints it (strings bare, `null` as nothing, anything else as pretty JSON).

use super::connect::Target;
use super::RpcArgs;
use crate::rpc::client::{BlockingClient, RawParams, RpcError};
use crate::rpc::methods;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The call itself: method, parameters and how long to wait (shared by `quarry rpc` and
/// `quarry testnet rpc NODE`).
#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
    /// Wait for the node to come up (its cookie written, its RPC server answering, a stale
    /// cookie from an earlier run replaced) before calling, like bitcoin-cli's -rpcwait; gives
    /// up after --wait-timeout. `quarry testnet rpc NODE --wait` also waits for a stopped
    /// node to be started.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits at most.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait_timeout: u64,
    /// Named parameters: every parameter is NAME=VALUE and they are sent as a JSON object
    /// (bitcoin-cli's `-named`, which is accepted too: `quarry rpc -named getblock ...`).
    #[arg(long)]
    pub named: bool,
    /// Method name, e.g. getblockcount; `help` lists the methods, `help METHOD` shows one.
    #[arg(allow_hyphen_values = true)]
    pub method: String,
    /// Parameters: JSON values, or plain words taken as strings (`getblockhash -1` is a
    /// parameter, not a flag); with --named, NAME=VALUE each.
    #[arg(allow_negative_numbers = true)]
    pub params: Vec<String>,
}

/// One command-line word as JSON: a word that parses as JSON is taken as JSON (numbers,
/// booleans, arrays, objects, quoted strings), anything else as a string, like bitcoin-cli;
/// but a word that opens an array or object and does not parse is refused (`which` names the
/// parameter), since sending it as a string only hides the typo.
fn word_value(w: &str, which: &str) -> Result<Value> {
    match serde_json::from_str(w) {
        Ok(v) => Ok(v),
        Err(e) if w.trim_start().starts_with(['[', '{']) => {
            bail!("{which}: {w:?} opens a JSON array or object but is not valid JSON ({e}); quote it for the shell, e.g. '[\"<txid>\"]'")
        }
        Err(_) => Ok(Value::String(w.to_string())),
    }
}

/// The parameters of `quarry rpc`: positional words, or with `named` NAME=VALUE words sent
/// as an object.
pub(crate) fn parse_params(words: &[String], named: bool) -> Result<RawParams> {
    if !named {
        let values: Result<Vec<Value>> =
            words.iter().enumerate().map(|(i, w)| word_value(w, &format!("parameter {}", i + 1))).collect();
        return Ok(RawParams::Positional(values?));
    }
    let mut map = serde_json::Map::new();
    for w in words {
        let Some((name, value)) = w.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            bail!("with -named every parameter is NAME=VALUE, got {w:?} (e.g. verbosity=2)");
        };
        if map.insert(name.to_string(), word_value(value, name)?).is_some() {
            bail!("parameter {name} given twice");
        }
    }
    Ok(RawParams::Named(map))
}

fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends quietly.
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

pub(super) fn run_rpc(args: RpcArgs) -> Result<()> {
    call(&Target::from_args(&args.data, &args.conn)?, &args.call)
}

/// `help` and `help METHOD`, answered here (the table is this program's).
fn help(topic: Option<&str>) -> Result<()> {
    match topic {
        None => print_out(methods::help_all().trim_end()),
        Some(name) => match methods::find(name) {
            Some(m) => print_out(methods::help_one(m).trim_end()),
            None => bail!("{}", methods::unknown_method_hint(name)),
        },
    }
    Ok(())
}

/// One call to `target`, printed; `--wait` retries while the node is not up yet.
pub(super) fn call(target: &Target, args: &CallArgs) -> Result<()> {
    // bitcoin-cli writes `-named` before the method.
    let (named, method, words) = match args.method.as_str() {
        "-named" | "--named" => match args.params.split_first() {
            Some((m, rest)) => (true, m.clone(), rest.to_vec()),
            None => bail!("-named needs a method: quarry rpc -named getblock blockhash=HASH verbosity=2"),
        },
        m if m.starts_with('-') => bail!("unknown option {m:?} before the method (see quarry rpc --help)"),
        _ => (args.named, args.method.clone(), args.params.clone()),
    };
    if method == "help" {
        return help(words.first().map(String::as_str));
    }
    if methods::WALLET_METHODS.iter().any(|(m, _)| *m == method.to_ascii_lowercase()) {
        bail!("{}", methods::unknown_method_hint(&method));
    }
    let params = parse_params(&words, named)?;
    methods::check(&method, &params).map_err(|e| anyhow!("{e}"))?;
    let timeout = Duration::from_secs(args.timeout);
    let deadline = args.wait.then(|| Instant::now() + Duration::from_secs(args.wait_timeout));
    let result = loop {
        let config = target.config(timeout)?;
        let r = BlockingClient::new(&config).and_then(|c| c.wait(c.call_raw(&method, params.clone())));
        match (&r, deadline) {
            (Err(e), Some(deadline)) if target.waits_out(e) => {
                if Instant::now() >= deadline {
                    bail!("the node did not come up within {} s (--wait-timeout): {e}", args.wait_timeout);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => break r,
        }
    };
    match result {
        Ok(Value::Null) => {}
        Ok(Value::String(s)) => print_out(&s),
        Ok(v) => print_out(&serde_json::to_string_pretty(&v)?),
        // Like bitcoin-cli: the exit status is the error code's magnitude.
        Err(e @ RpcError::Call { code, .. }) => {
            if code == jsonrpsee::types::error::METHOD_NOT_FOUND_CODE {
                eprintln!("error: {} (code {code})", methods::unknown_method_hint(&method));
            } else {
                eprintln!("error: {e}");
            }
            std::process::exit(code.unsigned_abs().clamp(1, 255) as i32);
        }
        Err(e) => bail!("{e}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positional_words_are_json_or_strings() {
        let p = parse_params(&words(&["-1", "true", "abc", "[1]", "\"2\""]), false).unwrap();
        assert_eq!(
            p,
            RawParams::Positional(vec![json!(-1), json!(true), json!("abc"), json!([1]), json!("2")])
        );
    }

    #[test]
    fn a_word_that_opens_json_but_does_not_parse_is_refused() {
        let e = parse_params(&words(&["[{\"txid\":\"00\",\"vout\":0}"]), false).unwrap_err().to_string();
        assert!(e.contains("parameter 1") && e.contains("not valid JSON"), "{e}");
        let e = parse_params(&words(&["outputs={\"a\": 1"]), true).unwrap_err().to_string();
        assert!(e.contains("outputs:") && e.contains("not valid JSON"), "{e}");
        assert!(parse_params(&words(&["[1]", "x[1"]), false).is_ok());
    }

    #[test]
    fn named_words_make_an_object_in_order() {
        let p = parse_params(&words(&["blockhash=ab", "verbosity=2"]), true).unwrap();
        let RawParams::Named(m) = p else { panic!("named") };
        assert_eq!(Value::Object(m).to_string(), r#"{"blockhash":"ab","verbosity":2}"#);
    }

    #[test]
    fn named_words_without_a_name_or_twice_are_refused() {
        assert!(parse_params(&words(&["2"]), true).unwrap_err().to_string().contains("NAME=VALUE"));
        assert!(parse_params(&words(&["=2"]), true).is_err());
        assert!(parse_params(&words(&["a=1", "a=2"]), true).unwrap_err().to_string().contains("twice"));
    }
}
