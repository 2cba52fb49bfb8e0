//! `quarry testnet shaper`: the data plane of a `--hosts netns` testnet. One TAP device per
//! node, moved into the node's namespace and given its P2P address; this process holds every
//! TAP's file descriptor and is the Ethernet switch between them (learning source MACs,
//! flooding broadcasts and unknown destinations). Each frame from node a to node b passes the
//! a->b direction of their link ([`super::links`]): dropped (cut, loss, full queue) or held
//! until its delivery time, so TCP in the namespaces sees real delay, jitter, loss, bandwidth
//! and cuts. The kernel's netem is not needed (this machine's kernel has none).
//!
//! Control: the testnet writes `links.json`; this process polls it every 20 ms, applies a new
//! generation (a link that becomes cut loses the frames in flight on it) and writes the
//! generation to `shaper.applied`, which is also its readiness signal. It runs until killed
//! or until `fabric.json` is deleted; its TAP devices vanish with it (and with their
//! namespaces).

use super::error::{Result, ResultExt, TestnetError};
use super::hosts::{run_ip, FabricState};
use super::links::{Direction, LinkTable, APPLIED_FILE};
use rand::Rng;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// Largest frame read from a TAP (its MTU is 1500).
const FRAME_MAX: usize = 65_536;

/// Opens (creating) the TAP device `name` in this process's namespace.
fn open_tap(name: &str) -> Result<File> {
    if name.is_empty() || name.len() > 15 {
        return Err(TestnetError::refused(format!("TAP name {name:?} must be 1 to 15 bytes")));
    }
    let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").map_err(|source| {
        TestnetError::Os { action: "opening /dev/net/tun (the TUN/TAP driver; needs root)".into(), source }
    })?;
    // struct ifreq: the name (16 bytes), then the flags (a short) in the union.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: `ifr` is a properly sized ifreq buffer that outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    if r != 0 {
        let source = std::io::Error::last_os_error();
        return Err(TestnetError::Os { action: format!("creating TAP device {name}"), source });
    }
    Ok(f)
}

/// A frame waiting for its delivery time on one output port.
struct Pending {
    at: Duration,
    seq: u64,
    from: usize,
    /// The cut epoch of its link when it was sent: a cut since then drops it.
    epoch: u64,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // A max-heap: the earliest delivery first.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Link state shared by the threads.
struct Fabric {
    table: LinkTable,
    /// Per ordered pair (from * n + to): the direction's queue state.
    dirs: Vec<Direction>,
    /// Per unordered pair index: bumped each time the link becomes cut.
    epochs: Vec<u64>,
    /// Learnt MAC -> port.
    macs: HashMap<[u8; 6], usize>,
    seq: u64,
}

struct Port {
    heap: Mutex<BinaryHeap<Pending>>,
    wake: Condvar,
}

/// Runs the shaper for the fabric in `dir` until killed.
pub fn run(dir: &Path) -> Result<()> {
    let state = FabricState::load(dir)?;
    let table = LinkTable::load(dir)?;
    let n = state.nodes.len();
    if table.nodes != n {
        return Err(TestnetError::refused(format!("links.json has {} nodes, the fabric {n}", table.nodes)));
    }
    let mut taps = Vec::new();
    for node in &state.nodes {
        let tap = open_tap(&node.tap)?;
        run_ip(&["link", "set", &node.tap, "netns", &node.netns])?;
        run_ip(&["-n", &node.netns, "addr", "add", &format!("{}/24", node.data_ip), "dev", &node.tap])?;
        run_ip(&["-n", &node.netns, "link", "set", &node.tap, "up"])?;
        taps.push(Arc::new(tap));
    }
    let origin = Instant::now();
    let fabric = Arc::new(Mutex::new(Fabric {
        epochs: vec![0; table.links.len()],
        dirs: vec![Direction::default(); n * n],
        table,
        macs: HashMap::new(),
        seq: 0,
    }));
    let ports: Arc<Vec<Port>> = Arc::new(
        (0..n).map(|_| Port { heap: Mutex::new(BinaryHeap::new()), wake: Condvar::new() }).collect(),
    );
    for (i, tap) in taps.iter().enumerate() {
        let (tap_r, fabric_r, ports_r) = (tap.clone(), fabric.clone(), ports.clone());
        std::thread::Builder::new()
            .name(format!("shaper-rx-{i}"))
            .spawn(move || receive(i, &tap_r, &fabric_r, &ports_r, origin))
            .map_err(|source| TestnetError::Spawn { what: format!("thread shaper-rx-{i}"), source })?;
        let (tap_w, fabric_w, ports_w) = (tap.clone(), fabric.clone(), ports.clone());
        std::thread::Builder::new()
            .name(format!("shaper-tx-{i}"))
            .spawn(move || transmit(i, &tap_w, &fabric_w, &ports_w, origin))
            .map_err(|source| TestnetError::Spawn { what: format!("thread shaper-tx-{i}"), source })?;
    }
    let generation = fabric.lock().map_err(|_| TestnetError::failed("poisoned"))?.table.generation;
    write_applied(dir, generation)?;
    eprintln!("shaper: {n} ports up, link table generation {generation}");
    control(dir, &fabric, &ports)
}

fn write_applied(dir: &Path, generation: u64) -> Result<()> {
    let path = dir.join(APPLIED_FILE);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, generation.to_string()).io("writing", &tmp)?;
    std::fs::rename(&tmp, &path).io("writing", &path)?;
    Ok(())
}

/// Polls `links.json` and applies new generations.
fn control(dir: &Path, fabric: &Mutex<Fabric>, ports: &[Port]) -> Result<()> {
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if !dir.join(super::hosts::FABRIC_FILE).exists() {
            // The testnet was cleaned (e.g. after `up` died before recording this process).
            eprintln!("shaper: {} is gone: exiting", dir.join(super::hosts::FABRIC_FILE).display());
            return Ok(());
        }
        let table = match LinkTable::load(dir) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shaper: {} (keeping the current links)", e.chain());
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let mut f = fabric.lock().map_err(|_| TestnetError::failed("poisoned"))?;
        if table.generation == f.table.generation {
            continue;
        }
        if table.nodes != f.table.nodes {
            eprintln!("shaper: links.json now has {} nodes, not {}: ignored", table.nodes, f.table.nodes);
            continue;
        }
        let newly_cut: Vec<usize> = (table.links.iter().zip(&f.table.links).enumerate())
            .filter(|(_, (new, old))| new.cut && !old.cut)
            .map(|(i, _)| i)
            .collect();
        for i in newly_cut {
            f.epochs[i] += 1;
        }
        for (new, old) in table.links.iter().zip(&f.table.links) {
            if new != old {
                eprintln!(
                    "shaper: link {}-{}: {}{}",
                    new.a,
                    new.b,
                    new.params.describe(),
                    if new.cut { ", cut" } else { "" }
                );
            }
        }
        let generation = table.generation;
        f.table = table;
        drop(f);
        // Wake every transmitter so frames of newly cut links are discarded at once.
        for p in ports {
            p.wake.notify_all();
        }
        write_applied(dir, generation)?;
    }
}

fn receive(i: usize, tap: &File, fabric: &Mutex<Fabric>, ports: &[Port], origin: Instant) {
    let mut buf = vec![0u8; FRAME_MAX];
    let mut rng = rand::thread_rng();
    loop {
        let len = match (&*tap).read(&mut buf) {
            Ok(0) => return,
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("shaper: reading port {i}: {e}");
                return;
            }
        };
        if len < 14 {
            continue;
        }
        let frame = &buf[..len];
        let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
        let src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        let now = origin.elapsed();
        let Ok(mut f) = fabric.lock() else { return };
        let n = f.table.nodes;
        if src[0] & 1 == 0 {
            f.macs.insert(src, i);
        }
        let targets: Vec<usize> = match f.macs.get(&dst) {
            Some(&j) if dst[0] & 1 == 0 => vec![j],
            _ => (0..n).filter(|&j| j != i).collect(),
        };
        for j in targets {
            if j == i {
                continue;
            }
            let Some(link) = f.table.get(i, j).copied() else { continue };
            let pair = super::links::pair_index(n, i, j);
            let epoch = f.epochs[pair];
            let (loss, jitter) = (rng.gen::<f64>(), rng.gen::<f64>());
            let Some(at) = f.dirs[i * n + j].admit(&link.params, link.cut, now, len, loss, jitter) else {
                continue;
            };
            f.seq += 1;
            let seq = f.seq;
            let Ok(mut heap) = ports[j].heap.lock() else { return };
            heap.push(Pending { at, seq, from: i, epoch, frame: frame.to_vec() });
            drop(heap);
            ports[j].wake.notify_one();
        }
    }
}

fn transmit(j: usize, tap: &File, fabric: &Mutex<Fabric>, ports: &[Port], origin: Instant) {
    let port = &ports[j];
    // Sum of the cut epochs last seen: when it moves, frames of newly cut links are purged.
    let mut seen_epochs = 0u64;
    loop {
        let due = {
            let Ok(mut heap) = port.heap.lock() else { return };
            loop {
                if let Ok(mut f) = fabric.try_lock() {
                    let total: u64 = f.epochs.iter().sum();
                    if total != seen_epochs {
                        seen_epochs = total;
                        let n = f.table.nodes;
                        let (kept, gone): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut *heap)
                            .into_vec()
                            .into_iter()
                            .partition(|p| f.epochs[super::links::pair_index(n, p.from, j)] == p.epoch);
                        for p in &gone {
                            f.dirs[p.from * n + j].done();
                        }
                        *heap = kept.into();
                    }
                }
                let now = origin.elapsed();
                match heap.peek() {
                    Some(p) if p.at <= now => break heap.pop(),
                    Some(p) => {
                        let wait = p.at - now;
                        let Ok((h, _)) = port.wake.wait_timeout(heap, wait) else { return };
                        heap = h;
                    }
                    None => {
                        let Ok((h, _)) = port.wake.wait_timeout(heap, Duration::from_millis(200)) else {
                            return;
                        };
                        heap = h;
                    }
                }
            }
        };
        let Some(p) = due else { continue };
        if let Ok(mut f) = fabric.lock() {
            let n = f.table.nodes;
            f.dirs[p.from * n + j].done();
            if f.epochs[super::links::pair_index(n, p.from, j)] != p.epoch {
                continue;
            }
        }
        if let Err(e) = (&*tap).write_all(&p.frame) {
            // A full TAP queue or a namespace going away: the frame is lost, as on a wire.
            eprintln!("shaper: writing port {j}: {e}");
        }
    }
}
