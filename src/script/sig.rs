//! Consensus ed25519 signature verification, single and batched.
//!
//! quarry checks signatures with the *cofactored* equation `[8]([s]B - R - [k]A) = 0`, where
//! `k = SHA-512(R || A || msg)`, both for one signature and for batches. ed25519-dalek's
//! `verify` is cofactorless while its `verify_batch` is a random linear combination of
//! cofactorless equations: a signature whose `R` or `A` carries a small-order (torsion)
//! component can fail one and pass the other depending on the batch's random weights. A node
//! that batches and a node that does not would then disagree about a block: a chain split.
//! With the cofactor applied to both, torsion components vanish and single and batch
//! verification accept exactly the same signatures (up to the batch's 2^-128 soundness error
//! on signatures that are invalid in the prime-order group).
//!
//! Other encoding rules: `A` and `R` must decompress to curve points, `s` must be canonical
//! (`s < l`); anything else is an invalid signature. Signatures made by any standard ed25519
//! signer (ed25519-dalek's `SigningKey::sign`) are valid under these rules.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// A signature decoded and ready to verify.
#[derive(Clone, Copy)]
pub struct PreparedSig {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl PreparedSig {
    /// Decodes `pubkey` and `sig` and hashes the challenge for `msg`. `None` means the
    /// signature is invalid by encoding alone.
    pub fn new(pubkey: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> Option<PreparedSig> {
        let a = CompressedEdwardsY(*pubkey).decompress()?;
        let r_bytes: [u8; 32] = sig[..32].try_into().expect("32 bytes");
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        let s_bytes: [u8; 32] = sig[32..].try_into().expect("32 bytes");
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let k = Scalar::from_hash(Sha512::new().chain_update(r_bytes).chain_update(pubkey).chain_update(msg));
        Some(PreparedSig { a, r, s, k })
    }

    /// Verifies this one signature (cofactored).
    pub fn verify(&self) -> bool {
        let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &(-self.a), &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Verifies one signature: `pubkey` 32 bytes, `sig` 64 bytes, over `msg`.
pub fn verify_one(pubkey: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
    PreparedSig::new(pubkey, sig, msg).is_some_and(|p| p.verify())
}

/// Verifies many prepared signatures at once with random 128-bit weights. Returns true iff
/// (with overwhelming probability) every one is valid; on false the caller finds the bad one
/// by verifying individually.
pub fn verify_batch(sigs: &[PreparedSig]) -> bool {
    match sigs {
        [] => true,
        [one] => one.verify(),
        _ => {
            let zs: Vec<Scalar> = sigs.iter().map(|_| Scalar::from(rand::random::<u128>())).collect();
            let b_coeff: Scalar = sigs.iter().zip(&zs).map(|(p, z)| z * p.s).sum();
            let scalars = std::iter::once(-b_coeff)
                .chain(zs.iter().copied())
                .chain(sigs.iter().zip(&zs).map(|(p, z)| z * p.k));
            let points = std::iter::once(ED25519_BASEPOINT_POINT)
                .chain(sigs.iter().map(|p| p.r))
                .chain(sigs.iter().map(|p| p.a));
            EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    #[test]
    fn dalek_signatures_verify_single_and_batched() {
        let mut prepared = Vec::new();
        for i in 0..20u8 {
            let sk = key(i);
            let msg = [i; 32];
            let sig = sk.sign(&msg).to_bytes();
            let pk = sk.verifying_key().to_bytes();
            assert!(verify_one(&pk, &sig, &msg));
            assert!(!verify_one(&pk, &sig, &[i ^ 1; 32]));
            prepared.push(PreparedSig::new(&pk, &sig, &msg).unwrap());
        }
        assert!(verify_batch(&prepared));
        let sk = key(99);
        let bad = PreparedSig::new(&sk.verifying_key().to_bytes(), &sk.sign(b"x").to_bytes(), b"y").unwrap();
        prepared[7] = bad;
        assert!(!verify_batch(&prepared));
    }

    #[test]
    fn torsion_in_public_key_single_and_batch_agree() {
        // A' = A + T with T of order 8. A signature under A' made with A's secret satisfies the
        // cofactored equation but, unless k = 0 mod 8, not the cofactorless one, which is the
        // case where dalek's verify and verify_batch could disagree. Ours must accept it both
        // ways, whatever the batch weights.
        use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
        use ed25519_dalek::VerifyingKey;
        let secret = [5u8; 32];
        let a = key(5).verifying_key().to_edwards();
        let a_t = (a + EIGHT_TORSION[1]).compress().to_bytes();
        let vk_t = VerifyingKey::from_bytes(&a_t).unwrap();
        let esk = ExpandedSecretKey::from(&secret);
        let mut cofactorless_rejected = 0;
        for i in 0..16u8 {
            let msg = [i; 8];
            let sig = raw_sign::<Sha512>(&esk, &msg, &vk_t).to_bytes();
            assert!(verify_one(&a_t, &sig, &msg), "cofactored single verify accepts");
            let p = PreparedSig::new(&a_t, &sig, &msg).unwrap();
            let good =
                PreparedSig::new(&key(1).verifying_key().to_bytes(), &key(1).sign(&msg).to_bytes(), &msg)
                    .unwrap();
            for _ in 0..8 {
                assert!(verify_batch(&[good, p, good]), "cofactored batch agrees");
            }
            if vk_t.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig)).is_err() {
                cofactorless_rejected += 1;
            }
        }
        assert!(cofactorless_rejected > 0, "the vector does exercise the torsion case");
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let sk = key(1);
        let mut sig = sk.sign(b"m").to_bytes();
        sig[63] |= 0xf0; // s >= l
        assert!(!verify_one(&sk.verifying_key().to_bytes(), &sig, b"m"));
    }
}
