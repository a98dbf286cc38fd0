//! Processes: running a command and checking how it ended (`run`, `output`, `succeeded`),
//! signals to a process or a process group (`nix`, the system calls themselves, so no `kill`
//! command line to get wrong), and the process table with each process's parent, command, CPU
//! time and RSS (`sysinfo`).

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
pub(crate) use nix::sys::signal::Signal;
use nix::unistd::Pid;
use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// Runs `command` with this process's output, and fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Runs `command` with its output captured, and returns it; fails unless it exits
/// successfully, with what it wrote to stderr.
pub(crate) fn output(command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// Whether `command` runs and exits successfully (its output discarded).
pub(crate) fn succeeded(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends `signal` to `pid`; true if it was delivered.
pub(crate) fn signal(pid: u32, signal: Signal) -> bool {
    to_pid(pid).is_some_and(|pid| nix::sys::signal::kill(pid, signal).is_ok())
}

/// Sends `signal` to the process group `pgid`; true if it was delivered. A pgid of 0 or 1
/// would be our own group or every process we may signal, so it is refused.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> bool {
    pgid > 1 && to_pid(pgid).is_some_and(|pgid| nix::sys::signal::killpg(pgid, signal).is_ok())
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw)
}

/// Whether `pid` runs: a zombie still answers `kill -0`, so the state is read.
pub(crate) fn alive(pid: u32) -> bool {
    Table::read(&[pid]).is_ok_and(|table| table.get(pid).is_some())
}

/// Waits until `pid` has exited, up to `timeout`.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Stops the process group `pgid` and everything its leader started: SIGTERM to the group,
/// SIGKILL to the group if its leader outlives `grace`, then SIGKILL to any descendant still
/// running a few seconds later (one that left the group, or ignores TERM).
pub(crate) fn stop_tree(pgid: u32, grace: Duration) {
    let descendants: Vec<u32> = Table::read(&[])
        .map(|table| {
            table
                .iter()
                .filter(|process| process.pid != pgid && table.descends_from(process.pid, pgid))
                .map(|process| process.pid)
                .collect()
        })
        .unwrap_or_default();
    signal_group(pgid, Signal::SIGTERM);
    if !wait_gone(pgid, grace) {
        signal_group(pgid, Signal::SIGKILL);
        wait_gone(pgid, Duration::from_secs(5));
    }
    for pid in descendants {
        if !wait_gone(pid, Duration::from_secs(3)) {
            signal(pid, Signal::SIGKILL);
        }
    }
}

/// The environment of a running process.
pub(crate) fn environment_of(pid: u32) -> Result<Vec<(String, String)>> {
    let kind = ProcessRefreshKind::nothing().with_environ(UpdateKind::Always);
    let system = refreshed(&[pid], kind)?;
    let Some(process) = system.process(sysinfo::Pid::from_u32(pid)) else {
        bail!("cannot read the environment of {pid}: no such process");
    };
    Ok(process
        .environ()
        .iter()
        .filter_map(|pair| {
            let text = pair.to_string_lossy();
            let (key, value) = text.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect())
}

/// The processes `pids` (all of them when empty) with what `kind` asks for; threads are not
/// listed as processes.
fn refreshed(pids: &[u32], kind: ProcessRefreshKind) -> Result<System> {
    let mut system = System::new().context("cannot read the process table")?;
    let wanted: Vec<sysinfo::Pid> = pids
        .iter()
        .map(|pid| sysinfo::Pid::from_u32(*pid))
        .collect();
    let which = if wanted.is_empty() {
        ProcessesToUpdate::All
    } else {
        ProcessesToUpdate::Some(&wanted)
    };
    system.refresh_processes_specifics(which, true, kind.without_tasks());
    Ok(system)
}

/// One live (not zombie) process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub pid: u32,
    pub parent: Option<u32>,
    /// The kernel's short name (`comm`, at most 15 bytes).
    pub name: String,
    /// The program as started (`argv[0]`).
    pub program: String,
    /// User + system CPU time so far, in milliseconds.
    pub cpu_ms: u64,
    pub rss_kb: u64,
}

/// A snapshot of the process table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    processes: BTreeMap<u32, Process>,
}

impl Table {
    /// Every process (`pids` empty) or just these.
    pub(crate) fn read(pids: &[u32]) -> Result<Self> {
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet);
        let system = refreshed(pids, kind)?;
        let processes = system
            .processes()
            .values()
            .filter(|process| process.thread_kind().is_none())
            .filter(|process| {
                !matches!(
                    process.status(),
                    ProcessStatus::Zombie | ProcessStatus::Dead
                )
            })
            .map(|process| {
                let pid = process.pid().as_u32();
                let program = process
                    .cmd()
                    .first()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let entry = Process {
                    pid,
                    parent: process.parent().map(sysinfo::Pid::as_u32),
                    name: process.name().to_string_lossy().into_owned(),
                    program,
                    cpu_ms: process.accumulated_cpu_time(),
                    rss_kb: process.memory() / 1_024,
                };
                (pid, entry)
            })
            .collect();
        Ok(Self { processes })
    }

    pub(crate) fn get(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    /// In pid order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    /// Whether `pid` is `ancestor` or was started by it, directly or not.
    pub(crate) fn descends_from(&self, mut pid: u32, ancestor: u32) -> bool {
        for _ in 0..64 {
            if pid == ancestor {
                return true;
            }
            match self.get(pid).and_then(|process| process.parent) {
                Some(parent) if parent > 1 => pid = parent,
                _ => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    /// `sleep 30`, once it runs: until the exec is done the child is a copy of this process
    /// (its name and program), and its environment is empty for a moment after the name
    /// changed.
    fn sleeping(command: &mut Command) -> std::process::Child {
        let child = command.arg("30").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = || {
            let table = Table::read(&[pid]).unwrap();
            table
                .get(pid)
                .is_some_and(|process| process.name == "sleep")
                && environment_of(pid).is_ok_and(|environment| !environment.is_empty())
        };
        while !started() {
            assert!(Instant::now() < deadline, "sleep never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    #[test]
    fn the_table_knows_a_child_its_parent_and_its_ancestry() {
        let mut child = sleeping(&mut Command::new("sleep"));
        let pid = child.id();
        let table = Table::read(&[]).unwrap();
        let process = table.get(pid).unwrap();
        assert_eq!(process.name, "sleep");
        assert_eq!(process.program, "sleep");
        assert_eq!(process.parent, Some(std::process::id()));
        assert!(process.rss_kb > 0);
        assert!(table.descends_from(pid, std::process::id()));
        assert!(!table.descends_from(std::process::id(), pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn stop_continue_and_kill_reach_the_process_and_a_zombie_is_not_alive() {
        let mut child = sleeping(&mut Command::new("sleep"));
        let pid = child.id();
        assert!(alive(pid));
        assert!(signal(pid, Signal::SIGSTOP));
        assert!(signal(pid, Signal::SIGCONT));
        assert!(signal(pid, Signal::SIGKILL));
        // Not reaped yet: a zombie, which `kill -0` would still call alive.
        assert!(wait_gone(pid, Duration::from_secs(5)));
        child.wait().unwrap();
    }

    #[test]
    fn a_group_signal_reaches_every_member_and_never_group_0_or_1() {
        use std::os::unix::process::CommandExt;
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id();
        std::thread::sleep(Duration::from_millis(200));
        let members: Vec<u32> = Table::read(&[])
            .unwrap()
            .iter()
            .filter(|process| process.parent == Some(pgid))
            .map(|process| process.pid)
            .collect();
        assert_eq!(members.len(), 1, "the shell's sleep");
        assert!(!signal_group(0, Signal::SIGTERM));
        assert!(!signal_group(1, Signal::SIGTERM));
        assert!(signal_group(pgid, Signal::SIGTERM));
        leader.wait().unwrap();
        assert!(wait_gone(members[0], Duration::from_secs(5)));
    }

    #[test]
    fn stop_tree_ends_a_group_whose_leader_ignores_term_and_its_children() {
        use std::os::unix::process::CommandExt;
        let mut leader = Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & wait; sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id();
        std::thread::sleep(Duration::from_millis(200));
        let child = Table::read(&[])
            .unwrap()
            .iter()
            .find(|process| process.parent == Some(pgid))
            .map(|process| process.pid)
            .unwrap();
        stop_tree(pgid, Duration::from_millis(500));
        assert!(!alive(pgid));
        assert!(!alive(child));
        // The leader ignored TERM, so it was the KILL that ended it.
        let status = leader.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }

    #[test]
    fn the_environment_of_a_child_is_read() {
        let mut child = sleeping(Command::new("sleep").env("ORDER_SERVICE_PROCESS_TEST", "a=b"));
        let environment = environment_of(child.id()).unwrap();
        assert!(environment.contains(&("ORDER_SERVICE_PROCESS_TEST".to_owned(), "a=b".to_owned())));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(environment_of(u32::MAX - 1).is_err());
    }
}
