//! `quarry bench-hash`: the machine's block-hashing rate beside an OpenSSL reference.

use super::{default_threads, BenchHashArgs};
use crate::miner::kernel::Kernel;
use crate::miner::template::BlockTemplate;
use crate::miner::{HashRate, Miner, MinerConfig};
use crate::primitives::{Amount, Hash256, Script};
use anyhow::{bail, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// OpenSSL's single-stream SHA-256 (SHA-NI when present) on 16 KiB blocks, in bytes/s.
fn openssl_sha256_bytes_per_sec(seconds: u32) -> Result<f64, String> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-bytes", "16384", "-seconds", &seconds.to_string()])
        .output()
        .map_err(|e| format!("cannot run openssl ({e}); install it or pass --no-openssl"))?;
    if !out.status.success() {
        return Err(format!("openssl speed failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line reads e.g. "sha256     1732345.86k" (thousands of bytes per second).
    let line = text.lines().rev().find(|l| l.trim_start().starts_with("sha256")).ok_or("no sha256 line")?;
    let field = line.split_whitespace().last().ok_or("empty sha256 line")?;
    let k: f64 = field.trim_end_matches('k').parse().map_err(|_| format!("cannot parse {field:?}"))?;
    Ok(k * 1000.0)
}

fn mhs(x: f64) -> String {
    format!("{:.2} M/s", x / 1e6)
}

/// Runs the measurement and prints the report.
pub fn run(args: &BenchHashArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600], got {}", args.seconds);
    }
    let kernel = match args.kernel.as_str() {
        "portable" => Kernel::Portable,
        "shani" if Kernel::detect() != Kernel::ShaNi => {
            bail!("--kernel shani: this CPU lacks SHA-NI (use --kernel auto or portable)")
        }
        _ => Kernel::detect(),
    };
    println!("kernel          {}", kernel.name());
    println!("threads         {threads}");
    let miner = Miner::start(MinerConfig { kernel, ..MinerConfig::new(threads) });
    // bits 0x03000001 (target 1): nothing is ever found, the threads only hash.
    miner.set_template(BlockTemplate::new(
        Hash256([1; 32]),
        1,
        1,
        0x0300_0001,
        Script::default(),
        Amount::ZERO,
        vec![],
    ));
    std::thread::sleep(Duration::from_millis(500));
    let (before, t0) = (miner.hashes(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let rate = HashRate::between(&before, &miner.hashes(), t0.elapsed());
    drop(miner);
    for (i, r) in rate.per_thread.iter().enumerate() {
        println!("thread {i:<8} {} nonces", mhs(*r));
    }
    println!("total           {} nonces", mhs(rate.total));
    if args.no_openssl {
        return Ok(());
    }
    match openssl_sha256_bytes_per_sec(2) {
        Ok(bytes) => {
            let ceiling = bytes / 64.0 / 2.0; // two compressions per nonce
            let per_thread = rate.total / threads as f64;
            println!(
                "openssl sha256  {:.2} GB/s single stream = {} compressions = {} nonces ceiling per core",
                bytes / 1e9,
                mhs(bytes / 64.0),
                mhs(ceiling)
            );
            println!("ratio           {:.2}x the OpenSSL ceiling per thread", per_thread / ceiling);
        }
        Err(e) => println!("openssl         not measured: {e}"),
    }
    Ok(())
}
