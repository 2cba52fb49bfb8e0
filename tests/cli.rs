//! The command line as a bitcoind user expects it (issue 18): `quarry rpc` and `quarry
//! wallet` find a node from its data directory, `--rpc-connect` forms, `--wait`, `help`,
//! parameter errors in words, did-you-mean, global options after the subcommand.

use crate::common;

use common::{free_port, ok, quarry, Node};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// stderr of a command that must fail.
fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rpc_and_wallet_find_the_node_from_its_datadir_and_rpc_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let d = s(&dir);
    let port = free_port();
    // Started before the node: --wait waits for its cookie and its server.
    let waiting = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["rpc", "--datadir", d, "--wait", "--wait-timeout", "60", "getblockcount"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let node = Node::start(&dir, "regtest", Some(port), &[]);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(ok(&out).trim(), "0");
    // The node recorded its address beside the cookie; no --rpc-connect needed.
    assert_eq!(std::fs::read_to_string(dir.join(".rpcaddr")).unwrap(), format!("127.0.0.1:{port}"));
    assert_eq!(ok(&quarry(&["rpc", "--datadir", d, "getblockcount"])).trim(), "0");
    // --rpc-connect forms; --datadir after the method.
    for form in [port.to_string(), format!("localhost:{port}"), format!("http://127.0.0.1:{port}/")] {
        assert_eq!(
            ok(&quarry(&["rpc", "--rpc-connect", &form, "getblockcount", "--datadir", d])).trim(),
            "0"
        );
    }
    let e = fails(&quarry(&["rpc", "--rpc-connect", "localhost", "getblockcount"]));
    assert!(e.contains("PORT, HOST:PORT or http://HOST:PORT"), "{e}");
    // The wallet too, with the global options after the subcommand.
    ok(&quarry(&["wallet", "create", "--datadir", d]));
    let bal = ok(&quarry(&["wallet", "balance", "--datadir", d, "--network", "regtest", "--json"]));
    assert!(bal.contains("\"confirmed\""), "{bal}");
    // Unknown methods: did-you-mean from the node's -32601.
    let e = fails(&quarry(&["rpc", "--datadir", d, "getblokcount"]));
    assert!(e.contains("did you mean getblockcount?"), "{e}");
    // The server's -32602 says the same in words (for clients other than `quarry rpc`).
    let e = node.rpc_err("getblockhash", serde_json::json!(["abc"]));
    let m = e["message"].as_str().unwrap();
    assert_eq!(e["code"], serde_json::json!(-32602));
    assert!(m.contains("parameter 1 (height) must be an integer") && m.contains("\"abc\""), "{m}");
    assert!(!m.contains("line 1 column") && !m.contains("invalid type"), "{m}");
    let e = node.rpc_err("getblock", serde_json::json!({ "hash": "00" }));
    assert!(e["message"].as_str().unwrap().contains("no parameter named \"hash\""), "{e}");
    let e = node.rpc_err("getblockhash", serde_json::json!([]));
    assert!(e["message"].as_str().unwrap().contains("missing parameter 1 (height)"), "{e}");
    // Wrong credentials are named as such, not as a node that is not running.
    let e =
        fails(&quarry(&["rpc", "--datadir", d, "--rpc-user", "x", "--rpc-password", "y", "getblockcount"]));
    assert!(e.contains("authentication failed") && !e.contains("running"), "{e}");
    let e = fails(&quarry(&["wallet", "--datadir", d, "--rpc-user", "x", "--rpc-password", "y", "balance"]));
    assert!(e.contains("authentication failed") && !e.contains("running"), "{e}");
    node.stop();
    assert!(!dir.join(".rpcaddr").exists(), "the address file is removed at shutdown");
}

#[test]
fn options_before_the_command_name_and_wait_outlasting_a_stale_cookie() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let d = s(&dir);
    let node = Node::start(&dir, "regtest", Some(free_port()), &[]);
    // bitcoin-cli habit: global options before the command name.
    assert_eq!(ok(&quarry(&["--network", "regtest", "--datadir", d, "rpc", "getblockcount"])).trim(), "0");
    ok(&quarry(&["--datadir", d, "wallet", "create"]));
    assert!(dir.join("wallet.json").exists(), "the wallet was made in --datadir");
    let e = fails(&quarry(&["--no-such-option", "rpc", "getblockcount"]));
    assert!(e.contains("--no-such-option"), "{e}");
    // A cookie left by an earlier run of the node (a crash), not yet replaced: without --wait
    // the 401 is reported at once; with --wait the call waits until the cookie is the node's.
    let stale = tmp.path().join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(".cookie"), "__cookie__:0000").unwrap();
    let addr = node.addr.to_string();
    let e = fails(&quarry(&["rpc", "--datadir", s(&stale), "--rpc-connect", &addr, "getblockcount"]));
    assert!(e.contains("authentication failed"), "{e}");
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["rpc", "--datadir", s(&stale), "--rpc-connect", &addr, "--wait", "--wait-timeout", "60"])
        .arg("getblockcount")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(waiting.try_wait().unwrap().is_none(), "--wait gave up on a stale cookie");
    std::fs::write(stale.join(".cookie"), node.cookie()).unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(ok(&out).trim(), "0");
    // With --rpc-user a 401 is a wrong password, not a node starting: reported at once.
    let e = fails(&quarry(&[
        "rpc",
        "--datadir",
        d,
        "--rpc-user",
        "x",
        "--rpc-password",
        "y",
        "--wait",
        "--wait-timeout",
        "60",
        "getblockcount",
    ]));
    assert!(e.contains("authentication failed"), "{e}");
    node.stop();
}

#[test]
fn rpc_wait_gives_up_after_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let d = s(tmp.path());
    let out = quarry(&[
        "rpc",
        "--datadir",
        d,
        "--rpc-connect",
        &port,
        "--wait",
        "--wait-timeout",
        "1",
        "getblockcount",
    ]);
    let e = fails(&out);
    assert!(e.contains("did not come up within 1 s"), "{e}");
}

/// Everything here is answered before any node is asked: no node runs.
#[test]
fn rpc_help_parameter_errors_and_wallet_pointers_need_no_node() {
    let out = ok(&quarry(&["rpc", "help"]));
    assert!(
        out.contains("getblock blockhash [verbosity]") && out.contains("gettxout txid n [include_mempool]")
    );
    let out = ok(&quarry(&["rpc", "help", "createrawtransaction"]));
    assert!(out.contains("1. inputs") && out.contains("3. locktime, optional"), "{out}");
    let e = fails(&quarry(&["rpc", "help", "getblok"]));
    assert!(e.contains("did you mean getblock"), "{e}");
    let port = free_port().to_string();
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "getblockhash", "abc"]));
    assert!(e.contains("parameter 1 (height) must be an integer") && e.contains("got \"abc\""), "{e}");
    assert!(!e.contains("line 1 column"), "{e}");
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "getblockhash"]));
    assert!(e.contains("missing parameter 1 (height)"), "{e}");
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "getblockcount", "12"]));
    assert!(e.contains("takes no parameters, got 1"), "{e}");
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "-named", "getblock", "hash=00"]));
    assert!(e.contains("no parameter named \"hash\""), "{e}");
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "getbalance"]));
    assert!(e.contains("quarry wallet balance"), "{e}");
    let e = fails(&quarry(&["rpc", "--rpc-connect", &port, "getnewaddress"]));
    assert!(e.contains("quarry wallet new-address"), "{e}");
    // The wallet's help shows the data options on every subcommand.
    let help = ok(&quarry(&["wallet", "send", "--help"]));
    assert!(
        help.contains("--network") && help.contains("--datadir") && help.contains("--rpc-connect"),
        "{help}"
    );
}

/// `quarry sim` is deterministic end to end: the same flags give the same stdout, JSON and PNG
/// bytes; another seed gives another run; a bad flag is named.
#[test]
fn sim_replays_byte_for_byte_from_its_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |seed: &str| {
        ok(&quarry(&[
            "sim",
            "run",
            "--nodes",
            "60",
            "--degree",
            "6",
            "--blocks",
            "300",
            "--interval",
            "30",
            "--seed",
            seed,
        ]))
    };
    let a = run("9");
    assert_eq!(a, run("9"));
    assert_ne!(a, run("10"));
    let report: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(report["blocks_mined"], 300);
    assert_eq!(report["nodes"], 60);
    for (i, exp) in [["double-spend", "--trials", "500"], ["stale", "--blocks", "300"]].iter().enumerate() {
        let mut files = Vec::new();
        for round in 0..2 {
            let out = tmp.path().join(format!("{i}-{round}"));
            let mut args = vec!["sim", exp[0], exp[1], exp[2], "--seed", "3", "--out", s(&out)];
            if exp[0] == "stale" {
                args.extend(["--nodes", "8", "--ratio", "0.05,0.2"]);
            }
            let stdout = ok(&quarry(&args));
            let json = std::fs::read(out.join(format!("{}.json", exp[0]))).unwrap();
            let png = std::fs::read(out.join(format!("{}.png", exp[0]))).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{}", exp[0]);
            files.push((stdout.replace(s(&out), "OUT"), json, png));
        }
        assert!(files[0] == files[1], "{}: two runs with one seed differ", exp[0]);
    }
    let e = fails(&quarry(&["sim", "run", "--latency", "gauss:3"]));
    assert!(e.contains("fixed:MS, uniform:LO:HI or exp:MEAN"), "{e}");
}
