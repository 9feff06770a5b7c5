//! Commands of the caller's own for a guest's QMP monitor (or HMP, through
//! `human-monitor-command`) and its guest agent, answered as libvirt answers
//! `virDomainQemuMonitorCommand` / `virDomainQemuAgentCommand`: QEMU's reply as JSON text.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    monitor::{Vm, driver_error},
    qga::Agent,
    transport::Error,
};
use crate::drivers::{DriverError, DriverResult};

/// libvirt's default wait for a guest agent command (`VIR_DOMAIN_QEMU_AGENT_COMMAND_DEFAULT`).
pub const AGENT_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A command object as QMP and qemu-ga take it: its name, arguments and id.
struct Command {
    execute: String,
    arguments: Option<Value>,
    id: Option<Value>,
}

fn parse(cmd: &str, what: &str) -> DriverResult<Command> {
    let bad = |why: String| DriverError::InvalidArgument(format!("{what} command {cmd:?}: {why}"));
    let v: Value = serde_json::from_str(cmd).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut o) = v else {
        return Err(bad("not a JSON object".into()));
    };
    let execute = match o.remove("execute") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad("'execute' is not a string".into())),
        None => return Err(bad("no 'execute' member".into())),
    };
    let arguments = o.remove("arguments");
    if arguments.as_ref().is_some_and(|a| !a.is_object()) {
        return Err(bad("'arguments' is not an object".into()));
    }
    let id = o.remove("id");
    if let Some(k) = o.keys().next() {
        return Err(bad(format!("unknown member '{k}'")));
    }
    Ok(Command {
        execute,
        arguments,
        id,
    })
}

/// A reply object: `return` or `error`, with the command's id.
fn reply(key: &str, value: Value, id: Option<Value>) -> String {
    let mut o = Map::new();
    o.insert(key.into(), value);
    if let Some(id) = id {
        o.insert("id".into(), id);
    }
    Value::Object(o).to_string()
}

/// Run a QMP command (or an HMP line with `hmp`) on `vm`'s monitor. A QMP error is QEMU's
/// answer, returned as it is (as libvirt does); only a failed exchange is an error.
pub async fn monitor(vm: &Vm, cmd: &str, hmp: bool) -> DriverResult<String> {
    let what = format!("domain '{}'", vm.name);
    if hmp {
        let args = json!({ "command-line": cmd });
        let out = vm
            .qmp
            .execute("human-monitor-command", Some(args), vm.timeout)
            .await
            .map_err(|e| driver_error(&format!("{what}: human-monitor-command"), e))?;
        return Ok(out.as_str().unwrap_or_default().to_owned());
    }
    let c = parse(cmd, "QMP")?;
    if c.execute == "qmp_capabilities" {
        // the connection is negotiated already; QEMU would refuse it as out of place
        return Err(DriverError::InvalidArgument(
            "QMP command 'qmp_capabilities': the monitor is in command mode already".into(),
        ));
    }
    match vm.qmp.execute(&c.execute, c.arguments, vm.timeout).await {
        Ok(v) => Ok(reply("return", v, c.id)),
        Err(Error::Qemu { class, desc }) => Ok(reply(
            "error",
            json!({ "class": class, "desc": desc }),
            c.id,
        )),
        Err(e) => Err(driver_error(&format!("{what}: {}", c.execute), e)),
    }
}

/// Run a guest agent command, waiting `timeout` at most.
pub async fn agent(
    agent: &Agent,
    name: &str,
    cmd: &str,
    timeout: Duration,
) -> DriverResult<String> {
    let c = parse(cmd, "guest agent")?;
    match agent.execute_raw(&c.execute, c.arguments, timeout).await {
        Ok(v) => Ok(reply("return", v, c.id)),
        Err(Error::Qemu { desc, .. }) => Err(DriverError::Failed(format!(
            "unable to execute QEMU agent command '{}': {desc}",
            c.execute
        ))),
        Err(e) => Err(driver_error(
            &format!("domain '{name}': guest agent command {}", c.execute),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_before_they_are_sent() {
        let c = parse(r#"{"execute":"query-status","id":"x"}"#, "QMP").expect("ok");
        assert_eq!(c.execute, "query-status");
        assert_eq!(c.id, Some(json!("x")));
        for bad in [
            "query-status",
            "[]",
            r#"{"arguments":{}}"#,
            r#"{"execute":1}"#,
            r#"{"execute":"a","arguments":[]}"#,
            r#"{"execute":"a","bogus":1}"#,
        ] {
            assert!(
                matches!(parse(bad, "QMP"), Err(DriverError::InvalidArgument(_))),
                "{bad}"
            );
        }
        let r: Value =
            serde_json::from_str(&reply("return", json!({}), Some(json!(2)))).expect("JSON");
        assert_eq!(r, json!({"return": {}, "id": 2}));
    }
}
