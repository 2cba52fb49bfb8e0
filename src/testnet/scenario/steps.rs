//! The steps a scenario file may hold, what nodes each names, and each in words.

use serde::Deserialize;

/// One step.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Start a stopped node.
    Start { node: String },
    /// Stop a node gracefully.
    Stop { node: String },
    /// SIGKILL a node (remembering its height and tip for `assert-nothing-lost`).
    Kill { node: String },
    /// Cut the network into groups (nodes not listed keep all their links).
    Partition { groups: Vec<Vec<String>> },
    /// Undo the partition and reconnect.
    Heal,
    /// Change link conditions (netns): the links between `groups` (as `partition` names
    /// them), or the listed `links`, or every link; the fields given replace the current ones.
    Shape {
        links: Option<Vec<[String; 2]>>,
        groups: Option<Vec<Vec<String>>>,
        #[serde(default, deserialize_with = "some_number")]
        latency_ms: Option<f64>,
        #[serde(default, deserialize_with = "some_number")]
        jitter_ms: Option<f64>,
        #[serde(default, deserialize_with = "some_number")]
        loss_percent: Option<f64>,
        rate_kbit: Option<u64>,
    },
    /// Give links (chosen as for `shape`) back the topology's conditions.
    Unshape { links: Option<Vec<[String; 2]>>, groups: Option<Vec<Vec<String>>> },
    /// Count the blocks mined since the scenario started that no running node has in its
    /// active chain (stale blocks: getchaintips of every node), print the stale rate, and fail
    /// with fewer than `min` (default 0).
    StaleBlocks { min: Option<u64> },
    /// Mine blocks on a node (paying its wallet).
    Mine { node: String, blocks: u32 },
    /// Pay `amount` coins from `from`'s wallet to `to`'s wallet, submitted to `via` (default `from`).
    Send { from: String, to: String, amount: String, label: String, via: Option<String> },
    /// Spend one coin of `from`'s wallet twice: `LABEL.a` to `nodes[0]`'s wallet submitted
    /// there, `LABEL.b` to `nodes[1]`'s wallet submitted there.
    DoubleSpend { from: String, nodes: [String; 2], label: String },
    /// Wait until the nodes (default: all running) share a tip.
    WaitSync { nodes: Option<Vec<String>>, timeout: Option<u64> },
    /// Wait until a node reaches a height.
    WaitHeight { node: String, height: u64, timeout: Option<u64> },
    /// Wait until the labelled transaction is in the node's mempool (relayed), e.g. before
    /// mining it on another node.
    WaitMempool { label: String, node: String, timeout: Option<u64> },
    /// Sleep.
    Sleep { seconds: f64 },
    /// All (or the listed) running nodes share a tip.
    AssertSameTip { nodes: Option<Vec<String>> },
    /// All (or the listed) running nodes have the same UTXO set digest.
    AssertSameUtxos { nodes: Option<Vec<String>> },
    /// The node reorganised away a branch of at least this many blocks.
    AssertReorg { node: String, min_depth: u64 },
    /// The labelled transaction is confirmed on the node (default: every running node).
    AssertConfirmed { label: String, node: Option<String> },
    /// The labelled transaction is not confirmed on the node (default: every running node).
    AssertNotConfirmed { label: String, node: Option<String> },
    /// The labelled transaction waits in the node's mempool.
    AssertInMempool { label: String, node: String },
    /// Exactly one of the two labelled transactions is confirmed everywhere (and the same one).
    AssertOneOf { labels: [String; 2] },
    /// The node's confirmed wallet balance is within bounds (coins).
    AssertBalance { node: String, min: Option<String>, max: Option<String> },
    /// The node is at least at this height.
    AssertHeight { node: String, min: u64 },
    /// After a `kill` and restart: the node's height is at least what it was when killed and
    /// its tip at that moment is still stored.
    AssertNothingLost { node: String },
    /// Connect `from` to `to` and keep them connected (`addnode add`), e.g. the one honest
    /// link of an eclipsed node.
    Connect { from: String, to: String },
    /// Wait until a node is `blocks` blocks above the height the steps began at.
    WaitBlocks { node: String, blocks: u64, timeout: Option<u64> },
    /// The active chain of `via` (default: the first running node) above the height the steps
    /// began at, by miner (coinbase payee), beside each miner's share of the topology's
    /// `hashrate`; the stale rate and the deepest abandoned branch. With `node`, fails when its
    /// block share is outside [`min`, `max`]. With `chart`, writes each miner's running share
    /// (beside its hash share and, for a selfish miner, Eyal-Sirer's prediction) as SVG there.
    BlockShare {
        via: Option<String>,
        node: Option<String>,
        min: Option<f64>,
        max: Option<f64>,
        chart: Option<String>,
    },
    /// `attacker` pays `amount` coins to `victim`'s wallet (`LABEL.pay`) and its node starts
    /// a double-spend attempt (`startdoublespend`) with a spend of the same coin back to itself
    /// (`LABEL.conflict`): published once strictly longer after `confirmations`, given up at
    /// `max_deficit` blocks behind.
    DoubleSpendAttack {
        attacker: String,
        victim: String,
        amount: String,
        confirmations: u32,
        max_deficit: u32,
        label: String,
    },
    /// Wait until `attacker`'s attempt labelled `label` ends and the nodes agree; print how it
    /// went; with `expect` (`reversed` or `confirmed`), fail on the other outcome for the
    /// payment on `victim`.
    WaitAttack {
        attacker: String,
        victim: String,
        label: String,
        expect: Option<String>,
        timeout: Option<u64>,
    },
    /// `trials` attempts in a row as `double-spend-attack` + `wait-attack` (labels
    /// `LABEL1`, `LABEL2`, ...), then the count of payments reversed; fails outside
    /// [`min_reversed`, `max_reversed`].
    DoubleSpendTrials {
        attacker: String,
        victim: String,
        amount: String,
        confirmations: u32,
        max_deficit: u32,
        label: String,
        trials: u32,
        min_reversed: Option<u32>,
        max_reversed: Option<u32>,
        timeout: Option<u64>,
    },
    /// Print a node's `getstrategyinfo` (blocks mined, published, abandoned, most withheld at
    /// once); fails when it never withheld `min_withheld` blocks at once.
    StrategyInfo { node: String, min_withheld: Option<u64> },
    /// The two nodes are on different tips (e.g. an eclipsed node and the honest network).
    AssertTipsDiffer { nodes: [String; 2] },
}

fn some_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }
    Ok(Some(match Num::deserialize(d)? {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }))
}

/// The node names a step refers to.
pub(super) fn step_nodes(step: &Step) -> Vec<&String> {
    match step {
        Step::Start { node }
        | Step::Stop { node }
        | Step::Kill { node }
        | Step::Mine { node, .. }
        | Step::WaitHeight { node, .. }
        | Step::WaitMempool { node, .. }
        | Step::AssertReorg { node, .. }
        | Step::AssertInMempool { node, .. }
        | Step::AssertBalance { node, .. }
        | Step::AssertHeight { node, .. }
        | Step::AssertNothingLost { node }
        | Step::WaitBlocks { node, .. }
        | Step::StrategyInfo { node, .. } => vec![node],
        Step::Connect { from, to } => vec![from, to],
        Step::AssertTipsDiffer { nodes } => nodes.iter().collect(),
        Step::BlockShare { via, node, .. } => via.iter().chain(node.iter()).collect(),
        Step::DoubleSpendAttack { attacker, victim, .. }
        | Step::WaitAttack { attacker, victim, .. }
        | Step::DoubleSpendTrials { attacker, victim, .. } => vec![attacker, victim],
        Step::Partition { groups } => groups.iter().flatten().collect(),
        Step::Shape { links, groups, .. } | Step::Unshape { links, groups } => {
            links.iter().flatten().flatten().chain(groups.iter().flatten().flatten()).collect()
        }
        Step::Heal | Step::Sleep { .. } | Step::AssertOneOf { .. } | Step::StaleBlocks { .. } => vec![],
        Step::Send { from, to, via, .. } => [from, to].into_iter().chain(via.as_ref()).collect(),
        Step::DoubleSpend { from, nodes, .. } => [from, &nodes[0], &nodes[1]].into_iter().collect(),
        Step::WaitSync { nodes, .. } | Step::AssertSameTip { nodes } | Step::AssertSameUtxos { nodes } => {
            nodes.iter().flatten().collect()
        }
        Step::AssertConfirmed { node, .. } | Step::AssertNotConfirmed { node, .. } => node.iter().collect(),
    }
}

pub(super) fn describe(step: &Step) -> String {
    match step {
        Step::Start { node } => format!("start {node}"),
        Step::Stop { node } => format!("stop {node}"),
        Step::Kill { node } => format!("kill -9 {node}"),
        Step::Partition { groups } => {
            format!(
                "partition {}",
                groups.iter().map(|g| format!("{{{}}}", g.join(","))).collect::<Vec<_>>().join(" | ")
            )
        }
        Step::Heal => "heal".into(),
        Step::Shape { links, groups, latency_ms, jitter_ms, loss_percent, rate_kbit } => {
            let mut set = Vec::new();
            if let Some(v) = latency_ms {
                set.push(format!("latency {v} ms"));
            }
            if let Some(v) = jitter_ms {
                set.push(format!("jitter {v} ms"));
            }
            if let Some(v) = loss_percent {
                set.push(format!("loss {v}%"));
            }
            if let Some(v) = rate_kbit {
                set.push(format!("rate {v} kbit/s"));
            }
            format!("shape {}: {}", which_links(links, groups), set.join(", "))
        }
        Step::Unshape { links, groups } => format!("unshape {}", which_links(links, groups)),
        Step::StaleBlocks { min } => format!("stale blocks (at least {})", min.unwrap_or(0)),
        Step::Mine { node, blocks } => format!("mine {blocks} on {node}"),
        Step::Send { from, to, amount, label, .. } => format!("send {amount} {from} -> {to} as {label}"),
        Step::DoubleSpend { from, nodes, label } => {
            format!("double-spend a coin of {from}: {label}.a via {}, {label}.b via {}", nodes[0], nodes[1])
        }
        Step::WaitSync { nodes, .. } => {
            format!("wait for one tip on {}", nodes.as_ref().map_or("all".into(), |n| n.join(",")))
        }
        Step::WaitHeight { node, height, .. } => format!("wait for {node} at height {height}"),
        Step::WaitMempool { label, node, .. } => format!("wait for {label} in {node}'s mempool"),
        Step::Sleep { seconds } => format!("sleep {seconds} s"),
        Step::AssertSameTip { .. } => "assert same tip".into(),
        Step::AssertSameUtxos { .. } => "assert same UTXO set".into(),
        Step::AssertReorg { node, min_depth } => format!("assert {node} reorganised >= {min_depth} blocks"),
        Step::AssertConfirmed { label, .. } => format!("assert {label} confirmed"),
        Step::AssertNotConfirmed { label, .. } => format!("assert {label} not confirmed"),
        Step::AssertInMempool { label, node } => format!("assert {label} in {node}'s mempool"),
        Step::AssertOneOf { labels } => {
            format!("assert exactly one of {} / {} confirmed", labels[0], labels[1])
        }
        Step::AssertBalance { node, .. } => format!("assert {node}'s balance"),
        Step::AssertHeight { node, min } => format!("assert {node} height >= {min}"),
        Step::AssertNothingLost { node } => format!("assert {node} lost nothing"),
        Step::Connect { from, to } => format!("connect {from} -> {to}"),
        Step::StrategyInfo { node, .. } => format!("{node}'s mining strategy"),
        Step::WaitBlocks { node, blocks, .. } => format!("wait for {blocks} new blocks on {node}"),
        Step::BlockShare { node, .. } => match node {
            Some(n) => format!("block share (bounds on {n})"),
            None => "block share".into(),
        },
        Step::DoubleSpendAttack { attacker, victim, amount, confirmations, label, .. } => {
            format!("{attacker} pays {amount} to {victim} as {label}.pay and double-spends it (z = {confirmations})")
        }
        Step::WaitAttack { attacker, label, .. } => format!("wait for {attacker}'s attempt {label} to end"),
        Step::DoubleSpendTrials { attacker, victim, trials, confirmations, .. } => {
            format!("{trials} double-spend attempts of {attacker} against {victim} (z = {confirmations})")
        }
        Step::AssertTipsDiffer { nodes } => format!("assert {} and {} on different tips", nodes[0], nodes[1]),
    }
}

fn which_links(links: &Option<Vec<[String; 2]>>, groups: &Option<Vec<Vec<String>>>) -> String {
    match (links, groups) {
        (Some(l), _) => l.iter().map(|[a, b]| format!("{a}-{b}")).collect::<Vec<_>>().join(","),
        (None, Some(g)) => {
            format!(
                "between {}",
                g.iter().map(|g| format!("{{{}}}", g.join(","))).collect::<Vec<_>>().join(" | ")
            )
        }
        (None, None) => "every link".into(),
    }
}
