//! `ganforge report`: one self-contained HTML page of a run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct ReportArgs {
    /// Run folder.
    run: PathBuf,
    /// Output file (default: RUN_DIR/report.html).
    #[arg(long, value_name = "FILE.html")]
    out: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let html = ganforge_serve::report::build(&a.run)?;
    let out = a.out.unwrap_or_else(|| a.run.join("report.html"));
    ganforge::fsutil::write_atomic(&out, html.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}
