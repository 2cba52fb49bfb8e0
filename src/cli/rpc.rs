//! `quarry rpc <method> [params]`: one raw call through the RPC client, printed like
//! bitcoin-cli prints it (strings bare, `null` as nothing, anything else as pretty JSON).

use super::RpcArgs;
use crate::rpc::client::{BlockingClient, RawParams, RpcConfig, RpcError};
use anyhow::{bail, Result};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// One command-line word as JSON: a word that parses as JSON is taken as JSON (numbers,
/// booleans, arrays, objects, quoted strings), anything else as a string, like bitcoin-cli.
fn word_value(w: &str) -> Value {
    serde_json::from_str(w).unwrap_or_else(|_| Value::String(w.to_string()))
}

/// The parameters of `quarry rpc`: positional words, or with `named` NAME=VALUE words sent
/// as an object.
pub(super) fn parse_params(words: &[String], named: bool) -> Result<RawParams> {
    if !named {
        return Ok(RawParams::Positional(words.iter().map(|w| word_value(w)).collect()));
    }
    let mut map = serde_json::Map::new();
    for w in words {
        let Some((name, value)) = w.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            bail!("with -named every parameter is NAME=VALUE, got {w:?} (e.g. verbosity=2)");
        };
        if map.insert(name.to_string(), word_value(value)).is_some() {
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
    let datadir = args.data.base_dir()?;
    let addr = args
        .rpc_connect
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, args.data.network.default_rpc_port())));
    // bitcoin-cli writes `-named` before the method.
    let (named, method, words) = match args.method.as_str() {
        "-named" | "--named" => match args.params.split_first() {
            Some((m, rest)) => (true, m.clone(), rest.to_vec()),
            None => bail!("-named needs a method: quarry rpc -named getblock blockhash=HASH verbosity=2"),
        },
        m if m.starts_with('-') => bail!("unknown option {m:?} before the method (see quarry rpc --help)"),
        _ => (args.named, args.method.clone(), args.params.clone()),
    };
    let params = parse_params(&words, named)?;
    let config = RpcConfig::new(addr, &datadir, args.rpc_user.zip(args.rpc_password))
        .timeout(Duration::from_secs(args.timeout));
    let result = BlockingClient::new(&config).and_then(|c| c.wait(c.call_raw(&method, params)));
    match result {
        Ok(Value::Null) => {}
        Ok(Value::String(s)) => print_out(&s),
        Ok(v) => print_out(&serde_json::to_string_pretty(&v)?),
        // Like bitcoin-cli: the exit status is the error code's magnitude.
        Err(e @ RpcError::Call { code, .. }) => {
            eprintln!("error: {e}");
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
