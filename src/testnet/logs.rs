//! `quarry testnet logs` (every node's `node.log` merged in time order, each line prefixed
//! with its node) and `quarry testnet dump DIR` (logs, topology, chain tips and a metrics
//! snapshot of every node, for a bug report).
//!
//! Merging streams the files (one buffered line per node at a time), so a large log costs no
//! memory. A line's time is its leading RFC 3339 timestamp (tracing's format, which sorts as
//! text); a line without one (a panic message, `println!`) keeps the time of the line before
//! it in its file. Ties keep node order, and lines of one file keep their order.

use super::error::{Result, ResultExt, TestnetError};
use super::Testnet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// Options of `quarry testnet logs`.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only lines matching this regular expression.
    pub grep: Option<regex::Regex>,
    /// Only this node.
    pub node: Option<String>,
    /// Keep printing lines as they are written, until interrupted.
    pub follow: bool,
}

/// The leading timestamp of a log line, if it has one.
fn timestamp(line: &str) -> Option<&str> {
    let t = line.split_whitespace().next()?;
    let b = t.as_bytes();
    (b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[..4].iter().all(u8::is_ascii_digit))
        .then_some(t)
}

struct Source {
    name: String,
    reader: BufReader<File>,
    head: Option<(String, String)>, // (time, line)
    last_time: String,
}

impl Source {
    fn advance(&mut self) -> Result<()> {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line);
        let os = |source| TestnetError::Os { action: format!("reading the log of {}", self.name), source };
        self.head = match read.map_err(os)? {
            0 => None,
            _ => {
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if let Some(t) = timestamp(&line) {
                    self.last_time = t.to_string();
                }
                Some((self.last_time.clone(), line))
            }
        };
        Ok(())
    }
}

fn selected(t: &Testnet, node: &Option<String>) -> Result<Vec<String>> {
    let names = t.names();
    match node {
        None => Ok(names),
        Some(n) if names.contains(n) => Ok(vec![n.clone()]),
        Some(n) => Err(TestnetError::refused(format!(
            "no node {n} in this testnet (nodes: {}); pass one of them to --node",
            names.join(", ")
        ))),
    }
}

/// Writes the merged logs to `out`; with `follow`, keeps writing new lines until the process
/// is interrupted.
pub fn logs(t: &Testnet, opts: &LogOptions, out: &mut dyn Write) -> Result<()> {
    let names = selected(t, &opts.node)?;
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut sources = Vec::new();
    for name in &names {
        let path = t.datadir(name).join("node.log");
        let Ok(file) = File::open(&path) else { continue }; // never started: no log yet
        let mut s =
            Source { name: name.clone(), reader: BufReader::new(file), head: None, last_time: String::new() };
        s.advance()?;
        sources.push(s);
    }
    let show = |out: &mut dyn Write, name: &str, line: &str| -> Result<()> {
        if opts.grep.as_ref().map_or(true, |re| re.is_match(line)) {
            writeln!(out, "{name:width$} | {line}").map_err(write_error)?;
        }
        Ok(())
    };
    loop {
        let next = sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|(time, _)| (time.clone(), i)))
            .min();
        let Some((_, i)) = next else { break };
        let (_, line) = sources[i].head.take().expect("a head");
        show(out, &sources[i].name, &line)?;
        sources[i].advance()?;
    }
    out.flush().map_err(write_error)?;
    if !opts.follow {
        return Ok(());
    }
    // Follow: each file from where the merge stopped (or its start, if it appears later).
    let mut offsets: Vec<(String, u64)> = names
        .iter()
        .map(|n| {
            let len = std::fs::metadata(t.datadir(n).join("node.log")).map(|m| m.len()).unwrap_or(0);
            (n.clone(), len)
        })
        .collect();
    let mut partial: Vec<String> = vec![String::new(); offsets.len()];
    loop {
        std::thread::sleep(Duration::from_millis(250));
        for (i, (name, offset)) in offsets.iter_mut().enumerate() {
            let Ok(mut f) = File::open(t.datadir(name).join("node.log")) else { continue };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                *offset = 0; // truncated or replaced
            }
            if len == *offset {
                continue;
            }
            let path = t.datadir(name).join("node.log");
            f.seek(SeekFrom::Start(*offset)).io("reading", &path)?;
            let mut chunk = Vec::new();
            // At most 1 MiB per file per poll; the rest on the next one.
            Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut chunk).io("reading", &path)?;
            *offset += chunk.len() as u64;
            partial[i].push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = partial[i].find('\n') {
                let line: String = partial[i].drain(..=pos).collect();
                show(out, name, line.trim_end_matches(['\n', '\r']))?;
            }
        }
        out.flush().map_err(write_error)?;
    }
}

fn write_error(source: std::io::Error) -> TestnetError {
    TestnetError::Os { action: "writing the logs".into(), source }
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|source| TestnetError::Encode { what: "an RPC answer", source })
}

/// What `dump` wrote and what it could not get.
#[derive(Debug, Default)]
pub struct Dumped {
    /// Files written.
    pub files: Vec<String>,
    /// What failed (a stopped node has no tips or metrics to ask for), one line each.
    pub missing: Vec<String>,
}

/// Saves, into `out` (created; must not exist or be empty): `testnet.json` (the topology,
/// ports and peer ids), every node's `node.log`, `getchaintips`, `getpeerinfo` and a
/// `/metrics` snapshot, the merged log, and the explorer's log.
pub fn dump(t: &mut Testnet, out: &Path) -> Result<Dumped> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(TestnetError::refused(format!(
            "{} exists and is not empty: pass a new directory to dump into",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).io("creating", out)?;
    let mut d = Dumped::default();
    let save = |d: &mut Dumped, name: &str, bytes: &[u8]| -> Result<()> {
        std::fs::write(out.join(name), bytes).io("writing", out.join(name))?;
        d.files.push(name.to_string());
        Ok(())
    };
    let state = Testnet::state_path(&t.dir);
    save(&mut d, "testnet.json", &std::fs::read(&state).io("reading", &state)?)?;
    if let Ok(log) = std::fs::read(t.dir.join("explorer.log")) {
        save(&mut d, "explorer.log", &log)?;
    }
    let mut merged = Vec::new();
    logs(t, &LogOptions::default(), &mut merged)?;
    save(&mut d, "merged.log", &merged)?;
    for name in t.names() {
        match std::fs::read(t.datadir(&name).join("node.log")) {
            Ok(log) => save(&mut d, &format!("{name}.log"), &log)?,
            Err(e) => d.missing.push(format!("{name}.log: {e}")),
        }
        if !t.is_running(&name) {
            d.missing.push(format!("{name}: not running, so no chain tips, peers or metrics"));
            continue;
        }
        use crate::rpc::api::QuarryApiClient;
        match t.ask(&name, |c| c.wait(c.getchaintips())) {
            Ok(tips) => save(&mut d, &format!("{name}.chaintips.json"), json(&tips)?.as_bytes())?,
            Err(e) => d.missing.push(format!("{name} getchaintips: {}", e.chain())),
        }
        match t.ask(&name, |c| c.wait(c.getpeerinfo())) {
            Ok(peers) => save(&mut d, &format!("{name}.peers.json"), json(&peers)?.as_bytes())?,
            Err(e) => d.missing.push(format!("{name} getpeerinfo: {}", e.chain())),
        }
        let port = t.state.nodes.iter().find(|n| n.name == name).and_then(|n| n.metrics_port);
        let ip = t.node_ip(&name).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        match port {
            None => d.missing.push(format!("{name}: no metrics port (a testnet made before --metrics)")),
            Some(p) => {
                let addr = std::net::SocketAddr::from((ip, p));
                match crate::httpd::get(addr, "/metrics", Duration::from_secs(5), 16 << 20) {
                    Ok((200, text)) => save(&mut d, &format!("{name}.metrics.txt"), text.as_bytes())?,
                    Ok((status, body)) => {
                        d.missing.push(format!("{name} /metrics: HTTP {status}: {}", body.trim()))
                    }
                    Err(e) => d.missing.push(format!("{name} /metrics on {addr}: {e}")),
                }
            }
        }
    }
    let mut summary = format!("quarry testnet dump of {}\nfiles:\n", t.dir.display());
    for f in &d.files {
        summary.push_str(&format!("  {f}\n"));
    }
    if !d.missing.is_empty() {
        summary.push_str("not saved:\n");
        for m in &d.missing {
            summary.push_str(&format!("  {m}\n"));
        }
    }
    save(&mut d, "SUMMARY.txt", summary.as_bytes())?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_found_only_at_the_start() {
        assert_eq!(
            timestamp("2026-12-02T01:32:04.203147Z  INFO node: x"),
            Some("2026-12-02T01:32:04.203147Z")
        );
        assert_eq!(timestamp("quarry node running: network regtest"), None);
        assert_eq!(timestamp(""), None);
        assert_eq!(timestamp("thread 'main' panicked at 2026-12-02T01:32:04Z"), None);
    }
}
