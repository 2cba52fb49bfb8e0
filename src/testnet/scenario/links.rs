//! Link steps' helpers: which node pairs a partition or a `shape` names, and the count of
//! stale blocks across the running nodes.

use super::super::error::Result;
use super::super::Testnet;
use crate::rpc::api::QuarryApiClient;
use crate::rpc::types::TipStatus;

/// Every ordered pair (a, b) of nodes in different groups.
pub(super) fn cross_pairs(groups: &[Vec<String>]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for (j, h) in groups.iter().enumerate() {
            if i != j {
                for a in g {
                    for b in h {
                        pairs.push((a.clone(), b.clone()));
                    }
                }
            }
        }
    }
    pairs
}

/// Unordered node-index pairs a `shape` / `unshape` step names: its `links`, or the links
/// between its `groups`, or every pair.
pub(super) fn chosen_links(
    t: &Testnet,
    links: &Option<Vec<[String; 2]>>,
    groups: &Option<Vec<Vec<String>>>,
) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let mut add = |a: usize, b: usize| {
        let key = (a.min(b), a.max(b));
        if a != b && !out.contains(&key) {
            out.push(key);
        }
    };
    match (links, groups) {
        (Some(l), _) => {
            for [a, b] in l {
                add(t.index(a)?, t.index(b)?);
            }
        }
        (None, Some(g)) => {
            for (a, b) in cross_pairs(g) {
                add(t.index(&a)?, t.index(&b)?);
            }
        }
        (None, None) => {
            let n = t.names().len();
            for a in 0..n {
                for b in a + 1..n {
                    add(a, b);
                }
            }
        }
    }
    Ok(out)
}

/// (stale blocks above `since`, all blocks mined above `since`): the union over the running
/// nodes of the blocks on their abandoned branches (getchaintips, then the headers down each
/// branch), and the active chain's length above `since`.
pub(super) fn stale_blocks(t: &mut Testnet, since: u64) -> Result<(u64, u64)> {
    let mut stale = std::collections::HashSet::new();
    let mut height = 0u64;
    for n in t.running() {
        height = height.max(t.ask(&n, |c| c.wait(c.getblockcount()))? as u64);
        let tips = t.ask(&n, |c| c.wait(c.getchaintips()))?;
        for tip in tips.iter().filter(|x| x.status == TipStatus::ValidFork) {
            let mut hash = tip.hash;
            let mut h = tip.height as u64;
            for _ in 0..tip.branchlen.min(10_000) {
                if h <= since {
                    break;
                }
                if !stale.insert(hash) {
                    break;
                }
                let info = t.ask(&n, |c| c.wait(c.header_info(&hash)))?;
                match info.previousblockhash {
                    Some(prev) => hash = prev,
                    None => break,
                }
                h -= 1;
            }
        }
    }
    let stale = stale.len() as u64;
    Ok((stale, stale + height.saturating_sub(since)))
}
