//! `ganforge serve`: the image page, its API and the dashboard of a run.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use ganforge::device::parse_device;

#[derive(Args)]
pub struct ServeArgs {
    /// Run folder to serve (it may still be training).
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "model")]
    run: Option<PathBuf>,
    /// Serve one generator file instead, no run folder needed (a checkpoint's g.safetensors or
    /// an exported model.safetensors): the page and the API, without the dashboard's data.
    #[arg(long, value_name = "FILE.safetensors", conflicts_with = "run")]
    model: Option<PathBuf>,
    /// Address to listen on (loopback by default: the page is not exposed unless asked).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: ServeArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let (server, what) = match (&a.run, &a.model) {
        (Some(run), _) => (ganforge_serve::server::spawn(run, a.addr, device)?, run),
        (None, Some(file)) => (ganforge_serve::server::spawn_model(file, a.addr, device, Default::default())?, file),
        (None, None) => bail!("--run or --model is needed"),
    };
    eprintln!("serving {} at http://{}/ (dashboard: http://{}/dashboard); Ctrl-C stops", what.display(), server.addr, server.addr);
    println!("http://{}/", server.addr);
    server.wait();
    Ok(())
}
