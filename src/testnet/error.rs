//! [`TestnetError`]: what can go wrong in the testnet tool (`quarry testnet ...`, the
//! scenario runner, the soak, the spammer, the netns fabric and its shaper).
//!
//! Every variant's message is written to be printed the way the binary prints errors: the
//! message, then each [`std::error::Error::source`] after ": " (as `main` prints a failed
//! command, and as [`TestnetError::chain`] renders it). So a message never repeats its `#[source]`; a variant that
//! keeps a cause in its message instead (`Wallet`, the `error` fields) has no source.

use super::clean::CleanError;
use super::links::LinkError;
use super::topology::TopologyError;
use crate::rpc::client::RpcError;
use crate::wallet::keystore::KeystoreError;
use crate::wallet::ops::WalletError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Results of the testnet module.
pub type Result<T, E = TestnetError> = std::result::Result<T, E>;

/// An error of the testnet tool.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// A file-system operation on `path` failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done: "reading", "writing", "creating", "deleting", "opening", ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O operation on no single path (a socket, a device, the current executable).
    #[error("{action}")]
    Os {
        /// What was being done ("finding a free port", "finding the quarry executable").
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not the JSON it should be.
    #[error("{} {verdict}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What the file was found to be ("is corrupt", "is not a link table").
        verdict: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded as JSON (for a file the testnet writes).
    #[error("encoding {what} as JSON")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A TOML text (topology or scenario) does not parse.
    #[error("not a valid {what}")]
    Toml {
        /// "topology" or "scenario".
        what: &'static str,
        /// The parser's error (with the line and column).
        #[source]
        source: toml::de::Error,
    },
    /// The topology is refused.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Link conditions (a topology's, a scenario step's, or `links.json`) are refused.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// `--clean` refuses to delete.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// An RPC call to a node failed.
    #[error("node {node}")]
    Rpc {
        /// The node.
        node: String,
        /// The client's error.
        #[source]
        source: RpcError,
    },
    /// One RPC method of a node failed (where the message names the method).
    #[error("node {node}: {method}")]
    RpcMethod {
        /// The node.
        node: String,
        /// The method.
        method: &'static str,
        /// The client's error.
        #[source]
        source: RpcError,
    },
    /// A wallet operation failed (the cause is in the message, as the wallet prints it).
    #[error("{}{error}", node_prefix(.node))]
    Wallet {
        /// The node whose wallet it is, when the message names it.
        node: Option<String>,
        /// The wallet's error.
        error: WalletError,
    },
    /// A node's wallet file could not be made or opened.
    #[error("{action} the wallet of {node}")]
    Keystore {
        /// "creating" or "opening".
        action: &'static str,
        /// The node.
        node: String,
        /// The keystore's error.
        #[source]
        source: KeystoreError,
    },
    /// An amount out of range.
    #[error(transparent)]
    Amount(#[from] crate::primitives::AmountError),
    /// A node key could not be made.
    #[error(transparent)]
    NodeKey(#[from] crate::p2p::behaviour::SetupError),
    /// The soak could not read a killed node's chain.
    #[error(transparent)]
    Chain(Box<crate::chain::ChainError>),
    /// The soak could not read a killed node's store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No node of that name.
    #[error("no node named {name:?}{}", known_list(.known))]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The testnet's nodes (listed in the message when given).
        known: Vec<String>,
    },
    /// The node is already running.
    #[error("node {name} is already running")]
    AlreadyRunning {
        /// The node.
        name: String,
    },
    /// The node is not running.
    #[error("node {name} is not running")]
    NotRunning {
        /// The node.
        name: String,
    },
    /// A process could not be started.
    #[error("starting {what}")]
    Spawn {
        /// "node a", "the explorer", "the shaper".
        what: String,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// A node exited before it answered RPC.
    #[error("node {name} exited during start; its log {} ends with:\n{tail}", log.display())]
    Exited {
        /// The node.
        name: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// A node did not answer RPC in time.
    #[error("node {name} did not answer RPC within {timeout:?}; its log {} ends with:\n{tail}", log.display())]
    NotReady {
        /// The node.
        name: String,
        /// How long it was given.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// A process does not exit when told to (or killed).
    #[error("{what} (pid {pid}) {how}")]
    NoExit {
        /// "node a", "the explorer".
        what: String,
        /// Its process id.
        pid: u32,
        /// "does not exit" or "survived SIGKILL".
        how: &'static str,
    },
    /// A condition did not hold in time.
    #[error("timed out after {after:?} waiting for {what}{}", last_error(.last))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
        /// The last error the check returned, with its causes, if it failed at all.
        last: Option<String>,
    },
    /// A command (`ip`) failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The command line, the testnet's state or the machine does not allow the operation;
    /// the message says why and, where one does, which flag or command fixes it.
    #[error("{0}")]
    Refused(String),
    /// An operation did not succeed (a process exited or stalled, a transaction did not
    /// confirm); the message says what happened and where to look.
    #[error("{0}")]
    Failed(String),
    /// A scenario assertion or a run's final check did not hold; the message shows what
    /// was found.
    #[error("{0}")]
    CheckFailed(String),
    /// Several errors at once (each with its causes), `; `-separated.
    #[error("{}", .0.join("; "))]
    Several(Vec<String>),
    /// `source`, in the course of `context` ("step 3 (mine 5 on a)", "topology t.toml").
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<TestnetError>,
    },
}

impl From<crate::chain::ChainError> for TestnetError {
    fn from(e: crate::chain::ChainError) -> TestnetError {
        TestnetError::Chain(Box::new(e))
    }
}

fn node_prefix(node: &Option<String>) -> String {
    node.as_ref().map(|n| format!("{n}: ")).unwrap_or_default()
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (nodes: {})", known.join(", "))
    }
}

fn last_error(last: &Option<String>) -> String {
    last.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
}

impl TestnetError {
    /// A refusal whose message says why.
    pub fn refused(why: impl Into<String>) -> TestnetError {
        TestnetError::Refused(why.into())
    }

    /// A failure whose message says what happened.
    pub fn failed(what: impl Into<String>) -> TestnetError {
        TestnetError::Failed(what.into())
    }

    /// A failed check whose message says what was found.
    pub fn check_failed(what: impl Into<String>) -> TestnetError {
        TestnetError::CheckFailed(what.into())
    }

    /// An RPC error of `node`.
    pub fn rpc(node: &str) -> impl FnOnce(RpcError) -> TestnetError {
        let node = node.to_string();
        move |source| TestnetError::Rpc { node, source }
    }

    /// A wallet error, its message prefixed with `node: `.
    pub fn wallet_of(node: &str) -> impl FnOnce(WalletError) -> TestnetError {
        let node = node.to_string();
        move |error| TestnetError::Wallet { node: Some(node), error }
    }

    /// A wallet error, its message as the wallet gives it.
    pub fn wallet(error: WalletError) -> TestnetError {
        TestnetError::Wallet { node: None, error }
    }

    /// The message and each cause, `: `-separated, as `main` prints a failed command.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// [`TestnetError::chain`]: displays an error and its sources.
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Helpers that build [`TestnetError`]s from other results.
pub trait ResultExt<T> {
    /// An [`std::io::Error`] as [`TestnetError::Io`] on `path`.
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>
    where
        Self: Sized;
}

impl<T> ResultExt<T> for std::result::Result<T, std::io::Error> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| TestnetError::Io { action, path: path.into(), source })
    }
}

/// Context on a testnet result: `.step(|| format!("step {i} ({what})"))`.
pub trait Step<T> {
    /// Wraps the error in [`TestnetError::Context`] with the text `f` returns.
    fn step<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<TestnetError>> Step<T> for std::result::Result<T, E> {
    fn step<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| TestnetError::Context { context: f().into(), source: Box::new(e.into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_each_cause_once() {
        let e: Result<()> = Err(TestnetError::Io {
            action: "reading",
            path: "t.toml".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        });
        let e = e.step(|| "step 1 (load)").unwrap_err();
        assert_eq!(e.to_string(), "step 1 (load)");
        assert_eq!(e.chain().to_string(), "step 1 (load): reading t.toml: gone");
        assert_eq!(
            TestnetError::UnknownNode { name: "x".into(), known: vec!["a".into(), "b".into()] }.to_string(),
            "no node named \"x\" (nodes: a, b)"
        );
        let t = TestnetError::Timeout { what: "sync".into(), after: Duration::from_secs(1), last: None };
        assert_eq!(t.to_string(), "timed out after 1s waiting for sync");
    }
}
