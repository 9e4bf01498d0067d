//! `ganforge serve`: the image page, its API and the dashboard of a run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use ganforge::device::parse_device;

#[derive(Args)]
pub struct ServeArgs {
    /// Run folder to serve (it may still be training).
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// Address to listen on (loopback by default: the page is not exposed unless asked).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: ServeArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let server = ganforge_serve::server::spawn(&a.run, a.addr, device)?;
    eprintln!("serving {} at http://{}/ (dashboard: http://{}/dashboard); Ctrl-C stops", a.run.display(), server.addr, server.addr);
    println!("http://{}/", server.addr);
    server.wait();
    Ok(())
}
