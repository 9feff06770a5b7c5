//! polkit as an unprivileged user sees it through the client, against a real polkitd (see
//! `support::polkit`): without a terminal nothing prompts and the refusal is exit code 5; on
//! a terminal the client asks for interactive authorization and runs `pkttyagent`, whose
//! password prompt the test answers through the terminal.

use std::{os::unix::fs::PermissionsExt, process::Stdio};

use crate::support::polkit::PolkitEnv;

const RULE: &str = r#"polkit.addRule(function(action, subject) {
    if (action.id == "org.virtbus1.domain.start" && subject.user == "bob") {
        return polkit.Result.AUTH_SELF;
    }
});
"#;

#[tokio::test]
async fn no_prompt_without_a_terminal_interactive_authorization_on_one() {
    let env = PolkitEnv::start(&[("50-cli.rules", RULE.to_owned())]);
    let _daemon = env.daemon(&[]).await;
    let bin = env!("CARGO_BIN_EXE_virtbusctl");
    let xml = env.workdir().join("d.xml");
    std::fs::write(&xml, crate::support::test_domain("d")).expect("xml");
    std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env
        .command_as("root", bin)
        .args(["--system", "define"])
        .arg(&xml)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");

    // bob may read, and may start only after authenticating: without a terminal, a refusal.
    let out = env
        .command_as("bob", bin)
        .args(["--system", "list", "--all", "--name"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "d\n", "{out:?}");
    let out = env
        .command_as("bob", bin)
        .args(["--system", "start", "d"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.starts_with("virtbusctl: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!err.contains("AUTHENTICATING"), "{err}");

    assert!(
        err.ends_with("(InteractiveAuthorizationRequired)\n"),
        "{err}"
    );

    // On a terminal (script(1) gives the client one), --no-ask-password: never interactive,
    // no agent, no prompt. (The prompt itself: `auth_admin_prompts_through_pkttyagent_…`.)
    let on_tty = |extra: &str| {
        let out = env
            .command_as("bob", "/usr/bin/script")
            .args([
                "-qec",
                &format!("{bin} --system {extra} start d"),
                "/dev/null",
            ])
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .output()
            .expect("script");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = on_tty("--no-ask-password");
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.trim_end()
            .ends_with("(InteractiveAuthorizationRequired)"),
        "{text}"
    );
}

/// bob may start domains after an administrator (alice) authenticates; alice is the only
/// administrator.
const ADMIN_RULE: &str = r#"polkit.addRule(function(action, subject) {
    if (action.id == "org.virtbus1.domain.start" && subject.user == "bob") {
        return polkit.Result.AUTH_ADMIN;
    }
});
polkit.addAdminRule(function(action, subject) {
    return ["unix-user:alice"];
});
"#;

/// What `script(1)` running the client printed so far, read by a thread of its own.
struct Screen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Screen {
    fn follow(mut out: impl std::io::Read + Send + 'static) -> Screen {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().expect("lock").extend_from_slice(&chunk[..n]);
            }
        });
        Screen(buf)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// Wait until the screen shows `what` (20 s at most).
    #[track_caller]
    fn wait_for(&self, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.text().contains(what) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} on the terminal: {:?}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Run `virtbusctl --system start d` as bob on a terminal and answer the password prompt
/// with `password`; returns the exit code and the terminal's text.
fn start_on_a_terminal(env: &PolkitEnv, password: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let bin = env!("CARGO_BIN_EXE_virtbusctl");
    let mut child = env
        .command_as("bob", "/usr/bin/script")
        .args(["-qec", &format!("{bin} --system start d"), "/dev/null"])
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let screen = Screen::follow(child.stdout.take().expect("stdout"));
    screen.wait_for("Password: ");
    // The agent turns echo off after its prompt, discarding what was typed before.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("type");
    let status = child.wait().expect("wait");
    drop(stdin);
    std::thread::sleep(std::time::Duration::from_millis(50));
    (status.code(), screen.text())
}

#[tokio::test]
async fn auth_admin_prompts_through_pkttyagent_on_a_terminal() {
    let env = PolkitEnv::start(&[("50-cli.rules", ADMIN_RULE.to_owned())]);
    let _daemon = env.daemon(&[]).await;
    let bin = env!("CARGO_BIN_EXE_virtbusctl");
    let xml = env.workdir().join("d.xml");
    std::fs::write(&xml, crate::support::test_domain("d")).expect("xml");
    std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let root = |args: &[&str]| {
        env.command_as("root", bin)
            .arg("--system")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let out = root(&["define", xml.to_str().expect("path")]);
    assert!(out.status.success(), "{out:?}");
    let state = || {
        let out = root(&["status", "d", "--json"]);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        j["state"].as_str().unwrap_or_default().to_owned()
    };

    // A wrong password: the agent says so, polkit refuses, nothing started.
    let (code, text) = start_on_a_terminal(&env, "wrong");
    assert!(
        text.contains("AUTHENTICATING FOR org.virtbus1.domain.start"),
        "{text}"
    );
    assert!(text.contains("Authenticating as: alice"), "{text}");
    assert!(text.contains("AUTHENTICATION FAILED"), "{text}");
    assert_eq!(code, Some(5), "{text}");
    assert!(text.trim_end().ends_with("(AccessDenied)"), "{text}");
    assert_eq!(state(), "shut-off");

    // alice's password: authenticated, and the call goes through.
    let (code, text) = start_on_a_terminal(&env, crate::support::polkit::PASSWORD);
    assert!(text.contains("Authenticating as: alice"), "{text}");
    assert!(text.contains("AUTHENTICATION COMPLETE"), "{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.trim_end().ends_with("d started"), "{text}");
    assert_eq!(state(), "running");
    // The agent lived only for the call.
    let agents = std::process::Command::new("pgrep")
        .args(["-u", "61002", "-x", "pkttyagent"])
        .output()
        .expect("pgrep");
    assert!(agents.stdout.is_empty(), "an agent outlived its call");
}
