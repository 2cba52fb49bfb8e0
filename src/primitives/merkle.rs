//! Merkle root over txids and membership proofs.
//!
//! Construction (Bitcoin's): leaves are txids; each level pairs adjacent nodes and hashes
//! `SHA-256d(left || right)`; a level with an odd count pairs its last node with itself.
//!
//! CVE-2012-2459: because the last node is duplicated, the lists `[a, b, c]` and
//! `[a, b, c, c]` have the same root, so an attacker can take a valid block, duplicate its
//! trailing transactions, and produce an *invalid* block with the *same* id; a node that marks
//! that id invalid would then reject the honest block forever. [`merkle_root`] therefore reports
//! `mutated` whenever two sibling nodes are identical at any level, and block validation rejects
//! such a block as malformed (never as invalid-by-id), together with a rule against duplicate
//! txids. Transactions are at least 68 bytes, so none can pass for a 64-byte inner node.

use super::hash::{sha256d, Hash256};

fn hash_pair(l: &Hash256, r: &Hash256) -> Hash256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&l.0);
    buf[32..].copy_from_slice(&r.0);
    sha256d(&buf)
}

/// Computes the Merkle root of `leaves` and whether the tree is mutated (identical siblings at
/// some level, see the module docs). The root of no leaves is [`Hash256::ZERO`].
pub fn merkle_root(leaves: &[Hash256]) -> (Hash256, bool) {
    if leaves.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut level = leaves.to_vec();
    let mut mutated = false;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => {
                    mutated |= l == r;
                    next.push(hash_pair(l, r));
                }
                [last] => next.push(hash_pair(last, last)),
                _ => unreachable!("chunks(2) yields one or two items"),
            }
        }
        level = next;
    }
    (level[0], mutated)
}

/// Why a Merkle proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The index is not below the leaf count.
    #[error("leaf index {index} is not below the leaf count {leaf_count}")]
    IndexOutOfRange { index: u32, leaf_count: u32 },
    /// The proof has the wrong number of sibling hashes for the tree size.
    #[error("proof has {got} sibling hashes, a tree of {leaf_count} leaves needs {expected}")]
    WrongLength { got: usize, expected: usize, leaf_count: u32 },
    /// A sibling is identical to the node it pairs with where no duplication happens, or
    /// differs where the construction duplicates (CVE-2012-2459 shapes).
    #[error("sibling at level {level} is inconsistent with the tree shape")]
    BadSibling { level: usize },
    /// The computed root is not the expected one.
    #[error("proof leads to root {got}, expected {expected}")]
    RootMismatch { got: Hash256, expected: Hash256 },
}

/// Proof that a leaf is at `index` in a tree of `leaf_count` leaves: one sibling hash per
/// level, bottom up (about log2(n) hashes).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u32,
    /// Number of leaves (transactions in the block).
    pub leaf_count: u32,
    /// Sibling hashes, bottom level first.
    pub siblings: Vec<Hash256>,
}

fn levels(leaf_count: u32) -> usize {
    let mut n = leaf_count as u64;
    let mut d = 0;
    while n > 1 {
        n = n.div_ceil(2);
        d += 1;
    }
    d
}

impl MerkleProof {
    /// Builds the proof for `leaves[index]`, or `None` if the index is out of range.
    pub fn build(leaves: &[Hash256], index: usize) -> Option<MerkleProof> {
        if index >= leaves.len() || leaves.len() > u32::MAX as usize {
            return None;
        }
        let mut siblings = Vec::new();
        let mut level = leaves.to_vec();
        let mut i = index;
        while level.len() > 1 {
            let sib = if i % 2 == 1 { i - 1 } else { (i + 1).min(level.len() - 1) };
            siblings.push(level[sib]);
            level = level.chunks(2).map(|p| hash_pair(&p[0], p.get(1).unwrap_or(&p[0]))).collect();
            i /= 2;
        }
        Some(MerkleProof { index: index as u32, leaf_count: leaves.len() as u32, siblings })
    }

    /// The root this proof implies for `leaf`, checking the proof's shape.
    pub fn root_for(&self, leaf: &Hash256) -> Result<Hash256, MerkleError> {
        if self.index >= self.leaf_count {
            return Err(MerkleError::IndexOutOfRange { index: self.index, leaf_count: self.leaf_count });
        }
        let expected = levels(self.leaf_count);
        if self.siblings.len() != expected {
            return Err(MerkleError::WrongLength {
                got: self.siblings.len(),
                expected,
                leaf_count: self.leaf_count,
            });
        }
        let (mut cur, mut i, mut n) = (*leaf, self.index as u64, self.leaf_count as u64);
        for (level, sib) in self.siblings.iter().enumerate() {
            let duplicated = i % 2 == 0 && i + 1 == n;
            if duplicated != (*sib == cur) {
                return Err(MerkleError::BadSibling { level });
            }
            cur = if i % 2 == 1 { hash_pair(sib, &cur) } else { hash_pair(&cur, sib) };
            i /= 2;
            n = n.div_ceil(2);
        }
        Ok(cur)
    }

    /// Verifies that `leaf` is in the tree with root `root`.
    pub fn verify(&self, leaf: &Hash256, root: &Hash256) -> Result<(), MerkleError> {
        let got = self.root_for(leaf)?;
        if got != *root {
            return Err(MerkleError::RootMismatch { got, expected: *root });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash256 {
        s.parse().unwrap()
    }

    #[test]
    fn bitcoin_block_100000_merkle_root() {
        // Txids and root of Bitcoin block 100000 (display order), a public vector.
        let txids = [
            h("8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"),
            h("fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4"),
            h("6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4"),
            h("e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d"),
        ];
        let (root, mutated) = merkle_root(&txids);
        assert!(!mutated);
        assert_eq!(root, h("f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"));
    }

    #[test]
    fn duplicated_tail_has_same_root_but_is_flagged_mutated() {
        let leaves: Vec<Hash256> = (0..3u8).map(|i| sha256d(&[i])).collect();
        let mut dup = leaves.clone();
        dup.push(leaves[2]);
        let (r1, m1) = merkle_root(&leaves);
        let (r2, m2) = merkle_root(&dup);
        assert_eq!(r1, r2, "CVE-2012-2459: the mutation keeps the root");
        assert!(!m1);
        assert!(m2, "the mutation must be detected");
    }

    #[test]
    fn proof_rejects_shape_lies() {
        let leaves: Vec<Hash256> = (0..5u8).map(|i| sha256d(&[i])).collect();
        let (root, _) = merkle_root(&leaves);
        let p = MerkleProof::build(&leaves, 4).unwrap();
        p.verify(&leaves[4], &root).unwrap();
        // Claiming the duplicated position 5 in a 6-leaf tree of the same root fails.
        let fake = MerkleProof { index: 5, leaf_count: 6, siblings: p.siblings.clone() };
        assert!(fake.verify(&leaves[4], &root).is_err());
        let short = MerkleProof { siblings: p.siblings[1..].to_vec(), ..p.clone() };
        assert!(matches!(short.verify(&leaves[4], &root), Err(MerkleError::WrongLength { .. })));
        let p1 = MerkleProof::build(&leaves, 1).unwrap();
        assert!(matches!(p1.verify(&sha256d(b"other"), &root), Err(MerkleError::RootMismatch { .. })));
        // At the duplicated position the sibling must be the node itself.
        assert!(matches!(p.verify(&leaves[3], &root), Err(MerkleError::BadSibling { level: 0 })));
    }

    proptest! {
        #[test]
        fn proofs_verify_for_every_leaf_of_random_trees(n in 1usize..70, seed in any::<u64>()) {
            let leaves: Vec<Hash256> =
                (0..n).map(|i| sha256d(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat())).collect();
            let (root, mutated) = merkle_root(&leaves);
            prop_assert!(!mutated);
            for i in 0..n {
                let p = MerkleProof::build(&leaves, i).unwrap();
                prop_assert!(p.siblings.len() <= 7);
                prop_assert!(p.verify(&leaves[i], &root).is_ok());
                let other = sha256d(b"not a leaf");
                prop_assert!(p.verify(&other, &root).is_err());
            }
        }
    }
}
