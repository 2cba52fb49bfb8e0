//! Jobs: a node's `getblocktemplate` answer turned into Stratum work. The pool's coinbase
//! pays the pool's key and carries `extranonce1 || extranonce2` as its extra-nonce push
//! ([`crate::miner::BlockTemplate::coinbase_split`]); the header fields and Merkle branch go
//! to miners as they are (docs/PROTOCOL.md "Mining pool (Stratum V1)").

use super::share::{difficulty_of, prevhash_field, JobParts};
use super::PoolError;
use crate::consensus::pow::target_from_compact;
use crate::miner::BlockTemplate;
use crate::primitives::{Amount, Hash256, Script, Transaction, U256};
use crate::rpc::types::BlockTemplateInfo;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Bytes of extranonce1 (one per connection, chosen by the pool).
pub const EXTRANONCE1_SIZE: usize = 4;
/// Bytes of extranonce2 (rolled by the miner).
pub const EXTRANONCE2_SIZE: usize = 4;
/// Jobs kept for late shares; older ids are unknown.
pub const JOBS_KEPT: usize = 16;
/// Shares remembered per job for duplicate detection at most (then the job refuses more).
pub const SEEN_PER_JOB: usize = 1_000_000;
/// How far past the template's time a share's ntime may roll, seconds (the node allows 2 h
/// into the future; this leaves most of that margin).
pub const NTIME_ROLL: u32 = 600;

/// A share's identity within a job: (extranonce1, extranonce2, ntime, nonce).
type ShareKey = ([u8; EXTRANONCE1_SIZE], [u8; EXTRANONCE2_SIZE], u32, u32);

/// One piece of work.
pub struct Job {
    /// Its id (hex).
    pub id: String,
    /// What a share's header is built from.
    pub parts: JobParts,
    /// The template (to assemble a block).
    pub template: BlockTemplate,
    /// The template's time (Stratum `ntime`).
    pub ntime: u32,
    /// The earliest allowed header time.
    pub min_time: u32,
    /// The network target.
    pub net_target: U256,
    /// Network difficulty (diff1 / target).
    pub net_diff: f64,
    /// Shares seen: (extranonce1, extranonce2, ntime, nonce).
    seen: Mutex<HashSet<ShareKey>>,
}

impl Job {
    /// A job from a template answer, paying `lock`.
    pub fn new(id: String, gbt: &BlockTemplateInfo, lock: Script) -> Result<Job, PoolError> {
        let bad = |why: String| PoolError::Template(why);
        let bits =
            u32::from_str_radix(&gbt.bits, 16).map_err(|e| bad(format!("bits {:?}: {e}", gbt.bits)))?;
        let net_target = target_from_compact(bits).map_err(|e| bad(format!("bits {bits:08x}: {e}")))?;
        let txs = gbt
            .transactions
            .iter()
            .map(|t| {
                let bytes = hex::decode(&t.data).map_err(|e| bad(format!("transaction {}: {e}", t.txid)))?;
                Transaction::decode(&bytes, gbt.sizelimit as usize)
                    .map_err(|e| bad(format!("transaction {}: {e}", t.txid)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let value = Amount::from_sat(gbt.coinbasevalue).map_err(|e| bad(format!("coinbasevalue: {e:?}")))?;
        let mut template =
            BlockTemplate::new(gbt.previousblockhash, gbt.height, gbt.curtime, bits, lock, value, txs);
        template.version = gbt.version;
        let (coinb1, coinb2) = template.coinbase_split(EXTRANONCE1_SIZE + EXTRANONCE2_SIZE);
        let parts = JobParts {
            prev: gbt.previousblockhash,
            coinb1,
            coinb2,
            branch: template.branch().to_vec(),
            version: gbt.version,
            bits,
        };
        Ok(Job {
            id,
            parts,
            ntime: gbt.curtime,
            min_time: gbt.mintime,
            net_diff: difficulty_of(&net_target),
            net_target,
            template,
            seen: Mutex::new(HashSet::new()),
        })
    }

    /// The block's parent.
    pub fn prev(&self) -> Hash256 {
        self.parts.prev
    }

    /// `mining.notify` params: job id, prevhash, coinb1, coinb2, Merkle branch, version,
    /// nbits, ntime, clean_jobs.
    pub fn notify_params(&self, clean: bool) -> Value {
        let branch: Vec<String> = self.parts.branch.iter().map(|h| hex::encode(h.0)).collect();
        json!([
            self.id,
            prevhash_field(&self.parts.prev),
            hex::encode(&self.parts.coinb1),
            hex::encode(&self.parts.coinb2),
            branch,
            format!("{:08x}", self.parts.version),
            format!("{:08x}", self.parts.bits),
            format!("{:08x}", self.ntime),
            clean
        ])
    }

    /// Forgets a share recorded by [`Job::first_sighting`] (it could not be credited).
    pub fn forget(&self, en1: [u8; EXTRANONCE1_SIZE], en2: [u8; EXTRANONCE2_SIZE], ntime: u32, nonce: u32) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(&(en1, en2, ntime, nonce));
    }

    /// Records a share; false if it was seen before (or the job has seen too many).
    pub fn first_sighting(
        &self,
        en1: [u8; EXTRANONCE1_SIZE],
        en2: [u8; EXTRANONCE2_SIZE],
        ntime: u32,
        nonce: u32,
    ) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.len() < SEEN_PER_JOB && seen.insert((en1, en2, ntime, nonce))
    }
}

/// The recent jobs, newest last.
#[derive(Default)]
pub struct Jobs {
    jobs: VecDeque<std::sync::Arc<Job>>,
    next_id: u64,
}

impl Jobs {
    /// A fresh job id.
    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:x}", self.next_id)
    }

    /// Adds a job (dropping the oldest past [`JOBS_KEPT`]).
    pub fn push(&mut self, job: std::sync::Arc<Job>) {
        self.jobs.push_back(job);
        while self.jobs.len() > JOBS_KEPT {
            self.jobs.pop_front();
        }
    }

    /// The newest job.
    pub fn current(&self) -> Option<&std::sync::Arc<Job>> {
        self.jobs.back()
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<&std::sync::Arc<Job>> {
        self.jobs.iter().find(|j| j.id == id)
    }
}
