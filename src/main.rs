//! The `quarry` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tune_malloc();
    // `quarry --network dev rpc ...` as well as `quarry rpc --network dev ...`.
    let cli =
        quarry::cli::Cli::parse_from(quarry::cli::argv::hoist_leading_options(std::env::args_os().collect()));
    // The node logs its progress by default; one-shot commands only warnings. RUST_LOG wins.
    let default = if matches!(cli.command, quarry::cli::Command::Node(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match quarry::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc's malloc, set up for a process with dozens of threads (tokio workers, rayon,
/// RocksDB, miners): by default it grows up to 8 arenas per core and keeps what threads
/// free, which left a node with 1,000,000 UTXOs and a full mempool at ~600 MiB RSS for
/// ~300 MiB of caches (BENCHMARKS.md, "Memory and disk at 1,000,000 UTXOs"). Two arenas, and
/// freed memory above 256 KiB handed back to the kernel, brought it to ~300 MiB at the same
/// admission rate. Called first, before any thread exists (mallopt is not thread-safe
/// against a running allocator's arena creation). `MALLOC_ARENA_MAX` and friends in the
/// environment still win: glibc reads them when malloc first runs, and this only sets what
/// they leave at the default.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const KIB_256: libc::c_int = 256 << 10;
        let set = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only changes glibc's malloc parameters; no thread has started yet.
        unsafe {
            if set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, KIB_256);
            }
            if set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, KIB_256);
            }
        }
    }
}
