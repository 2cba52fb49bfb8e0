//! `--hosts netns`: one network namespace per node, made and removed by quarry.
//!
//! Each node gets a namespace `quarry-<id>-<node>` holding two interfaces:
//! - a veth pair to the host (the management link, never shaped): the host side
//!   `qm<id>h<i>` has `10.202.<id>.<4i+1>/30`, the node side `10.202.<id>.<4i+2>/30`, where the
//!   node binds its JSON-RPC, HTTP API and metrics, so the host CLI, the explorer and the tests
//!   reach every node directly by address (no `ip netns exec` needed to talk to a node);
//! - a TAP device `qd<id>n<i>` with `10.201.<id>.<i+1>/24`, the node's P2P address, whose
//!   other end is the shaper process ([`super::shaper`]), the switch that applies each link's
//!   latency, jitter, loss, bandwidth and cuts.
//!
//! A namespace has no route but its two subnets, so nodes reach each other only through the
//! shaper, and the host only through the management links. Every object is recorded in
//! `fabric.json` before it is made, so [`teardown`] removes all of them even after a kill -9
//! of everything (nodes, shaper, the `up` that made them). `<id>` is chosen free at creation
//! (no namespace, interface or address of it exists) and reserved with a file in
//! `/run/quarry-testnet/` naming the testnet directory.

use super::error::{Result, ResultExt, TestnetError};
use super::links::{LinkTable, APPLIED_FILE, LINKS_FILE};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// File of the fabric's state in its directory.
pub const FABRIC_FILE: &str = "fabric.json";
/// The shaper's log in the fabric directory.
pub const SHAPER_LOG: &str = "shaper.log";
/// Where fabric ids are reserved.
const ID_DIR: &str = "/run/quarry-testnet";
/// Most nodes a fabric holds (one /30 management subnet each in a /24).
pub const MAX_NODES: usize = 60;

/// Where a testnet's nodes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Hosts {
    /// Every node on 127.0.0.1 (no privileges needed).
    #[default]
    Loopback,
    /// One network namespace per node (root).
    Netns,
}

/// One node's place in the fabric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricNode {
    /// The node's name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Host side of its management veth.
    pub host_link: String,
    /// Its TAP device (P2P).
    pub tap: String,
    /// Host side address of the management link.
    pub host_ip: Ipv4Addr,
    /// The node's management address (RPC, HTTP, metrics).
    pub node_ip: Ipv4Addr,
    /// The node's P2P address.
    pub data_ip: Ipv4Addr,
}

/// Something the fabric made (recorded before it is made).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum Made {
    /// A network namespace.
    Netns(String),
    /// A veth pair, by its host-side name.
    HostLink(String),
    /// The id reservation file.
    IdFile(PathBuf),
}

/// `fabric.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FabricState {
    /// The fabric id (third octet of its subnets).
    pub id: u8,
    /// The nodes, in order (port i of the shaper is node i).
    pub nodes: Vec<FabricNode>,
    /// What exists now, in creation order.
    pub made: Vec<Made>,
    /// The shaper's process id while it runs.
    pub shaper_pid: Option<u32>,
    /// Whether this kernel has the netem qdisc (reported; links are shaped by the shaper).
    #[serde(default)]
    pub netem: Option<bool>,
}

/// Fails unless this process can make namespaces, saying what is needed.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(TestnetError::refused(format!(
            "--hosts netns needs root (it creates network namespaces, veth pairs and TAP devices with \
             `ip`; effective uid is {euid}): run it as root, e.g. `sudo quarry testnet up --hosts netns`, \
             or use the default --hosts loopback. A user namespace (`unshare -r`) is not enough: there \
             /dev/net/tun cannot be opened and `ip netns add` fails (measured on Linux 6.18)"
        )));
    }
    if Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        return Err(TestnetError::refused("--hosts netns needs the `ip` command (iproute2): install it"));
    }
    Ok(())
}

/// `ip ARGS` as a child that the kernel kills if this process dies first (PR_SET_PDEATHSIG):
/// a kill -9 of `up` cannot leave an `ip` running that makes a namespace after `down` looked.
fn ip(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and calls only prctl, which is
    // async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn run_ip(args: &[&str]) -> Result<()> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> Result<String> {
    let out = ip(args).output().map_err(|source| TestnetError::Os { action: "running ip".into(), source })?;
    if !out.status.success() {
        return Err(TestnetError::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True if the namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// True if the host has an interface named `name`.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// True if fabric id `id` is unused: no namespace, interface or address of it.
fn id_free(id: u8) -> bool {
    if Path::new(ID_DIR).join(id.to_string()).exists() {
        return false;
    }
    let prefix = format!("quarry-{id}-");
    if std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&prefix)))
        .unwrap_or(false)
    {
        return false;
    }
    let (m, d) = (format!("qm{id}h"), format!("qd{id}n"));
    if std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&m) || n.starts_with(&d)
            })
        })
        .unwrap_or(false)
    {
        return false;
    }
    let addrs = ip_output(&["-o", "-4", "addr"]).unwrap_or_default();
    !addrs.contains(&format!(" 10.202.{id}.")) && !addrs.contains(&format!(" 10.201.{id}."))
}

impl FabricState {
    /// Reads `dir/fabric.json`.
    pub fn load(dir: &Path) -> Result<FabricState> {
        let path = dir.join(FABRIC_FILE);
        let text = std::fs::read_to_string(&path).io("reading", &path)?;
        serde_json::from_str(&text).map_err(|source| TestnetError::Json {
            path,
            verdict: "is not a fabric state file",
            source,
        })
    }

    /// Writes `dir/fabric.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FABRIC_FILE);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self)
            .map_err(|source| TestnetError::Encode { what: "the fabric state", source })?;
        std::fs::write(&tmp, json).io("writing", &tmp)?;
        std::fs::rename(&tmp, &path).io("writing", &path)?;
        Ok(())
    }

    /// Plans a fabric for `names` in `dir` (nothing is made yet): picks a free id, reserves
    /// it, and writes `fabric.json`.
    pub fn plan(dir: &Path, names: &[String]) -> Result<FabricState> {
        require_root()?;
        if names.is_empty() || names.len() > MAX_NODES {
            return Err(TestnetError::refused(format!(
                "--hosts netns takes 1 to {MAX_NODES} nodes, got {}",
                names.len()
            )));
        }
        std::fs::create_dir_all(ID_DIR).io("creating", ID_DIR)?;
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let mut reserved = None;
        for _ in 0..500 {
            let id: u8 = rng.gen_range(1..=250);
            if !id_free(id) {
                continue;
            }
            let file = Path::new(ID_DIR).join(id.to_string());
            // create_new: two testnets choosing at once cannot both reserve it.
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).create_new(true).open(&file) {
                use std::io::Write;
                let _ = writeln!(f, "{}", dir.display());
                reserved = Some((id, file));
                break;
            }
        }
        let (id, file) = reserved.ok_or_else(|| {
            TestnetError::refused(
                "no free fabric id (1-250) left: remove stale testnets with `quarry testnet down`",
            )
        })?;
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| FabricNode {
                name: name.clone(),
                netns: format!("quarry-{id}-{name}"),
                host_link: format!("qm{id}h{i}"),
                tap: format!("qd{id}n{i}"),
                host_ip: Ipv4Addr::new(10, 202, id, 4 * i as u8 + 1),
                node_ip: Ipv4Addr::new(10, 202, id, 4 * i as u8 + 2),
                data_ip: Ipv4Addr::new(10, 201, id, i as u8 + 1),
            })
            .collect();
        let state = FabricState { id, nodes, made: vec![Made::IdFile(file)], shaper_pid: None, netem: None };
        state.save(dir)?;
        Ok(state)
    }

    fn record(&mut self, dir: &Path, made: Made) -> Result<()> {
        self.made.push(made);
        self.save(dir)
    }

    /// Node `name`'s entry.
    pub fn node(&self, name: &str) -> Option<&FabricNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// True if the kernel has the netem qdisc (tried on the loopback of namespace `netns`).
fn netem_available(netns: &str) -> bool {
    let ok =
        run_ip(&["netns", "exec", netns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
            .is_ok();
    if ok {
        let _ = run_ip(&["netns", "exec", netns, "tc", "qdisc", "del", "dev", "lo", "root"]);
    }
    ok
}

/// Makes the fabric planned in `dir/fabric.json` (tearing down any leftover of it first),
/// with the links of `dir/links.json`, and starts the shaper (`exe testnet shaper --fabric
/// DIR`). Returns the state with what it made.
pub fn setup(dir: &Path, exe: &Path) -> Result<FabricState> {
    require_root()?;
    teardown(dir)?;
    let mut state = FabricState::load(dir)?;
    let result = make(dir, exe, &mut state);
    if let Err(e) = result {
        let _ = teardown(dir);
        return Err(e);
    }
    Ok(state)
}

fn make(dir: &Path, exe: &Path, state: &mut FabricState) -> Result<()> {
    let table = LinkTable::load(dir)?;
    if table.nodes != state.nodes.len() {
        return Err(TestnetError::refused(format!(
            "{LINKS_FILE} has {} nodes, the fabric {}",
            table.nodes,
            state.nodes.len()
        )));
    }
    let file = Path::new(ID_DIR).join(state.id.to_string());
    if let Ok(owner) = std::fs::read_to_string(&file) {
        if owner.trim() != dir.to_string_lossy() {
            return Err(TestnetError::refused(format!("fabric id {} is now reserved by the testnet in {}: delete this one with `down --clean` and start afresh",
                state.id,
                owner.trim())));
        }
    } else {
        std::fs::create_dir_all(ID_DIR).io("creating", ID_DIR)?;
        std::fs::write(&file, format!("{}\n", dir.display())).io("writing", &file)?;
    }
    if !state.made.contains(&Made::IdFile(file.clone())) {
        state.record(dir, Made::IdFile(file))?;
    }
    for (i, node) in state.nodes.clone().into_iter().enumerate() {
        state.record(dir, Made::Netns(node.netns.clone()))?;
        run_ip(&["netns", "add", &node.netns])?;
        run_ip(&["-n", &node.netns, "link", "set", "lo", "up"])?;
        state.record(dir, Made::HostLink(node.host_link.clone()))?;
        let inner = format!("qm{}n{i}", state.id);
        run_ip(&[
            "link",
            "add",
            &node.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "netns",
            &node.netns,
        ])?;
        run_ip(&["addr", "add", &format!("{}/30", node.host_ip), "dev", &node.host_link])?;
        run_ip(&["link", "set", &node.host_link, "up"])?;
        run_ip(&["-n", &node.netns, "addr", "add", &format!("{}/30", node.node_ip), "dev", &inner])?;
        run_ip(&["-n", &node.netns, "link", "set", &inner, "up"])?;
    }
    if let Some(first) = state.nodes.first() {
        state.netem = Some(netem_available(&first.netns));
    }
    // The shaper: its own process group, so it outlives `up` like the nodes.
    let _ = std::fs::remove_file(dir.join(APPLIED_FILE));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(SHAPER_LOG))
        .io("opening", dir.join(SHAPER_LOG))?;
    let mut cmd = Command::new(exe);
    cmd.args(["testnet", "shaper", "--fabric"]).arg(dir);
    cmd.stdin(Stdio::null()).stdout(log.try_clone().io("opening", dir.join(SHAPER_LOG))?).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child =
        cmd.spawn().map_err(|source| TestnetError::Spawn { what: "the shaper".into(), source })?;
    state.shaper_pid = Some(child.id());
    state.save(dir)?;
    let start = Instant::now();
    loop {
        if applied(dir) == Some(table.generation) {
            break;
        }
        let exited = child
            .try_wait()
            .map_err(|source| TestnetError::Os { action: "waiting for the shaper".into(), source })?;
        if let Some(status) = exited {
            return Err(TestnetError::failed(format!(
                "the shaper exited with {status}: see {}",
                dir.join(SHAPER_LOG).display()
            )));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(TestnetError::failed(format!(
                "the shaper did not come up within 20 s: see {}",
                dir.join(SHAPER_LOG).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reaped by whoever outlives it; detach.
    std::mem::forget(child);
    Ok(())
}

/// The link table generation the shaper last applied.
pub fn applied(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(APPLIED_FILE)).ok()?.trim().parse().ok()
}

/// Writes a new link table and waits (5 s at most) until the shaper applies it.
pub fn apply(dir: &Path, table: &LinkTable) -> Result<()> {
    table.save(dir)?;
    let start = Instant::now();
    while !matches!(applied(dir), Some(g) if g >= table.generation) {
        if start.elapsed() > Duration::from_secs(5) {
            return Err(TestnetError::failed(format!(
                "the shaper did not apply link table generation {} within 5 s (is it running? see {})",
                table.generation,
                dir.join(SHAPER_LOG).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// Removes everything the fabric in `dir` made (no-op without `fabric.json`): kills the
/// shaper and any of this testnet's processes left in its namespaces, deletes the veth pairs
/// and namespaces (their TAP devices go with them) and the id reservation. What was removed is
/// taken off `made` as it goes, so an interrupted teardown resumes.
pub fn teardown(dir: &Path) -> Result<Vec<String>> {
    if !dir.join(FABRIC_FILE).exists() {
        return Ok(Vec::new());
    }
    let mut state = FabricState::load(dir)?;
    let mut removed = Vec::new();
    let needle = dir.to_string_lossy().into_owned();
    if let Some(pid) = state.shaper_pid {
        if super::process_alive(pid, &needle) {
            kill9(pid);
            let start = Instant::now();
            while super::process_alive(pid, &needle) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            removed.push(format!("shaper (pid {pid})"));
        }
        state.shaper_pid = None;
        state.save(dir)?;
    }
    let mut errors = Vec::new();
    while let Some(made) = state.made.last().cloned() {
        let result = match &made {
            Made::Netns(name) => remove_netns(name, &needle),
            Made::HostLink(name) => {
                if link_exists(name) {
                    run_ip(&["link", "del", name])
                } else {
                    Ok(())
                }
            }
            Made::IdFile(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).io("deleting", path),
                _ => Ok(()),
            },
        };
        match result {
            Ok(()) => removed.push(match &made {
                Made::Netns(n) => format!("namespace {n}"),
                Made::HostLink(n) => format!("veth {n}"),
                Made::IdFile(p) => format!("{}", p.display()),
            }),
            Err(e) => errors.push(e.chain().to_string()),
        }
        state.made.pop();
        state.save(dir)?;
    }
    if !errors.is_empty() {
        return Err(TestnetError::Context {
            context: format!("tearing down the namespaces of {}", dir.display()),
            source: Box::new(TestnetError::Several(errors)),
        });
    }
    Ok(removed)
}

/// Deletes namespace `name` after killing the processes of this testnet left in it; refuses
/// (leaving it) when a process that is not this testnet's runs there.
fn remove_netns(name: &str, needle: &str) -> Result<()> {
    if !netns_exists(name) {
        return Ok(());
    }
    let pids = ip_output(&["netns", "pids", name]).unwrap_or_default();
    for pid in pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        if super::process_alive(pid, needle) {
            kill9(pid);
        } else if Path::new(&format!("/proc/{pid}")).exists() {
            return Err(TestnetError::refused(format!(
                "namespace {name} holds process {pid}, which is not this testnet's: left in place"
            )));
        }
    }
    run_ip(&["netns", "del", name])
}

/// Paths [`super::clean`] may delete besides the node directories.
pub const FILES: [&str; 7] =
    [FABRIC_FILE, "fabric.json.tmp", LINKS_FILE, "links.json.tmp", APPLIED_FILE, "shaper.tmp", SHAPER_LOG];
