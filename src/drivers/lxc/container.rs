//! The container's side of a start, run by the first process of the new namespaces (PID 1
//! there) before it becomes the init: mounts, pivot_root, /dev with a devpts instance whose
//! first pty is the console, hostname, loopback, capability bounding set, ids, exec.
//!
//! The controller that cloned it is single-threaded, so the child may allocate freely.
//! Every failure is a message for the controller, sent on `err` before exiting 127.

use std::{
    ffi::{CString, OsStr},
    io,
    os::{fd::RawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use super::plan::{MountKind, Plan};

type Res<T> = Result<T, String>;

fn cstr(s: impl AsRef<OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap_or_default()
}

fn os_err(what: impl std::fmt::Display) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Res<()> {
    let (s, t, f, d) = (
        src.map(cstr),
        cstr(target),
        fstype.map(cstr),
        data.map(cstr),
    );
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid C strings (or null) that outlive the call.
    let r = unsafe { libc::mount(p(&s), t.as_ptr(), p(&f), flags, p(&d).cast()) };
    if r < 0 {
        return Err(os_err(format!(
            "mount {} on {} ({})",
            src.unwrap_or("none"),
            target.display(),
            fstype.unwrap_or("bind")
        )));
    }
    Ok(())
}

fn mkdir_p(p: &Path) -> Res<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
}

/// An empty file to bind a device node or the console on.
fn touch(p: &Path) -> Res<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map(drop)
        .map_err(|e| format!("cannot create {}: {e}", p.display()))
}

fn inside(root: &Path, target: &Path) -> PathBuf {
    root.join(target.strip_prefix("/").unwrap_or(target))
}

/// Receive the go-ahead (the controller has written the id maps and put us in our
/// cgroups), then set the container up and exec its init. Returns only on failure.
pub fn run(plan: &Plan, sync: RawFd, console_tx: RawFd, pass: &[RawFd]) -> String {
    // the controller ignores these; an init must start with the default dispositions (a
    // shell cannot trap a signal ignored on entry)
    for sig in [libc::SIGHUP, libc::SIGPIPE, libc::SIGTERM, libc::SIGINT] {
        // SAFETY: resetting a disposition in this single-threaded process.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into a local buffer.
    if unsafe { libc::read(sync, b.as_mut_ptr().cast(), 1) } != 1 {
        return "the controller did not let the container start".into();
    }
    match setup(plan, console_tx, pass) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn setup(plan: &Plan, console_tx: RawFd, pass: &[RawFd]) -> Res<Never> {
    // our cgroups, as we now are in them, become the root of the container's view
    // SAFETY: plain syscalls.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } < 0 {
        return Err(os_err("unshare(CLONE_NEWCGROUP)"));
    }
    if !plan.uid_map.is_empty() {
        // root of the new user namespace (the map gives it the host ids of <idmap>)
        // SAFETY: plain syscalls.
        if unsafe { libc::setgid(0) } < 0 || unsafe { libc::setuid(0) } < 0 {
            return Err(os_err("cannot become the container's root"));
        }
    }
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let root = &plan.root;
    if let Some(b) = &plan.root_block {
        mkdir_p(root)?;
        super::fsmount::mount_block(&b.path, root, plan.root_readonly)?;
    }
    // the root as a mount of its own, so that pivot_root can take it
    mount(
        Some(&root.to_string_lossy()),
        root,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    for m in &plan.mounts {
        let t = inside(root, &m.target);
        mkdir_p(&t)?;
        match &m.kind {
            MountKind::Bind { source, readonly } => {
                mount(
                    Some(&source.to_string_lossy()),
                    &t,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                if *readonly {
                    remount_ro(&t)?;
                }
            }
            MountKind::Block { source, readonly } => {
                super::fsmount::mount_block(&source.path, &t, *readonly)?
            }
            MountKind::Tmpfs { size_kib } => mount(
                Some("tmpfs"),
                &t,
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&format!("size={size_kib}k,mode=755")),
            )?,
        }
    }
    let proc_dir = inside(root, Path::new("/proc"));
    mkdir_p(&proc_dir)?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    let sys = inside(root, Path::new("/sys"));
    mkdir_p(&sys)?;
    let ro_sys = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    if plan.private_net {
        mount(Some("sysfs"), &sys, Some("sysfs"), ro_sys, None)?;
    } else {
        // sysfs cannot be mounted afresh in the host's network namespace: bind it, read-only
        mount(Some("/sys"), &sys, None, libc::MS_BIND | libc::MS_REC, None)?;
        remount_ro(&sys)?;
    }
    let console = setup_dev(root, plan)?;
    send_fd(console_tx, console.master)?;
    // SAFETY: the master now lives in the controller.
    unsafe { libc::close(console.master) };
    pivot(root)?;
    if plan.root_readonly {
        remount_ro(Path::new("/"))?;
    }
    let name = plan.name.as_bytes();
    // SAFETY: a valid buffer and length.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } < 0 {
        return Err(os_err("sethostname"));
    }
    if plan.private_net {
        loopback_up()?;
    }
    attach_console(&console.slave)?;
    drop_caps(&plan.caps_drop)?;
    let (uid, gid, home) = resolve_user(plan)?;
    if gid != 0 || plan.init_group.is_some() {
        // SAFETY: plain syscalls.
        if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 || unsafe { libc::setgid(gid) } < 0 {
            return Err(os_err(format!("<initgroup>: cannot switch to gid {gid}")));
        }
    }
    if uid != 0 {
        // SAFETY: a plain syscall.
        if unsafe { libc::setuid(uid) } < 0 {
            return Err(os_err(format!("<inituser>: cannot switch to uid {uid}")));
        }
    }
    // the container must never outlive its controller (the daemon may die, the controller
    // not without its container); set after the id changes, which clear it
    // SAFETY: a plain prctl.
    if unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    } < 0
    {
        return Err(os_err("PR_SET_PDEATHSIG"));
    }
    let dir = cstr(&plan.init_dir);
    // SAFETY: a valid C string.
    if unsafe { libc::chdir(dir.as_ptr()) } < 0 {
        return Err(os_err(format!("<initdir> '{}'", plan.init_dir)));
    }
    // the descriptors passed in, as 3, 4, ... (libvirt's lxcContainerSetupFDs)
    super::passfd::renumber(pass, false)
        .map_err(|e| format!("cannot pass descriptors to the init: {e}"))?;
    exec(plan, &home)
}

fn remount_ro(t: &Path) -> Res<()> {
    mount(
        None,
        t,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
        None,
    )
}

struct Console {
    master: RawFd,
    /// The slave's path inside the container (`/dev/pts/0`).
    slave: String,
}

/// A tmpfs /dev with the standard nodes bound from the host's (a user namespace may not
/// create nodes), /dev/shm, and a devpts instance of its own; its first pty is the console.
fn setup_dev(root: &Path, plan: &Plan) -> Res<Console> {
    let dev = inside(root, Path::new("/dev"));
    mkdir_p(&dev)?;
    mount(
        Some("devfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )?;
    for n in ["null", "zero", "full", "random", "urandom", "tty"] {
        let node = dev.join(n);
        touch(&node)?;
        mount(Some(&format!("/dev/{n}")), &node, None, libc::MS_BIND, None)?;
    }
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(t, dev.join(l)).map_err(|e| format!("/dev/{l}: {e}"))?;
    }
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
    let gid = if plan.uid_map.is_empty() {
        ",gid=5"
    } else {
        ""
    };
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&format!("newinstance,ptmxmode=0666,mode=0620{gid}")),
    )?;
    let ptmx = cstr(pts.join("ptmx"));
    // SAFETY: a valid C string; the descriptor is ours.
    let master = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(os_err("cannot open the container's /dev/pts/ptmx"));
    }
    let mut n: libc::c_uint = 0;
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on our master with valid out/in pointers.
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0
        || unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } < 0
    {
        return Err(os_err("cannot set up the console pty"));
    }
    let console = dev.join("console");
    touch(&console)?;
    mount(
        Some(&pts.join(n.to_string()).to_string_lossy()),
        &console,
        None,
        libc::MS_BIND,
        None,
    )?;
    Ok(Console {
        master,
        slave: format!("/dev/pts/{n}"),
    })
}

/// Make `root` the root: pivot onto it and detach the old root from under it.
fn pivot(root: &Path) -> Res<()> {
    let r = cstr(root);
    let dot = cstr(".");
    // SAFETY: valid C strings; pivot_root(".", ".") stacks the old root on the new one,
    // which the detach then removes.
    unsafe {
        if libc::chdir(r.as_ptr()) < 0 {
            return Err(os_err(format!("chdir {}", root.display())));
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) < 0 {
            return Err(os_err(format!("pivot_root into {}", root.display())));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) < 0 {
            return Err(os_err("detaching the host's root"));
        }
        let slash = cstr("/");
        if libc::chdir(slash.as_ptr()) < 0 {
            return Err(os_err("chdir /"));
        }
    }
    Ok(())
}

/// Bring `lo` up in the container's network namespace.
fn loopback_up() -> Res<()> {
    // SAFETY: an ioctl socket, and ifreq structures we own.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(os_err("socket"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, c) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *c as libc::c_char;
        }
        let ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) >= 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req) >= 0
        };
        let e = os_err("bringing lo up");
        libc::close(s);
        if !ok {
            return Err(e);
        }
    }
    Ok(())
}

/// The console as controlling terminal and standard input, output and error.
fn attach_console(slave: &str) -> Res<()> {
    let p = cstr(slave);
    // SAFETY: plain syscalls on a descriptor we open.
    unsafe {
        if libc::setsid() < 0 {
            return Err(os_err("setsid"));
        }
        let fd = libc::open(p.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            return Err(os_err(format!("cannot open the console {slave}")));
        }
        if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
            return Err(os_err("TIOCSCTTY"));
        }
        for t in 0..3 {
            if libc::dup2(fd, t) < 0 {
                return Err(os_err("dup2"));
            }
        }
        if fd > 2 {
            libc::close(fd);
        }
    }
    Ok(())
}

fn drop_caps(caps: &[u32]) -> Res<()> {
    for &c in caps {
        // SAFETY: a plain prctl; EINVAL means the kernel does not know the capability.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(os_err(format!("dropping capability {c}")));
        }
    }
    Ok(())
}

/// `<inituser>`/`<initgroup>` as numbers or names from the container's own /etc files;
/// returns (uid, gid, home).
fn resolve_user(plan: &Plan) -> Res<(u32, u32, String)> {
    let mut uid = 0;
    let mut gid = 0;
    let mut home = "/".to_owned();
    if let Some(u) = &plan.init_user {
        let entry = lookup("/etc/passwd", u);
        match (u.parse::<u32>(), entry) {
            (_, Some(f)) => {
                uid = f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
                gid = f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
                home = f.get(5).cloned().unwrap_or(home);
            }
            (Ok(n), None) => uid = n,
            (Err(_), None) => {
                return Err(format!(
                    "<inituser> '{u}' is not in the container's /etc/passwd"
                ));
            }
        }
    }
    if let Some(g) = &plan.init_group {
        gid = match (g.parse::<u32>(), lookup("/etc/group", g)) {
            (_, Some(f)) => f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
            (Ok(n), None) => n,
            (Err(_), None) => {
                return Err(format!(
                    "<initgroup> '{g}' is not in the container's /etc/group"
                ));
            }
        };
    }
    Ok((uid, gid, home))
}

/// The fields of the line of `file` whose first field is `name`.
fn lookup(file: &str, name: &str) -> Option<Vec<String>> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<String> = l.split(':').map(str::to_owned).collect();
        (f.first().map(String::as_str) == Some(name)).then_some(f)
    })
}

fn exec(plan: &Plan, home: &str) -> Res<Never> {
    let mut argv = vec![cstr(&plan.init)];
    argv.extend(plan.init_args.iter().map(cstr));
    let uuid = plan.uuid.hyphenated().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/bin:/sbin".into()),
        ("TERM".into(), "linux".into()),
        ("container".into(), "lxc-libvirt".into()),
        ("HOME".into(), home.to_owned()),
        ("container_uuid".into(), uuid.clone()),
        ("LIBVIRT_LXC_UUID".into(), uuid),
        ("LIBVIRT_LXC_NAME".into(), plan.name.clone()),
    ];
    for (k, v) in &plan.init_env {
        env.retain(|(e, _)| e != k);
        env.push((k.clone(), v.clone()));
    }
    let envp: Vec<CString> = env.iter().map(|(k, v)| cstr(format!("{k}={v}"))).collect();
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(argv[0].as_ptr(), a.as_ptr(), e.as_ptr()) };
    Err(os_err(format!("<os><init> '{}' cannot be run", plan.init)))
}

/// Pass `fd` over the unix socket `sock`.
fn send_fd(sock: RawFd, fd: RawFd) -> Res<()> {
    // SAFETY: msghdr with one byte of data and one SCM_RIGHTS descriptor, all on our stack.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(os_err("passing the console to the controller"));
        }
    }
    Ok(())
}

/// Receive a descriptor sent by [`send_fd`].
pub fn recv_fd(sock: RawFd) -> Res<RawFd> {
    // SAFETY: as in send_fd, receiving.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n <= 0 {
            return Err("the container did not pass its console".into());
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err("the container did not pass its console".into());
        }
        Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
}
