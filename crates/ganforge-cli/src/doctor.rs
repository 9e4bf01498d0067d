//! `ganforge doctor`: what the doctor finds in a run, with evidence and remedies.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use ganforge::device::parse_device;

#[derive(Args)]
pub struct DoctorArgs {
    /// Run folder to examine.
    run: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: DoctorArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let exam = ganforge::doctor::examine_run(&a.run, &device)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&exam)?);
        return Ok(());
    }
    let show =
        |f: &ganforge::doctor::Finding| println!("{}: step {}\n  evidence: {}\n  remedy:   {}", f.kind, f.step, f.evidence, f.remedy);
    if exam.findings.is_empty() {
        println!("no problems found now in {}", a.run.display());
    }
    exam.findings.iter().for_each(show);
    if !exam.logged.is_empty() {
        println!("\nlogged during training (the latest of each kind; it may have passed since):");
        exam.logged.iter().for_each(show);
    }
    for n in &exam.notes {
        println!("note: {n}");
    }
    Ok(())
}
