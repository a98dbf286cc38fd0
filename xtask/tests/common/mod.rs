//! What the tests of the xtask binary share: running the binary itself, and both of its output
//! streams for the message of a failed assertion.

use std::process::{Command, Output};

/// Runs the xtask binary with `arguments`, without a backtrace in what it prints.
pub(crate) fn xtask(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(arguments)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("xtask runs")
}

/// What a run printed, both streams.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
