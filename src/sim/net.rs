//! The simulated network's shape: topologies (random regular graph, complete graph, or a file of
//! edges), per-link latency distributions, and the seeded randomness everything draws from.

use super::SimError;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{BTreeSet, VecDeque};

/// An exponential sample with the given mean (inverse transform of a uniform in (0, 1]).
pub fn exp_sample(rng: &mut StdRng, mean: f64) -> f64 {
    let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    -u.ln() * mean
}

/// How a link's one-way latency is drawn (once per link, when the network is built: a link
/// keeps its order, messages never overtake each other on it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Every link the same, in milliseconds.
    Fixed(f64),
    /// Uniform between two values, in milliseconds.
    Uniform(f64, f64),
    /// Exponential with this mean, in milliseconds.
    Exponential(f64),
}

impl Latency {
    /// Parses `fixed:MS`, `uniform:LO:HI` or `exp:MEAN` (milliseconds).
    pub fn parse(s: &str) -> Result<Latency, SimError> {
        let bad =
            || SimError::Config(format!("latency {s:?}: expected fixed:MS, uniform:LO:HI or exp:MEAN (ms)"));
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<f64, SimError> {
            let v: f64 = parts.get(i).ok_or_else(bad)?.parse().map_err(|_| bad())?;
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        match (parts[0], parts.len()) {
            ("fixed", 2) => Ok(Latency::Fixed(num(1)?)),
            ("uniform", 3) if num(1)? <= num(2)? => Ok(Latency::Uniform(num(1)?, num(2)?)),
            ("exp", 2) => Ok(Latency::Exponential(num(1)?)),
            _ => Err(bad()),
        }
    }

    /// One draw, in seconds.
    pub fn sample(&self, rng: &mut StdRng) -> f64 {
        match *self {
            Latency::Fixed(ms) => ms / 1e3,
            Latency::Uniform(lo, hi) => (lo + (hi - lo) * rng.gen::<f64>()) / 1e3,
            Latency::Exponential(mean) => exp_sample(rng, mean) / 1e3,
        }
    }

    /// The mean, in seconds.
    pub fn mean(&self) -> f64 {
        match *self {
            Latency::Fixed(ms) | Latency::Exponential(ms) => ms / 1e3,
            Latency::Uniform(lo, hi) => (lo + hi) / 2e3,
        }
    }
}

/// Which graph the nodes form.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    /// Every node has exactly this many neighbours, drawn at random.
    Regular(usize),
    /// Every node is linked to every other.
    Complete,
    /// Undirected edges from a file: `a b` or `a b LATENCY_MS` per line (`#` starts a comment);
    /// the node count is the largest id plus one.
    Edges(Vec<(u32, u32, Option<f64>)>),
}

impl Topology {
    /// Reads a topology file.
    pub fn from_file_text(text: &str) -> Result<Topology, SimError> {
        let mut edges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let bad = || {
                SimError::Config(format!(
                    "topology line {}: expected `a b [latency_ms]`, got {line:?}",
                    n + 1
                ))
            };
            if f.len() < 2 || f.len() > 3 {
                return Err(bad());
            }
            let a: u32 = f[0].parse().map_err(|_| bad())?;
            let b: u32 = f[1].parse().map_err(|_| bad())?;
            let lat = match f.get(2) {
                Some(x) => {
                    Some(x.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(bad)?)
                }
                None => None,
            };
            if a == b || a.max(b) >= MAX_NODES as u32 {
                return Err(bad());
            }
            edges.push((a, b, lat));
        }
        if edges.is_empty() {
            return Err(SimError::Config("topology file holds no edge".into()));
        }
        Ok(Topology::Edges(edges))
    }
}

/// Most nodes of a complete graph (about 2 million links).
pub const MAX_COMPLETE: usize = 2000;

/// Most nodes a simulation takes.
pub const MAX_NODES: usize = 100_000;

/// A built network: adjacency with each directed link's latency in seconds.
#[derive(Clone, Debug)]
pub struct Graph {
    /// `links[a]` = (neighbour, latency s), sorted by neighbour.
    pub links: Vec<Vec<(u32, f64)>>,
}

impl Graph {
    /// Builds `topology` over `nodes` nodes (ignored for a file), drawing latencies from
    /// `latency` (a file's own latency wins). Refuses a graph that is not connected.
    pub fn build(
        topology: &Topology,
        nodes: usize,
        latency: Latency,
        rng: &mut StdRng,
    ) -> Result<Graph, SimError> {
        let edges: Vec<(u32, u32, Option<f64>)> = match topology {
            Topology::Complete => {
                check_nodes(nodes, 2)?;
                if nodes > MAX_COMPLETE {
                    return Err(SimError::Config(format!(
                        "a complete graph on {nodes} nodes has too many links: at most {MAX_COMPLETE} nodes"
                    )));
                }
                let mut e = Vec::new();
                for a in 0..nodes as u32 {
                    for b in a + 1..nodes as u32 {
                        e.push((a, b, None));
                    }
                }
                e
            }
            Topology::Regular(d) => {
                check_nodes(nodes, d + 1)?;
                if (nodes * d) % 2 == 1 || *d == 0 {
                    return Err(SimError::Config(format!(
                        "a {d}-regular graph on {nodes} nodes does not exist: nodes x degree must be even and degree > 0"
                    )));
                }
                random_regular(nodes, *d, rng)?.into_iter().map(|(a, b)| (a, b, None)).collect()
            }
            Topology::Edges(e) => e.clone(),
        };
        let n = match topology {
            Topology::Edges(e) => e.iter().map(|(a, b, _)| a.max(b) + 1).max().unwrap_or(0) as usize,
            _ => nodes,
        };
        let mut links = vec![Vec::new(); n];
        for (a, b, lat) in edges {
            let l = match lat {
                Some(ms) => ms / 1e3,
                None => latency.sample(rng),
            };
            links[a as usize].push((b, l));
            links[b as usize].push((a, l));
        }
        for l in &mut links {
            l.sort_by_key(|x| x.0);
            l.dedup_by_key(|x| x.0);
        }
        let g = Graph { links };
        if !g.connected() {
            return Err(SimError::Config(
                "the topology is not connected: every node must reach every other".into(),
            ));
        }
        Ok(g)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn connected(&self) -> bool {
        if self.links.is_empty() {
            return false;
        }
        let mut seen = vec![false; self.len()];
        let mut queue = VecDeque::from([0usize]);
        seen[0] = true;
        while let Some(a) = queue.pop_front() {
            for &(b, _) in &self.links[a] {
                if !std::mem::replace(&mut seen[b as usize], true) {
                    queue.push_back(b as usize);
                }
            }
        }
        seen.iter().all(|s| *s)
    }
}

fn check_nodes(nodes: usize, min: usize) -> Result<(), SimError> {
    if nodes < min || nodes > MAX_NODES {
        return Err(SimError::Config(format!(
            "--nodes {nodes}: this topology needs {min} to {MAX_NODES} nodes"
        )));
    }
    Ok(())
}

/// A uniformly shuffled pairing of `d` stubs per node (the configuration model), then random
/// edge switches that remove self-loops and repeated edges while keeping every degree `d`.
fn random_regular(n: usize, d: usize, rng: &mut StdRng) -> Result<Vec<(u32, u32)>, SimError> {
    let mut stubs: Vec<u32> = (0..n as u32).flat_map(|a| std::iter::repeat(a).take(d)).collect();
    for i in (1..stubs.len()).rev() {
        let j = rng.gen_range(0..=i);
        stubs.swap(i, j);
    }
    let key = |a: u32, b: u32| (a.min(b), a.max(b));
    let mut edges: Vec<(u32, u32)> = stubs.chunks(2).map(|p| key(p[0], p[1])).collect();
    let mut count: std::collections::HashMap<(u32, u32), u32> = std::collections::HashMap::new();
    for e in &edges {
        *count.entry(*e).or_default() += 1;
    }
    let is_bad =
        |e: (u32, u32), count: &std::collections::HashMap<(u32, u32), u32>| e.0 == e.1 || count[&e] > 1;
    let mut bad: BTreeSet<usize> = (0..edges.len()).filter(|&i| is_bad(edges[i], &count)).collect();
    let mut tries = 0usize;
    while let Some(&i) = bad.iter().next() {
        tries += 1;
        if tries > 1000 * edges.len() {
            return Err(SimError::Config(format!("could not draw a simple {d}-regular graph on {n} nodes")));
        }
        let j = rng.gen_range(0..edges.len());
        if i == j {
            continue;
        }
        let ((u, v), (x, y)) = (edges[i], edges[j]);
        let (e1, e2) = if rng.gen::<bool>() { (key(u, x), key(v, y)) } else { (key(u, y), key(v, x)) };
        if e1.0 == e1.1 || e2.0 == e2.1 || e1 == e2 || count.contains_key(&e1) || count.contains_key(&e2) {
            continue;
        }
        for (k, e) in [(i, e1), (j, e2)] {
            let old = edges[k];
            let c = count.get_mut(&old).expect("counted");
            *c -= 1;
            if *c == 0 {
                count.remove(&old);
            }
            edges[k] = e;
            count.insert(e, 1);
        }
        // The two switched slots are now simple; a slot that repeated an old edge may be too.
        bad.retain(|&k| is_bad(edges[k], &count));
    }
    edges.sort_unstable();
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_regular_graphs_are_simple_regular_and_connected() {
        let mut rng = StdRng::seed_from_u64(7);
        for (n, d) in [(10, 3), (100, 8), (1000, 8)] {
            let g = Graph::build(&Topology::Regular(d), n, Latency::Fixed(50.0), &mut rng).unwrap();
            assert!(g.links.iter().all(|l| l.len() == d), "{n} nodes, degree {d}");
            assert!(g.links.iter().enumerate().all(|(a, l)| l.iter().all(|(b, _)| *b as usize != a)));
        }
        let e = Graph::build(&Topology::Regular(3), 9, Latency::Fixed(1.0), &mut rng).unwrap_err();
        assert!(e.to_string().contains("must be even"), "{e}");
    }

    #[test]
    fn topology_files_and_latencies_parse_or_name_the_problem() {
        let t = Topology::from_file_text("# line\n0 1 20\n1 2\n").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let g = Graph::build(&t, 0, Latency::Fixed(100.0), &mut rng).unwrap();
        assert_eq!(g.links[0], vec![(1, 0.02)]);
        assert_eq!(g.links[2], vec![(1, 0.1)]);
        let e = Topology::from_file_text("0 1\n2 x\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let split = Topology::from_file_text("0 1\n2 3\n").unwrap();
        assert!(Graph::build(&split, 0, Latency::Fixed(1.0), &mut rng)
            .unwrap_err()
            .to_string()
            .contains("not connected"));
        assert_eq!(Latency::parse("uniform:10:30").unwrap().mean(), 0.02);
        assert!(Latency::parse("uniform:30:10").is_err());
        assert!(Latency::parse("gauss:1").is_err());
    }
}
