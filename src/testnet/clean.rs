//! `--clean`: deletes what a testnet made in its directory, and nothing else.
//!
//! A testnet directory may sit beside the user's own files (`--dir .` is legal), so cleaning
//! never deletes the directory wholesale. It deletes the state file (`testnet.json`, and a
//! leftover `testnet.json.tmp` from an interrupted save), the explorer's `explorer.log`, `prometheus.yml`, `grafana-dashboard.json`, a netns testnet's `fabric.json`, `links.json`, `shaper.applied` and `shaper.log` (after removing its namespaces) and the node data directories the
//! state records, each only after checking that it is one (a real directory, not a symlink,
//! holding the `node_key` every testnet node directory gets at creation). The directory itself
//! goes only if it is empty afterwards. Every check runs before the first deletion, so a
//! refusal deletes nothing.

use super::error::{Result, ResultExt};
use super::{State, Testnet};
use std::path::{Path, PathBuf};

/// What [`clean`] deleted and what it left.
#[derive(Debug)]
pub struct Cleaned {
    /// Paths deleted (node directories, then the state file).
    pub deleted: Vec<PathBuf>,
    /// True if the testnet directory itself was removed (it was empty afterwards).
    pub removed_dir: bool,
    /// Names of entries left in the directory (not made by the testnet), when it was kept.
    pub kept: Vec<String>,
}

/// Why `--clean` refuses to delete anything.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The directory holds no `testnet.json`.
    #[error("{} does not hold a testnet (no testnet.json): nothing deleted; pass the --dir of a testnet", dir.display())]
    NoTestnet {
        /// The directory.
        dir: PathBuf,
    },
    /// `testnet.json` does not parse (the cause is in the message).
    #[error(
        "{} is not a testnet state file ({error}): nothing deleted; remove the testnet by hand",
        path.display()
    )]
    BadState {
        /// The state file.
        path: PathBuf,
        /// The parser's error.
        error: serde_json::Error,
    },
    /// The state names a node whose name is no single path component.
    #[error(
        "{} records a node named {name:?}, which is not a node name (letters, digits, '-'): \
         refusing to delete anything; remove the testnet by hand",
        state.display()
    )]
    BadNodeName {
        /// The state file.
        state: PathBuf,
        /// The name.
        name: String,
    },
    /// A node's path is a file or a symlink.
    #[error(
        "{} is not a directory the testnet made (a {kind}): refusing to delete anything; \
         move it away and retry",
        path.display()
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// "symlink" or "file".
        kind: &'static str,
    },
    /// A node's directory has no `node_key`.
    #[error(
        "{} has no node_key, so it is not a node directory the testnet made: refusing \
         to delete anything; move it away and retry",
        path.display()
    )]
    NoNodeKey {
        /// The directory.
        path: PathBuf,
    },
}

/// True if `name` is a node name a topology accepts (letters, digits, '-'): one plain path
/// component, so `dir.join(name)` stays inside `dir`.
pub(crate) fn valid_node_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The node data directories of the testnet in `dir` that exist, checked to be ones the
/// testnet made; refuses (with the path and the reason) anything else.
fn node_dirs(dir: &Path, state: &State) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for n in &state.nodes {
        if !valid_node_name(&n.name) {
            return Err(
                CleanError::BadNodeName { state: Testnet::state_path(dir), name: n.name.clone() }.into()
            );
        }
        let datadir = dir.join(&n.name);
        let meta = match std::fs::symlink_metadata(&datadir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).io("checking", datadir),
        };
        if !meta.is_dir() {
            let kind = if meta.file_type().is_symlink() { "symlink" } else { "file" };
            return Err(CleanError::NotADirectory { path: datadir, kind }.into());
        }
        if !datadir.join("node_key").is_file() {
            return Err(CleanError::NoNodeKey { path: datadir }.into());
        }
        out.push(datadir);
    }
    Ok(out)
}

/// Checks that [`clean`] would accept `dir`, deleting nothing: it holds a testnet state file
/// whose recorded node directories are all ones the testnet made.
pub fn check(dir: &Path) -> Result<()> {
    node_dirs(dir, &read_state(dir)?).map(|_| ())
}

fn read_state(dir: &Path) -> Result<State> {
    let state_path = Testnet::state_path(dir);
    if !state_path.is_file() {
        return Err(CleanError::NoTestnet { dir: dir.to_path_buf() }.into());
    }
    let text = std::fs::read_to_string(&state_path).io("reading", &state_path)?;
    serde_json::from_str(&text).map_err(|error| CleanError::BadState { path: state_path, error }.into())
}

/// Deletes the testnet in `dir` (whose nodes must be stopped): its node directories and state
/// file, then `dir` if nothing else is in it. Refuses, deleting nothing, a `dir` that holds no
/// testnet or whose state names anything but the testnet's own node directories.
pub fn clean(dir: &Path) -> Result<Cleaned> {
    let dirs = node_dirs(dir, &read_state(dir)?)?;
    let state_path = Testnet::state_path(dir);
    // A `--hosts netns` testnet's namespaces and devices go first (a no-op when down did it).
    super::hosts::teardown(dir)?;
    let mut deleted = Vec::new();
    for d in dirs {
        std::fs::remove_dir_all(&d).io("deleting", &d)?;
        deleted.push(d);
    }
    let made_files = ["explorer.log", super::observe::PROMETHEUS_FILE, super::observe::GRAFANA_FILE];
    for made in made_files.iter().chain(super::hosts::FILES.iter()) {
        let path = dir.join(made);
        if path.is_file() {
            std::fs::remove_file(&path).io("deleting", &path)?;
            deleted.push(path);
        }
    }
    let tmp = state_path.with_extension("json.tmp");
    if tmp.is_file() {
        std::fs::remove_file(&tmp).io("deleting", &tmp)?;
        deleted.push(tmp);
    }
    std::fs::remove_file(&state_path).io("deleting", &state_path)?;
    deleted.push(state_path);
    let mut kept: Vec<String> = std::fs::read_dir(dir)
        .io("listing", dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    kept.sort();
    let removed_dir = kept.is_empty();
    if removed_dir {
        std::fs::remove_dir(dir).io("removing the empty", dir)?;
    }
    Ok(Cleaned { deleted, removed_dir, kept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::NodeState;

    fn node(name: &str) -> NodeState {
        NodeState {
            name: name.into(),
            mine: false,
            threads: 1,
            bootnodes: vec![],
            rpc_port: 1,
            p2p_port: 2,
            peer_id: String::new(),
            pid: None,
            start: true,
            http_port: None,
            metrics_port: None,
            netns: None,
            ip: None,
            p2p_ip: None,
            strategy: Default::default(),
            hashrate: None,
            sync_writes: false,
        }
    }

    fn write_state(dir: &Path, names: &[&str]) {
        let state = State {
            network: "regtest".into(),
            nodes: names.iter().map(|n| node(n)).collect(),
            explorer: None,
            hosts: Default::default(),
            default_link: Default::default(),
            links: Vec::new(),
        };
        std::fs::write(Testnet::state_path(dir), serde_json::to_vec(&state).unwrap()).unwrap();
    }

    fn make_node_dir(dir: &Path, name: &str) {
        std::fs::create_dir_all(dir.join(name).join("chainstate")).unwrap();
        std::fs::write(dir.join(name).join("node_key"), b"k").unwrap();
    }

    #[test]
    fn deletes_only_what_the_testnet_made() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_state(dir, &["a", "b", "c"]);
        make_node_dir(dir, "a");
        make_node_dir(dir, "b"); // "c" was never started and has no directory
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        std::fs::create_dir(dir.join("other")).unwrap();
        let c = clean(dir).unwrap();
        assert_eq!(c.deleted.len(), 3, "{c:?}");
        assert!(!c.removed_dir);
        assert_eq!(c.kept, vec!["notes.txt".to_string(), "other".to_string()]);
        assert!(dir.join("notes.txt").is_file() && dir.join("other").is_dir());
        assert!(!dir.join("a").exists() && !dir.join("b").exists());
        assert!(!Testnet::state_path(dir).exists());
    }

    #[test]
    fn removes_the_directory_when_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tn");
        std::fs::create_dir(&dir).unwrap();
        write_state(&dir, &["a"]);
        make_node_dir(&dir, "a");
        std::fs::write(dir.join("testnet.json.tmp"), b"{").unwrap();
        let c = clean(&dir).unwrap();
        assert!(c.removed_dir && !dir.exists(), "{c:?}");
    }

    #[test]
    fn refuses_without_deleting_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
        // No state file.
        let e = clean(dir).unwrap_err().to_string();
        assert!(e.contains("does not hold a testnet") && e.contains("nothing deleted"), "{e}");
        // Not a state file.
        std::fs::write(Testnet::state_path(dir), b"{\"hello\": 1}").unwrap();
        let e = clean(dir).unwrap_err().to_string();
        assert!(e.contains("not a testnet state file"), "{e}");
        // A node name that escapes the directory.
        make_node_dir(dir, "a");
        write_state(dir, &["a", "../x"]);
        let e = clean(dir).unwrap_err().to_string();
        assert!(e.contains("\"../x\""), "{e}");
        assert!(dir.join("a").join("node_key").is_file(), "the valid node directory was deleted");
        // A recorded directory the testnet did not make.
        std::fs::create_dir(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs").join("thesis.tex"), b"x").unwrap();
        write_state(dir, &["a", "docs"]);
        let e = clean(dir).unwrap_err().to_string();
        assert!(e.contains("docs") && e.contains("no node_key"), "{e}");
        assert!(dir.join("docs").join("thesis.tex").is_file());
        assert!(dir.join("a").join("node_key").is_file());
        assert!(Testnet::state_path(dir).is_file() && dir.join("notes.txt").is_file());
    }
}
