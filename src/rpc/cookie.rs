//! The RPC cookie: a random password written to `<datadir>/.cookie` at start (mode 0600) and
//! removed at shutdown, like bitcoind's. Clients on the same machine read it to authenticate
//! as user `__cookie__`.

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
    let text = std::fs::read_to_string(&p).map_err(|source| RpcError::Cookie { path: p.clone(), source })?;
    let (user, pass) = text.trim().split_once(':').ok_or(RpcError::MalformedCookie { path: p.clone() })?;
    Ok((user.to_string(), pass.to_string()))
}

/// Removes the cookie (best effort).
pub fn remove(datadir: &Path) {
    let _ = std::fs::remove_file(path(datadir));
}
