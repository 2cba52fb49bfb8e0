//! Property tests: canonical encodings round-trip, and decoding random or corrupted bytes
//! never panics and never allocates beyond the input (every count is checked first).

use proptest::prelude::*;
use quarry::codec;
use quarry::consensus::Coin;
use quarry::primitives::merkle::MerkleProof;
use quarry::primitives::{Amount, Block, BlockHeader, Hash256, OutPoint, Script, Transaction, TxIn, TxOut};
use quarry::store::IndexRecord;

fn arb_hash() -> impl Strategy<Value = Hash256> {
    any::<[u8; 32]>().prop_map(Hash256)
}

fn arb_script() -> impl Strategy<Value = Script> {
    proptest::collection::vec(any::<u8>(), 0..80).prop_map(Script)
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    let input = (arb_hash(), any::<u32>(), arb_script())
        .prop_map(|(txid, index, unlock)| TxIn { prevout: OutPoint { txid, index }, unlock });
    let output = (0..=21_000_000u64 * 100_000_000, arb_script())
        .prop_map(|(v, lock)| TxOut { value: Amount::from_sat(v).unwrap(), lock });
    (
        any::<u32>(),
        proptest::collection::vec(input, 0..5),
        proptest::collection::vec(output, 0..5),
        any::<u32>(),
    )
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (any::<u32>(), arb_hash(), arb_hash(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(version, prev, merkle_root, time, bits, nonce)| BlockHeader {
            version,
            prev,
            merkle_root,
            time,
            bits,
            nonce,
        },
    )
}

proptest! {
    #[test]
    fn transaction_round_trips(tx in arb_tx()) {
        let bytes = tx.encode();
        prop_assert_eq!(bytes.len(), tx.encoded_size());
        prop_assert_eq!(Transaction::decode(&bytes, usize::MAX).unwrap(), tx);
    }

    #[test]
    fn block_round_trips(header in arb_header(), txs in proptest::collection::vec(arb_tx(), 0..4)) {
        let block = Block { header, txs };
        let bytes = block.encode();
        prop_assert_eq!(bytes.len(), block.encoded_size());
        prop_assert_eq!(Block::decode(&bytes, usize::MAX).unwrap(), block);
        prop_assert_eq!(BlockHeader::from_bytes(&header.to_bytes()).unwrap(), header);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Transaction::decode(&bytes, 1 << 20);
        let _ = Block::decode(&bytes, 1 << 20);
        let _ = BlockHeader::from_bytes(&bytes);
        let _ = OutPoint::from_bytes(&bytes);
        let _ = codec::decode::<Coin>(&bytes);
        let _ = codec::decode::<IndexRecord>(&bytes);
        let _ = codec::decode::<Vec<(OutPoint, Coin)>>(&bytes);
        let _ = codec::decode::<MerkleProof>(&bytes);
    }

    #[test]
    fn corrupted_encodings_never_panic(tx in arb_tx(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = Block { header: BlockHeader::from_bytes(&[7; 80]).unwrap(), txs: vec![tx] }.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = Block::decode(&bytes, 1 << 20);
        let n = cut.index(bytes.len());
        prop_assert!(Block::decode(&bytes[..n], 1 << 20).is_err(), "a truncated block never decodes");
    }

    #[test]
    fn store_records_round_trip(tx in arb_tx(), height in any::<u32>(), cb in any::<bool>()) {
        for out in tx.outputs {
            let coin = Coin { out, height, is_coinbase: cb };
            let bytes = codec::encode(&coin).unwrap();
            prop_assert_eq!(codec::decode::<Coin>(&bytes).unwrap(), coin);
        }
    }
}

#[test]
fn huge_counts_are_rejected_without_allocating() {
    // A block claiming 2^32-1 transactions in 84 bytes, and a tx claiming 2^32-1 inputs.
    let mut bytes = vec![0u8; 80];
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Block::decode(&bytes, 1 << 20).is_err());
    let mut tx = 1u32.to_le_bytes().to_vec();
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Transaction::decode(&tx, 1 << 20).is_err());
    // Too large before parsing.
    assert!(Block::decode(&vec![0u8; 2000], 1000).is_err());
}
