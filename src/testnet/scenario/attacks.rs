//! Scenario steps about miners and attackers: block share per miner beside its hash share,
//! double-spend attempts (one, or many trials in a row) through the attacker node's
//! `startdoublespend`, and a link added to an eclipsed node.

use super::super::error::{Result, ResultExt, TestnetError};
use super::{coins, Runner};
use crate::primitives::{Amount, Transaction, TxIn, TxOut};
use crate::rpc::api::QuarryApiClient;
use crate::rpc::types::{AttackInfo, GetBlock, TipStatus};
use crate::script::templates::address_lock;
use crate::wallet::ops;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Blocks of the active chain since the steps began, by miner.
pub(super) struct Shares {
    /// (node, blocks) in topology order, then `other` for coinbases paying no node.
    pub by_miner: Vec<(String, u64)>,
    /// Blocks counted.
    pub total: u64,
    /// The miner of each block counted, lowest height first.
    pub sequence: Vec<String>,
}

/// A double-spend attempt that ended, with what the merchant's node holds afterwards.
pub(super) struct Trial {
    pub info: AttackInfo,
    pub reversed: bool,
    pub seconds: f64,
}

/// Each miner's share of the blocks so far against the block count (solid), its hash share
/// (dashed), and for a selfish miner Eyal-Sirer's prediction at gamma = 0 (dashed).
fn share_chart(shares: &Shares, hashrate: &BTreeMap<String, f64>, total: f64, selfish: &[String]) -> String {
    use crate::plot::{Chart, Series};
    let n = shares.sequence.len() as f64;
    let mut series = Vec::new();
    for (miner, _) in &shares.by_miner {
        let mut mined = 0u64;
        let points = shares
            .sequence
            .iter()
            .enumerate()
            .map(|(i, m)| {
                mined += (m == miner) as u64;
                ((i + 1) as f64, mined as f64 / (i + 1) as f64)
            })
            .collect();
        series.push(Series::line(format!("{miner}: block share"), points));
        if let Some(h) = hashrate.get(miner).filter(|_| total > 0.0) {
            let a = h / total;
            series.push(Series {
                dashed: true,
                ..Series::line(format!("{miner}: hash share"), vec![(1.0, a), (n, a)])
            });
            if selfish.contains(miner) {
                let r = crate::sim::theory::selfish_revenue(a, 0.0);
                series.push(Series {
                    dashed: true,
                    ..Series::line(format!("{miner}: Eyal-Sirer g=0"), vec![(1.0, r), (n, r)])
                });
            }
        }
    }
    Chart {
        title: format!("block share per miner over {} blocks of the active chain", shares.total),
        x_label: "blocks since the steps began".into(),
        y_label: "share of the blocks so far".into(),
        series,
        y_from_zero: true,
    }
    .to_svg()
}

impl Runner {
    /// Nodes whose miner runs `strategy = "selfish"`.
    fn selfish_nodes(&self) -> Vec<String> {
        self.t.state.nodes.iter().filter(|n| !n.strategy.is_honest()).map(|n| n.name.clone()).collect()
    }

    /// Who mined the active chain of `via` above the start height: each block's coinbase
    /// pays the address its node's miner was given (the wallet's first address).
    pub(super) fn block_shares(&mut self, via: &str) -> Result<Shares> {
        let t = &self.t;
        let mut owner = BTreeMap::new();
        for n in t.names() {
            owner.insert(t.wallet(&n)?.address(0).encode(), n);
        }
        let tip = t.ask(via, |c| c.wait(c.getblockcount()))? as u64;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut sequence = Vec::new();
        for h in self.start_height + 1..=tip {
            let hash = t.ask(via, |c| c.wait(c.getblockhash(h as i64)))?;
            let block = t.ask(via, |c| c.wait(c.getblock(hash.to_string(), Some(2u8.into()))))?;
            let GetBlock::Full(b) = block else {
                return Err(TestnetError::failed(format!(
                    "node {via}: getblock 2 did not answer full transactions"
                )));
            };
            let payee =
                b.tx.first()
                    .and_then(|cb| cb.vout.first())
                    .and_then(|o| o.script_pubkey.address.clone())
                    .unwrap_or_default();
            let who = owner.get(&payee).cloned().unwrap_or_else(|| "other".into());
            *counts.entry(who.clone()).or_default() += 1;
            sequence.push(who);
        }
        let mut by_miner: Vec<(String, u64)> =
            t.names().into_iter().filter_map(|n| counts.remove(&n).map(|c| (n, c))).collect();
        by_miner.extend(counts);
        Ok(Shares { total: by_miner.iter().map(|(_, c)| c).sum(), by_miner, sequence })
    }

    /// The `block-share` step: shares beside hash shares (from the topology's `hashrate`),
    /// the stale rate and the deepest abandoned branch; bounds on one node's share.
    pub(super) fn block_share_step(
        &mut self,
        via: &Option<String>,
        node: &Option<String>,
        min: Option<f64>,
        max: Option<f64>,
        chart: &Option<String>,
    ) -> Result<String> {
        let via = match via {
            Some(v) => v.clone(),
            None => self
                .t
                .running()
                .into_iter()
                .next()
                .ok_or_else(|| TestnetError::refused("no node is running"))?,
        };
        let shares = self.block_shares(&via)?;
        if shares.total == 0 {
            return Err(TestnetError::check_failed(format!(
                "no block above height {} on {via}",
                self.start_height
            )));
        }
        let hashrate: BTreeMap<String, f64> = self
            .t
            .state
            .nodes
            .iter()
            .filter(|n| n.mine)
            .filter_map(|n| Some((n.name.clone(), n.hashrate?)))
            .collect();
        let total_rate: f64 = hashrate.values().sum();
        let mut parts = Vec::new();
        for (n, c) in &shares.by_miner {
            let share = *c as f64 / shares.total as f64;
            let hash_share = hashrate.get(n).filter(|_| total_rate > 0.0).map(|h| h / total_rate);
            parts.push(match hash_share {
                Some(hs) => {
                    format!("{n} {c} ({:.1}% of blocks, {:.1}% of hashes)", 100.0 * share, 100.0 * hs)
                }
                None => format!("{n} {c} ({:.1}%)", 100.0 * share),
            });
        }
        if let Some(path) = chart {
            let svg = share_chart(&shares, &hashrate, total_rate, &self.selfish_nodes());
            std::fs::write(path, svg).io("writing the chart", path)?;
        }
        let (stale, mined) = super::links::stale_blocks(&mut self.t, self.start_height)?;
        let mut deepest = 0u64;
        for n in self.t.running() {
            let tips = self.t.ask(&n, |c| c.wait(c.getchaintips()))?;
            let d =
                tips.iter().filter(|x| x.status == TipStatus::ValidFork).map(|x| x.branchlen as u64).max();
            deepest = deepest.max(d.unwrap_or(0));
        }
        let note = format!(
            "({} blocks on {via}: {}; stale {stale} of {mined} ({:.1}%); deepest abandoned branch {deepest})",
            shares.total,
            parts.join(", "),
            if mined == 0 { 0.0 } else { 100.0 * stale as f64 / mined as f64 }
        );
        if let Some(n) = node {
            let c = shares.by_miner.iter().find(|(m, _)| m == n).map_or(0, |(_, c)| *c);
            let share = c as f64 / shares.total as f64;
            if min.is_some_and(|m| share < m) || max.is_some_and(|m| share > m) {
                return Err(TestnetError::check_failed(format!(
                    "{note}: {n}'s block share {share:.3} is outside [{}, {}]",
                    min.map_or("-".into(), |m| m.to_string()),
                    max.map_or("-".into(), |m| m.to_string())
                )));
            }
        }
        Ok(note)
    }

    /// Starts one attempt: `attacker` pays `amount` to `victim` (labelled `LABEL.pay`) and
    /// hands its node a conflicting spend of the same coin back to itself (`LABEL.conflict`).
    pub(super) fn start_attack(
        &mut self,
        attacker: &str,
        victim: &str,
        amount: &str,
        confirmations: u32,
        max_deficit: u32,
        label: &str,
    ) -> Result<AttackInfo> {
        let t = &self.t;
        let rpc = t.rpc(attacker)?;
        let wallet = t.wallet(attacker)?;
        let amount = coins(amount)?;
        let fee = Amount::from_sat(10_000)?;
        let coins = ops::spendable(&wallet, &rpc).map_err(TestnetError::wallet)?;
        let coin = coins
            .iter()
            .filter(|c| c.out.value >= amount.checked_add(fee).unwrap_or(amount))
            .max_by_key(|c| c.out.value)
            .ok_or_else(|| {
                TestnetError::failed(format!(
                    "{attacker} has no spendable coin of at least {amount} plus the fee"
                ))
            })?;
        let back = address_lock(&wallet.address(0));
        let spend = |outputs: Vec<TxOut>| -> Result<Transaction> {
            let mut tx = Transaction {
                version: 1,
                inputs: vec![TxIn { prevout: coin.outpoint, unlock: Default::default() }],
                outputs,
                lock_time: 0,
            };
            ops::sign_p2pkh_inputs(&wallet, &mut tx, std::slice::from_ref(&coin.out))
                .map_err(TestnetError::wallet)?;
            Ok(tx)
        };
        let change = coin.out.value.checked_sub(amount)?.checked_sub(fee)?;
        let mut outputs = vec![TxOut { value: amount, lock: address_lock(&t.wallet(victim)?.address(0)) }];
        if change > Amount::ZERO {
            outputs.push(TxOut { value: change, lock: back.clone() });
        }
        let payment = spend(outputs)?;
        let conflict = spend(vec![TxOut { value: coin.out.value.checked_sub(fee)?, lock: back }])?;
        let txid = rpc
            .wait(rpc.sendrawtransaction(hex::encode(payment.encode())))
            .map_err(TestnetError::rpc(attacker))?;
        self.labels.insert(format!("{label}.pay"), txid.to_string());
        self.labels.insert(format!("{label}.conflict"), conflict.txid().to_string());
        let info = rpc
            .wait(rpc.startdoublespend(
                txid.to_string(),
                hex::encode(conflict.encode()),
                confirmations,
                max_deficit,
            ))
            .map_err(|source| TestnetError::RpcMethod {
                node: attacker.into(),
                method: "startdoublespend",
                source,
            })?;
        Ok(info)
    }

    /// Waits until the attacker's attempt ends, then until every running node shares a tip,
    /// and reads whether the merchant's node lost the payment.
    pub(super) fn finish_attack(
        &mut self,
        attacker: &str,
        victim: &str,
        label: &str,
        timeout: Duration,
    ) -> Result<Trial> {
        let started = Instant::now();
        let mut last = None;
        self.t.wait_until(&format!("{attacker}'s double spend to end"), timeout, |t| {
            let s = t.ask(attacker, |c| c.wait(c.getstrategyinfo()))?;
            let done = s.attack.as_ref().is_some_and(|a| a.outcome != "racing");
            last = s.attack;
            Ok(done)
        })?;
        let info =
            last.ok_or_else(|| TestnetError::failed(format!("{attacker} reports no double-spend attempt")))?;
        let seconds = started.elapsed().as_secs_f64();
        self.t.wait_until("one tip after the attempt", Duration::from_secs(60), |t| t.same_tip(None))?;
        let pay = self.label(&format!("{label}.pay"))?.clone();
        let conflict = self.label(&format!("{label}.conflict"))?.clone();
        let (paid, reversed) = (self.confirmed_on(victim, &pay)?, self.confirmed_on(victim, &conflict)?);
        // What the merchant lost is read from its node: a published branch may still lose a
        // race against a block in flight (then the attacker reports success in vain).
        if paid == reversed {
            return Err(TestnetError::check_failed(format!(
                "attempt {}, yet on {victim} the payment and the conflicting spend are both {}confirmed",
                info.outcome,
                if paid { "" } else { "un" }
            )));
        }
        Ok(Trial { info, reversed, seconds })
    }
}

/// One attempt in words.
pub(super) fn trial_note(t: &Trial) -> String {
    let i = &t.info;
    format!(
        "{}: private {} vs public {} blocks after fork height {}, z = {}, give up at {} behind, {} restart(s), {:.1} s; payment {}",
        i.outcome,
        i.private_blocks,
        i.public_blocks,
        i.fork_height,
        i.confirmations,
        i.max_deficit,
        i.restarts,
        t.seconds,
        if t.reversed { "reversed" } else { "stays confirmed" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_chart_draws_running_shares_beside_hash_shares_and_the_prediction() {
        let seq: Vec<String> = ["s", "h", "s", "s"].iter().map(|x| x.to_string()).collect();
        let shares = Shares { by_miner: vec![("h".into(), 1), ("s".into(), 3)], total: 4, sequence: seq };
        let rates = BTreeMap::from([("h".to_string(), 6.0), ("s".to_string(), 4.0)]);
        let svg = share_chart(&shares, &rates, 10.0, &["s".to_string()]);
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        for label in
            ["h: block share", "s: block share", "s: hash share", "s: Eyal-Sirer g=0", "over 4 blocks"]
        {
            assert!(svg.contains(label), "{label} missing");
        }
        // Only the selfish miner gets a prediction.
        assert!(!svg.contains("h: Eyal-Sirer"));
    }
}
