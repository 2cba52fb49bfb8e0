//! `quarry bench-durability --power-cuts N`: what a power cut costs a node, without and with
//! `--sync-writes`. Needs root (a loop device and mount).
//!
//! The node's data directory is an ext4 file system in an image file, on a loop device.
//! Each cut: the node is started, blocks are generated one per `generatetoaddress` call (the
//! height of the last answered call is what the node acknowledged), then power is cut by
//! `ioctl(FS_IOC_SHUTDOWN, FS_GOING_DOWN_NOLOGFLUSH)` on the mount: the file system stops at
//! once and drops everything not yet on the device (dirty pages and the uncommitted journal),
//! as a power cut does. The node is SIGKILLed, the file system unmounted and mounted again
//! (journal replay), and the node restarted: it must start, and its tip is compared with the
//! acknowledged height (the blocks lost). Then it is stopped and the chainstate checked in
//! this process as `quarry chain verify` checks it ([`crate::chain::verify`]): the UTXO set
//! must equal a rebuild of the stored active chain from genesis. Everything is unmounted and the loop device detached when the
//! command ends, also on error (a guard).

use super::{regtest_address, Cluster, Rpc};
use crate::consensus::Network;
use crate::rpc::api::QuarryApiClient;
use anyhow::{bail, Context, Result};
use rand::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `quarry bench-durability` options.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchDurabilityArgs {
    /// Power cuts in each mode (without and with --sync-writes).
    #[arg(long, default_value_t = 5)]
    pub power_cuts: u32,
    /// Size of the ext4 image, MiB.
    #[arg(long, default_value_t = 256)]
    pub image_mib: u64,
    /// Seconds of block generation before each cut: a random time from half this to this.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Only this mode: `off` (the default writes) or `on` (`--sync-writes`).
    #[arg(long, value_parser = ["off", "on"])]
    pub only: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Keep the work directory (unmounted) afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// `_IOR('X', 125, __u32)` from linux/fs.h.
const FS_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
/// Shut down without flushing the journal: what was not on the device is gone.
const FS_GOING_DOWN_NOLOGFLUSH: u32 = 2;

/// One power cut.
#[derive(Clone, Debug, Serialize)]
pub struct Cut {
    /// `--sync-writes` on.
    pub sync_writes: bool,
    /// Height of the last block the node acknowledged (generatetoaddress answered).
    pub acked: u64,
    /// Height after the restart.
    pub after: u64,
    /// Acknowledged blocks lost.
    pub lost: u64,
    /// Blocks generated per second before the cut (one per call).
    pub blocks_per_s: f64,
    /// Seconds from start to answering RPC after the cut.
    pub restart_s: f64,
    /// `quarry chain verify` passes: the UTXO set equals the rebuild from the stored blocks,
    /// at the node's tip.
    pub consistent: bool,
    /// What `quarry chain verify` found wrong, if anything.
    pub problems: Vec<String>,
}

/// The loop device and mount; unmounted and detached on drop.
struct Mount {
    image: PathBuf,
    device: String,
    point: PathBuf,
    mounted: bool,
}

fn run_tool(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Mount {
    /// Makes an ext4 image of `mib` MiB at `image`, attaches it and mounts it at `point`.
    fn create(image: &Path, mib: u64, point: &Path) -> Result<Mount> {
        let file = std::fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
        file.set_len(mib << 20)?;
        drop(file);
        run_tool(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image))?;
        let device = run_tool(Command::new("losetup").args(["--find", "--show"]).arg(image))?;
        std::fs::create_dir_all(point)?;
        let mut m = Mount { image: image.to_path_buf(), device, point: point.to_path_buf(), mounted: false };
        m.mount()?;
        Ok(m)
    }

    /// Mounts the device, and checks a file can be written there.
    fn mount(&mut self) -> Result<()> {
        run_tool(Command::new("mount").args(["-t", "ext4", &self.device]).arg(&self.point))?;
        self.mounted = true;
        let probe = self.point.join(".mount-probe");
        std::fs::write(&probe, b"probe")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| format!("{} mounted at {} takes no writes", self.device, self.point.display()))
    }

    /// Unmounts, detaches the loop device and mounts the image again on a fresh one (journal
    /// replay): mounting the same device again right after the shutdown can bind the
    /// shut-down file system the kernel is still tearing down (every write then fails with
    /// EIO, seen in 2 of 23 cuts).
    fn remount(&mut self) -> Result<()> {
        self.unmount()?;
        run_tool(Command::new("losetup").args(["-d", &self.device]))?;
        self.device = run_tool(Command::new("losetup").args(["--find", "--show"]).arg(&self.image))?;
        self.mount()
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            run_tool(Command::new("umount").arg(&self.point))?;
            self.mounted = false;
        }
        Ok(())
    }

    /// The power cut: the file system stops where the device is.
    fn cut(&self) -> Result<()> {
        let dir =
            std::fs::File::open(&self.point).with_context(|| format!("opening {}", self.point.display()))?;
        let flag = FS_GOING_DOWN_NOLOGFLUSH;
        // SAFETY: FS_IOC_SHUTDOWN reads one u32 through the pointer, which lives across the
        // call; the descriptor is open.
        let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&dir), FS_IOC_SHUTDOWN as _, &flag) };
        if rc != 0 {
            bail!("FS_IOC_SHUTDOWN on {}: {}", self.point.display(), std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..20 {
            match self.unmount() {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("bench-durability: {e:#}; retrying");
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
        if let Err(e) = run_tool(Command::new("losetup").args(["-d", &self.device])) {
            eprintln!("bench-durability: detaching {} ({}): {e:#}", self.device, self.image.display());
        }
    }
}

/// The cluster and the mount, torn down in order: nodes killed, then the file system
/// unmounted and detached, then the work directory removed.
struct Bench {
    mount: Option<Mount>,
    cluster: Cluster,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.cluster.nodes.clear();
        self.mount.take();
    }
}

/// Why the command cannot run here, if it cannot (not root, a tool missing).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("bench-durability needs root (it makes a loop device, mounts it and shuts the file system down): run it as root, e.g. with sudo".into());
    }
    for tool in ["mkfs.ext4", "losetup", "mount", "umount"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!(
                "bench-durability needs {tool} (Debian: apt-get install e2fsprogs mount; scripts/setup-deps installs them)"
            ));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("bench-durability needs loop devices (/dev/loop-control is missing: in a container, run it on the host or a VM)".into());
    }
    None
}

/// Generates blocks one per call until stopped or the node stops answering; the height of
/// the last answered call is in `acked`.
fn generate(rpc: Rpc, address: String, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match rpc.wait(rpc.generatetoaddress(1, address.clone())) {
            Ok(_) => {
                if let Ok(h) = rpc.wait(rpc.getblockcount()) {
                    acked.fetch_max(h as u64, Ordering::SeqCst);
                }
            }
            Err(_) => return,
        }
    }
}

/// One cycle: start, generate, cut, kill, remount, restart, check.
fn cycle(bench: &mut Bench, sync: bool, seconds: f64) -> Result<Cut> {
    let extra: &[&str] = if sync { &["--sync-writes"] } else { &[] };
    let (index, rpc) = bench.cluster.start("a", extra)?;
    let start_height = rpc.wait(rpc.getblockcount())? as u64;
    let acked = Arc::new(AtomicU64::new(start_height));
    let stop = Arc::new(AtomicBool::new(false));
    let target = super::RpcTarget {
        name: "a",
        config: crate::rpc::client::RpcConfig::new(
            bench.cluster.nodes[index].rpc,
            &bench.cluster.nodes[index].datadir,
            None,
        )
        .timeout(Duration::from_secs(10)),
    };
    let generator = {
        let (rpc, acked, stop) = (Rpc::new(target)?, acked.clone(), stop.clone());
        std::thread::spawn(move || generate(rpc, regtest_address(0), acked, stop))
    };
    let run = Duration::from_secs_f64(rand::thread_rng().gen_range(seconds / 2.0..=seconds));
    let t = Instant::now();
    std::thread::sleep(run);
    let before = acked.load(Ordering::SeqCst);
    let mount = bench.mount.as_mut().expect("mounted while the bench runs");
    mount.cut()?;
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    bench.cluster.nodes.pop(); // SIGKILL, reaped
    let _ = generator.join();
    mount.remount()?;
    let t = Instant::now();
    let (index, rpc) = bench.cluster.start("a", extra)?;
    let restart_s = t.elapsed().as_secs_f64();
    let after = rpc.wait(rpc.getblockcount())? as u64;
    rpc.wait(rpc.stop())?;
    let node = &mut bench.cluster.nodes[index];
    let _ = node.child.wait();
    // What `quarry chain verify` checks: the UTXO set equals a rebuild of the stored active
    // chain from genesis, and the supply adds up.
    let chainstate = node.datadir.join("chainstate");
    let report = crate::chain::verify::verify_chainstate(&chainstate, Network::Regtest.params())
        .with_context(|| format!("verifying {} after the cut", chainstate.display()))?;
    let height = u64::from(report.height);
    bench.cluster.nodes.pop();
    if height != after {
        bail!("the node reported height {after} after the cut, its chainstate holds {height}");
    }
    Ok(Cut {
        sync_writes: sync,
        acked: before,
        after,
        lost: before.saturating_sub(after),
        blocks_per_s: before.saturating_sub(start_height) as f64 / elapsed,
        restart_s,
        consistent: report.ok(),
        problems: report.problems,
    })
}

/// Runs the bench and prints its report.
pub fn run(args: &BenchDurabilityArgs) -> Result<()> {
    if let Some(why) = unavailable() {
        eprintln!("{why}");
        return Ok(());
    }
    if !(1..=1_000).contains(&args.power_cuts) {
        bail!("--power-cuts must be in 1..=1000, got {}", args.power_cuts);
    }
    if !(128..=65_536).contains(&args.image_mib) {
        bail!("--image-mib must be in 128..=65536 (an empty chainstate takes ~20 MB, the node stops below 50 MB free), got {}", args.image_mib);
    }
    if !(1.0..=3_600.0).contains(&args.seconds) {
        bail!("--seconds must be in 1..=3600, got {}", args.seconds);
    }
    let modes: Vec<bool> = match args.only.as_deref() {
        Some("off") => vec![false],
        Some("on") => vec![true],
        _ => vec![false, true],
    };
    let mut cuts = Vec::new();
    for sync in modes {
        let cluster = Cluster::new(args.keep, crate::testnet::hosts::Hosts::Loopback)?;
        let mut bench = Bench { mount: None, cluster };
        let (image, point) = (bench.cluster.dir.join("disk.img"), bench.cluster.dir.join("a"));
        bench.mount = Some(Mount::create(&image, args.image_mib, &point)?);
        eprintln!(
            "quarry bench-durability: --sync-writes {}, regtest node on a {} MiB ext4 image ({}), {} power cuts",
            if sync { "on" } else { "off" },
            args.image_mib,
            bench.mount.as_ref().map_or("", |m| m.device.as_str()),
            args.power_cuts
        );
        for i in 1..=args.power_cuts {
            let cut = cycle(&mut bench, sync, args.seconds)?;
            eprintln!(
                "  cut {i}: acknowledged height {}, {} after restart: {} blocks lost; {:.0} blocks/s before; restarted in {:.2} s; chainstate {}",
                cut.acked,
                cut.after,
                cut.lost,
                cut.blocks_per_s,
                cut.restart_s,
                if cut.consistent { "consistent" } else { "INCONSISTENT" }
            );
            cuts.push(cut);
        }
    }
    for sync in [false, true] {
        let of: Vec<&Cut> = cuts.iter().filter(|c| c.sync_writes == sync).collect();
        if of.is_empty() {
            continue;
        }
        let lost: Vec<u64> = of.iter().map(|c| c.lost).collect();
        let rate = of.iter().map(|c| c.blocks_per_s).sum::<f64>() / of.len() as f64;
        eprintln!(
            "--sync-writes {}: {} cuts, blocks lost {:?} (max {}), {:.0} blocks/s, {} of {} consistent",
            if sync { "on " } else { "off" },
            of.len(),
            lost,
            lost.iter().max().unwrap_or(&0),
            rate,
            of.iter().filter(|c| c.consistent).count(),
            of.len()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cuts)?);
    }
    if let Some(bad) = cuts.iter().find(|c| !c.consistent) {
        bail!("a chainstate was inconsistent after a power cut: {bad:?}");
    }
    if let Some(bad) = cuts.iter().find(|c| c.sync_writes && c.lost > 0) {
        bail!("--sync-writes lost acknowledged blocks in a power cut: {bad:?}");
    }
    Ok(())
}
