//! Answers of the server as it was before these types existed, byte for byte (captured from
//! regtest nodes over HTTP: the `result` member of each response, as sent). Each must
//! deserialize into its type and serialize back to exactly the same bytes, so a server that
//! returns these types answers what clients already parse.

use super::*;
use crate::primitives::Hash256;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(name: &str, sample: &str) -> T {
    let sample = sample.trim_end();
    let value: T = serde_json::from_str(sample).unwrap_or_else(|e| panic!("{name}: {e}\n{sample}"));
    assert_eq!(serde_json::to_string(&value).unwrap(), sample, "{name} re-serialized");
    value
}

macro_rules! sample {
    ($file:literal) => {
        include_str!(concat!("samples/", $file, ".json"))
    };
}

#[test]
fn getblockchaininfo() {
    round_trip::<BlockchainInfo>("getblockchaininfo", sample!("getblockchaininfo"));
}

#[test]
fn getblock_verbosity_0_1_2() {
    assert!(matches!(round_trip::<GetBlock>("getblock 0", sample!("getblock_0")), GetBlock::Hex(_)));
    let genesis = round_trip::<GetBlock>("getblock genesis", sample!("getblock_1_genesis"));
    let GetBlock::Txids(g) = genesis else { panic!("verbosity 1 is txids") };
    assert!(g.header.previousblockhash.is_none() && g.header.nextblockhash.is_some());
    assert!(matches!(round_trip::<GetBlock>("getblock 1", sample!("getblock_1")), GetBlock::Txids(_)));
    let full = round_trip::<GetBlock>("getblock 2", sample!("getblock_2"));
    let GetBlock::Full(b) = full else { panic!("verbosity 2 is full transactions") };
    assert!(matches!(b.tx[0].vin[0], TxInput::Coinbase { .. }));
    assert!(b.tx.iter().any(|t| matches!(t.vin[0], TxInput::Spend { .. })), "a block with a spend");
}

#[test]
fn getblockheader_verbose_and_hex() {
    assert!(matches!(
        round_trip::<GetBlockHeader>("header", sample!("getblockheader")),
        GetBlockHeader::Info(_)
    ));
    assert!(matches!(
        round_trip::<GetBlockHeader>("header hex", sample!("getblockheader_hex")),
        GetBlockHeader::Hex(_)
    ));
}

#[test]
fn getrawtransaction_confirmed_mempool_and_hex() {
    let GetRawTransaction::Info(t) = round_trip("tx confirmed", sample!("getrawtransaction_confirmed"))
    else {
        panic!("verbose")
    };
    assert!(t.blockhash.is_some() && t.confirmations.is_some());
    let GetRawTransaction::Info(t) = round_trip("tx mempool", sample!("getrawtransaction_mempool")) else {
        panic!("verbose")
    };
    assert!(t.blockhash.is_none());
    assert!(matches!(round_trip("tx hex", sample!("getrawtransaction_hex")), GetRawTransaction::Hex(_)));
}

#[test]
fn mempool_results() {
    round_trip::<MempoolInfo>("getmempoolinfo", sample!("getmempoolinfo"));
    let GetRawMempool::Verbose(m) = round_trip("getrawmempool true", sample!("getrawmempool_verbose")) else {
        panic!("verbose")
    };
    assert!(m.0.len() >= 2, "a parent and a child");
    assert!(matches!(round_trip("getrawmempool", sample!("getrawmempool")), GetRawMempool::Txids(_)));
    assert!(matches!(round_trip("getrawmempool []", "[]"), GetRawMempool::Txids(_)));
    assert!(matches!(round_trip("getrawmempool {}", "{}"), GetRawMempool::Verbose(_)));
}

#[test]
fn chain_results() {
    round_trip::<MiningInfo>("getmininginfo", sample!("getmininginfo"));
    round_trip::<Option<TxOutInfo>>("gettxout", sample!("gettxout"));
    round_trip::<Option<TxOutInfo>>("gettxout spent", "null");
    round_trip::<TxOutSetInfo>("gettxoutsetinfo", sample!("gettxoutsetinfo"));
    round_trip::<Vec<ChainTip>>("getchaintips", sample!("getchaintips"));
    round_trip::<Vec<AddressUtxo>>("getaddressutxos", sample!("getaddressutxos"));
    round_trip::<Vec<Hash256>>("getaddresstxids", sample!("getaddresstxids"));
    round_trip::<SignResult>("signrawtransactionwithkey", sample!("signrawtransactionwithkey"));
    round_trip::<SignResult>(
        "signrawtransactionwithkey incomplete",
        sample!("signrawtransactionwithkey_errors"),
    );
    round_trip::<Option<String>>("submitblock", sample!("submitblock"));
}

#[test]
fn net_results() {
    round_trip::<Vec<PeerInfo>>("getpeerinfo", sample!("getpeerinfo"));
    round_trip::<NetworkInfo>("getnetworkinfo", sample!("getnetworkinfo"));
    round_trip::<Vec<BanInfo>>("listbanned", sample!("listbanned"));
}

#[test]
fn parameters_accept_the_server_s_forms() {
    let v: Verbosity = serde_json::from_str("true").unwrap();
    assert_eq!(v.level(), Some(1));
    let v: Verbosity = serde_json::from_str("2").unwrap();
    assert_eq!(v.level(), Some(2));
    let v: Verbosity = serde_json::from_str("-1").unwrap();
    assert_eq!(v.level(), None);
    assert!(serde_json::from_str::<Verbosity>("\"2\"").is_err());
    let q: AddressQuery = serde_json::from_str(r#"{"addresses":["a","b"]}"#).unwrap();
    assert_eq!(q.addresses(), ["a", "b"]);
    let q: AddressQuery = serde_json::from_str(r#""a""#).unwrap();
    assert_eq!(q.addresses(), ["a"]);
    let q: AddressQuery = serde_json::from_str(r#"["a"]"#).unwrap();
    assert_eq!(q.addresses(), ["a"]);
    assert_eq!(
        serde_json::to_string(&AddressQuery::Many { addresses: vec!["a".into()] }).unwrap(),
        r#"{"addresses":["a"]}"#
    );
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    assert!(serde_json::from_str::<BlockchainInfo>(r#"{"chain":1}"#).is_err());
    assert!(serde_json::from_str::<Hash256>(r#""00""#).is_err());
    assert!(serde_json::from_str::<GetBlock>("17").is_err());
    assert!(serde_json::from_str::<OrderedMap<MempoolEntry>>("[]").is_err());
    assert_eq!(amount_of_coins(-1.0), None);
    assert_eq!(amount_of_coins(f64::NAN), None);
    assert_eq!(amount_of_coins(1e300), None);
    assert_eq!(amount_of_coins(0.000001).map(|a| a.to_sat()), Some(100));
}
