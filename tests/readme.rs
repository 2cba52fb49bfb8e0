//! README.md's walkthrough blocks run as scripts, each pasted as a whole into `bash -e`: the
//! "Run a node, mine, send a transaction" and "Wallet" blocks with a fresh `HOME` (so
//! `~/.quarry/regtest` is a temporary directory) and a `quarry.toml` there choosing free ports
//! (the default ones could be taken on a shared machine); the "Peer-to-peer" block with its
//! `/tmp/a`, `/tmp/b` and ports replaced by temporary ones. `cargo` is a no-op (the test's
//! binary is first on `PATH`). A failing line fails the test with the script's output; the
//! nodes a script starts are killed when it exits.

use crate::common;

use std::process::Command;

/// The first ```sh block after the heading `## {heading}`.
fn block(heading: &str) -> String {
    let readme = include_str!("../README.md");
    let at = readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no heading {heading}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + 6;
    let end = rest[start..].find("```").expect("the block ends");
    rest[start..start + end].to_string()
}

/// Runs `script` in a temporary working directory with `HOME` there; returns stdout.
fn run(script: &str, home_setup: impl FnOnce(&std::path::Path)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    home_setup(&home);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_quarry")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let prelude = "set -e -o pipefail\ncargo() { :; }\ntrap 'kill -9 $(jobs -p) 2>/dev/null || true' EXIT\n";
    let out = Command::new("timeout")
        .args(["180", "bash", "-c", &format!("{prelude}{script}\nwait\n")])
        .current_dir(tmp.path())
        .env("HOME", &home)
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the README block failed (exit {}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn regtest_ports(home: &std::path::Path) {
    let dir = home.join(".quarry").join("regtest");
    std::fs::create_dir_all(&dir).unwrap();
    let toml =
        format!("rpc_bind = \"127.0.0.1:{}\"\np2p_port = {}\n", common::free_port(), common::free_port());
    std::fs::write(dir.join("quarry.toml"), toml).unwrap();
}

#[test]
fn readme_run_a_node_block_runs_as_a_script() {
    let out = run(&block("Run a node, mine, send a transaction"), regtest_ports);
    assert!(out.contains("\"complete\": true"), "{out}");
    assert!(out.contains("\"confirmations\": 1"), "{out}");
    assert!(out.contains("quarry stopping"), "{out}");
}

#[test]
fn readme_wallet_block_runs_as_a_script() {
    let out = run(&block("Wallet"), regtest_ports);
    assert!(out.contains("confirmed    12.50000000"), "bob's balance: {out}");
    assert!(out.contains("verified: "), "{out}");
    assert!(out.contains("signed: 2 of 2 signatures"), "{out}");
    assert!(out.contains("quarry stopping"), "{out}");
}

#[test]
fn readme_peer_to_peer_block_runs_as_a_script() {
    let tmp = tempfile::tempdir().unwrap();
    let mut script = block("Peer-to-peer");
    for (from, to) in [
        ("/tmp/a".to_string(), tmp.path().join("a").display().to_string()),
        ("/tmp/b".to_string(), tmp.path().join("b").display().to_string()),
    ] {
        script = script.replace(&from, &to);
    }
    for port in ["18001", "18002", "18003", "18004"] {
        script = script.replace(port, &common::free_port().to_string());
    }
    let out = run(&script, |_| {});
    assert_eq!(out.matches("quarry stopping").count(), 2, "{out}");
}

#[test]
fn readme_mining_pool_block_runs_as_a_script() {
    let script = block("Mining pool").replace("3333", &common::free_port().to_string());
    let out = run(&script, |home| {
        let dir = home.join(".quarry").join("dev");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("quarry.toml"),
            format!("rpc_bind = \"127.0.0.1:{}\"\n", common::free_port()),
        )
        .unwrap();
    });
    // Both miners had shares accepted and both appear in the stats.
    let accepted: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("submitted ").and_then(|r| r.split_whitespace().nth(2)?.parse().ok()))
        .collect();
    assert_eq!(accepted.len(), 2, "{out}");
    assert!(accepted.iter().all(|&a| a > 0), "{out}");
    // alice is named by her address, bob by addresses.txt; the last stats show both paid.
    for w in ["qdev1", "bob "] {
        let last = out
            .lines()
            .filter(|l| l.starts_with(w))
            .last()
            .unwrap_or_else(|| panic!("{w} in the stats: {out}"));
        let paid: u64 = last.split_whitespace().last().unwrap().parse().unwrap();
        assert!(paid > 0, "{w} was paid: {out}");
    }
    assert!(out.contains("quarry stopping"), "{out}");
}

/// README's "Local testnet" synopsis: every command a `quarry testnet ...` line shows exists,
/// and its `--help` lists every option the line gives it.
#[test]
fn readme_testnet_synopsis_matches_each_commands_help() {
    let synopsis = block("Local testnet");
    let mut checked = 0;
    for line in synopsis.lines().filter_map(|l| l.strip_prefix("quarry testnet ")) {
        let line = line.split(" #").next().unwrap();
        // `stop n2 / start n2 / restart n2`: three commands on one line.
        for part in line.split(" / ") {
            let sub = part.split_whitespace().next().expect("a command name");
            let out = common::quarry(&["testnet", sub, "--help"]);
            let help = common::ok(&out);
            for word in part.split_whitespace() {
                let option = word.trim_matches(|c| c == '[' || c == ']');
                if let Some(name) = option.strip_prefix("--") {
                    let name = name.split(['=', ' ']).next().unwrap();
                    assert!(help.contains(&format!("--{name}")), "`testnet {sub}` has no --{name}:\n{help}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} synopsis commands found:\n{synopsis}");
}

/// testnet/README.md's TOML examples load as topologies: the node block as written, the
/// hosts-and-links block with the two nodes its link names.
#[test]
fn testnet_readme_toml_blocks_load() {
    let readme = include_str!("../testnet/README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").expect("the block ends")])
        .collect();
    assert_eq!(blocks.len(), 2, "the topology examples");
    let t = quarry::testnet::topology::Topology::parse(blocks[0]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.nodes.len(), 1);
    let linked = format!("{}\n[[node]]\nname = \"n1\"\n[[node]]\nname = \"n2\"\n", blocks[1]);
    let t = quarry::testnet::topology::Topology::parse(&linked).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.links.len(), 1);
    assert!(t.default_link.is_some());
}
