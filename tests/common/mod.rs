//! Shared harness for tests that run real `quarry node` processes on loopback.
#![allow(dead_code)]

use quarry::consensus::Network;
use quarry::primitives::{Address, AddressKind};
use quarry::rpc::api::QuarryApiClient;
use quarry::rpc::client::{basic_auth, BlockingClient, RawParams, RpcConfig, RpcError};
use quarry::script::templates::pubkey_hash;
use quarry::testkit::key;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    quarry::testnet::free_port().unwrap()
}

/// The P2PKH address of testkit key `i` on `network`.
pub fn address(network: Network, i: u8) -> String {
    let pk = key(i).verifying_key().to_bytes();
    Address { hrp: network.address_hrp(), kind: AddressKind::P2pkh, hash: pubkey_hash(&pk) }.encode()
}

/// A running node process; killed when dropped.
pub struct Node {
    pub child: Child,
    pub datadir: PathBuf,
    pub addr: SocketAddr,
}

/// Raw HTTP POST of `body` with optional Basic `user:password`; returns (status, body). Only
/// for requests the client cannot make on purpose (malformed JSON, no credentials); every
/// other call goes through [`Node::client`].
pub fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    let auth = auth
        .map(|a| {
            let (user, pass) = a.split_once(':').unwrap_or((a, ""));
            format!("Authorization: {}\r\n", basic_auth(user, pass))
        })
        .unwrap_or_default();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

impl Node {
    /// Spawns `quarry node --network NETWORK [--rpc-bind 127.0.0.1:PORT] EXTRA..` without
    /// waiting; `port: None` keeps the default bind.
    pub fn spawn(datadir: &Path, network: &str, port: Option<u16>, extra: &[&str]) -> Node {
        Node::spawn_via(&[], datadir, network, port, extra)
    }

    /// [`Node::spawn`] through a launcher that execs the node in its own process (e.g.
    /// `["prlimit", "--nofile=1024:1024"]`), so the pid is still the node's.
    pub fn spawn_via(
        launcher: &[&str],
        datadir: &Path,
        network: &str,
        port: Option<u16>,
        extra: &[&str],
    ) -> Node {
        let mut cmd = match launcher.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_quarry")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_quarry"));
                c
            }
        };
        cmd.args(["node", "--network", network]).args(extra);
        // Parallel tests must not share the default peer port: any free port unless chosen.
        if !extra.iter().any(|a| matches!(*a, "--listen" | "--p2p-port" | "--no-p2p")) {
            cmd.args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
        }
        if let Some(port) = port {
            cmd.arg("--rpc-bind").arg(format!("127.0.0.1:{port}"));
        }
        let net: Network = network.parse().unwrap();
        let port = port.unwrap_or(net.default_rpc_port());
        // QUARRY_TEST_LOG=1 shows the nodes' logs (stderr) when debugging a test.
        let stderr =
            if std::env::var_os("QUARRY_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
        let child = cmd.arg("--datadir").arg(datadir).stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        Node { child, datadir: datadir.to_path_buf(), addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    /// [`Node::spawn`], then waits until the RPC server answers.
    pub fn start(datadir: &Path, network: &str, port: Option<u16>, extra: &[&str]) -> Node {
        let node = Node::spawn(datadir, network, port, extra);
        node.wait_height(0);
        node
    }

    /// Waits until the node answers with a height >= `h`; returns the height.
    pub fn wait_height(&self, h: u64) -> u64 {
        let start = Instant::now();
        loop {
            if let Ok(n) = self.try_client().and_then(|c| c.wait(c.getblockcount())) {
                if n as u64 >= h {
                    return n as u64;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "node did not reach height {h}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn cookie(&self) -> String {
        std::fs::read_to_string(self.datadir.join(".cookie")).unwrap_or_default()
    }

    /// Where the node's RPC is, authenticating with its cookie.
    pub fn config(&self) -> RpcConfig {
        RpcConfig::new(self.addr, &self.datadir, None).timeout(Duration::from_secs(600))
    }

    /// The library's client for this node (reads the cookie now, so a restarted node's new
    /// cookie is picked up).
    pub fn try_client(&self) -> Result<BlockingClient, RpcError> {
        BlockingClient::new(&self.config())
    }

    /// [`Node::try_client`] that must succeed.
    pub fn client(&self) -> BlockingClient {
        self.try_client().unwrap_or_else(|e| panic!("RPC client: {e}"))
    }

    /// A raw call: `params` is an array (positional) or an object (named). For tests that
    /// check the JSON itself or send parameters the typed methods cannot express.
    pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let params = match params {
            Value::Object(m) => RawParams::Named(m),
            Value::Array(a) => RawParams::Positional(a),
            other => RawParams::Positional(vec![other]),
        };
        let c = self.try_client()?;
        c.wait(c.call_raw(method, params))
    }

    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// The error object (`code`, `message`) of a call that must fail.
    pub fn rpc_err(&self, method: &str, params: Value) -> Value {
        match self.try_rpc(method, params) {
            Err(RpcError::Call { code, message }) => json!({ "code": code, "message": message }),
            Err(e) => panic!("{method}: expected an error object, got {e}"),
            Ok(v) => panic!("{method}: expected an error, got {v}"),
        }
    }

    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill").arg(sig).arg(self.child.id().to_string()).status().unwrap().success());
    }

    pub fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "node did not exit within {secs} s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's first listen multiaddr (with `/p2p/<peer id>`), for `--bootnode`/`addnode`.
    pub fn p2p_addr(&self) -> String {
        let c = self.client();
        let info = c.wait(c.getnetworkinfo()).expect("getnetworkinfo");
        info.listenaddrs.first().expect("a listen address").clone()
    }

    /// Peer ids of connected peers.
    pub fn peer_ids(&self) -> Vec<String> {
        let c = self.client();
        c.wait(c.getpeerinfo()).expect("getpeerinfo").into_iter().map(|p| p.peerid).collect()
    }

    /// Sends `stop`, expects exit code 0 and the cookie removed.
    pub fn stop(mut self) {
        let c = self.client();
        c.wait(c.stop()).expect("stop");
        let status = self.wait_exit(20);
        assert!(status.success(), "node exited with {status}");
        assert!(!self.datadir.join(".cookie").exists(), "cookie removed at shutdown");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it holds; fails the test after `secs` seconds naming `what`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `quarry` binary with `args`, capturing its output.
pub fn quarry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).output().unwrap()
}

/// The stdout of a run that must succeed (else the exit code and both streams).
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
