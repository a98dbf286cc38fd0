//! `cargo xtask incidents` (being written).

use anyhow::{bail, Result};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {}

pub fn run(_args: &Args) -> Result<()> {
    bail!("cargo xtask incidents is not written yet")
}
