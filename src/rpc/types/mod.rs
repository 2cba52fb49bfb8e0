//! The serde types of every RPC parameter and result, shared by the server and the typed
//! client ([`super::api::QuarryApi`]).
//!
//! Each result type serializes to exactly the JSON the server has always produced: the same
//! field names in the same order (serde_json keeps insertion order here), `null` where the
//! server writes `null`, fields left out where the server leaves them out, and coin amounts
//! as JSON numbers in coins (8 decimals, like Bitcoin Core). Unit tests in [`samples`] hold
//! that to byte-for-byte samples of a running node's answers.

mod chain;
mod mempool;
mod mining;
mod net;
#[cfg(test)]
mod samples;

pub use chain::*;
pub use mempool::*;
pub use mining::*;
pub use net::*;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `verbosity` / `verbose` parameter: Core accepts a boolean or a number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Verbosity {
    /// `false` (0) or `true` (1).
    Bool(bool),
    /// A level: 0, 1 or 2 for `getblock`; any positive number means verbose for
    /// `getrawtransaction`.
    Level(serde_json::Number),
}

impl Verbosity {
    /// The level as a number: `false` = 0, `true` = 1; `None` for a negative or fractional
    /// number.
    pub fn level(&self) -> Option<u64> {
        match self {
            Verbosity::Bool(b) => Some(*b as u64),
            Verbosity::Level(n) => n.as_u64(),
        }
    }
}

impl From<u8> for Verbosity {
    fn from(v: u8) -> Self {
        Verbosity::Level(v.into())
    }
}

impl From<bool> for Verbosity {
    fn from(v: bool) -> Self {
        Verbosity::Bool(v)
    }
}

/// The `getaddressutxos` / `getaddresstxids` parameter: one address, or
/// `{"addresses": [...]}` (at most 100; duplicates are ignored), or (for named parameters,
/// `addresses=[...]`) a bare list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddressQuery {
    /// One address.
    One(String),
    /// Several addresses.
    Many {
        /// The addresses.
        addresses: Vec<String>,
    },
    /// A bare list of addresses.
    List(Vec<String>),
}

impl AddressQuery {
    /// The addresses asked for, in the order given.
    pub fn addresses(&self) -> &[String] {
        match self {
            AddressQuery::One(a) => std::slice::from_ref(a),
            AddressQuery::Many { addresses } | AddressQuery::List(addresses) => addresses,
        }
    }
}

/// A JSON object whose keys are data (txids in `getrawmempool true`), kept in the server's
/// order (a `BTreeMap` would sort them and change the bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                // No preallocation from the size hint: the peer controls it.
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A coin amount from an answer (a JSON number in coins) in base units; `None` when negative,
/// not finite or beyond the money supply.
pub fn amount_of_coins(coins: f64) -> Option<crate::primitives::Amount> {
    let sat = (coins * 1e8).round();
    if !(sat.is_finite() && (0.0..=21e14).contains(&sat)) {
        return None;
    }
    crate::primitives::Amount::from_sat(sat as u64).ok()
}
