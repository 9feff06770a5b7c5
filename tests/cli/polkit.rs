//! polkit as an unprivileged user sees it through the client, against a real polkitd (see
//! `support::polkit`): without a terminal nothing prompts and the refusal is exit code 5; on
//! a terminal the client asks for interactive authorization (and runs `pkttyagent`).

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

    // On a terminal (script(1) gives the client one) the call allows interactive
    // authorization and pkttyagent runs for it: polkit is asked with interaction allowed, so the
    // daemon's answer is no longer "interaction required". (The password prompt itself needs a
    // logind session for polkitd to route it to the agent; this machine has none.)
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
    let (code, text) = on_tty("");
    assert_eq!(code, Some(5), "{text}");
    assert!(text.trim_end().ends_with("(AccessDenied)"), "{text}");
    // --no-ask-password: never interactive, even on a terminal.
    let (code, text) = on_tty("--no-ask-password");
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.trim_end()
            .ends_with("(InteractiveAuthorizationRequired)"),
        "{text}"
    );
}
