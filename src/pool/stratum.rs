//! The Stratum V1 line codec: one JSON object per `\n`-terminated line, at most
//! [`MAX_LINE`] bytes. Requests from miners are untrusted: [`parse_request`] never panics
//! and names what is wrong; replies and notifications are built here so their shapes live in
//! one place (docs/PROTOCOL.md "Mining pool (Stratum V1)").

use serde_json::{json, Value};

/// Longest line accepted, bytes (a `mining.submit` is about 200): a longer line is refused
/// and the connection closed.
pub const MAX_LINE: usize = 16 * 1024;

/// A request from a miner (or a notification from the pool, seen by a client).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The request id (`null` for notifications).
    pub id: Value,
    /// The method name.
    pub method: String,
    /// The positional parameters.
    pub params: Vec<Value>,
}

/// Why a share or a request was refused: each has its own Stratum error code, and its
/// message names the rule and the values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StratumError {
    /// Not JSON, not an object, no method, params not an array.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A line longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// A method the pool does not serve.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// A parameter is missing or of the wrong form.
    #[error("bad parameter {index} ({name}): {why}")]
    BadParam {
        /// 0-based position.
        index: usize,
        /// Its name.
        name: &'static str,
        /// What was wrong.
        why: String,
    },
    /// `mining.submit` before `mining.subscribe`.
    #[error("not subscribed: send mining.subscribe first")]
    NotSubscribed,
    /// The worker was not authorized on this connection.
    #[error("unauthorized worker {0:?}: send mining.authorize for it on this connection first")]
    Unauthorized(String),
    /// The job id was never issued (or is long gone).
    #[error("unknown job {0:?}")]
    UnknownJob(String),
    /// The job was for a tip that is no longer the tip.
    #[error("stale share: job {job} builds on {prev}, the tip is now {tip}")]
    Stale {
        /// The job id.
        job: String,
        /// The job's parent block.
        prev: String,
        /// The current tip.
        tip: String,
    },
    /// The same share was already submitted.
    #[error("duplicate share (job {job}, extranonce2 {extranonce2}, ntime {ntime}, nonce {nonce})")]
    Duplicate {
        /// The job id.
        job: String,
        /// Hex.
        extranonce2: String,
        /// Hex.
        ntime: String,
        /// Hex.
        nonce: String,
    },
    /// The share's hash does not meet the connection's share target.
    #[error("low difficulty share: difficulty {got:.6}, need {need:.6}")]
    LowDifficulty {
        /// The share's difficulty.
        got: f64,
        /// The difficulty asked for.
        need: f64,
    },
    /// ntime outside the allowed window.
    #[error("ntime {got} out of range {min}..={max}")]
    BadTime {
        /// Given.
        got: u32,
        /// Earliest allowed.
        min: u32,
        /// Latest allowed.
        max: u32,
    },
    /// The pool could not record the share (disk): not credited, the miner may resubmit.
    #[error("share not recorded: {0}")]
    Internal(String),
}

impl StratumError {
    /// The Stratum error code (the common convention: 20 other, 21 stale / job not found,
    /// 22 duplicate, 23 low difficulty, 24 unauthorized, 25 not subscribed; quarry gives an
    /// unknown job 20 so that it is distinct from a stale one).
    pub fn code(&self) -> i64 {
        match self {
            StratumError::Stale { .. } => 21,
            StratumError::Duplicate { .. } => 22,
            StratumError::LowDifficulty { .. } => 23,
            StratumError::Unauthorized(_) => 24,
            StratumError::NotSubscribed => 25,
            StratumError::UnknownJob(_) => 20,
            StratumError::UnknownMethod(_) => -3,
            StratumError::Malformed(_) | StratumError::TooLong => -32700,
            StratumError::BadParam { .. } => -32602,
            StratumError::BadTime { .. } | StratumError::Internal(_) => 20,
        }
    }

    /// True if the connection should be closed after answering (the line cannot be trusted
    /// to be followed by a sane one).
    pub fn closes(&self) -> bool {
        matches!(self, StratumError::TooLong)
    }
}

/// Parses one line (without its `\n`).
pub fn parse_request(line: &str) -> Result<Call, StratumError> {
    if line.len() > MAX_LINE {
        return Err(StratumError::TooLong);
    }
    let v: Value = serde_json::from_str(line).map_err(|e| StratumError::Malformed(e.to_string()))?;
    let Value::Object(mut o) = v else {
        return Err(StratumError::Malformed("not a JSON object".into()));
    };
    let id = o.remove("id").unwrap_or(Value::Null);
    let method = match o.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(StratumError::Malformed("method is not a string".into())),
        None => return Err(StratumError::Malformed("no method".into())),
    };
    let params = match o.remove("params") {
        Some(Value::Array(p)) => p,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(StratumError::Malformed("params is not an array".into())),
    };
    Ok(Call { id, method, params })
}

/// Parameter `index` as a string.
pub fn str_param<'a>(call: &'a Call, index: usize, name: &'static str) -> Result<&'a str, StratumError> {
    match call.params.get(index) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => {
            Err(StratumError::BadParam { index, name, why: format!("expected a string, got {other}") })
        }
        None => Err(StratumError::BadParam { index, name, why: "missing".into() }),
    }
}

/// Parameter `index` as hex of exactly `len` bytes.
pub fn hex_param(call: &Call, index: usize, name: &'static str, len: usize) -> Result<Vec<u8>, StratumError> {
    let s = str_param(call, index, name)?;
    let bytes =
        hex::decode(s).map_err(|e| StratumError::BadParam { index, name, why: format!("not hex: {e}") })?;
    if bytes.len() != len {
        return Err(StratumError::BadParam {
            index,
            name,
            why: format!("expected {len} bytes ({} hex digits), got {}", 2 * len, bytes.len()),
        });
    }
    Ok(bytes)
}

/// Parameter `index` as a big-endian u32 in 8 hex digits (ntime, nonce).
pub fn u32_param(call: &Call, index: usize, name: &'static str) -> Result<u32, StratumError> {
    let b = hex_param(call, index, name, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A successful reply line.
pub fn reply(id: &Value, result: Value) -> String {
    line(json!({ "id": id, "result": result, "error": null }))
}

/// An error reply line: `[code, message, null]`.
pub fn error_reply(id: &Value, e: &StratumError) -> String {
    line(json!({ "id": id, "result": null, "error": [e.code(), e.to_string(), null] }))
}

/// A notification line from the pool.
pub fn notification(method: &str, params: Value) -> String {
    line(json!({ "id": null, "method": method, "params": params }))
}

/// A request line (the client side).
pub fn request(id: u64, method: &str, params: Value) -> String {
    line(json!({ "id": id, "method": method, "params": params }))
}

fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_never_a_panic() {
        for (line, want) in [
            ("", "malformed"),
            ("{", "malformed"),
            ("[1,2]", "not a JSON object"),
            ("{\"id\":1}", "no method"),
            ("{\"id\":1,\"method\":5}", "not a string"),
            ("{\"id\":1,\"method\":\"x\",\"params\":{}}", "not an array"),
        ] {
            let e = parse_request(line).unwrap_err();
            assert!(e.to_string().contains(want), "{line:?}: {e}");
        }
        assert_eq!(parse_request(&"x".repeat(MAX_LINE + 1)).unwrap_err(), StratumError::TooLong);
        let c = parse_request(r#"{"id":7,"method":"mining.submit","params":["w","1","00","zz",5]}"#).unwrap();
        assert_eq!(c.id, json!(7));
        assert!(hex_param(&c, 2, "extranonce2", 4).unwrap_err().to_string().contains("expected 4 bytes"));
        assert!(u32_param(&c, 3, "ntime").unwrap_err().to_string().contains("not hex"));
        assert!(str_param(&c, 4, "nonce").unwrap_err().to_string().contains("expected a string"));
        assert!(str_param(&c, 9, "x").unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn share_refusals_have_distinct_codes() {
        let errors = [
            StratumError::UnknownJob("9".into()),
            StratumError::Stale { job: "1".into(), prev: "a".into(), tip: "b".into() },
            StratumError::Duplicate {
                job: "1".into(),
                extranonce2: "0".into(),
                ntime: "0".into(),
                nonce: "0".into(),
            },
            StratumError::LowDifficulty { got: 0.1, need: 1.0 },
            StratumError::Unauthorized("w".into()),
            StratumError::NotSubscribed,
        ];
        let mut codes: Vec<i64> = errors.iter().map(StratumError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        let r = error_reply(&json!(3), &errors[3]);
        assert!(r.ends_with('\n') && r.contains("[23,\"low difficulty share"), "{r}");
    }
}
