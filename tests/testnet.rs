//! `quarry testnet`: up/down leaves no process behind; the shipped scenarios pass; a wrong
//! outcome fails the scenario; spam confirms transactions.

use crate::common;

use common::{ok, quarry};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            !matches!(stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()), Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

fn pids(dir: &Path) -> Vec<u64> {
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    state["nodes"].as_array().unwrap().iter().filter_map(|n| n["pid"].as_u64()).collect()
}

#[test]
fn testnet_up_then_down_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let out = ok(&quarry(&["testnet", "--dir", d, "up", "--nodes", "3", "--miners", "1", "--no-watch"]));
    assert!(out.contains("testnet up"), "{out}");
    let running = pids(&dir);
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|p| alive(*p)));
    // A second `up` refuses while it runs.
    let again = quarry(&["testnet", "--dir", d, "up", "--no-watch"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    // Status: one row per node, all connected and funded.
    let status: Value =
        serde_json::from_str(&ok(&quarry(&["testnet", "--dir", d, "status", "--json"]))).unwrap();
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r["running"], Value::Bool(true), "{r}");
        assert!(r["peers"].as_u64().unwrap() >= 1, "{r}");
        assert!(r["height"].as_u64().unwrap() >= 23, "{r}");
    }
    ok(&quarry(&["testnet", "--dir", d, "down"]));
    // `down` returns only once every node has exited (a zombie counts as gone).
    for p in &running {
        assert!(!alive(*p), "process {p} left behind");
    }
    assert!(pids(&dir).is_empty());
    // Up again resumes the same chain; down --clean removes everything (the directory holds
    // nothing but the testnet).
    ok(&quarry(&["testnet", "--dir", d, "up", "--no-watch"]));
    let resumed = pids(&dir);
    ok(&quarry(&["testnet", "--dir", d, "down", "--clean"]));
    for p in &resumed {
        assert!(!alive(*p), "process {p} left behind");
    }
    assert!(!dir.exists());
}

/// `testnet up --sync-writes` starts every node with `--sync-writes` (recorded in
/// testnet.json, so a restarted node keeps it), also when it resumes a stopped testnet.
#[test]
fn up_with_sync_writes_passes_it_to_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let up = ["testnet", "--dir", d, "up", "--network", "regtest", "--nodes", "2", "--miners", "0"];
    ok(&quarry(&[&up[..], &["--no-watch", "--no-explorer"]].concat()));
    let state = |dir: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap()).unwrap()
    };
    let synced = |v: &Value| {
        v["nodes"].as_array().unwrap().iter().filter(|n| n["sync_writes"] == Value::Bool(true)).count()
    };
    assert_eq!(synced(&state(&dir)), 0, "off unless asked");
    ok(&quarry(&["testnet", "--dir", d, "down"]));
    ok(&quarry(&[&up[..], &["--no-watch", "--no-explorer", "--sync-writes"]].concat()));
    assert_eq!(synced(&state(&dir)), 2);
    for n in ["n1", "n2"] {
        let log = std::fs::read_to_string(dir.join(n).join("node.log")).unwrap();
        let opened: Vec<&str> = log.lines().filter(|l| l.contains("chainstate opened")).collect();
        assert!(opened.len() >= 2 && opened.last().unwrap().contains("sync_writes=true"), "{n}: {opened:?}");
        assert!(opened[0].contains("sync_writes=false"), "{n}: {opened:?}");
    }
    ok(&quarry(&["testnet", "--dir", d, "down", "--clean"]));
}

/// `--clean` (on `up` and `down`) deletes only what the testnet made: files beside it in its
/// directory survive, and a directory that holds no testnet is refused untouched.
#[test]
fn clean_deletes_only_what_the_testnet_made() {
    let tmp = tempfile::tempdir().unwrap();
    // The testnet shares its directory with the user's files (as with `--dir .`).
    let dir = tmp.path();
    let d = dir.to_str().unwrap();
    std::fs::write(dir.join("notes.txt"), b"keep me").unwrap();
    let up =
        ["testnet", "--dir", d, "up", "--network", "regtest", "--nodes", "1", "--miners", "0", "--no-watch"];
    ok(&quarry(&up));
    ok(&quarry(&["testnet", "--dir", d, "down"]));
    // `up --clean` starts afresh without touching notes.txt.
    let mut up_clean = up.to_vec();
    up_clean.push("--clean");
    ok(&quarry(&up_clean));
    let started = pids(dir);
    assert!(dir.join("notes.txt").is_file(), "up --clean deleted notes.txt");
    let out = ok(&quarry(&["testnet", "--dir", d, "down", "--clean"]));
    for p in &started {
        assert!(!alive(*p), "process {p} left behind");
    }
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"keep me", "down --clean deleted notes.txt");
    assert!(!dir.join("testnet.json").exists() && !dir.join("n1").exists(), "{out}");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("notes.txt")]);
    assert!(out.contains("kept") && out.contains("notes.txt"), "{out}");

    // Now `dir` holds no testnet: refused, nothing deleted.
    let out = quarry(&["testnet", "--dir", d, "down", "--clean"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not hold a testnet"), "{stderr}");
    assert!(dir.join("notes.txt").is_file());

    // A state file naming a directory the testnet did not make: refused, nothing deleted.
    std::fs::create_dir(dir.join("thesis")).unwrap();
    std::fs::write(dir.join("thesis").join("ch1.tex"), b"x").unwrap();
    std::fs::write(
        dir.join("testnet.json"),
        r#"{"network":"regtest","nodes":[{"name":"thesis","mine":false,"threads":1,"bootnodes":[],
            "rpc_port":1,"p2p_port":2,"peer_id":"","pid":null,"start":true}]}"#,
    )
    .unwrap();
    let out = quarry(&["testnet", "--dir", d, "down", "--clean"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a node directory the testnet made"), "{stderr}");
    assert!(dir.join("thesis").join("ch1.tex").is_file() && dir.join("testnet.json").is_file());
}

fn scenario(name: &str) {
    scenario_out(name);
}

/// Runs a shipped scenario; its output.
fn scenario_out(name: &str) -> String {
    scenario_on(name, &[])
}

/// Runs a shipped scenario with extra arguments (`--network regtest`); its output.
fn scenario_on(name: &str, extra: &[&str]) -> String {
    let path = format!("{}/testnet/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["testnet", "scenario", &path];
    args.extend(extra);
    let out = ok(&quarry(&args));
    assert!(out.contains(&format!("scenario {name} passed")), "{out}");
    out
}

/// The scenarios whose blocks all come from `mine` steps also pass on regtest, where those
/// blocks come at once (about 1 s each instead of 15-30 s on dev).
#[test]
fn scenarios_with_mine_steps_pass_on_regtest() {
    for name in ["late-joiner", "partition-heal", "double-spend-across-partition"] {
        let out = scenario_on(name, &["--network", "regtest"]);
        assert!(out.contains(&format!("scenario {name} (regtest, ")), "{out}");
    }
    // A scenario with a continuous miner is refused on regtest rather than flooded with blocks.
    let path = format!("{}/testnet/scenarios/crash-and-recover.toml", env!("CARGO_MANIFEST_DIR"));
    let out = quarry(&["testnet", "scenario", &path, "--network", "regtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mines continuously with no `hashrate`"), "{err}");
}

#[test]
fn scenario_partition_heal() {
    scenario("partition-heal");
}

#[test]
fn scenario_double_spend_across_partition() {
    scenario("double-spend-across-partition");
}

#[test]
fn scenario_crash_and_recover() {
    scenario("crash-and-recover");
}

#[test]
fn scenario_late_joiner() {
    scenario("late-joiner");
}

/// A selfish miner (40%) withholds and races; the figures are printed.
#[test]
fn scenario_selfish_miner() {
    let out = scenario_out("selfish-miner");
    assert!(out.contains("% of hashes") && out.contains("stale"), "{out}");
}

/// q = 0.7: the attacker's branch always overtakes, the merchant's payment is reversed.
#[test]
fn scenario_majority_double_spend() {
    let out = scenario_out("majority-double-spend");
    assert!(out.contains("succeeded") && out.contains("payment reversed"), "{out}");
}

/// q = 0.2, z = 3: the payment stays confirmed in most of three trials.
#[test]
fn scenario_minority_double_spend() {
    let out = scenario_out("minority-double-spend");
    assert!(out.contains("trial 3:") && out.contains("payments reversed"), "{out}");
}

/// An eclipsed node follows the attacker's chain until one honest link appears.
#[test]
fn scenario_eclipse() {
    scenario("eclipse");
}

/// A scenario whose assertion is wrong fails, names the step, and stops its nodes.
#[test]
fn a_wrong_outcome_fails_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("wrong.toml");
    std::fs::write(
        &file,
        r#"name = "wrong"
[topology]
network = "regtest"
[[topology.node]]
name = "a"
[[topology.node]]
name = "b"
bootnodes = ["a"]
[[step]]
do = "partition"
groups = [["a"], ["b"]]
[[step]]
do = "mine"
node = "a"
blocks = 3
[[step]]
do = "assert-same-tip"
"#,
    )
    .unwrap();
    let out = quarry(&["testnet", "scenario", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("FAIL  3. assert same tip"), "{stdout}");
    assert!(stderr.contains("step 3") && stderr.contains("tips differ"), "{stderr}");
    // Its nodes were stopped: the kept directory's state has no pid.
    let kept = stdout.lines().find_map(|l| l.strip_prefix("scenario directory kept: ")).unwrap();
    let dir = Path::new(kept);
    assert!(pids(dir).is_empty());
    // The failure names the real log files.
    let logs = stdout.lines().find_map(|l| l.strip_prefix("node logs: ")).unwrap();
    for log in logs.split(' ') {
        assert!(Path::new(log).is_file(), "{log} in {stdout}");
    }
    assert_eq!(logs.split(' ').count(), 2, "{logs}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());

    // A malformed file is refused before anything starts, naming the problem.
    std::fs::write(
        &file,
        "name = \"x\"\n[topology]\n[[topology.node]]\nname = \"a\"\n[[step]]\ndo = \"fly\"\n",
    )
    .unwrap();
    let out = quarry(&["testnet", "scenario", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fly"));
}

#[test]
fn spam_confirms_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    ok(&quarry(&["testnet", "--dir", d, "up", "--nodes", "2", "--miners", "1", "--no-watch"]));
    let out =
        quarry(&["testnet", "--dir", d, "spam", "--tps", "100", "--seconds", "2", "--drain", "60", "--json"]);
    let down = quarry(&["testnet", "--dir", d, "down"]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    ok(&down);
    assert_eq!(report["offered"], report["submitted"], "{report}");
    assert_eq!(report["refused"], Value::from(0), "{report}");
    assert_eq!(report["confirmed"], report["submitted"], "{report}");
    assert!(report["latency"][0].as_f64().unwrap() > 0.0, "{report}");
    // 200 transactions at 100 tx/s: a 2-second window (10 per batch), not one burst.
    assert!(report["submit_seconds"].as_f64().unwrap() >= 1.99, "{report}");
    assert!(report["submitted_tps"].as_f64().unwrap() <= 100.5, "{report}");
    assert_eq!(report["unaccounted"], Value::from(0), "{report}");
    // Every node's CPU and memory, and a per-second series that adds up to the totals.
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{report}");
    assert!(nodes
        .iter()
        .all(|n| n["cpu_seconds"].as_f64().unwrap() > 0.0 && n["rss_mib"].as_f64().unwrap() > 1.0));
    let series = report["series"].as_array().unwrap();
    let sum = |k: &str| series.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(Value::from(sum("submitted")), report["submitted"], "{report}");
    assert_eq!(Value::from(sum("confirmed")), report["confirmed"], "{report}");
    // The series went to spam/ as JSON and as a chart.
    let files: Vec<String> = std::fs::read_dir(dir.join("spam"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let svg = files.iter().find(|f| f.ends_with(".svg")).expect("a chart");
    assert!(files.iter().any(|f| f.ends_with(".json")), "{files:?}");
    let svg = std::fs::read_to_string(dir.join("spam").join(svg)).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("confirmed tx/s") && svg.contains("<polyline"), "{svg}");
}

/// One node at a time: `stop NODE`, `start NODE`, `restart NODE`; `up` restarts a crashed node
/// of a running testnet; `testnet rpc NODE` and `testnet wallet NODE` need no ports; every
/// hint keeps `--dir`; `status --watch` survives a closed pipe and honours `--json`.
#[test]
fn single_node_lifecycle_testnet_rpc_and_wallet_and_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let out = ok(&quarry(&[
        "testnet",
        "--dir",
        d,
        "up",
        "--network",
        "regtest",
        "--nodes",
        "2",
        "--miners",
        "0",
        "--no-watch",
    ]));
    assert!(out.contains(&format!("try: quarry testnet --dir {d} rpc n1 getpeerinfo")), "{out}");
    assert!(out.contains(&format!("quarry testnet --dir {d} wallet n1 balance")), "{out}");
    let height: u64 =
        ok(&quarry(&["testnet", "--dir", d, "rpc", "n1", "getblockcount"])).trim().parse().unwrap();
    assert!(height > 0);
    let bal: Value =
        serde_json::from_str(&ok(&quarry(&["testnet", "--dir", d, "wallet", "n2", "balance", "--json"])))
            .unwrap();
    assert_eq!(bal["confirmed"], Value::from("200.00000000"), "{bal}");
    // --json and --dir before or after the subcommand.
    let rows: Value =
        serde_json::from_str(&ok(&quarry(&["testnet", "--json", "status", "--dir", d]))).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let e = quarry(&["testnet", "--dir", d, "rpc", "n9", "getblockcount"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("no node named \"n9\" (nodes: n1, n2)"));
    // A second `up` while everything runs: refused, with hints that keep --dir.
    let again = quarry(&["testnet", "--dir", d, "up", "--no-watch"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains(&format!("quarry testnet --dir {d} down")),
        "{stderr}"
    );

    // n2 crashes: `up` starts it again and leaves n1 running.
    let n1 = pids(&dir)[0];
    let n2 = pids(&dir)[1];
    assert!(Command::new("kill").args(["-KILL", &n2.to_string()]).status().unwrap().success());
    common::wait_for(10, "the killed n2 to exit", || !alive(n2));
    let out = ok(&quarry(&["testnet", "--dir", d, "up", "--no-watch"]));
    assert!(out.contains("starting its stopped nodes: n2"), "{out}");
    let now = pids(&dir);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], n1, "n1 kept running");
    assert!(alive(now[1]) && now[1] != n2);

    // No node mines: spam refuses at once instead of reporting NaN latencies.
    let spam = quarry(&["testnet", "--dir", d, "spam", "--tps", "5", "--seconds", "1"]);
    let stderr = String::from_utf8_lossy(&spam.stderr);
    assert!(!spam.status.success() && stderr.contains("no running node mines"), "{stderr}");

    // stop / start / restart one node.
    let out = ok(&quarry(&["testnet", "--dir", d, "stop", "n2"]));
    assert!(out.contains(&format!("quarry testnet --dir {d} start n2")), "{out}");
    assert_eq!(pids(&dir), vec![n1]);
    let e = quarry(&["testnet", "--dir", d, "rpc", "n2", "getblockcount"]);
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains(&format!("n2 is not running: start it with `quarry testnet --dir {d} start n2`")),
        "{stderr}"
    );
    ok(&quarry(&["testnet", "--dir", d, "start", "n2"]));
    assert_eq!(pids(&dir).len(), 2);
    ok(&quarry(&["testnet", "--dir", d, "restart", "n1"]));
    let after = pids(&dir);
    assert!(!after.contains(&n1) && after.iter().all(|p| alive(*p)), "{after:?}");

    // `status --watch | head -1`: the closed pipe ends it quietly; --json gives JSON lines.
    for (json, check) in [(false, "node"), (true, "[{")] {
        let mut args = vec!["testnet", "--dir", d, "status", "--watch"];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first)
            .unwrap();
        // stdout is closed now (the reader was dropped): the next redraw must end the program.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !stderr.contains("panicked"), "{} {stderr}", out.status);
        assert!(first.contains(check), "{first}");
        if json {
            let rows: Value = serde_json::from_str(&first).unwrap();
            assert_eq!(rows.as_array().unwrap().len(), 2);
        }
    }
    let running = pids(&dir);
    ok(&quarry(&["testnet", "--dir", d, "down"]));
    // `down` returns only once every node has exited (a zombie counts as gone).
    for p in &running {
        assert!(!alive(*p), "process {p} left behind");
    }
}

/// `scenario --dir DIR` runs there and keeps it; a node name the topology lacks is refused
/// before anything starts.
#[test]
fn scenario_runs_in_its_dir_and_checks_node_names_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("one.toml");
    let body = "name = \"one\"\n[topology]\nnetwork = \"regtest\"\n[[topology.node]]\nname = \"a\"\n[[step]]\ndo = \"mine\"\nblocks = 2\n";
    std::fs::write(&file, format!("{body}node = \"b\"\n")).unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let out = quarry(&["testnet", "--dir", d, "scenario", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("names node \"b\", which is not in the topology"),
        "{stderr}"
    );
    assert!(!dir.exists(), "nothing was set up");
    std::fs::write(&file, format!("{body}node = \"a\"\n")).unwrap();
    let out = ok(&quarry(&["testnet", "--dir", d, "scenario", file.to_str().unwrap()]));
    assert!(out.contains("scenario one passed"), "{out}");
    assert!(dir.join("a").join("node.log").is_file() && pids(&dir).is_empty(), "{out}");
    // The directory now holds a testnet: refused.
    let out = quarry(&["testnet", "--dir", d, "scenario", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a testnet"));
}

/// True if this process may make network namespaces (root); otherwise prints why the test
/// is skipped.
fn netns_allowed(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tun = Path::new("/dev/net/tun").exists();
    if !root || !tun {
        eprintln!(
            "SKIPPED {test}: --hosts netns needs root and /dev/net/tun (euid root: {root}, /dev/net/tun: {tun})"
        );
    }
    root && tun
}

/// Namespaces, host interfaces and the id reservation of fabric `id` that exist now.
fn fabric_objects(id: u64) -> Vec<String> {
    let mut left = Vec::new();
    for (dir, prefixes) in [
        ("/run/netns", vec![format!("quarry-{id}-")]),
        ("/sys/class/net", vec![format!("qm{id}h"), format!("qd{id}n")]),
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    left.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    let reservation = format!("/run/quarry-testnet/{id}");
    if Path::new(&reservation).exists() {
        left.push(reservation);
    }
    left
}

/// `--hosts netns`: every node in its own namespace with its own addresses, RPC reachable
/// from the host; `down` removes every namespace and device, also after kill -9 of every
/// process the testnet started (nodes and shaper), and a resumed `up` makes them again.
#[test]
fn netns_up_down_removes_everything_also_after_kill_9() {
    if !netns_allowed("netns_up_down_removes_everything_also_after_kill_9") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let up = ["testnet", "--dir", d, "up", "--hosts", "netns", "--network", "regtest", "--nodes", "3"];
    let out = ok(&quarry(&[&up[..], &["--miners", "0", "--no-watch", "--no-explorer"]].concat()));
    assert!(out.contains("namespaces up"), "{out}");
    let fabric: Value = serde_json::from_slice(&std::fs::read(dir.join("fabric.json")).unwrap()).unwrap();
    let id = fabric["id"].as_u64().unwrap();
    // 3 namespaces, 3 host-side veths (the TAPs live inside the namespaces), 1 reservation.
    assert_eq!(fabric_objects(id).len(), 7, "{:?}", fabric_objects(id));
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    for (i, n) in state["nodes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(n["ip"], Value::from(format!("10.202.{id}.{}", 4 * i + 2)), "{n}");
        assert_eq!(n["p2p_ip"], Value::from(format!("10.201.{id}.{}", i + 1)), "{n}");
    }
    // The CLI reaches each node; peers connect over their namespace addresses.
    let peers: Value =
        serde_json::from_str(&ok(&quarry(&["testnet", "--dir", d, "rpc", "n1", "getpeerinfo"]))).unwrap();
    let addrs: Vec<&str> = peers.as_array().unwrap().iter().filter_map(|p| p["addr"].as_str()).collect();
    assert!(
        !addrs.is_empty() && addrs.iter().all(|a| a.starts_with(&format!("/ip4/10.201.{id}."))),
        "{addrs:?}"
    );

    // kill -9 every process: nodes and shaper.
    let shaper = fabric["shaper_pid"].as_u64().unwrap();
    let mut all = pids(&dir);
    all.push(shaper);
    for p in &all {
        assert!(Command::new("kill").args(["-KILL", &p.to_string()]).status().unwrap().success());
    }
    common::wait_for(10, "the killed processes to exit", || all.iter().all(|p| !alive(*p)));
    assert!(!fabric_objects(id).is_empty());
    ok(&quarry(&["testnet", "--dir", d, "down"]));
    assert!(fabric_objects(id).is_empty(), "left after down: {:?}", fabric_objects(id));
    for p in &all {
        assert!(!alive(*p), "process {p} left behind");
    }
    // Resumed: the same plan is made again, and `down --clean` removes it and every file.
    let out = ok(&quarry(&["testnet", "--dir", d, "up", "--no-watch", "--no-explorer"]));
    assert!(out.contains("namespaces up"), "{out}");
    assert_eq!(fabric_objects(id).len(), 7);
    let resumed = pids(&dir);
    ok(&quarry(&["testnet", "--dir", d, "down", "--clean"]));
    assert!(fabric_objects(id).is_empty(), "left after down --clean: {:?}", fabric_objects(id));
    for p in &resumed {
        assert!(!alive(*p), "process {p} left behind");
    }
    assert!(!dir.exists());
}

#[test]
fn scenario_partition_heal_netns() {
    if netns_allowed("scenario_partition_heal_netns") {
        scenario("partition-heal-netns");
    }
}

#[test]
fn scenario_slow_link() {
    if netns_allowed("scenario_slow_link") {
        scenario("slow-link");
    }
}

/// Without root `--hosts netns` is refused before anything is made, saying what is needed (as
/// root the command runs as user nobody through `setpriv`).
#[test]
fn netns_without_root_says_what_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let args =
        ["testnet", "--dir", d, "up", "--hosts", "netns", "--nodes", "2", "--no-watch", "--no-explorer"];
    // SAFETY: geteuid has no preconditions.
    let out = if unsafe { libc::geteuid() } == 0 {
        let setpriv = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_quarry")])
            .args(args)
            .env("HOME", tmp.path())
            .output();
        match setpriv {
            Ok(o) => o,
            Err(e) => {
                eprintln!("SKIPPED netns_without_root_says_what_is_needed: no setpriv to drop root ({e})");
                return;
            }
        }
    } else {
        quarry(&args)
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--hosts netns needs root") && stderr.contains("unshare -r"), "{stderr}");
    assert!(!dir.exists(), "nothing is made");
}

/// kill -9 of `up` itself while it makes the namespaces (or, if it is faster than the poll,
/// after): `down` still removes everything that was made.
#[test]
fn netns_down_after_up_was_killed_midway() {
    if !netns_allowed("netns_down_after_up_was_killed_midway") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let d = dir.to_str().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["testnet", "--dir", d, "up", "--hosts", "netns", "--network", "regtest", "--nodes", "4"])
        .args(["--miners", "0", "--no-watch", "--no-explorer"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first namespace is recorded.
    let start = std::time::Instant::now();
    let id = loop {
        let fabric: Option<Value> =
            std::fs::read(dir.join("fabric.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(f) = fabric {
            if f["made"].as_array().is_some_and(|m| m.iter().any(|x| x["kind"] == "netns")) {
                break f["id"].as_u64().unwrap();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "up made no namespace within 60 s");
        std::thread::sleep(Duration::from_millis(1));
    };
    up.kill().unwrap();
    up.wait().unwrap();
    ok(&quarry(&["testnet", "--dir", d, "down", "--clean"]));
    assert!(fabric_objects(id).is_empty(), "left after down: {:?}", fabric_objects(id));
    assert!(!dir.exists());
}
