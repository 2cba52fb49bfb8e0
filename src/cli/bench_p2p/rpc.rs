//! A minimal blocking JSON-RPC client with HTTP/1.1 keep-alive (polling at millisecond
//! intervals cannot afford a TCP handshake per call).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Clone, Debug)]
pub(super) struct RpcTarget {
    pub(super) name: &'static str,
    pub(super) addr: SocketAddr,
    /// `Basic ...` header value.
    pub(super) auth: String,
}

pub(super) struct Rpc {
    pub(super) target: RpcTarget,
    conn: Option<BufReader<TcpStream>>,
    next_id: u64,
}

/// Largest HTTP response body accepted (a `getblock` of a 4 MB block as hex is 8 MB).
const MAX_BODY: usize = 64 << 20;

/// Writes `request` and reads one response: (status, body, server closes). The error says
/// whether any response byte arrived (if not, a reused connection may simply have gone stale).
fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8]) -> Result<(u16, Vec<u8>, bool), (bool, String)> {
    let io = |got: bool| move |e: std::io::Error| (got, e.to_string());
    conn.get_mut().write_all(request).map_err(io(false))?;
    let mut status_line = String::new();
    if conn.read_line(&mut status_line).map_err(io(false))? == 0 {
        return Err((false, "connection closed before the response".into()));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| (true, format!("bad HTTP status line {status_line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).map_err(io(true))? == 0 {
            return Err((true, "connection closed inside the response headers".into()));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => {
                length =
                    Some(value.parse::<usize>().map_err(|_| (true, format!("bad content-length {value}")))?)
            }
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            conn.read_line(&mut size_line).map_err(io(true))?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| (true, format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    if conn.read_line(&mut t).map_err(io(true))? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err((true, format!("response larger than {MAX_BODY} bytes")));
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..]).map_err(io(true))?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf).map_err(io(true))?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err((true, format!("response of {n} bytes, more than {MAX_BODY}")));
        }
        body.resize(n, 0);
        conn.read_exact(&mut body).map_err(io(true))?;
    } else {
        conn.by_ref().take(MAX_BODY as u64 + 1).read_to_end(&mut body).map_err(io(true))?;
        close = true;
    }
    Ok((status, body, close))
}

fn rpc_result(v: &Value) -> Result<Value, String> {
    match v.get("error") {
        Some(e) if !e.is_null() => Err(e.to_string()),
        _ => v.get("result").cloned().ok_or_else(|| format!("no result in {v}")),
    }
}

impl Rpc {
    pub(super) fn new(target: RpcTarget) -> Rpc {
        Rpc { target, conn: None, next_id: 1 }
    }

    fn post(&mut self, body: &str) -> Result<String> {
        let t = &self.target;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            t.addr,
            t.auth,
            body.len()
        );
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let s = TcpStream::connect_timeout(&t.addr, Duration::from_secs(5))
                        .with_context(|| format!("connecting to node {} RPC at {}", t.name, t.addr))?;
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(Duration::from_secs(600))).ok();
                    BufReader::with_capacity(1 << 16, s)
                }
            };
            match exchange(&mut conn, request.as_bytes()) {
                Ok((status, body, close)) => {
                    if !close {
                        self.conn = Some(conn);
                    }
                    let text = String::from_utf8_lossy(&body).into_owned();
                    if status != 200 {
                        bail!("node {} RPC answered HTTP {status}: {}", t.name, text.trim());
                    }
                    return Ok(text);
                }
                Err((false, _)) if reused && attempt == 0 => continue,
                Err((_, e)) => bail!("node {} RPC at {}: {e}", t.name, t.addr),
            }
        }
        bail!("node {} RPC at {}: connection keeps closing", t.name, t.addr)
    }

    pub(super) fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let text = self.post(&body)?;
        let v: Value = serde_json::from_str(&text).with_context(|| {
            format!("node {} {method}: answer is not JSON: {text:.200}", self.target.name)
        })?;
        rpc_result(&v).map_err(|e| anyhow!("node {} {method}: {e}", self.target.name))
    }

    /// One JSON-RPC batch calling `method` once per parameter list; results in order.
    pub(super) fn batch(&mut self, method: &str, params: Vec<Value>) -> Result<Vec<Result<Value, String>>> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let n = params.len();
        let calls: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": p}))
            .collect();
        let text = self.post(&Value::Array(calls).to_string())?;
        let v: Value = serde_json::from_str(&text).with_context(|| {
            format!("node {} {method} batch: answer is not JSON: {text:.200}", self.target.name)
        })?;
        let Value::Array(items) = v else {
            bail!("node {} {method} batch: expected an array, got {v:.300}", self.target.name);
        };
        let mut out: Vec<Option<Result<Value, String>>> = (0..n).map(|_| None).collect();
        for item in items {
            let id = item.get("id").and_then(Value::as_u64).map(|i| i as usize);
            match id {
                Some(i) if i < n => out[i] = Some(rpc_result(&item)),
                _ => bail!("node {} {method} batch: answer with a bad id: {item:.300}", self.target.name),
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| anyhow!("node {} {method} batch: no answer for call {i}", self.target.name))
            })
            .collect()
    }

    pub(super) fn u64(&mut self, method: &str) -> Result<u64> {
        let v = self.call(method, json!([]))?;
        v.as_u64().ok_or_else(|| anyhow!("node {} {method}: expected a number, got {v}", self.target.name))
    }

    pub(super) fn string(&mut self, method: &str, params: Value) -> Result<String> {
        let v = self.call(method, params)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("node {} {method}: expected a string, got {v:.200}", self.target.name))
    }
}
