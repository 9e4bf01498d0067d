//! `ganforge export`: a run's DCGAN as a state dict of PyTorch's DCGAN example.

use std::path::PathBuf;

use anyhow::{bail, Result};
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
    /// pth: a state dict of PyTorch's DCGAN example; hf: a folder for the Hugging Face hub
    /// (model.safetensors, config.json, a README model card, sample.png).
    #[arg(long, default_value = "pth", value_parser = ["pth", "hf"])]
    format: String,
    /// The model card's licence (the hub's identifiers: mit, apache-2.0, cc-by-4.0, other).
    #[arg(long, default_value = "other", value_name = "ID")]
    license: String,
    /// The .pth file (or, with --format hf, the folder) to write.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    if a.format == "hf" {
        if a.net != "g" {
            bail!("--format hf exports the generator; leave out --net d");
        }
        let run = RunDir::open(&a.run)?;
        let files = ganforge::run::hf::export(&run, a.checkpoint.as_deref(), &a.out, &a.license)?;
        for f in &files {
            eprintln!("wrote {}", f.display());
        }
        println!("{}", a.out.display());
        return Ok(());
    }
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
