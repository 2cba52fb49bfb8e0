//! The layering rules of /work/shared/DESIGN.md ("Shape: one crate, layered"), checked on the
//! source text: every reference from one top-level module of `src/` to another, or to an
//! I/O crate (tokio, libp2p, rocksdb, jsonrpsee) or to `anyhow` (the binary's edge alone), is
//! found and judged.
//!
//! What counts as a reference: a path starting `crate::m` anywhere in code (`use` lines,
//! `use crate::{a, b::c}` groups, fully qualified paths in expressions, types and
//! attributes), `super::` paths that climb out of the file's top-level module, `quarry::m` in
//! `src/main.rs` (the binary crate), and `tokio::` / `libp2p::` / `rocksdb::` /
//! `jsonrpsee::` / `anyhow::` paths (`use tokio::..`, `#[tokio::main]`, `tokio::spawn(..)`,
//! `anyhow::Result`) that are not a segment of a longer path.
//!
//! What is skipped, and why it is reliable: comments (line, doc and nested block comments),
//! string, raw string, byte string and char literals are blanked by a small lexer before
//! any matching (newlines kept, so line numbers stay exact); then every item under
//! `#[cfg(test)]` is cut out (the attribute, any further attributes, and the item up to its
//! `;` or its balanced `{..}` body), and a `#[cfg(test)] mod x;` also drops the file `x.rs`
//! or `x/` it names. Test code may reference anything. Other `cfg`s (`cfg(any(test, ..))`)
//! are kept: they are real builds. Macro-generated paths are not seen (none cross modules
//! today).

#[path = "layering/scan.rs"]
mod scan;

use scan::{cycles, references, scan, Graph, Ref, Target, Use, EDGE_CRATES, IO_CRATES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The rule a reference from `from` to `to` (then `sub`) breaks, if any.
fn rule_broken(from: &str, to: &Target, sub: Option<&str>) -> Option<&'static str> {
    const PURE: [&str; 3] = ["primitives", "script", "consensus"];
    let io = |names: &[&str]| matches!(to, Target::Crate(c) if names.contains(&c.as_str()));
    let module = |names: &[&str]| matches!(to, Target::Module(m) if names.contains(&m.as_str()));
    if let Some(level) = PURE.iter().position(|p| *p == from) {
        if io(&IO_CRATES) {
            return Some(
                "(b) primitives, script and consensus are pure: no tokio, libp2p, rocksdb or jsonrpsee",
            );
        }
        if matches!(to, Target::Module(_)) && !module(&PURE[..level]) {
            return Some("(b) primitives, script and consensus import only the pure modules below them");
        }
    }
    if ["store", "chain", "mempool", "miner"].contains(&from) && io(&["tokio", "libp2p", "jsonrpsee"]) {
        return Some("(c) store, chain, mempool and miner run without tokio, libp2p or jsonrpsee");
    }
    if from == "wallet" && module(&["node", "chain", "store", "mempool", "p2p"]) {
        return Some("(d) the wallet talks to nodes only through the RPC client");
    }
    if from == "wallet" && module(&["rpc"]) && matches!(sub, Some("service" | "server")) {
        return Some("(d) the wallet uses the RPC client, not the server's code");
    }
    if from == "pool" && module(&["node", "chain", "store", "mempool", "p2p", "daemon", "index"]) {
        return Some("(d) the pool talks to nodes only through the RPC client");
    }
    if from == "pool" && module(&["rpc"]) && matches!(sub, Some("service" | "server")) {
        return Some("(d) the pool uses the RPC client, not the server's code");
    }
    if from == "node" && module(&["rpc", "cli", "daemon"]) {
        return Some("(e) node is below rpc, daemon and cli");
    }
    if module(&["daemon"]) && !["cli", "main"].contains(&from) {
        return Some("(f) daemon wires the node at the top of the stack: only cli uses it");
    }
    if from == "rpc" && module(&["daemon", "cli", "testnet", "wallet"]) {
        return Some("(f) rpc is below daemon, cli, testnet and wallet");
    }
    if from == "metrics" && module(&["node", "rpc", "p2p", "explorer", "daemon", "cli", "testnet", "wallet"])
    {
        return Some("(g) metrics is below the components that report to it: it imports none of them");
    }
    if from == "httpd" && matches!(to, Target::Module(_)) && !module(&[]) {
        return Some("(g) httpd is a leaf: the HTTP server imports no quarry module");
    }
    if from == "sim"
        && (io(&IO_CRATES)
            || module(&[
                "node", "p2p", "rpc", "daemon", "cli", "testnet", "explorer", "pool", "wallet", "index",
            ]))
    {
        return Some(
            "(i) the simulator runs chain, consensus and miner::strategy in virtual time: no I/O crate, nothing above chain",
        );
    }
    if io(&EDGE_CRATES) && !["cli", "main"].contains(&from) {
        return Some(
            "(j) anyhow only at the binary's edge (main.rs, cli/): library modules return typed errors",
        );
    }
    if from == "p2p" && module(&["node", "rpc", "cli", "daemon"]) {
        return Some(
            "(e) p2p is below node, rpc, daemon and cli: it reaches the core through link::CoreLink",
        );
    }
    None
}

/// Rules about one file rather than a whole module: `at` is `src/path.rs:line`.
fn file_rule_broken(at: &str, to: &Target) -> Option<&'static str> {
    let module = |names: &[&str]| matches!(to, Target::Module(m) if names.contains(&m.as_str()));
    if at.starts_with("src/explorer/web.rs:")
        && module(&["node", "chain", "store", "mempool", "miner", "p2p", "rpc", "daemon", "consensus"])
    {
        return Some("(h) the explorer's web server knows nodes only by their HTTP API URLs");
    }
    None
}

/// Every violation, one line each (with up to three places it occurs).
fn violations(graph: &Graph) -> Vec<String> {
    let name = |t: &Target| match t {
        Target::Module(m) => m.clone(),
        Target::Crate(c) => format!("crate {c}"),
    };
    let places = |v: &[&Use]| {
        let more = if v.len() > 3 { format!(" (+{} more)", v.len() - 3) } else { String::new() };
        let shown: Vec<&str> = v.iter().take(3).map(|u| u.0.as_str()).collect();
        format!("{}{more}", shown.join(", "))
    };
    let mut out = Vec::new();
    for ((from, to), uses) in graph {
        let mut by_rule: BTreeMap<(&str, String), Vec<&Use>> = BTreeMap::new();
        for u in uses {
            if let Some(rule) = rule_broken(from, to, u.1.as_deref()).or_else(|| file_rule_broken(&u.0, to)) {
                // A rule about a submodule shows it.
                let shown = match &u.1 {
                    Some(sub) if rule_broken(from, to, None) != Some(rule) => format!("{}::{sub}", name(to)),
                    _ => name(to),
                };
                by_rule.entry((rule, shown)).or_default().push(u);
            }
        }
        for ((rule, shown), at) in by_rule {
            out.push(format!("{from} -> {shown}: {rule}: {}", places(&at)));
        }
    }
    let edges: BTreeSet<(String, String)> = graph
        .keys()
        .filter_map(|(a, t)| match t {
            Target::Module(b) => Some((a.clone(), b.clone())),
            Target::Crate(_) => None,
        })
        .collect();
    for c in cycles(&edges) {
        let steps: Vec<String> = c
            .windows(2)
            .map(|w| {
                format!(
                    "{} -> {} at {}",
                    w[0],
                    w[1],
                    places(&graph[&(w[0].clone(), Target::Module(w[1].clone()))].iter().collect::<Vec<_>>())
                )
            })
            .collect();
        out.push(format!("(a) cycle {}: {}", c.join(" -> "), steps.join("; ")));
    }
    out
}

#[test]
fn the_module_graph_follows_the_layering_rules() {
    let graph = scan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let v = violations(&graph);
    assert!(v.is_empty(), "{} layering violations:\n{}", v.len(), v.join("\n"));
}

/// The scanner sees the real tree (so the rule test above cannot pass on an empty graph),
/// and no test module's references leak into it.
#[test]
fn the_scanner_finds_the_real_module_graph() {
    let graph = scan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let edges: Vec<String> = graph.keys().map(|(a, t)| format!("{a} -> {t:?}")).collect();
    for (from, to) in [
        ("chain", Target::Module("primitives".into())),
        ("script", Target::Module("primitives".into())),
        ("store", Target::Crate("rocksdb".into())),
        ("rpc", Target::Crate("jsonrpsee".into())),
        ("main", Target::Module("cli".into())),
        ("cli", Target::Module("wallet".into())),
        ("cli", Target::Crate("anyhow".into())),
    ] {
        assert!(
            graph.contains_key(&(from.to_string(), to.clone())),
            "no edge {from} -> {to:?} in {edges:#?}"
        );
    }
    // src/script/tests.rs and the mempool's tests/ are test code (they use testkit).
    let from_tests = |file: &str| graph.values().flatten().any(|u| u.0.starts_with(file));
    assert!(!from_tests("src/script/tests.rs") && !from_tests("src/mempool/tests/"), "{graph:#?}");
}

#[test]
fn the_scanner_sees_paths_and_skips_comments_literals_and_tests() {
    let src = r####"//! Doc: crate::node is not a reference.
use crate::{primitives::Amount, chain, self as me, rpc::methods::{a, b}};
use crate::store::{self, Db};
/* block /* nested crate::rpc */ still comment crate::rpc */
fn f<'a>(x: &'a str) -> char {
    let s = "crate::wallet and tokio::spawn in a string";
    let r = r#"crate::miner "quoted" tokio::x"#;
    let c = '"'; let d = '\''; let e = b'x';
    crate::mempool::Pool::new(); my_tokio::run(); foo.tokio::bar();
    tokio::spawn(async {});
    'q'
}
#[tokio::main]
async fn main() {}
#[cfg(test)]
mod tests {
    use crate::cli::x;
    fn g() { tokio::spawn(); }
}
#[cfg(test)]
#[allow(unused)]
fn helper() { crate::testnet::go(); }
#[cfg(test)]
mod more_tests;
#[cfg(any(test, feature = "x"))]
use crate::p2p::Thing;
use super::super::rpc::Client;
use super::Sibling;
"####;
    let (refs, test_mods) = references(src, &["node", "sub"], None);
    let got: Vec<(usize, Target, Option<String>)> =
        refs.into_iter().map(|r| (r.line, r.target, r.sub)).collect();
    let m = |l: usize, s: &str| (l, Target::Module(s.into()), None);
    let c = |l: usize, s: &str| (l, Target::Crate(s.into()), None);
    assert_eq!(
        got,
        vec![
            m(2, "primitives"),
            m(2, "chain"),
            (2, Target::Module("rpc".into()), Some("methods".into())),
            m(3, "store"),
            m(9, "mempool"),
            c(10, "tokio"),
            c(13, "tokio"),
            m(26, "p2p"),
            m(27, "rpc"),
        ]
    );
    assert_eq!(test_mods, vec!["more_tests".to_string()]);
    // anyhow is found in `use` lines, paths in types and macros, and a bare `use anyhow;`.
    let (refs, _) = references(
        "use anyhow::{bail, Context};\nfn f() -> anyhow::Result<()> { Err(anyhow::anyhow!(\"x\")) }\nuse anyhow;\nmy_anyhow::x();\n",
        &["testnet"],
        None,
    );
    let lines: Vec<(usize, Target)> = refs.into_iter().map(|r| (r.line, r.target)).collect();
    let a = |l: usize| (l, Target::Crate("anyhow".into()));
    assert_eq!(lines, vec![a(1), a(2), a(2), a(3)]);
    // `super::` from a top-level module's own file leaves it at once.
    let (refs, _) = references("use super::wallet::Wallet;\n", &["cli"], None);
    assert_eq!(refs, vec![Ref { line: 1, target: Target::Module("wallet".into()), sub: None }]);
    // The binary names the crate `quarry`.
    let (refs, _) = references("fn main() { quarry::cli::run(); }", &["main"], Some("quarry"));
    assert_eq!(refs, vec![Ref { line: 1, target: Target::Module("cli".into()), sub: Some("run".into()) }]);
}

#[test]
fn cycles_and_rules_are_reported_with_their_places() {
    let mut g = Graph::new();
    let mut edge_to = |a: &str, t: Target, sub: Option<&str>, at: &str| {
        g.entry((a.to_string(), t)).or_default().push((at.to_string(), sub.map(Into::into)))
    };
    let m = |s: &str| Target::Module(s.into());
    edge_to("wallet", m("rpc"), Some("service"), "src/wallet/ops.rs:9");
    let mut edge = |a: &str, t: Target, at: &str| edge_to(a, t, None, at);
    edge("node", m("rpc"), "src/node/mod.rs:3");
    edge("rpc", m("node"), "src/rpc/server.rs:9");
    edge("p2p", m("node"), "src/p2p/service/mod.rs:4");
    edge("node", m("p2p"), "src/node/mod.rs:5");
    edge("chain", m("primitives"), "src/chain/mod.rs:1");
    edge("script", m("primitives"), "src/script/mod.rs:1");
    edge("primitives", m("script"), "src/primitives/tx.rs:7");
    edge("consensus", Target::Crate("tokio".into()), "src/consensus/mod.rs:2");
    edge("wallet", m("rpc"), "src/wallet/rpc.rs:1"); // the client: allowed
    edge("wallet", m("chain"), "src/wallet/ops.rs:8");
    edge("mempool", Target::Crate("rocksdb".into()), "src/mempool/mod.rs:1");
    edge("explorer", m("node"), "src/explorer/web.rs:3");
    edge("explorer", m("node"), "src/explorer/api.rs:9"); // the node's HTTP API: allowed
    edge("metrics", m("node"), "src/metrics/mod.rs:2");
    let anyhow = || Target::Crate("anyhow".into());
    edge("testnet", anyhow(), "src/testnet/up.rs:6");
    edge("daemon", anyhow(), "src/daemon.rs:14");
    edge("cli", anyhow(), "src/cli/mod.rs:3"); // the edge: allowed
    edge("main", anyhow(), "src/main.rs:2"); // allowed
    let v = violations(&g);
    let has = |s: &str| v.iter().any(|l| l.contains(s));
    assert!(has("consensus -> crate tokio: (b)") && has("src/consensus/mod.rs:2"), "{v:#?}");
    assert!(has("primitives -> script: (b)"), "{v:#?}");
    assert!(has("wallet -> chain: (d)"), "{v:#?}");
    assert!(
        has("wallet -> rpc::service: (d)") && has("src/wallet/ops.rs:9") && !has("src/wallet/rpc.rs:1"),
        "{v:#?}"
    );
    assert!(has("node -> rpc: (e)") && has("p2p -> node: (e)"), "{v:#?}");
    let starts = |s: &str| v.iter().any(|l| l.starts_with(s));
    assert!(
        !starts("mempool -> crate rocksdb") && !starts("chain ->") && !starts("script -> primitives"),
        "{v:#?}"
    );
    assert!(has("(a) cycle node -> p2p -> node") && has("p2p -> node at src/p2p/service/mod.rs:4"), "{v:#?}");
    assert!(has("(a) cycle node -> rpc -> node"), "{v:#?}");
    assert!(has("(a) cycle primitives -> script -> primitives"), "{v:#?}");
    assert!(
        has("explorer -> node: (h)") && has("src/explorer/web.rs:3") && !has("src/explorer/api.rs:9"),
        "{v:#?}"
    );
    assert!(has("metrics -> node: (g)"), "{v:#?}");
    assert!(has("testnet -> crate anyhow: (j)") && has("src/testnet/up.rs:6"), "{v:#?}");
    assert!(has("daemon -> crate anyhow: (j)") && !starts("cli ->") && !starts("main ->"), "{v:#?}");
    assert_eq!(v.len(), 13, "{v:#?}");
    // A three-module cycle is found once, starting from its smallest name.
    let e: BTreeSet<(String, String)> = [("c", "a"), ("a", "b"), ("b", "c"), ("b", "d")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(cycles(&e), vec![vec!["a", "b", "c", "a"]]);
}
