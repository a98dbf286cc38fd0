//! `cargo xtask loadtest` (being written).

use anyhow::{bail, Result};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: &Args) -> Result<()> {
    bail!("cargo xtask loadtest is not written yet")
}

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {}

pub fn demo(_args: &DemoArgs) -> Result<()> {
    bail!("cargo xtask demo is not written yet")
}
