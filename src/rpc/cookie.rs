//! The RPC cookie: a random password written to `<datadir>/.cookie` at start (mode 0600) and
//! removed at shutdown, like bitcoind's. Clients on the same machine read it to authenticate
//! as user `__cookie__`.
//!
//! Beside it the node records where its RPC server listens: `<datadir>/.rpcaddr`, one line
//! `HOST:PORT` (a loopback address when the server binds every interface), written once the
//! server is listening and removed with the cookie, so `quarry rpc` and `quarry wallet` find
//! a node started with any `--rpc-bind` from its data directory alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The cookie's user name.
pub const COOKIE_USER: &str = "__cookie__";

/// Where the cookie lives.
pub fn path(datadir: &Path) -> PathBuf {
    datadir.join(".cookie")
}

fn writing(p: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("writing {}: {e}", p.display()))
}

/// Writes a fresh cookie; returns the password.
pub fn write(datadir: &Path) -> std::io::Result<String> {
    let password = hex::encode(rand::random::<[u8; 32]>());
    let p = path(datadir);
    let tmp = datadir.join(".cookie.tmp");
    // A stale temp file (or a link planted there) must not lend its permissions or target.
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| writing(&tmp, e))?;
        write!(f, "{COOKIE_USER}:{password}").map_err(|e| writing(&tmp, e))?;
    }
    std::fs::rename(&tmp, &p).map_err(|e| writing(&p, e))?;
    Ok(password)
}

/// Reads `user:password` from a cookie file.
pub fn read(datadir: &Path) -> Result<(String, String), super::client::RpcError> {
    use super::client::RpcError;
    let p = path(datadir);
    let text = std::fs::read_to_string(&p).map_err(|error| RpcError::Cookie { path: p.clone(), error })?;
    let (user, pass) = text.trim().split_once(':').ok_or(RpcError::MalformedCookie { path: p.clone() })?;
    Ok((user.to_string(), pass.to_string()))
}

/// Removes the cookie and the address file (best effort).
pub fn remove(datadir: &Path) {
    let _ = std::fs::remove_file(path(datadir));
    let _ = std::fs::remove_file(addr_path(datadir));
}

/// Where the RPC address file lives.
pub fn addr_path(datadir: &Path) -> PathBuf {
    datadir.join(".rpcaddr")
}

/// The address a client on this machine dials for a server bound to `bind`: the loopback
/// address of the same family when `bind` is unspecified (`0.0.0.0`, `::`).
pub fn connectable(bind: SocketAddr) -> SocketAddr {
    match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, bind.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, bind.port())),
        _ => bind,
    }
}

/// Records that the RPC server listens on `bind` (atomically, through a rename).
pub fn write_addr(datadir: &Path, bind: SocketAddr) -> std::io::Result<()> {
    let p = addr_path(datadir);
    let tmp = datadir.join(".rpcaddr.tmp");
    std::fs::write(&tmp, connectable(bind).to_string()).map_err(|e| writing(&tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| writing(&p, e))
}

/// The address a running node recorded in `datadir`, if there is one that parses.
pub fn read_addr(datadir: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(addr_path(datadir)).ok()?.trim().parse().ok()
}
