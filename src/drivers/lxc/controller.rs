//! The controller: one small process per container (`virtbusd --lxc-controller PLAN`),
//! libvirt's `libvirt_lxc` in spirit. It is its own session, not the daemon's child in
//! any way that matters, so a daemon that dies (even `kill -9`) leaves containers running.
//!
//! It creates the cgroups, clones the container's first process into new namespaces,
//! writes its id maps, puts it in its cgroups, relays the console between the container's
//! devpts master and a host pty (whose slave path is the console in the live XML), and
//! when the init ends it records why, clears the cgroups and exits. An init that rebooted
//! leaves it waiting with the console's pty held: SIGUSR1 (the daemon's reset) starts the
//! init anew, as SIGUSR1 to a running container does after killing it (see
//! [`super::restart`]). The daemon watches it through a pidfd, and after a restart adopts it
//! from the recorded pid and start time.
//!
//! Its first line on standard output tells the daemon how the start went: `ok`, or
//! `invalid MESSAGE` / `failed MESSAGE`.

use std::{
    io::Write as _,
    os::fd::RawFd,
    path::Path,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{container, plan::Plan, veth};

/// What the controller records for the daemon (`controller.json` in the container's
/// runtime directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub controller_pid: i32,
    pub init_pid: i32,
    pub init_start: u64,
    /// The host pty whose slave is the console.
    pub pty: String,
    /// Why the init ended: `shutdown`, `reboot`, `destroyed` or `failed`; unset while it runs.
    /// `reboot` with the controller still there: it holds the console and waits for SIGUSR1
    /// to start the init anew (or SIGTERM to end).
    pub exit: Option<String>,
    /// How many times the init was started anew in place (reboot, reset): a new boot shows
    /// here with the new init's pid.
    #[serde(default)]
    pub boot: u32,
}

impl State {
    pub fn load(path: &Path) -> Option<State> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn save(&self, path: &Path) {
        let data = serde_json::to_vec(self).unwrap_or_default();
        if let Err(e) = crate::util::fs::write_atomic(path, &data, 0o600) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

static TERMINATE: AtomicBool = AtomicBool::new(false);
/// SIGUSR1: start the init anew, keeping the console (reboot, reset).
static RESTART: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

extern "C" fn on_restart(_: libc::c_int) {
    RESTART.store(true, Ordering::SeqCst);
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Entry point of `virtbusd --lxc-controller PLAN`.
pub fn main(plan_path: &Path) -> ExitCode {
    let mut out = std::io::stdout();
    let plan: Plan = match std::fs::read(plan_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "failed cannot read {}: {e}", plan_path.display());
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: setsid and signal dispositions in a single-threaded process.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, on_restart as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // descriptors passed for the init's first boot: 3, 4, ... (see passfd)
    let passed = super::passfd::keep(plan.pass_fds);
    let console = match host_pty() {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "failed {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = start(&plan, &console, 0, &passed);
    super::passfd::close(&passed);
    match started {
        Ok(running) => {
            let _ = writeln!(out, "ok");
            let _ = out.flush();
            quiet_stdout();
            run(&plan, &console, running)
        }
        Err((kind, msg)) => {
            eprintln!("start failed: {msg}");
            teardown(&plan);
            let _ = writeln!(out, "{kind} {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Supervise the container, starting its init anew in place when asked (the console's pty
/// stays: a reader keeps it across a reboot), until it ends for good.
fn run(plan: &Plan, console: &HostPty, mut running: Running) -> ExitCode {
    loop {
        let why = running.supervise(plan, console);
        let again = match why.as_str() {
            "restart" => true,
            "reboot" => {
                teardown(plan);
                let mut st = running.state.clone();
                st.exit = Some(why.clone());
                st.save(&plan.state);
                wait_for_restart()
            }
            _ => false,
        };
        if !again {
            let why = if why == "reboot" {
                "destroyed".to_owned()
            } else {
                why
            };
            finish(plan, &running.state, why);
            return ExitCode::SUCCESS;
        }
        teardown(plan);
        let boot = running.state.boot + 1;
        match start(plan, console, boot, &[]) {
            Ok(r) => running = r,
            Err((_, msg)) => {
                eprintln!("restart failed: {msg}");
                finish(plan, &running.state, "failed".into());
                return ExitCode::FAILURE;
            }
        }
    }
}

/// After a reboot: wait for the daemon's word, SIGUSR1 (start again) or SIGTERM (end).
fn wait_for_restart() -> bool {
    loop {
        if TERMINATE.swap(false, Ordering::SeqCst) {
            return false;
        }
        if RESTART.swap(false, Ordering::SeqCst) {
            return true;
        }
        // a signal cuts the wait short
        // SAFETY: poll on no descriptors is a sleep.
        unsafe { libc::poll(std::ptr::null_mut(), 0, 50) };
    }
}

/// Kill what is left of the container and remove its interfaces and cgroups.
fn teardown(plan: &Plan) {
    plan.cgroups.kill_all();
    veth::remove(&plan.veths);
    settle_and_remove(plan);
}

/// Standard output goes to /dev/null once the daemon has its answer: the daemon may be
/// gone by the time anything else would be written.
fn quiet_stdout() {
    let null = c"/dev/null";
    // SAFETY: plain syscalls on our own descriptors.
    unsafe {
        let fd = libc::open(null.as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::dup2(fd, 1);
            libc::close(fd);
        }
    }
}

/// The console's host pty, made once per controller: it outlives the boots of the init.
struct HostPty {
    master: RawFd,
    /// Kept open so that console output waits in the pty for a reader (up to the pty's
    /// buffer) instead of failing while nobody has the console open.
    _slave: RawFd,
    path: String,
}

/// One boot of the init.
struct Running {
    init: i32,
    init_fd: RawFd,
    container_master: RawFd,
    state: State,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: our descriptors, closed once.
        unsafe {
            libc::close(self.init_fd);
            libc::close(self.container_master);
        }
    }
}

type StartError = (&'static str, String);

fn failed(m: String) -> StartError {
    ("failed", m)
}

fn pipe() -> Result<(RawFd, RawFd), StartError> {
    let mut p = [0; 2];
    // SAFETY: a valid two-element array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(failed(os_err("pipe2")));
    }
    Ok((p[0], p[1]))
}

/// Start the init (boot number `boot`), handing it `pass` as its descriptors 3, 4, ...
fn start(plan: &Plan, host: &HostPty, boot: u32, pass: &[RawFd]) -> Result<Running, StartError> {
    // images go on loop devices first; the handles close when the container has mounted
    // them (or failed), leaving the devices to the mounts (autoclear)
    let (attached, _loops) = super::fs::attach_images(plan).map_err(failed)?;
    let plan = &attached;
    plan.cgroups.create(&plan.limits).map_err(failed)?;
    veth::create(&plan.veths).map_err(failed)?;
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut sv = [0; 2];
    // SAFETY: a valid two-element array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } < 0
    {
        return Err(failed(os_err("socketpair")));
    }
    use nix::sched::CloneFlags as F;
    let mut flags = F::CLONE_NEWNS | F::CLONE_NEWPID | F::CLONE_NEWUTS | F::CLONE_NEWIPC;
    if plan.private_net {
        flags |= F::CLONE_NEWNET;
    }
    if !plan.uid_map.is_empty() {
        flags |= F::CLONE_NEWUSER;
    }
    let mut stack = vec![0u8; 1 << 20];
    let child_sock = sv[1];
    let cb = Box::new(|| {
        let why = container::run(plan, go_r, child_sock, pass);
        let msg = why.as_bytes();
        // SAFETY: writing our message on the error pipe, then leaving without running
        // the parent's destructors.
        unsafe {
            libc::write(err_w, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    });
    // SAFETY: the controller is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| failed(format!("clone: {e}")))?
        .as_raw();
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(go_r);
        libc::close(err_w);
        libc::close(sv[1]);
    }
    let fail = |e: StartError| {
        // SAFETY: the child is ours; kill and reap it.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        e
    };
    if !plan.uid_map.is_empty() {
        for (f, m) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
            let p = format!("/proc/{pid}/{f}");
            std::fs::write(&p, m)
                .map_err(|e| fail(("invalid", format!("<idmap>: the kernel refused {p} ({e})"))))?;
        }
    }
    plan.cgroups.join(pid).map_err(|e| fail(failed(e)))?;
    if !plan.veths.is_empty() {
        veth::move_in(&plan.veths, pid)
            .and_then(|()| veth::configure_inside(&plan.veths, pid))
            .map_err(|e| fail(failed(e)))?;
    }
    // SAFETY: one byte to the child.
    if unsafe { libc::write(go_w, b"g".as_ptr().cast(), 1) } != 1 {
        return Err(fail(failed(os_err("starting the container"))));
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(go_w) };
    let console = container::recv_fd(sv[0]);
    // SAFETY: our descriptor.
    unsafe { libc::close(sv[0]) };
    // the error pipe closes without a word when the init is executed
    let mut msg = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(err_r, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        msg.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(err_r) };
    if !msg.is_empty() {
        let m = String::from_utf8_lossy(&msg).into_owned();
        let kind = if m.contains("<os><init>")
            || m.contains("<inituser>")
            || m.contains("<initgroup>")
            || m.contains("<initdir>")
        {
            "invalid"
        } else {
            "failed"
        };
        return Err(fail((kind, m)));
    }
    let container_master = console.map_err(|e| fail(failed(e)))?;
    let init_start = crate::drivers::qemu::process::start_time(pid).unwrap_or(0);
    // SAFETY: a plain syscall; the child is unreaped, so the pid is surely it.
    let init_fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    if init_fd < 0 {
        return Err(fail(failed(os_err("pidfd_open"))));
    }
    set_nonblocking(container_master);
    let state = State {
        controller_pid: std::process::id() as i32,
        init_pid: pid,
        init_start,
        pty: host.path.clone(),
        exit: None,
        boot,
    };
    state.save(&plan.state);
    eprintln!(
        "container init {pid} runs (boot {boot}); console on {}",
        state.pty
    );
    Ok(Running {
        init: pid,
        init_fd,
        container_master,
        state,
    })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on our descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// A host pty pair in raw mode, its master non-blocking.
fn host_pty() -> Result<HostPty, String> {
    // SAFETY: the standard pty calls on descriptors we own; ptsname_r into a local buffer.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(os_err("posix_openpt"));
        }
        if libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
            return Err(os_err("unlockpt"));
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(os_err("ptsname"));
        }
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(os_err("opening the console pty"));
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(s, &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(s, libc::TCSANOW, &t);
        }
        set_nonblocking(m);
        Ok(HostPty {
            master: m,
            _slave: s,
            path,
        })
    }
}

impl Running {
    /// Relay the console until the init ends; returns why it ended (`restart` when the
    /// daemon asked for a new start).
    fn supervise(&self, plan: &Plan, console: &HostPty) -> String {
        let mut buf = [0u8; 4096];
        let mut restarting = false;
        // a side that hung up is left out of the poll for a while instead of spinning
        let mut container_quiet_until: Option<Instant> = None;
        loop {
            if TERMINATE.swap(false, Ordering::SeqCst) {
                eprintln!("SIGTERM: killing the container");
                plan.cgroups.kill_all();
            }
            if RESTART.swap(false, Ordering::SeqCst) {
                eprintln!("SIGUSR1: starting the init anew");
                restarting = true;
                plan.cgroups.kill_all();
            }
            let now = Instant::now();
            let watch_container = container_quiet_until.is_none_or(|t| now >= t);
            let mut fds = [
                libc::pollfd {
                    fd: self.init_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if watch_container {
                        self.container_master
                    } else {
                        -1
                    },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: console.master,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = if watch_container { -1 } else { 100 };
            // SAFETY: a valid array of pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue; // EINTR (SIGTERM): checked at the top
            }
            if fds[1].revents & libc::POLLIN != 0 {
                pump(self.container_master, console.master, &mut buf);
            } else if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                container_quiet_until = Some(Instant::now() + Duration::from_millis(100));
            }
            if fds[2].revents & libc::POLLIN != 0 {
                pump(console.master, self.container_master, &mut buf);
            }
            if fds[0].revents != 0 {
                // whatever the init wrote last still reaches the console
                pump(self.container_master, console.master, &mut buf);
                let why = self.reap();
                return if restarting { "restart".into() } else { why };
            }
        }
    }

    fn reap(&self) -> String {
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(self.init, &mut status, 0) };
        let why = if libc::WIFSIGNALED(status) {
            match libc::WTERMSIG(status) {
                // reboot(2) in a PID namespace ends its init with SIGHUP for a restart and
                // SIGINT for a power-off; libvirt's reboot signal is SIGHUP too
                libc::SIGHUP => "reboot",
                libc::SIGINT => "shutdown",
                libc::SIGKILL => "destroyed",
                _ => "failed",
            }
        } else {
            "shutdown"
        };
        eprintln!(
            "container init {} ended ({}): {why}",
            self.init,
            describe(status)
        );
        why.to_owned()
    }
}

fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// Copy what `from` has now to `to`; what `to` cannot take now is dropped (a console
/// nobody reads must not stall the container).
fn pump(from: RawFd, to: RawFd, buf: &mut [u8]) {
    loop {
        // SAFETY: reading into and writing from our buffer.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        let mut off = 0;
        while off < n as usize {
            let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
            if w <= 0 {
                break;
            }
            off += w as usize;
        }
    }
}

/// Record the end, clear the cgroups, and leave.
fn finish(plan: &Plan, state: &State, why: String) {
    teardown(plan);
    let mut st = state.clone();
    st.exit = Some(why);
    st.save(&plan.state);
}

/// Wait (briefly) for the cgroups to empty, then remove them.
fn settle_and_remove(plan: &Plan) {
    let t = Instant::now();
    while !plan.cgroups.procs().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    plan.cgroups.remove();
}
