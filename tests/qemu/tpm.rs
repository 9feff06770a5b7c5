//! An emulated TPM 2.0 (swtpm) in the real guest: the guest sees /dev/tpm0, and a value it
//! stores in a TPM NV index survives a `kill -9` of the daemon (the guest and its swtpm are
//! adopted, not duplicated) and a restart of the guest; undefine removes the TPM's state.

use std::{path::Path, time::Duration};

use zbus::Variant;

use crate::{
    define_guest_with, guest, guests, pid_alive, support::proxies::*, support::*, until, wait_agent,
};

const TPM: &str = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>";

/// The test's NV index (owner range) and what it stores there.
const NV_INDEX: u32 = 0x0150_0001;
const MARKER: &[u8; 8] = b"vbmarker";

/// The password session with an empty password every command here uses.
fn pw_session() -> Vec<u8> {
    let mut s = 0x4000_0009u32.to_be_bytes().to_vec(); // TPM_RS_PW
    s.extend([0, 0, 0x01, 0, 0]); // no nonce, continueSession, empty hmac
    s
}

/// A TPM 2.0 command with one authorization: header, handles, auth area, parameters.
fn command(cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for h in handles {
        body.extend(h.to_be_bytes());
    }
    let auth = pw_session();
    body.extend((auth.len() as u32).to_be_bytes());
    body.extend(auth);
    body.extend(params);
    let mut c = 0x8002u16.to_be_bytes().to_vec(); // TPM_ST_SESSIONS
    c.extend(((10 + body.len()) as u32).to_be_bytes());
    c.extend(cc.to_be_bytes());
    c.extend(body);
    c
}

fn nv_define() -> Vec<u8> {
    let mut public = NV_INDEX.to_be_bytes().to_vec();
    public.extend(0x000Bu16.to_be_bytes()); // SHA-256
    public.extend(0x0006_0006u32.to_be_bytes()); // owner/auth read and write
    public.extend(0u16.to_be_bytes()); // no policy
    public.extend((MARKER.len() as u16).to_be_bytes());
    let mut p = 0u16.to_be_bytes().to_vec(); // empty index auth
    p.extend((public.len() as u16).to_be_bytes());
    p.extend(public);
    command(0x0000_012A, &[0x4000_0001], &p) // TPM2_NV_DefineSpace by the owner
}

fn nv_write() -> Vec<u8> {
    let mut p = (MARKER.len() as u16).to_be_bytes().to_vec();
    p.extend(MARKER);
    p.extend(0u16.to_be_bytes()); // offset
    command(0x0000_0137, &[NV_INDEX, NV_INDEX], &p)
}

fn nv_read() -> Vec<u8> {
    let mut p = (MARKER.len() as u16).to_be_bytes().to_vec();
    p.extend(0u16.to_be_bytes());
    command(0x0000_014E, &[NV_INDEX, NV_INDEX], &p)
}

/// Send `cmd` to /dev/tpm0 in the guest (command and response on one descriptor); the
/// response as hex.
async fn tpm(agent: &guest::TestAgent, cmd: &[u8]) -> String {
    let octal: String = cmd.iter().map(|b| format!("\\{b:03o}")).collect();
    agent
        .sh(&format!(
            "exec 3<>/dev/tpm0; printf '{octal}' >&3; \
             dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d ' \\n'"
        ))
        .await
}

fn rc(resp: &str) -> &str {
    resp.get(12..20).unwrap_or(resp)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The swtpm processes serving the domain `uuid` (by the state directory they name).
fn swtpms(uuid: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if cmdline.starts_with("swtpm\0socket") && cmdline.contains(uuid) && !zombie {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulated_tpm_keeps_its_state_across_daemon_and_guest_restarts() {
    let _permit = guests(1).await;
    let extra = format!("{}{TPM}", guest::TEST_CHANNEL);
    let mut g = define_guest_with("tpm-guest", &extra, guest::with_bzimage).await;
    let dom = domain(&g.conn, &g.path).await;
    let uuid = dom.uuid().await.expect("uuid");
    let def = dom
        .get_xml(opts([("inactive", Variant::from(true))]))
        .await
        .expect("xml");
    assert!(
        def.contains("<tpm model='tpm-crb'>\n      <backend type='emulator' version='2.0'/>"),
        "{def}"
    );
    let state = g.daemon.state.join(format!("swtpm/{uuid}/tpm2"));

    dom.start(no_opts()).await.expect("start");
    assert!(
        state.join("tpm2-00.permall").exists(),
        "swtpm_setup made the state"
    );
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    assert!(live.contains("<alias name='tpm0'/>"), "{live}");
    let agent = guest::TestAgent::of(&live).await;
    agent.sh("test -c /dev/tpm0").await;
    let r = tpm(&agent, &nv_define()).await;
    assert_eq!(rc(&r), "00000000", "NV_DefineSpace: {r}");
    let r = tpm(&agent, &nv_write()).await;
    assert_eq!(rc(&r), "00000000", "NV_Write: {r}");
    let tpm_pids = swtpms(&uuid);
    assert_eq!(tpm_pids.len(), 1, "one swtpm serves the guest");

    // kill -9 of the daemon: guest and swtpm go on, and are adopted, not started again
    g.daemon.kill();
    assert!(pid_alive(tpm_pids[0]));
    g.daemon.restart(&g.bus).await;
    let conn = g.bus.connect().await;
    let dom = domain(&conn, &g.path).await;
    assert_eq!(
        dom.state().await.expect("state"),
        "running",
        "{}",
        g.daemon.log_text()
    );
    assert_eq!(swtpms(&uuid), tpm_pids, "the same swtpm, and only it");
    let r = tpm(&agent, &nv_read()).await;
    assert_eq!(rc(&r), "00000000", "NV_Read: {r}");
    assert!(r.contains(&hex(MARKER)), "{r}");

    // the guest restarts: a new swtpm over the same state
    dom.destroy(no_opts()).await.expect("destroy");
    until(
        "swtpm ends with its guest",
        Duration::from_secs(10),
        async || swtpms(&uuid).is_empty(),
    )
    .await;
    dom.start(no_opts()).await.expect("start again");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live xml");
    let agent = guest::TestAgent::of(&live).await;
    let r = tpm(&agent, &nv_read()).await;
    assert_eq!(rc(&r), "00000000", "NV_Read after a guest restart: {r}");
    assert!(r.contains(&hex(MARKER)), "{r}");
    assert_eq!(swtpms(&uuid).len(), 1);

    // a managed save keeps the TPM: its state goes with the guest's, and comes back
    dom.managed_save(no_opts()).await.expect("managed save");
    until(
        "swtpm ends with the saved guest",
        Duration::from_secs(10),
        async || swtpms(&uuid).is_empty(),
    )
    .await;
    dom.start(no_opts()).await.expect("restore");
    assert!(!dom.has_managed_save().await.expect("has managed save"));
    let r = tpm(&agent, &nv_read()).await;
    assert_eq!(rc(&r), "00000000", "NV_Read after a restore: {r}");
    assert!(r.contains(&hex(MARKER)), "{r}");

    // undefined while it runs: the state stays while the swtpm uses it, and goes after
    dom.undefine(no_opts()).await.expect("undefine");
    assert!(state.join("tpm2-00.permall").exists());
    dom.destroy(no_opts()).await.expect("destroy");
    let dir = g.daemon.state.join(format!("swtpm/{uuid}"));
    until(
        "the TPM state goes with the guest",
        Duration::from_secs(10),
        async || !dir.exists(),
    )
    .await;
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_host_tpm_is_refused_naming_it() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let xml = guest::domain_xml(
        "tpm-pass",
        Path::new("/nonexistent.qcow2"),
        "<tpm model='tpm-tis'><backend type='passthrough'>\
         <device path='/dev/tpm-virtbus-none'/></backend></tpm>",
    );
    let r = manager(&conn).await.define_domain(&xml, no_opts()).await;
    assert!(error_message(&r).contains("/dev/tpm-virtbus-none"), "{r:?}");
}
