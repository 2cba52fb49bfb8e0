//! Topology files: which nodes, which mine and with how many threads, who bootstraps from
//! whom, (optionally) their ports, where they run (`hosts`) and, in network namespaces, the
//! conditions of their links (`default_link`, `[[link]]`).

use super::error::{Result, ResultExt, Step, TestnetError};
use super::hosts::Hosts;
use super::links::LinkError;
use super::links::{LinkParams, LinkSpec};
use crate::consensus::Network;
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
    /// fsync the chainstate on every block (`quarry node --sync-writes`; default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_writes: bool,
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

/// Why a topology is refused.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// `--nodes` out of range.
    #[error("--nodes must be 1 to 32, got {0}")]
    NodeCount(usize),
    /// More miners than nodes.
    #[error("--miners ({miners}) cannot exceed --nodes ({nodes})")]
    MinerCount {
        /// `--miners`.
        miners: usize,
        /// `--nodes`.
        nodes: usize,
    },
    /// No `[[node]]`.
    #[error("no [[node]] entries")]
    NoNodes,
    /// A name that is not letters, digits and '-'.
    #[error("node name {0:?}: use letters, digits and '-'")]
    BadName(String),
    /// Two nodes of one name.
    #[error("node name {0:?} appears twice")]
    DuplicateName(String),
    /// `threads` out of range.
    #[error("node {node}: threads must be 1 to 64, got {threads}")]
    Threads {
        /// The node.
        node: String,
        /// Its `threads`.
        threads: usize,
    },
    /// A mining strategy on a node that does not mine.
    #[error("node {node}: strategy = \"{strategy}\" needs mine = true")]
    StrategyWithoutMine {
        /// The node.
        node: String,
        /// The strategy's name.
        strategy: &'static str,
    },
    /// A hash rate that is not a positive number.
    #[error("node {node}: hashrate must be a positive number of hashes per second")]
    Hashrate {
        /// The node.
        node: String,
    },
    /// A port given to two nodes (or twice to one).
    #[error("node {node}: port {port} is used twice in this topology")]
    DuplicatePort {
        /// The node it is given to the second time.
        node: String,
        /// The port.
        port: u16,
    },
    /// Too many nodes for the netns fabric.
    #[error("hosts = \"netns\" takes at most {max} nodes, got {got}")]
    TooManyForNetns {
        /// The fabric's limit.
        max: usize,
        /// The topology's nodes.
        got: usize,
    },
    /// Link conditions in a loopback topology.
    #[error(
        "default_link and [[link]] shape links between network namespaces: add hosts = \"netns\" \
         (or pass --hosts netns)"
    )]
    LinksOnLoopback,
    /// `default_link` out of range.
    #[error("default_link")]
    DefaultLink(#[source] LinkError),
    /// A link names a node that is not in the topology.
    #[error("link {a}-{b}: {node:?} is not a node of this topology")]
    LinkUnknownNode {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// The unknown one.
        node: String,
    },
    /// A link from a node to itself.
    #[error("link {a}-{b}: a link joins two different nodes")]
    LinkToItself {
        /// One end.
        a: String,
        /// The other end.
        b: String,
    },
    /// A pair of nodes linked twice.
    #[error("link {a}-{b} appears twice")]
    DuplicateLink {
        /// One end.
        a: String,
        /// The other end.
        b: String,
    },
    /// A link's conditions out of range.
    #[error("link {a}-{b}")]
    Link {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// What is out of range.
        #[source]
        source: LinkError,
    },
    /// A bootnode that is not in the topology.
    #[error("node {node}: bootnode {bootnode:?} is not a node of this topology")]
    UnknownBootnode {
        /// The node.
        node: String,
        /// The bootnode it names.
        bootnode: String,
    },
    /// A node that names itself as its bootnode.
    #[error("node {node}: a node cannot bootstrap from itself")]
    OwnBootnode {
        /// The node.
        node: String,
    },
}

impl Topology {
    /// `nodes` nodes, the first `miners` mining with one thread each; node i connects to
    /// node 0 and node i-1 (a connected graph where every node has at least one peer).
    pub fn generated(network: Network, nodes: usize, miners: usize) -> Result<Topology> {
        if nodes == 0 || nodes > 32 {
            return Err(TopologyError::NodeCount(nodes).into());
        }
        if miners > nodes {
            return Err(TopologyError::MinerCount { miners, nodes }.into());
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
                sync_writes: false,
            })
            .collect();
        Ok(Topology { network, hosts: Hosts::Loopback, nodes, default_link: None, links: Vec::new() })
    }

    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path).io("reading topology", path)?;
        Topology::parse(&text).step(|| format!("topology {}", path.display()))
    }

    /// Parses and checks the text of a topology file (what [`Topology::load`] does once it has
    /// read the file).
    pub fn parse(text: &str) -> Result<Topology> {
        let t: Topology =
            toml::from_str(text).map_err(|source| TestnetError::Toml { what: "topology", source })?;
        t.check()?;
        Ok(t)
    }

    /// Names unique and well-formed, bootnodes known, at least one node.
    pub fn check(&self) -> Result<(), TopologyError> {
        if self.nodes.is_empty() {
            return Err(TopologyError::NoNodes);
        }
        let mut names = HashSet::new();
        for n in &self.nodes {
            if !super::clean::valid_node_name(&n.name) {
                return Err(TopologyError::BadName(n.name.clone()));
            }
            if !names.insert(n.name.as_str()) {
                return Err(TopologyError::DuplicateName(n.name.clone()));
            }
            if n.threads == 0 || n.threads > 64 {
                return Err(TopologyError::Threads { node: n.name.clone(), threads: n.threads });
            }
            if !n.strategy.is_honest() && !n.mine {
                return Err(TopologyError::StrategyWithoutMine {
                    node: n.name.clone(),
                    strategy: n.strategy.name(),
                });
            }
            if n.hashrate.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
                return Err(TopologyError::Hashrate { node: n.name.clone() });
            }
        }
        let mut ports = HashSet::new();
        for n in &self.nodes {
            for port in [n.rpc_port, n.p2p_port].into_iter().flatten() {
                if !ports.insert(port) {
                    return Err(TopologyError::DuplicatePort { node: n.name.clone(), port });
                }
            }
        }
        if self.hosts == Hosts::Netns && self.nodes.len() > super::hosts::MAX_NODES {
            return Err(TopologyError::TooManyForNetns {
                max: super::hosts::MAX_NODES,
                got: self.nodes.len(),
            });
        }
        if self.hosts == Hosts::Loopback && (self.default_link.is_some() || !self.links.is_empty()) {
            return Err(TopologyError::LinksOnLoopback);
        }
        if let Some(d) = &self.default_link {
            d.check().map_err(TopologyError::DefaultLink)?;
        }
        let mut pairs = HashSet::new();
        for l in &self.links {
            let [a, b] = &l.nodes;
            for x in [a, b] {
                if !names.contains(x.as_str()) {
                    return Err(TopologyError::LinkUnknownNode {
                        a: a.clone(),
                        b: b.clone(),
                        node: x.clone(),
                    });
                }
            }
            if a == b {
                return Err(TopologyError::LinkToItself { a: a.clone(), b: b.clone() });
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if !pairs.insert(key) {
                return Err(TopologyError::DuplicateLink { a: a.clone(), b: b.clone() });
            }
            l.params().check().map_err(|source| TopologyError::Link {
                a: a.clone(),
                b: b.clone(),
                source,
            })?;
        }
        for n in &self.nodes {
            for b in &n.bootnodes {
                if !names.contains(b.as_str()) {
                    return Err(TopologyError::UnknownBootnode { node: n.name.clone(), bootnode: b.clone() });
                }
                if b == &n.name {
                    return Err(TopologyError::OwnBootnode { node: n.name.clone() });
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
        let bad = |extra: &str| Topology::parse(&format!("{base}{extra}")).unwrap_err().chain().to_string();
        assert!(bad("[[link]]\nnodes = [\"a\", \"c\"]\n").contains("\"c\" is not a node"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"a\"]\n").contains("two different nodes"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\n[[link]]\nnodes = [\"b\", \"a\"]\n").contains("twice"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\nloss_percent = 120.0\n").contains("loss_percent"));
        assert!(bad("[[link]]\nnodes = [\"a\", \"b\"]\ndelay = 1\n").contains("delay"));
        let loopback = "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[link]]\nnodes = [\"a\", \"b\"]\n";
        assert!(Topology::parse(loopback).unwrap_err().chain().to_string().contains("hosts = \"netns\""));
    }
}
