//! Topology files: which nodes, which mine and with how many threads, who bootstraps from
//! whom, (optionally) their ports, where they run (`hosts`) and, in network namespaces, the
//! conditions of their links (`default_link`, `[[link]]`).

use super::hosts::Hosts;
use super::links::{LinkParams, LinkSpec};
use crate::consensus::Network;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// A testnet's shape (`testnet/*.toml`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Network the nodes run (default dev: 5-second blocks with retargeting).
    #[serde(default = "default_network", with = "network_name")]
    pub network: Network,
    /// Where the nodes run: `loopback` (default) or `netns` (one namespace each; root).
    #[serde(default)]
    pub hosts: Hosts,
    /// The nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeSpec>,
    /// Conditions of every link not listed under `[[link]]` (netns; default clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_link: Option<LinkParams>,
    /// Conditions of single links (netns).
    #[serde(rename = "link", default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
}

/// One node of a topology.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique name (letters, digits, '-'); also its data directory's name.
    pub name: String,
    /// Mine continuously.
    #[serde(default)]
    pub mine: bool,
    /// Miner threads (continuous mining and generatetoaddress).
    #[serde(default = "one")]
    pub threads: usize,
    /// Names of the nodes it connects to at start.
    #[serde(default)]
    pub bootnodes: Vec<String>,
    /// JSON-RPC port on 127.0.0.1 (default: a free port).
    #[serde(default)]
    pub rpc_port: Option<u16>,
    /// Peer-to-peer port on 127.0.0.1 (default: a free port).
    #[serde(default)]
    pub p2p_port: Option<u16>,
    /// Start with the testnet (false: a scenario starts it later, e.g. a late joiner).
    #[serde(default = "yes")]
    pub start: bool,
    /// How its miner publishes: `honest` (default) or `selfish` (needs `mine = true`).
    #[serde(default, skip_serializing_if = "crate::miner::MiningStrategy::is_honest")]
    pub strategy: crate::miner::MiningStrategy,
    /// Its miner's hash-rate limit, hashes per second (`--mine-hashrate`; default none).
    /// Limits well below the machine's speed make hash shares exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<f64>,
}

fn default_network() -> Network {
    Network::Dev
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

mod network_name {
    use crate::consensus::Network;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(n: &Network, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Topology {
    /// `nodes` nodes, the first `miners` mining with one thread each; node i connects to
    /// node 0 and node i-1 (a connected graph where every node has at least one peer).
    pub fn generated(network: Network, nodes: usize, miners: usize) -> Result<Topology> {
        if nodes == 0 || nodes > 32 {
            bail!("--nodes must be 1 to 32, got {nodes}");
        }
        if miners > nodes {
            bail!("--miners ({miners}) cannot exceed --nodes ({nodes})");
        }
        let nodes = (0..nodes)
            .map(|i| NodeSpec {
                name: format!("n{}", i + 1),
                mine: i < miners,
                threads: 1,
                bootnodes: match i {
                    0 => vec![],
                    1 => vec!["n1".into()],
                    _ => vec!["n1".into(), format!("n{i}")],
                },
                rpc_port: None,
                p2p_port: None,
                start: true,
                strategy: Default::default(),
                hashrate: None,
            })
            .collect();
        Ok(Topology { network, hosts: Hosts::Loopback, nodes, default_link: None, links: Vec::new() })
    }

    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Topology> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading topology {}", path.display()))?;
        Topology::parse(&text).with_context(|| format!("topology {}", path.display()))
    }

    /// Parses and checks the text of a topology file (what [`Topology::load`] does once it has
    /// read the file).
    pub fn parse(text: &str) -> Result<Topology> {
        let t: Topology = toml::from_str(text).context("not a valid topology")?;
        t.check()?;
        Ok(t)
    }

    /// Names unique and well-formed, bootnodes known, at least one node.
    pub fn check(&self) -> Result<()> {
        if self.nodes.is_empty() {
            bail!("no [[node]] entries");
        }
        let mut names = HashSet::new();
        for n in &self.nodes {
            if !super::clean::valid_node_name(&n.name) {
                bail!("node name {:?}: use letters, digits and '-'", n.name);
            }
            if !names.insert(n.name.as_str()) {
                bail!("node name {:?} appears twice", n.name);
            }
            if n.threads == 0 || n.threads > 64 {
                bail!("node {}: threads must be 1 to 64, got {}", n.name, n.threads);
            }
            if !n.strategy.is_honest() && !n.mine {
                bail!("node {}: strategy = \"{}\" needs mine = true", n.name, n.strategy.name());
            }
            if n.hashrate.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
                bail!("node {}: hashrate must be a positive number of hashes per second", n.name);
            }
        }
        let mut ports = HashSet::new();
        for n in &self.nodes {
            for port in [n.rpc_port, n.p2p_port].into_iter().flatten() {
                if !ports.insert(port) {
                    bail!("node {}: port {port} is used twice in this topology", n.name);
                }
            }
        }
        if self.hosts == Hosts::Netns && self.nodes.len() > super::hosts::MAX_NODES {
            bail!(
                "hosts = \"netns\" takes at most {} nodes, got {}",
                super::hosts::MAX_NODES,
                self.nodes.len()
            );
        }
        if self.hosts == Hosts::Loopback && (self.default_link.is_some() || !self.links.is_empty()) {
            bail!(
                "default_link and [[link]] shape links between network namespaces: add hosts = \"netns\" \
                 (or pass --hosts netns)"
            );
        }
        if let Some(d) = &self.default_link {
            d.check().context("default_link")?;
        }
        let mut pairs = HashSet::new();
        for l in &self.links {
            let [a, b] = &l.nodes;
            for x in [a, b] {
                if !names.contains(x.as_str()) {
                    bail!("link {a}-{b}: {x:?} is not a node of this topology");
                }
            }
            if a == b {
                bail!("link {a}-{b}: a link joins two different nodes");
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if !pairs.insert(key) {
                bail!("link {a}-{b} appears twice");
            }
            l.params().check().with_context(|| format!("link {a}-{b}"))?;
        }
        for n in &self.nodes {
            for b in &n.bootnodes {
                if !names.contains(b.as_str()) {
                    bail!("node {}: bootnode {b:?} is not a node of this topology", n.name);
                }
                if b == &n.name {
                    bail!("node {}: a node cannot bootstrap from itself", n.name);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_topologies_are_connected_and_checked() {
        let t = Topology::generated(Network::Dev, 4, 2).unwrap();
        t.check().unwrap();
        assert_eq!(t.nodes.iter().filter(|n| n.mine).count(), 2);
        assert!(t.nodes.iter().skip(1).all(|n| n.bootnodes.contains(&"n1".to_string())));
        assert!(Topology::generated(Network::Dev, 2, 3).is_err());
        assert!(Topology::generated(Network::Dev, 0, 0).is_err());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let bad = |s: &str| {
            toml::from_str::<Topology>(s)
                .map_err(|e| e.to_string())
                .and_then(|t| t.check().map_err(|e| e.to_string()))
        };
        assert!(bad("network = \"dev\"\n[[node]]\nname = \"a\"\nbootnodes = [\"b\"]")
            .unwrap_err()
            .contains("bootnode \"b\""));
        assert!(bad("[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"").unwrap_err().contains("twice"));
        assert!(bad("[[node]]\nname = \"a\"\ncolour = 1").unwrap_err().contains("colour"));
        assert!(bad("network = \"mainnet\"\n[[node]]\nname = \"a\"").is_err());
        let t: Topology = toml::from_str("[[node]]\nname = \"a\"\nmine = true").unwrap();
        assert_eq!(t.network, Network::Dev);
        assert_eq!(t.nodes[0].threads, 1);
        assert!(t.nodes[0].start);
        assert_eq!(t.hosts, Hosts::Loopback);
    }

    #[test]
    fn links_are_checked() {
        let base = "hosts = \"netns\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";
        let t = Topology::parse(&format!(
            "default_link = {{ loss_percent = 100.0 }}\n{base}[[link]]\nnodes = [\"a\", \"b\"]\nlatency_ms = 200\njitter_ms = 5.5\nrate_kbit = 1000\n"
        ))
        .unwrap();
        assert_eq!(t.hosts, Hosts::Netns);
        assert_eq!(t.links[0].latency_ms, 200.0);
        assert_eq!(t.links[0].rate_kbit, Some(1000));
        assert_eq!(t.default_link.unwrap().loss_percent, 100.0);
        let bad = |extra: &str| format!("{:#}", Topology::parse(&format!("{base}{extra}")).unwrap_err());
        assert!(bad("[[link]]\nnodes = [\"a\", \"c\"]\n").contains("\"c\" is not a node"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"a\"]\n").contains("two different nodes"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\n[[link]]\nnodes = [\"b\", \"a\"]\n").contains("twice"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\nloss_percent = 120.0\n").contains("loss_percent"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\ndelay = 1\n").contains("delay"));
        let loopback = "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[link]]\nnodes = [\"a\", \"b\"]\n";
        assert!(format!("{:#}", Topology::parse(loopback).unwrap_err()).contains("hosts = \"netns\""));
    }
}
