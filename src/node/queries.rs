//! The core's answers to API requests: each handler reads or changes the chain and the
//! mempool and replies with domain values. Invariants live here, not in callers: chain
//! events are applied by [`Core::process_block`] and the invalidate/reconsider handlers,
//! and a block that failed to connect comes back as the error naming its rule.

use super::api::*;
use super::core::Core;
use crate::chain::ProcessOutcome;
use crate::clock::unix_secs;
use crate::primitives::{Hash256, MerkleProof, OutPoint, Script, TxOut, TxProof};
use std::sync::Arc;

/// The indexes a request may need.
#[derive(Clone, Copy)]
pub(super) enum Needs {
    Tx,
    Address,
}

impl Core {
    /// Runs one API request, or parks it while an index it needs is behind the tip (until
    /// the index catches up or [`super::core::INDEX_WAIT`] passes).
    pub(super) fn handle(&mut self, req: Request) {
        if self.waits_for_index(&req) && !self.index_synced() {
            self.parked.push_back((std::time::Instant::now(), req));
            return;
        }
        self.handle_now(req)
    }

    fn waits_for_index(&self, req: &Request) -> bool {
        match req {
            Request::Transaction { txid, .. } => !self.mempool.contains(txid),
            Request::SendTransaction { .. }
            | Request::TxProof { block: None, .. }
            | Request::AddressCoins { .. }
            | Request::AddressHistory { .. } => true,
            _ => false,
        }
    }

    /// Whether the indexes match the active tip.
    pub(super) fn index_synced(&self) -> bool {
        self.index.as_ref().is_none_or(|i| i.status().best == self.chain.tip().hash)
    }

    /// Answers parked requests whose index caught up or whose wait is over.
    pub(super) fn serve_parked(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let synced = self.index_synced();
        while let Some((at, _)) = self.parked.front() {
            if !synced && at.elapsed() < super::core::INDEX_WAIT {
                break;
            }
            let (_, req) = self.parked.pop_front().expect("front exists");
            self.handle_now(req);
        }
    }

    /// Whether an index can answer now: off, or behind the tip, is an error naming it.
    pub(super) fn need_index(&self, needs: Needs) -> Result<(), NodeError> {
        let (index, flag) = match needs {
            Needs::Tx => ("transaction index", "--txindex"),
            Needs::Address => ("address index", "--addressindex"),
        };
        let Some(status) = self.index.as_ref().map(|i| i.status()) else {
            return Err(NodeError::IndexDisabled { index, flag });
        };
        let on = match needs {
            Needs::Tx => status.which.tx,
            Needs::Address => status.which.address,
        };
        if !on {
            return Err(NodeError::IndexDisabled { index, flag });
        }
        let tip = self.chain.tip();
        if status.best != tip.hash {
            return Err(NodeError::IndexSyncing { index, indexed: status.height, tip: tip.height });
        }
        Ok(())
    }

    /// Runs one API request now.
    pub(super) fn handle_now(&mut self, req: Request) {
        match req {
            Request::ChainInfo(r) => drop(r.send(self.chain_info())),
            Request::BlockHash { height, reply } => drop(reply.send(self.block_hash(height))),
            Request::Header { hash, reply } => {
                drop(reply.send(self.header_view(&hash).ok_or(NodeError::BlockNotFound(hash))))
            }
            Request::Block { hash, reply } => drop(reply.send(self.block_view(&hash))),
            Request::Transaction { txid, reply } => drop(reply.send(self.find_tx(&txid))),
            Request::SendTransaction { tx, reply } => self.send_tx(tx, reply),
            Request::Verified(batch) => self.on_verified(batch),
            Request::SubmitBlock { block, reply } => drop(reply.send(self.submit_block(block))),
            Request::MempoolInfo(r) => drop(r.send(self.mempool.info(unix_secs()))),
            Request::MempoolTxids(r) => drop(r.send(self.mempool.txids())),
            Request::MempoolEntries { reply } => {
                let entries = self
                    .mempool
                    .txids()
                    .into_iter()
                    .filter_map(|t| self.mempool.entry(&t).map(|e| (t, e)))
                    .collect();
                drop(reply.send(entries))
            }
            Request::MiningInfo(r) => drop(r.send(self.mining_info())),
            Request::StrategyInfo(r) => drop(r.send(self.strategy_info())),
            Request::StartDoubleSpend { start, reply } => drop(reply.send(self.start_double_spend(start))),
            Request::Generate { n, lock, reply } => self.start_generate(n, lock, reply),
            Request::TxOut { outpoint, include_mempool, reply } => {
                drop(reply.send(self.tx_out(outpoint, include_mempool)))
            }
            Request::UtxoSetInfo(r) => drop(r.send(self.utxo_set_info())),
            Request::ChainTips(r) => drop(r.send(self.chain_tips())),
            Request::Invalidate { hash, reply } => {
                let result = self.chain.invalidate_block(&hash).map(|events| self.on_events(&events));
                drop(reply.send(result.map_err(NodeError::from)))
            }
            Request::Reconsider { hash, reply } => {
                let result = self.chain.reconsider_block(&hash).map(|events| self.on_events(&events));
                drop(reply.send(result.map_err(NodeError::from)))
            }
            Request::TxProof { txid, block, reply } => drop(reply.send(self.tx_proof(txid, block))),
            Request::IsActive { hash, reply } => drop(reply.send(self.chain.is_active(&hash))),
            Request::AddressCoins { locks, limit, reply } => {
                drop(reply.send(self.address_coins(&locks, limit)))
            }
            Request::AddressHistory { locks, limit, reply } => {
                drop(reply.send(self.address_history(&locks, limit)))
            }
            Request::SpentOutputs { outpoints, reply } => drop(reply.send(self.spent_outputs(&outpoints))),
            Request::BlockTemplate(r) => drop(r.send(self.block_template())),
        }
    }

    /// A template for an outside miner: the node's own selection, an empty coinbase lock,
    /// each transaction's fee and its in-template parents.
    fn block_template(&self) -> TemplateView {
        use crate::mempool::MempoolTemplates;
        use crate::miner::TemplateSource;
        let tip = self.chain.tip_context(unix_secs());
        let template = MempoolTemplates { pool: &self.mempool, lock: Script::default() }.template(&tip);
        let txids: Vec<Hash256> = template.txs.iter().map(|t| t.txid()).collect();
        let position: std::collections::HashMap<Hash256, usize> =
            txids.iter().enumerate().map(|(i, t)| (*t, i + 1)).collect();
        let (fees, sigops) = txids
            .iter()
            .map(|t| {
                self.mempool.entry(t).map_or((crate::primitives::Amount::ZERO, 0), |e| (e.fee, e.sigops))
            })
            .unzip();
        let depends = template
            .txs
            .iter()
            .map(|tx| {
                let mut d: Vec<usize> =
                    tx.inputs.iter().filter_map(|i| position.get(&i.prevout.txid).copied()).collect();
                d.sort_unstable();
                d.dedup();
                d
            })
            .collect();
        TemplateView {
            min_time: tip.next.median_time_past.saturating_add(1),
            template,
            fees,
            sigops,
            depends,
            mark: self.template_mark(),
        }
    }

    fn chain_info(&self) -> ChainInfo {
        let tip = self.chain.tip();
        let tip_header = self
            .chain
            .record(&tip.hash)
            .map(|r| r.header)
            .unwrap_or_else(|| self.chain.params().genesis.header);
        let (best_work, best_header, headers) = self.sync.best_header(&self.chain);
        let (headers, best_header) =
            if best_work > tip.chain_work { (headers, best_header) } else { (tip.height, tip.hash) };
        let initial_block_download = headers > tip.height;
        let verification_progress =
            if headers == 0 { 1.0 } else { (f64::from(tip.height) / f64::from(headers)).min(1.0) };
        ChainInfo {
            median_time: self.chain.header_context(&tip.hash, 0).map(|c| c.median_time_past),
            tip,
            tip_header,
            headers,
            best_header,
            initial_block_download,
            verification_progress,
        }
    }

    fn block_hash(&self, height: i64) -> Result<Hash256, NodeError> {
        u32::try_from(height)
            .ok()
            .and_then(|h| self.chain.hash_at(h))
            .ok_or(NodeError::HeightOutOfRange { height, tip: self.chain.tip().height })
    }

    fn header_view(&self, hash: &Hash256) -> Option<HeaderView> {
        let rec = self.chain.record(hash)?;
        let active = self.chain.is_active(hash);
        let tip = self.chain.tip();
        Some(HeaderView {
            hash: *hash,
            header: rec.header,
            height: Some(rec.height),
            confirmations: if active { i64::from(tip.height - rec.height) + 1 } else { -1 },
            median_time: self.chain.header_context(hash, 0).map(|c| c.median_time_past),
            chain_work: Some(rec.chain_work),
            next: if active { self.chain.hash_at(rec.height + 1) } else { None },
        })
    }

    fn stored_block(&self, hash: &Hash256) -> Result<crate::consensus::CheckedBlock, NodeError> {
        self.chain.store().get_block(hash)?.ok_or(NodeError::BlockNotFound(*hash))
    }

    fn block_view(&self, hash: &Hash256) -> Result<BlockView, NodeError> {
        let block = self.stored_block(hash)?;
        let header = self.header_view(hash).ok_or(NodeError::BlockNotFound(*hash))?;
        Ok(BlockView { block: Arc::new(block), header })
    }

    /// A transaction from the mempool or (through the tx index) the active chain.
    fn find_tx(&self, txid: &Hash256) -> Result<TxView, NodeError> {
        if let Some(tx) = self.mempool.get(txid) {
            return Ok(TxView { tx: tx.clone(), location: None });
        }
        self.need_index(Needs::Tx)?;
        let block_hash = self.chain.store().tx_block(txid)?.ok_or(NodeError::TxNotFound(*txid))?;
        let block = self.stored_block(&block_hash)?;
        let i = block.txids().iter().position(|t| t == txid).ok_or(NodeError::TxNotFound(*txid))?;
        let rec = self.chain.record(&block_hash).ok_or(NodeError::BlockNotFound(block_hash))?;
        let location = TxLocation {
            block: block_hash,
            confirmations: self.chain.tip().height.saturating_sub(rec.height) + 1,
            time: rec.header.time,
        };
        Ok(TxView { tx: block.block().txs[i].clone(), location: Some(location) })
    }

    fn submit_block(&mut self, block: crate::primitives::Block) -> SubmitOutcome {
        let copy = block.clone();
        match self.process_block(block) {
            Ok(ProcessOutcome::Accepted { .. }) => {
                self.announce_block(&copy);
                SubmitOutcome::Accepted
            }
            Ok(ProcessOutcome::AlreadyHave) => SubmitOutcome::Duplicate,
            Ok(ProcessOutcome::Orphan { missing }) => SubmitOutcome::Orphan { missing },
            Err(e) => SubmitOutcome::Invalid(e),
        }
    }

    fn mining_info(&self) -> MiningInfo {
        let tip = self.chain.tip();
        let bits = self.chain.record(&tip.hash).map(|r| r.header.bits).unwrap_or(0);
        MiningInfo {
            network_hashps: self.network_hashps(120),
            tip,
            bits,
            pooled_tx: self.mempool.len(),
            mining: self.miner.is_some(),
            rate: self.meter.rate(),
            kernel: self.miner.as_ref().map(|(m, _)| m.kernel().name()),
        }
    }

    /// Estimated network hash rate: the work of the last `n` active blocks over their time
    /// span (Core's getnetworkhashps with its default window).
    fn network_hashps(&self, n: u32) -> f64 {
        let tip = self.chain.tip();
        // Genesis carries the network's definition date, not a mining time: leave it out.
        let first = tip.height.saturating_sub(n).max(1);
        if tip.height <= first {
            return 0.0;
        }
        let rec = |h: u32| self.chain.hash_at(h).and_then(|x| self.chain.record(&x).cloned());
        let (Some(a), Some(b)) = (rec(first), rec(tip.height)) else { return 0.0 };
        let work = b.chain_work.checked_sub(&a.chain_work).unwrap_or_default();
        let secs = f64::from(b.header.time.saturating_sub(a.header.time).max(1));
        work.to_f64() / secs
    }

    fn tx_out(&self, op: OutPoint, include_mempool: bool) -> Result<Option<TxOutView>, NodeError> {
        let tip = self.chain.tip();
        if include_mempool && self.mempool.spender(&op).is_some() {
            return Ok(None);
        }
        if let Some(coin) = self.chain.coin(&op)? {
            let confirmations = tip.height.saturating_sub(coin.height) + 1;
            return Ok(Some(TxOutView { tip, confirmations, out: coin.out, coinbase: coin.is_coinbase }));
        }
        if include_mempool {
            if let Some(out) = self.mempool.get(&op.txid).and_then(|t| t.outputs.get(op.index as usize)) {
                return Ok(Some(TxOutView { tip, confirmations: 0, out: out.clone(), coinbase: false }));
            }
        }
        Ok(None)
    }

    fn utxo_set_info(&self) -> Result<UtxoSetInfo, NodeError> {
        let d = self.chain.utxo_digest()?;
        Ok(UtxoSetInfo { tip: self.chain.tip(), count: d.count, total: d.total, hash: d.hash })
    }

    fn chain_tips(&self) -> Vec<ChainTipView> {
        let mut tips: Vec<ChainTipView> = self
            .chain
            .tips()
            .into_iter()
            .map(|(hash, r)| {
                let active = self.chain.is_active(&hash);
                let mut fork = hash;
                let mut branch_len = 0u32;
                while !self.chain.is_active(&fork) {
                    match self.chain.record(&fork) {
                        Some(rr) => fork = rr.header.prev,
                        None => break,
                    }
                    branch_len += 1;
                }
                let status = if active {
                    "active"
                } else if r.status.is_failed() {
                    "invalid"
                } else {
                    "valid-fork"
                };
                ChainTipView { hash, height: r.height, branch_len, status }
            })
            .collect();
        tips.sort_by_key(|t| std::cmp::Reverse(t.height));
        tips
    }

    fn tx_proof(&self, txid: Hash256, block: Option<Hash256>) -> Result<TxProof, NodeError> {
        let bh = match block {
            Some(b) => b,
            None => {
                self.need_index(Needs::Tx)?;
                self.chain.store().tx_block(&txid)?.ok_or(NodeError::TxNotConfirmed(txid))?
            }
        };
        let block = self.stored_block(&bh)?;
        let i = block
            .txids()
            .iter()
            .position(|t| *t == txid)
            .ok_or(NodeError::TxNotInBlock { txid, block: bh })?;
        let proof =
            MerkleProof::build(block.txids(), i).ok_or(NodeError::TxNotInBlock { txid, block: bh })?;
        Ok(TxProof { header: *block.header(), txid, proof })
    }

    fn address_coins(&self, locks: &[Script], limit: usize) -> Result<Vec<AddressCoin>, NodeError> {
        self.need_index(Needs::Address)?;
        let mut out = Vec::new();
        for (lock_index, lock) in locks.iter().enumerate() {
            let left = limit.saturating_sub(out.len());
            let coins = self.chain.coins_by_lock(&lock.0, left + 1)?;
            if coins.len() > left {
                return Err(NodeError::TooMany { what: "unspent outputs", limit });
            }
            for (outpoint, coin) in coins {
                let spent_in_mempool = self.mempool.spender(&outpoint);
                out.push(AddressCoin { lock_index, outpoint, coin, spent_in_mempool });
            }
        }
        Ok(out)
    }

    fn address_history(&self, locks: &[Script], limit: usize) -> Result<Vec<(u32, Hash256)>, NodeError> {
        self.need_index(Needs::Address)?;
        let mut all: Vec<(u32, Hash256)> = Vec::new();
        for lock in locks {
            let left = limit.saturating_sub(all.len());
            let h = self.chain.store().history_by_lock(&lock.0, left + 1)?;
            if h.len() > left {
                return Err(NodeError::TooMany { what: "transactions", limit });
            }
            all.extend(h);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn spent_outputs(&self, outpoints: &[OutPoint]) -> Result<Vec<TxOut>, NodeError> {
        let mut spent = Vec::with_capacity(outpoints.len());
        for op in outpoints {
            let out = match self.chain.coin(op)? {
                Some(c) => c.out,
                None => self
                    .mempool
                    .get(&op.txid)
                    .and_then(|t| t.outputs.get(op.index as usize).cloned())
                    .ok_or(NodeError::MissingInput(*op))?,
            };
            spent.push(out);
        }
        Ok(spent)
    }
}
