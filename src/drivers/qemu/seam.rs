//! The seam under the driver: what its operations need of a QEMU's monitor ([`Monitor`]),
//! of the process that runs it ([`QemuProcess`]) and of launching one ([`Spawner`]). The
//! real QMP client and process code implement them as they are; unit tests put a recording
//! fake in their place, so that a command sequence can be checked without a guest.

use std::{fs::File, io, os::fd::OwnedFd, path::Path, time::Duration};

use async_trait::async_trait;
use serde_json::Value;

use super::{
    process::{Process, ProcessError},
    qmp::Qmp,
    transport::{Error, Events},
};

/// A negotiated QMP connection, as the driver's operations use it.
#[async_trait]
pub trait Monitor: Send + Sync {
    /// Run `command` with raw JSON `arguments`: QEMU's `return` member, or its error.
    async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error>;

    /// Run a command that takes a file descriptor (`getfd`), passed along with it.
    async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: OwnedFd,
        timeout: Duration,
    ) -> Result<Value, Error>;

    /// How many events were read so far: the driver's barrier waits until as many were
    /// handled.
    fn events_received(&self) -> u64;
}

#[async_trait]
impl Monitor for Qmp {
    async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.execute_raw(command, arguments, timeout).await
    }

    async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: OwnedFd,
        timeout: Duration,
    ) -> Result<Value, Error> {
        Qmp::execute_with_fd(self, command, arguments, fd, timeout).await
    }

    fn events_received(&self) -> u64 {
        Qmp::events_received(self)
    }
}

/// A running QEMU process: who it is, and how it is watched and stopped.
#[async_trait]
pub trait QemuProcess: Send + Sync {
    fn pid(&self) -> i32;

    /// Clock ticks since boot when it started; with the pid, what identifies it.
    fn start_time(&self) -> u64;

    /// Whether it has exited (without waiting).
    fn has_exited(&self) -> bool;

    /// Wait until it has exited.
    async fn wait(&self);

    /// Wait up to `timeout` for it to exit; returns whether it did.
    async fn wait_for(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.wait()).await.is_ok()
    }

    /// SIGTERM, then SIGKILL after `grace` unless `graceful`; returns whether it is gone.
    async fn terminate(&self, grace: Duration, graceful: bool) -> io::Result<bool>;
}

#[async_trait]
impl QemuProcess for Process {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn start_time(&self) -> u64 {
        self.start_time
    }

    fn has_exited(&self) -> bool {
        Process::has_exited(self)
    }

    async fn wait(&self) {
        Process::wait(self).await
    }

    async fn wait_for(&self, timeout: Duration) -> bool {
        Process::wait_for(self, timeout).await
    }

    async fn terminate(&self, grace: Duration, graceful: bool) -> io::Result<bool> {
        Process::terminate(self, grace, graceful).await
    }
}

/// How the driver launches QEMU, finds one again after a restart, and reaches its monitor.
#[async_trait]
pub trait Spawner: Send + Sync {
    /// Start `program` with `args` and the extra environment `env`, its output appended to
    /// `log`.
    fn spawn(
        &self,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &File,
    ) -> Result<Box<dyn QemuProcess>, ProcessError>;

    /// Take hold of a QEMU an earlier daemon started, if `pid` still is that process.
    fn adopt(&self, pid: i32, start_time: u64) -> Result<Box<dyn QemuProcess>, ProcessError>;

    /// Connect to the monitor socket at `path` and leave capabilities mode, within
    /// `timeout`; events flow on the returned [`Events`] from the greeting on.
    async fn connect(
        &self,
        path: &Path,
        timeout: Duration,
    ) -> Result<(Box<dyn Monitor>, Events), Error>;
}

/// Real processes and QMP connections.
#[derive(Debug, Default, Clone, Copy)]
pub struct System;

#[async_trait]
impl Spawner for System {
    fn spawn(
        &self,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &File,
    ) -> Result<Box<dyn QemuProcess>, ProcessError> {
        Ok(Box::new(Process::spawn(program, args, env, log)?))
    }

    fn adopt(&self, pid: i32, start_time: u64) -> Result<Box<dyn QemuProcess>, ProcessError> {
        Ok(Box::new(Process::adopt(pid, start_time)?))
    }

    async fn connect(
        &self,
        path: &Path,
        timeout: Duration,
    ) -> Result<(Box<dyn Monitor>, Events), Error> {
        let (qmp, events) = Qmp::connect(path, timeout).await?;
        Ok((Box::new(qmp), events))
    }
}
