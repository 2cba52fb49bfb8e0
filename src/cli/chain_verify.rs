//! `quarry chain verify`: prints [`crate::chain::verify::verify_chainstate`]'s report and
//! fails when the node's UTXO set differs from the rebuild.

use super::DataArgs;
use anyhow::{bail, Context, Result};

pub(super) fn run(data: &DataArgs, json: bool) -> Result<()> {
    let dir = data.chainstate_dir()?;
    let started = std::time::Instant::now();
    let report = crate::chain::verify::verify_chainstate(&dir, data.network.params())
        .with_context(|| format!("verifying the chainstate at {} (is its node stopped?)", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let best = report.utxo_best_on_disk.map_or("none".into(), |b| b.to_string());
        println!("chainstate     {}", dir.display());
        println!("tip            {} (height {})", report.tip, report.height);
        println!(
            "flushed at     {best}{}",
            if report.rolled_forward { " (rolled forward to the tip)" } else { "" }
        );
        println!(
            "node digest    {} ({} coins, {} sat)",
            report.node.hash, report.node.count, report.node.total_sat
        );
        println!(
            "rebuilt digest {} ({} coins, {} sat)",
            report.rebuilt.hash, report.rebuilt.count, report.rebuilt.total_sat
        );
        println!("issued         {} sat", report.issued_sat);
        println!("took           {:.2} s", started.elapsed().as_secs_f64());
    }
    if !report.ok() {
        bail!("the chainstate at {} does not verify: {}", dir.display(), report.problems.join("; "));
    }
    if !json {
        println!("ok: the node's UTXO set equals the rebuild from its blocks");
    }
    Ok(())
}
