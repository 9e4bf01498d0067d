//! `ganforge export`: a run's DCGAN as a state dict of PyTorch's DCGAN example.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use ganforge::interop::dcgan;
use ganforge::run::RunDir;

#[derive(Args)]
pub struct ExportArgs {
    /// Run folder whose latest checkpoint is exported.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// A checkpoint folder of the run instead of its latest.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Which network: g or d.
    #[arg(long, default_value = "g", value_parser = ["g", "d"])]
    net: String,
    /// The .pth file to write.
    #[arg(long, value_name = "FILE.pth")]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    use ganforge::params::load_module;
    let device = ganforge::burn::tensor::Device::flex();
    let run = RunDir::open(&a.run)?;
    let cfg = run.config()?;
    let dir = match a.checkpoint {
        Some(d) => d,
        None => run.latest_checkpoint()?,
    };
    let (g, d) = ganforge::nets::build(&cfg.families(), cfg.seed, &device);
    if a.net == "g" {
        let g = load_module(g, &dir.join("g.safetensors"))?;
        dcgan::export(&g, dcgan::Net::G, &cfg, &a.out)?;
    } else {
        let d = load_module(d, &dir.join("d.safetensors"))?;
        dcgan::export(&d, dcgan::Net::D, &cfg, &a.out)?;
    }
    println!("{}", a.out.display());
    eprintln!(
        "{} of {} as PyTorch's DCGAN example names it (nz {}, ngf {}, ndf {}, nc {})",
        a.net.to_uppercase(),
        dir.display(),
        cfg.model.nz,
        cfg.dcgan.ngf,
        cfg.dcgan.ndf,
        cfg.model.channels
    );
    Ok(())
}
