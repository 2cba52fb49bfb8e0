//! Header-chain validation without bodies, for headers-first sync: proof of work, linkage,
//! required bits (ASERT), median time past and future drift, plus cumulative work. Pure; the
//! starting point comes from the caller (the chain's index for a block it has).

use super::pow::{block_work, check_proof_of_work, next_bits, target_from_compact, ASERT_ANCHOR_HEIGHT};
use super::validation::{check_header_context, median_time, HeaderContext};
use super::{ConsensusError, Params};
use crate::primitives::uint::U256;
use crate::primitives::{BlockHeader, Hash256};

/// What is needed to validate a child header: the last header's facts and the times of the
/// blocks before it (for median time past).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderState {
    /// Id of the last header.
    pub hash: Hash256,
    /// Its height.
    pub height: u32,
    /// Its time.
    pub time: u32,
    /// Cumulative work up to and including it.
    pub chain_work: U256,
    /// Time of the branch's block at [`ASERT_ANCHOR_HEIGHT`] (0 below it).
    pub anchor_time: u32,
    /// Times of the last `median_time_span` blocks ending with this one, oldest first.
    pub recent_times: Vec<u32>,
}

impl HeaderState {
    /// The header-context facts for a child of this header (height, required bits, median
    /// time past), with `now` the clock: what a miner needs to build on it.
    pub fn next_context(&self, params: &Params, now: u64) -> HeaderContext {
        let mut times = self.recent_times.clone();
        HeaderContext {
            height: self.height + 1,
            expected_bits: next_bits(params, self.height, self.time, self.anchor_time),
            median_time_past: median_time(&mut times),
            now,
        }
    }

    /// Validates `header` as this state's child (linkage, proof of work, bits, times) and
    /// returns the child's state. `now` is the validating node's clock.
    pub fn child(
        &self,
        header: &BlockHeader,
        params: &Params,
        now: u64,
    ) -> Result<HeaderState, ConsensusError> {
        let hash = header.hash();
        if header.prev != self.hash {
            return Err(ConsensusError::HeaderDoesNotLink { hash, prev: header.prev, expected: self.hash });
        }
        check_proof_of_work(&hash, header.bits, &params.pow_limit)?;
        check_header_context(header, &self.next_context(params, now), params)?;
        let target = target_from_compact(header.bits)?;
        let height = self.height + 1;
        let anchor_time = match height.cmp(&ASERT_ANCHOR_HEIGHT) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => header.time,
            std::cmp::Ordering::Greater => self.anchor_time,
        };
        let mut recent_times = self.recent_times.clone();
        recent_times.push(header.time);
        if recent_times.len() > params.median_time_span {
            recent_times.remove(0);
        }
        Ok(HeaderState {
            hash,
            height,
            time: header.time,
            chain_work: self.chain_work.saturating_add(&block_work(&target)),
            anchor_time,
            recent_times,
        })
    }
}
