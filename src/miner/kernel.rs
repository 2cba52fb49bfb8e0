//! Nonce-search hashing: SHA-256d of an 80-byte header whose first 64 bytes are fixed.
//!
//! The header's first 64 bytes are one SHA-256 block, hashed once per template into a
//! *midstate*. Each nonce then costs two compressions: the second header block (the last 16
//! header bytes, then constant padding: 0x80, zeros, bit length 640) and the outer hash of the
//! 32-byte inner digest (constant padding, bit length 256). Two kernels:
//! - [`Kernel::Portable`]: `sha2::compress256` (which itself uses SHA-NI when present);
//! - [`Kernel::ShaNi`]: an x86-64 SHA-NI kernel specialised for this layout that hashes
//!   several nonces in flight per thread to hide the latency of `sha256rnds2`, in the manner of
//!   Bitcoin Core's multi-way SHA-NI double-SHA256. Chosen at run time by CPU detection; proven
//!   equal to the portable path by property tests.

use crate::primitives::{Hash256, U256};
use sha2::digest::generic_array::GenericArray;

/// SHA-256 initial state.
pub const IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The SHA-256 state after the header's first 64 bytes.
pub fn midstate(first64: &[u8; 64]) -> [u32; 8] {
    let mut state = IV;
    sha2::compress256(&mut state, &[GenericArray::clone_from_slice(first64)]);
    state
}

/// The header bytes 64..76 (end of the Merkle root, time, bits) as big-endian words.
pub fn tail_words(header: &[u8; 80]) -> [u32; 3] {
    let w = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    [w(64), w(68), w(72)]
}

/// The final state of SHA-256d(header) as a 32-byte hash (internal byte order).
pub fn state_to_hash(state: &[u32; 8]) -> Hash256 {
    let mut h = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        h[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    Hash256(h)
}

/// SHA-256d of the header with `nonce`, by the portable path; returns the final state.
/// The two padded blocks are written as bytes directly (the constant padding: 0x80 after the
/// message, the bit length 640 or 256 at the end).
pub fn sha256d_portable(mid: &[u32; 8], tail: &[u32; 3], nonce: u32) -> [u32; 8] {
    let mut block = [0u8; 64];
    block[0..4].copy_from_slice(&tail[0].to_be_bytes());
    block[4..8].copy_from_slice(&tail[1].to_be_bytes());
    block[8..12].copy_from_slice(&tail[2].to_be_bytes());
    block[12..16].copy_from_slice(&nonce.to_le_bytes());
    block[16] = 0x80;
    block[62..64].copy_from_slice(&640u16.to_be_bytes());
    let mut inner = *mid;
    sha2::compress256(&mut inner, &[GenericArray::from(block)]);
    let mut outer_block = [0u8; 64];
    for (i, w) in inner.iter().enumerate() {
        outer_block[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    outer_block[32] = 0x80;
    outer_block[62..64].copy_from_slice(&256u16.to_be_bytes());
    let mut outer = IV;
    sha2::compress256(&mut outer, &[GenericArray::from(outer_block)]);
    outer
}

/// Which hashing kernel a search uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `sha2::compress256`, two calls per nonce.
    Portable,
    /// The specialised SHA-NI kernel, four nonces in flight (x86-64 with SHA and SSE4.1).
    ShaNi,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1") {
                return Kernel::ShaNi;
            }
        }
        Kernel::Portable
    }

    /// A short name for logs and the `bench-hash` report.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "sha2 (portable)",
            Kernel::ShaNi => "SHA-NI, 4 nonces in flight",
        }
    }
}

/// True if the final state's hash, read as a little-endian 256-bit number, is `<= target`.
#[inline]
pub fn meets_target(state: &[u32; 8], target: &U256) -> bool {
    // The most significant 64 bits of the number are hash bytes 24..32 = words 6 and 7.
    let top = (state[6].swap_bytes() as u64) | ((state[7].swap_bytes() as u64) << 32);
    match top.cmp(&target.0[3]) {
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal => U256::from_le_bytes(&state_to_hash(state).0) <= *target,
    }
}

/// Result of scanning a nonce range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanResult {
    /// The first nonce in the range whose hash meets the target, if any.
    pub found: Option<u32>,
    /// How many nonces were hashed.
    pub hashes: u64,
}

/// Hashes nonces `start..start + count` (not wrapping past `u32::MAX`) and returns the first
/// that meets `target`.
pub fn scan(
    kernel: Kernel,
    mid: &[u32; 8],
    tail: &[u32; 3],
    start: u32,
    count: u32,
    target: &U256,
) -> ScanResult {
    let end = start as u64 + count as u64;
    let end = end.min(u32::MAX as u64 + 1);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::ShaNi if std::arch::is_x86_feature_detected!("sha") => {
            // SAFETY: the CPU supports SHA and SSE4.1 (checked above and in `detect`).
            unsafe { shani::scan(mid, tail, start as u64, end, target) }
        }
        _ => {
            for n in start as u64..end {
                if meets_target(&sha256d_portable(mid, tail, n as u32), target) {
                    return ScanResult { found: Some(n as u32), hashes: n - start as u64 + 1 };
                }
            }
            ScanResult { found: None, hashes: end - start as u64 }
        }
    }
}

/// SHA-256d of the header with `nonce` by the given kernel (for tests and benchmarks).
pub fn sha256d_with(kernel: Kernel, mid: &[u32; 8], tail: &[u32; 3], nonce: u32) -> [u32; 8] {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::ShaNi if std::arch::is_x86_feature_detected!("sha") => {
            // SAFETY: feature checked above.
            unsafe { shani::sha256d_lanes::<1>(mid, tail, [nonce])[0] }
        }
        _ => sha256d_portable(mid, tail, nonce),
    }
}

#[cfg(target_arch = "x86_64")]
pub mod shani {
    //! SHA-NI kernel. State is kept as Intel's (ABEF, CDGH) register pair; `LANES`
    //! independent nonces are interleaved instruction by instruction so the two-cycle
    //! dependency of consecutive `sha256rnds2` never stalls the core.
    use super::{meets_target, ScanResult, IV};
    use crate::primitives::U256;
    use std::arch::x86_64::*;

    /// Nonces hashed together by [`scan`].
    pub const LANES: usize = 4;

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];

    #[inline(always)]
    unsafe fn set(w: [u32; 4]) -> __m128i {
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    /// [a..h] -> (ABEF, CDGH).
    #[inline(always)]
    unsafe fn to_abef(s: &[u32; 8]) -> (__m128i, __m128i) {
        let dcba = set([s[0], s[1], s[2], s[3]]);
        let hgfe = set([s[4], s[5], s[6], s[7]]);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        (_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xF0))
    }

    /// (ABEF, CDGH) -> ([a, b, c, d], [e, f, g, h]) as vectors, lane 0 first.
    #[inline(always)]
    unsafe fn from_abef(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        (_mm_blend_epi16(feba, dchg, 0xF0), _mm_alignr_epi8(dchg, feba, 8))
    }

    /// One compression of `LANES` message blocks (given as four word-vectors each) on
    /// `LANES` states, interleaved.
    #[inline(always)]
    unsafe fn compress<const N: usize>(state: &mut [(__m128i, __m128i); N], msg: &[[__m128i; 4]; N]) {
        let saved = *state;
        let mut w: [[__m128i; 4]; N] = *msg;
        for i in 0..16 {
            if i >= 4 {
                for l in 0..N {
                    // w[i] = msg2(msg1(w[i-4], w[i-3]) + alignr(w[i-1], w[i-2], 4), w[i-1])
                    let (w4, w3, w2, w1) =
                        (w[l][i % 4], w[l][(i + 1) % 4], w[l][(i + 2) % 4], w[l][(i + 3) % 4]);
                    let t = _mm_add_epi32(_mm_sha256msg1_epu32(w4, w3), _mm_alignr_epi8(w1, w2, 4));
                    w[l][i % 4] = _mm_sha256msg2_epu32(t, w1);
                }
            }
            let k = _mm_loadu_si128(K.as_ptr().add(4 * i) as *const __m128i);
            for l in 0..N {
                let m = _mm_add_epi32(w[l][i % 4], k);
                let (abef, cdgh) = &mut state[l];
                *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, m);
                *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(m, 0x0E));
            }
        }
        for l in 0..N {
            state[l].0 = _mm_add_epi32(state[l].0, saved[l].0);
            state[l].1 = _mm_add_epi32(state[l].1, saved[l].1);
        }
    }

    /// SHA-256d of the header for `N` nonces; returns each final state [a..h].
    ///
    /// # Safety
    /// The CPU must support SHA and SSE4.1 (`Kernel::detect() == Kernel::ShaNi`).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn sha256d_lanes<const N: usize>(
        mid: &[u32; 8],
        tail: &[u32; 3],
        nonces: [u32; N],
    ) -> [[u32; 8]; N] {
        let finals = lanes_final::<N>(mid, tail, nonces);
        let mut out = [[0u32; 8]; N];
        for l in 0..N {
            let (abcd, efgh) = from_abef(finals[l].0, finals[l].1);
            _mm_storeu_si128(out[l].as_mut_ptr() as *mut __m128i, abcd);
            _mm_storeu_si128(out[l].as_mut_ptr().add(4) as *mut __m128i, efgh);
        }
        out
    }

    #[inline(always)]
    unsafe fn lanes_final<const N: usize>(
        mid: &[u32; 8],
        tail: &[u32; 3],
        nonces: [u32; N],
    ) -> [(__m128i, __m128i); N] {
        let mid_v = to_abef(mid);
        let pad1 = set([0x8000_0000, 0, 0, 0]);
        let zero = _mm_setzero_si128();
        let len640 = set([0, 0, 0, 640]);
        let mut state = [mid_v; N];
        let mut msg = [[zero; 4]; N];
        for l in 0..N {
            msg[l] = [set([tail[0], tail[1], tail[2], nonces[l].swap_bytes()]), pad1, zero, len640];
        }
        compress(&mut state, &msg);
        let len256 = set([0, 0, 0, 256]);
        let mut outer = [to_abef(&IV); N];
        for l in 0..N {
            let (abcd, efgh) = from_abef(state[l].0, state[l].1);
            msg[l] = [abcd, efgh, pad1, len256];
        }
        compress(&mut outer, &msg);
        outer
    }

    /// Scans nonces `start..end` `LANES` at a time (the remainder one at a time).
    ///
    /// # Safety
    /// The CPU must support SHA and SSE4.1 (`Kernel::detect() == Kernel::ShaNi`).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn scan(mid: &[u32; 8], tail: &[u32; 3], start: u64, end: u64, target: &U256) -> ScanResult {
        let mut n = start;
        while n + LANES as u64 <= end {
            let nonces: [u32; LANES] = std::array::from_fn(|i| (n + i as u64) as u32);
            let finals = lanes_final::<LANES>(mid, tail, nonces);
            for (l, f) in finals.iter().enumerate() {
                // Cheap pre-check on word 7 (hash bytes 28..32, the most significant).
                let w7 = _mm_extract_epi32(f.1, 0) as u32; // CDGH lane 0 = H
                let top = w7.swap_bytes() as u64;
                if top <= (target.0[3] >> 32) {
                    let (abcd, efgh) = from_abef(f.0, f.1);
                    let mut s = [0u32; 8];
                    _mm_storeu_si128(s.as_mut_ptr() as *mut __m128i, abcd);
                    _mm_storeu_si128(s.as_mut_ptr().add(4) as *mut __m128i, efgh);
                    if meets_target(&s, target) {
                        return ScanResult { found: Some(nonces[l]), hashes: n - start + l as u64 + 1 };
                    }
                }
            }
            n += LANES as u64;
        }
        while n < end {
            let s = sha256d_lanes::<1>(mid, tail, [n as u32])[0];
            if meets_target(&s, target) {
                return ScanResult { found: Some(n as u32), hashes: n - start + 1 };
            }
            n += 1;
        }
        ScanResult { found: None, hashes: end - start }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::BlockHeader;
    use proptest::prelude::*;

    fn header_parts(h: &BlockHeader) -> ([u32; 8], [u32; 3]) {
        let bytes = h.to_bytes();
        (midstate(bytes[..64].try_into().unwrap()), tail_words(&bytes))
    }

    proptest! {
        #[test]
        fn midstate_paths_equal_the_naive_hash(
            version in any::<u32>(), prev in any::<[u8; 32]>(), root in any::<[u8; 32]>(),
            time in any::<u32>(), bits in any::<u32>(), nonce in any::<u32>(),
        ) {
            let h = BlockHeader { version, prev: Hash256(prev), merkle_root: Hash256(root), time, bits, nonce };
            let (mid, tail) = header_parts(&h);
            let naive = h.hash();
            prop_assert_eq!(state_to_hash(&sha256d_portable(&mid, &tail, nonce)), naive);
            prop_assert_eq!(state_to_hash(&sha256d_with(Kernel::detect(), &mid, &tail, nonce)), naive);
            #[cfg(target_arch = "x86_64")]
            if Kernel::detect() == Kernel::ShaNi {
                let lanes: [u32; 4] = [nonce, nonce.wrapping_add(1), nonce ^ 0xdead_beef, 0];
                // SAFETY: SHA-NI detected.
                let out = unsafe { shani::sha256d_lanes::<4>(&mid, &tail, lanes) };
                for (l, n) in lanes.iter().enumerate() {
                    let hn = BlockHeader { nonce: *n, ..h };
                    prop_assert_eq!(state_to_hash(&out[l]), hn.hash());
                }
            }
        }

        #[test]
        fn scans_agree_between_kernels(seed in any::<[u8; 32]>(), start in any::<u32>(), shift in prop_oneof![248u32..254, Just(64u32)]) {
            let h = BlockHeader { version: 1, prev: Hash256(seed), merkle_root: Hash256(seed), time: 7, bits: 0, nonce: 0 };
            let (mid, tail) = header_parts(&h);
            let target = U256::ONE.shl(shift);
            let count = 3000;
            let a = scan(Kernel::Portable, &mid, &tail, start, count, &target);
            let b = scan(Kernel::detect(), &mid, &tail, start, count, &target);
            prop_assert_eq!(a, b);
            if let Some(n) = a.found {
                let hn = BlockHeader { nonce: n, ..h };
                prop_assert!(U256::from_le_bytes(&hn.hash().0) <= target);
            }
        }
    }

    #[test]
    fn scan_stops_at_the_top_of_the_nonce_space() {
        let h = BlockHeader {
            version: 1,
            prev: Hash256([1; 32]),
            merkle_root: Hash256([2; 32]),
            time: 1,
            bits: 0,
            nonce: 0,
        };
        let (mid, tail) = header_parts(&h);
        let r = scan(Kernel::detect(), &mid, &tail, u32::MAX - 5, 100, &U256::ZERO);
        assert_eq!(r, ScanResult { found: None, hashes: 6 });
    }
}
