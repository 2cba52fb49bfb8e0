//! Transaction admission on the core, pipelined with the verifier pool: the core runs the
//! cheap rules ([`crate::mempool::Mempool::accept_deferred`]), the pool checks the scripts in
//! batches on its own threads ([`super::verify`]), and the core finishes with
//! [`crate::mempool::Mempool::accept_verified`] when the result comes back. Gossip and RPC
//! submissions take the same path; a full pool is said so at once ("busy" over RPC, Ignore
//! on gossip, counted in `quarry_tx_refused_total{reason="busy"}`).

use super::api::{NodeError, Reply};
use super::core::Core;
use super::verify::{Checked, Job, Origin};
use crate::clock::unix_secs;
use crate::mempool::{Accepted, Deferred, MempoolError, ScriptJob};
use crate::p2p::link::{NetDone, NetOutcome, Verdict};
use crate::primitives::{Hash256, Transaction};
use std::time::Duration;

impl Core {
    /// A gossiped transaction: its verdict now, or None when its scripts went to the
    /// verifier pool (the verdict is then sent by [`Core::on_verified`] under `token`).
    pub(super) fn on_gossip_tx(&mut self, token: u64, tx: Transaction) -> Option<Verdict> {
        let txid = tx.txid();
        if self.mempool.contains(&txid) {
            return Some(Verdict::ignore());
        }
        let result = match self.mempool.accept_deferred(tx, &self.chain, unix_secs(), false) {
            Ok(Deferred::Done(accepted)) => Ok(accepted),
            Ok(Deferred::Verify(script)) => match self.verify(script, Origin::Gossip { token }) {
                None => return None,
                Some((script, _)) => {
                    if let Some(held) = self.log_throttle.allow("verify-busy", std::time::Instant::now()) {
                        tracing::info!(target: "p2p::gossip", txid = %script.txid, suppressed = held, "verifier pool full: gossiped transaction ignored");
                    }
                    crate::metrics::tx_refused("busy");
                    return Some(Verdict::ignore());
                }
            },
            Err(e) => Err(e),
        };
        Some(Self::tx_verdict(txid, result))
    }

    /// A local submission (RPC): answered on `reply` now, or once its scripts are checked.
    pub(super) fn send_tx(&mut self, tx: Transaction, reply: Reply<Result<Hash256, NodeError>>) {
        let txid = tx.txid();
        // With the tx index usable, a confirmed transaction is named as such; without it the
        // mempool still refuses it (its outputs are in the UTXO set, or its inputs spent).
        let confirmed = match self.need_index(super::queries::Needs::Tx) {
            Ok(()) => self.chain.store().tx_block(&txid).map(|b| b.is_some()),
            Err(_) => Ok(false),
        };
        match confirmed {
            Ok(true) => return drop(reply.send(Err(NodeError::AlreadyInChain(txid)))),
            Err(e) => return drop(reply.send(Err(e.into()))),
            Ok(false) => {}
        }
        if self.mempool.contains(&txid) {
            return drop(reply.send(Ok(txid)));
        }
        match self.mempool.accept_deferred(tx, &self.chain, unix_secs(), true) {
            Ok(Deferred::Done(accepted)) => self.finish_local(accepted, reply),
            Ok(Deferred::Verify(script)) => {
                if let Some((_, Origin::Local(reply))) = self.verify(script, Origin::Local(reply)) {
                    crate::metrics::tx_refused("busy");
                    let load = self
                        .verifier
                        .as_ref()
                        .map(|v| v.load())
                        .unwrap_or(super::verify::Load { jobs: 0, bytes: 0 });
                    let _ = reply.send(Err(NodeError::VerifyBusy { jobs: load.jobs, bytes: load.bytes }));
                }
            }
            Err(e) => drop(reply.send(Err(e.into()))),
        }
    }

    /// Sends `script` to the verifier pool. Without a pool (its threads could not start) the
    /// check runs here and the result is handled at once. Gives the job back when the pool
    /// is full.
    fn verify(&mut self, script: ScriptJob, origin: Origin) -> Option<(ScriptJob, Origin)> {
        let Some(verifier) = &self.verifier else {
            let result = crate::consensus::verify_tx_scripts(&script.tx, &script.spent);
            self.finish(Checked { job: Job { script, origin }, result });
            return None;
        };
        match verifier.submit(Job { script, origin }) {
            Ok(()) => None,
            Err(job) => Some((job.script, job.origin)),
        }
    }

    /// Results from the verifier pool.
    pub(super) fn on_verified(&mut self, batch: Vec<Checked>) {
        for checked in batch {
            if let Some(v) = &self.verifier {
                v.release(&checked);
            }
            self.finish(checked);
        }
        self.refresh_template_if_older(Duration::from_millis(500));
    }

    /// Finishes one admission whose scripts were checked, and tells whoever waits.
    fn finish(&mut self, checked: Checked) {
        let Checked { job: Job { script, origin }, result } = checked;
        let txid = script.txid;
        let local = matches!(origin, Origin::Local(_));
        let tx = local.then(|| script.tx.clone());
        let admitted = match result {
            Err(error) => Err(MempoolError::Consensus { txid, error }),
            Ok(()) => self.mempool.accept_verified(script, &self.chain, unix_secs(), local),
        };
        match origin {
            Origin::Gossip { token } => {
                let verdict = Self::tx_verdict(txid, admitted);
                if let Some(done) = &self.done {
                    let _ = done.blocking_send(NetDone { token, outcome: NetOutcome::Verdict(verdict) });
                }
            }
            Origin::Local(reply) => match admitted {
                Ok(accepted) => {
                    if let Some(tx) = &tx {
                        self.announce_tx(tx);
                    }
                    let _ = reply.send(Ok(accepted.txid()));
                }
                // The same transaction submitted twice while the first was being checked:
                // answered like a resubmission, with its txid.
                Err(MempoolError::AlreadyInPool { txid }) => drop(reply.send(Ok(txid))),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
        }
    }

    /// Answers a local submission admitted without the verifier (its scripts were cached).
    fn finish_local(&mut self, accepted: Accepted, reply: Reply<Result<Hash256, NodeError>>) {
        if let Some(tx) = self.mempool.get(&accepted.txid()).cloned() {
            self.announce_tx(&tx);
        }
        self.refresh_template_if_older(Duration::from_millis(500));
        let _ = reply.send(Ok(accepted.txid()));
    }
}
