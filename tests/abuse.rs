//! The load/abuse and power-cut benches, run small so they keep working (the full-size
//! figures are in BENCHMARKS.md).

use crate::common;

use serde_json::Value;

/// Runs `quarry ARGS`; its stdout as JSON, failing with both streams.
fn json_of(args: &[&str]) -> Value {
    let out = common::quarry(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quarry {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout is not JSON:\n{stdout}\nstderr:\n{stderr}"))
}

/// `quarry bench-abuse` with a few clients and sockets: every phase runs, every verdict holds
/// (only back-pressure errors under load, the honest peer catches up after every phase, the
/// honest client is answered in every phase, memory under the bound, malformed peers cut off).
#[test]
fn bench_abuse_smoke() {
    let r = json_of(&[
        "bench-abuse",
        "--clients",
        "8",
        "--seconds",
        "2",
        "--connections",
        "20",
        "--slow",
        "4",
        "--hold-seconds",
        "3",
        "--baseline-seconds",
        "2",
        "--json",
    ]);
    let phases: Vec<&str> =
        r["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["baseline", "rpc-load", "connect-flood", "slow", "peers"], "{r:#}");
    assert!(r["rpc_load"]["latency"]["calls"].as_u64().unwrap() > 0, "{r:#}");
    for v in r["verdicts"].as_array().unwrap() {
        assert_eq!(v[1], Value::Bool(true), "{v}: {r:#}");
    }
    // The flood reached both ports; the malformed peers were each cut off.
    let ports: Vec<&str> =
        r["connect_flood"].as_array().unwrap().iter().map(|f| f["port"].as_str().unwrap()).collect();
    assert_eq!(ports, ["p2p", "rpc"], "{r:#}");
    let peers = r["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 4, "{r:#}");
    for p in peers.iter().filter(|p| p["expect_cut"] == Value::Bool(true)) {
        assert!(p["disconnected_after_s"].is_number(), "{p}");
    }
}

/// `quarry bench-durability` with one cut per mode, when this machine can run it (root, the
/// e2fsprogs and mount tools, loop devices); otherwise it says why and the test skips.
#[test]
fn bench_durability_one_cut_per_mode() {
    let root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let tools = ["mkfs.ext4", "losetup", "mount", "umount"].iter().all(|t| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !root || !tools || !std::path::Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: bench-durability needs root, mkfs.ext4, losetup and loop devices (root {root}, tools {tools})");
        let out = common::quarry(&["bench-durability", "--power-cuts", "1"]);
        assert!(out.status.success(), "{out:?}");
        return;
    }
    let cuts =
        json_of(&["bench-durability", "--power-cuts", "1", "--seconds", "3", "--image-mib", "128", "--json"]);
    let cuts = cuts.as_array().unwrap();
    assert_eq!(cuts.len(), 2, "{cuts:?}");
    for c in cuts {
        assert_eq!(c["consistent"], Value::Bool(true), "{c}");
        assert!(c["acked"].as_u64().unwrap() > 0, "blocks were generated before the cut: {c}");
        if c["sync_writes"] == Value::Bool(true) {
            assert_eq!(c["lost"], 0, "--sync-writes loses no acknowledged block: {c}");
        }
    }
}
