//! The ports of the local stack: every one it needs is checked before anything starts (a port
//! held by another process is refused with what holds it and how to stop it), and a process
//! it starts counts as up once it listens on its port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{StoreMode, UpArgs};
use crate::paths;
use crate::process;

/// Waits until `pid` (or a process it started) listens on `port`. Fails at once when `pid`
/// has exited (a port it could not bind, a crash) or another process holds the port.
pub(super) fn wait_for_listener(port: u16, pid: u32, what: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !process::alive(pid) {
            bail!("{what} (pid {pid}) exited before it listened on 127.0.0.1:{port}");
        }
        if let Some(holder) = port_holder(port) {
            let ours =
                process::Table::read(&[]).is_ok_and(|table| table.descends_from(holder.pid, pid));
            if !ours {
                bail!(
                    "127.0.0.1:{port} was taken by {} while {what} started",
                    holder.describe()
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The process listening on a TCP port of this machine.
#[derive(Debug, Clone)]
pub(crate) struct PortHolder {
    pub pid: u32,
    pub name: String,
    /// The folder it runs in (another clone's root, for another stack's process).
    pub folder: Option<PathBuf>,
}

impl PortHolder {
    /// The clone the process belongs to, if it runs in one: its folder, or for DynamoDB Local
    /// (which runs in `<clone>/.local/dynamodb/...`) the folder above `.local`.
    fn clone_folder(&self) -> Option<PathBuf> {
        let folder = self.folder.as_ref()?;
        let local = folder
            .ancestors()
            .find(|ancestor| ancestor.file_name().is_some_and(|name| name == ".local"));
        Some(local.and_then(Path::parent).unwrap_or(folder).to_path_buf())
    }

    fn how_to_stop(&self) -> String {
        match self.clone_folder() {
            Some(clone) if clone != paths::root() => format!(
                "if it is another clone's stack, stop it there (`cargo xtask down` in {}); otherwise `kill {}`",
                clone.display(),
                self.pid
            ),
            _ => format!(
                "if it is a stack of this clone, `cargo xtask down` stops it; otherwise `kill {}`",
                self.pid
            ),
        }
    }

    fn describe(&self) -> String {
        match &self.folder {
            Some(folder) => format!(
                "{} (pid {}, running in {})",
                self.name,
                self.pid,
                folder.display()
            ),
            None => format!("{} (pid {})", self.name, self.pid),
        }
    }
}

/// Who listens on `port` (on any address), if this user can see it.
pub(crate) fn port_holder(port: u16) -> Option<PortHolder> {
    let listeners = listeners::get_all().ok()?;
    let listener = listeners.into_iter().find(|listener| {
        listener.protocol == listeners::Protocol::TCP
            && listener.state == listeners::SocketState::Listen
            && listener.socket.port() == port
    })?;
    let pid = listener.process.pid;
    Some(PortHolder {
        pid,
        name: listener.process.name,
        folder: std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
    })
}

/// Whether a process listens on `port`: binding it on the loopback address fails then, also
/// for a listener on every address (DynamoDB Local's).
fn port_taken(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// The ports a stack started with `args` listens on, and what listens on each.
pub(crate) fn ports_needed(args: &UpArgs) -> Vec<(u16, &'static str, &'static str)> {
    let mut needed = vec![
        (args.dynamodb_port, "DynamoDB Local", "--dynamodb-port"),
        (args.port, "the gateway", "--port"),
    ];
    if args.store.mode == StoreMode::Faithful {
        needed.push((
            args.faithful_port(),
            "dynamodb-faithful (DynamoDB Local's port + 1)",
            "--dynamodb-port",
        ));
    }
    needed
}

/// Refuses when any port in `needed` is taken, naming what holds each and how to stop it.
pub(super) fn refuse_taken_ports(needed: &[(u16, &str, &str)]) -> Result<()> {
    let taken: Vec<String> = needed
        .iter()
        .filter(|(port, _, _)| port_taken(*port))
        .map(|(port, what, flag)| {
            let holder = match port_holder(*port) {
                Some(holder) => format!("held by {}: {}", holder.describe(), holder.how_to_stop()),
                None => "held by a process this user cannot see".to_owned(),
            };
            format!(
                "  port {port} (for {what}) is {holder}; or start this stack elsewhere with {flag}"
            )
        })
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    bail!(
        "the local stack cannot start: ports it needs are taken\n{}",
        taken.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_refused_with_what_holds_it_and_how_to_stop_it() {
        // GIVEN a port this test process listens on (on every address, as DynamoDB Local does)
        let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let free = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        // WHEN a stack that needs it and a free one checks its ports
        let needed = [
            (free_port, "DynamoDB Local", "--dynamodb-port"),
            (port, "the gateway", "--port"),
        ];
        let error = refuse_taken_ports(&needed).unwrap_err().to_string();
        // THEN only the taken one is named, with its holder (us) and the ways out
        assert!(
            error.contains(&format!("port {port} (for the gateway)")),
            "{error}"
        );
        assert!(!error.contains(&format!("port {free_port} ")), "{error}");
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        assert!(
            error.contains(&format!("kill {}", std::process::id())),
            "{error}"
        );
        assert!(error.contains("--port"), "{error}");
        let holder = port_holder(port).unwrap();
        assert_eq!(holder.pid, std::process::id());
        drop(listener);
        assert!(refuse_taken_ports(&needed).is_ok());
    }

    #[test]
    fn a_holder_in_another_clone_is_sent_there() {
        let holder = |folder: &str| PortHolder {
            pid: 4242,
            name: "java".to_owned(),
            folder: Some(PathBuf::from(folder)),
        };
        let dynamodb = holder("/tmp/fresh-1/.local/dynamodb/package/dist");
        assert_eq!(dynamodb.clone_folder(), Some(PathBuf::from("/tmp/fresh-1")));
        assert!(dynamodb
            .how_to_stop()
            .contains("`cargo xtask down` in /tmp/fresh-1"));
        assert!(dynamodb.how_to_stop().contains("`kill 4242`"));
        let gateway = holder("/tmp/fresh-2");
        assert_eq!(gateway.clone_folder(), Some(PathBuf::from("/tmp/fresh-2")));
        let here = holder(&paths::root().join(".local/dynamodb").display().to_string());
        assert!(here.how_to_stop().contains("a stack of this clone"));
    }
}
