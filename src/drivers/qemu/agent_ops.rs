//! The guest agent requests of [`AgentRequest`] as qemu-ga commands, with libvirt's
//! arguments and reply checks (`qemu_agent.c`): errors name the command and carry the
//! agent's own description, as libvirt words them.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    monitor::{Vm, driver_error},
    qga::Agent,
    transport::Error,
};
use crate::drivers::{
    DriverError, DriverResult,
    guest_agent::{
        AgentReply, AgentRequest, GuestDisk, GuestDiskAddress, GuestFs, GuestUser, GuestVcpu,
    },
};

/// The error of a request while the guest has not opened the agent's port (libvirt's
/// words; a kind of timeout: the agent does not answer).
pub const NOT_CONNECTED: &str = "QEMU guest agent is not connected";

/// Whether QEMU says the guest has not opened the agent's port (`frontend-open` of its
/// chardev); `false` when it cannot tell.
pub async fn port_closed(vm: &Vm) -> bool {
    let alias = crate::util::lock(&vm.live)
        .devices
        .channels
        .iter()
        .find(|c| c.target_name.as_deref() == Some(super::cmdline::AGENT_CHANNEL))
        .and_then(|c| c.info.alias.clone());
    let Some(alias) = alias else { return false };
    let Ok(list) = vm.command("query-chardev", None).await else {
        return false;
    };
    let label = format!("char{alias}");
    list.as_array()
        .into_iter()
        .flatten()
        .find(|c| c.get("label").and_then(Value::as_str) == Some(label.as_str()))
        .and_then(|c| c.get("frontend-open").and_then(Value::as_bool))
        == Some(false)
}

/// Carry out `req` on `vm`'s agent.
pub async fn run(
    vm: &Vm,
    agent: &Agent,
    req: AgentRequest,
    timeout: Duration,
) -> DriverResult<AgentReply> {
    let call = |cmd: &'static str, args: Option<Value>| exec(agent, &vm.name, cmd, args, timeout);
    Ok(match req {
        AgentRequest::GetTime => {
            let v = call("guest-get-time", None).await?;
            let ns = v
                .as_i64()
                .ok_or_else(|| malformed("malformed return value"))?;
            AgentReply::Time(
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000) as u32,
            )
        }
        AgentRequest::SetTime(time) => {
            let args = match time {
                None => None,
                Some((secs, ns)) => {
                    let t = secs
                        .checked_mul(1_000_000_000)
                        .and_then(|t| t.checked_add(i64::from(ns)))
                        .ok_or_else(|| {
                            DriverError::InvalidArgument(format!(
                                "Time '{secs}' is too big for guest agent"
                            ))
                        })?;
                    Some(json!({ "time": t }))
                }
            };
            call("guest-set-time", args).await?;
            rtc_reset_reinjection(vm).await?;
            AgentReply::Done
        }
        AgentRequest::FsInfo { optional } => {
            match optional_call(call("guest-get-fsinfo", None).await, optional)? {
                None => AgentReply::FsInfo(None),
                Some(v) => AgentReply::FsInfo(Some(fs_info(&v)?)),
            }
        }
        AgentRequest::FsTrim {
            mountpoint,
            minimum,
        } => {
            if mountpoint.is_some() {
                return Err(DriverError::NotSupported(
                    "Specifying mount point is not supported for now".into(),
                ));
            }
            call("guest-fstrim", Some(json!({ "minimum": minimum }))).await?;
            AgentReply::Done
        }
        AgentRequest::Vcpus => AgentReply::Vcpus(vcpus(&call("guest-get-vcpus", None).await?)?),
        AgentRequest::SetVcpus(changes) => {
            set_vcpus(agent, &vm.name, changes, timeout).await?;
            AgentReply::Done
        }
        AgentRequest::SetUserPassword {
            user,
            password,
            crypted,
        } => {
            let args = json!({
                "crypted": crypted,
                "username": user,
                "password": base64(password.as_bytes()),
            });
            call("guest-set-user-password", Some(args)).await?;
            AgentReply::Done
        }
        AgentRequest::SshKeys { user } => {
            let v = call(
                "guest-ssh-get-authorized-keys",
                Some(json!({ "username": user })),
            )
            .await?;
            let keys = v
                .get("keys")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("qemu agent didn't return an array of keys"))?;
            AgentReply::SshKeys(
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
            )
        }
        AgentRequest::AddSshKeys { user, keys, reset } => {
            let args = json!({ "username": user, "keys": keys, "reset": reset });
            call("guest-ssh-add-authorized-keys", Some(args)).await?;
            AgentReply::Done
        }
        AgentRequest::RemoveSshKeys { user, keys } => {
            let args = json!({ "username": user, "keys": keys });
            call("guest-ssh-remove-authorized-keys", Some(args)).await?;
            AgentReply::Done
        }
        AgentRequest::Users { optional } => {
            match optional_call(call("guest-get-users", None).await, optional)? {
                None => AgentReply::Users(None),
                Some(v) => AgentReply::Users(Some(users(&v)?)),
            }
        }
        AgentRequest::Disks { optional } => {
            match optional_call(call("guest-get-disks", None).await, optional)? {
                None => AgentReply::Disks(None),
                Some(v) => AgentReply::Disks(Some(disks(&v)?)),
            }
        }
    })
}

/// A command failed at the agent: libvirt's words. Kept apart from the exchange's own
/// failures so that an optional command the agent lacks can be skipped.
enum CallError {
    /// The agent lacks or disabled the command.
    Unsupported(DriverError),
    Other(DriverError),
}

impl From<CallError> for DriverError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unsupported(e) | CallError::Other(e) => e,
        }
    }
}

async fn exec(
    agent: &Agent,
    name: &str,
    cmd: &'static str,
    args: Option<Value>,
    timeout: Duration,
) -> Result<Value, CallError> {
    match agent.execute_raw(cmd, args, timeout).await {
        Ok(v) => Ok(v),
        Err(Error::Qemu { class, desc }) => {
            let e = DriverError::Failed(format!(
                "unable to execute QEMU agent command '{cmd}': {desc}"
            ));
            if class == "CommandNotFound" || class == "CommandDisabled" {
                Err(CallError::Unsupported(e))
            } else {
                Err(CallError::Other(e))
            }
        }
        Err(e) => Err(CallError::Other(driver_error(
            &format!("domain '{name}': guest agent command {cmd}"),
            e,
        ))),
    }
}

/// The reply of an optional command: `None` when the agent lacks it.
fn optional_call(r: Result<Value, CallError>, optional: bool) -> DriverResult<Option<Value>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CallError::Unsupported(_)) if optional => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn malformed(msg: &str) -> DriverError {
    DriverError::Failed(msg.to_owned())
}

/// libvirt resets the RTC's interrupt reinjection after setting an x86 guest's clock, so
/// that the guest does not catch up on ticks it missed.
async fn rtc_reset_reinjection(vm: &Vm) -> DriverResult<()> {
    let x86 = crate::util::lock(&vm.live)
        .os
        .arch
        .as_deref()
        .is_none_or(|a| a == "x86_64" || a == "i686");
    if x86 {
        vm.qmp
            .execute("rtc-reset-reinjection", None, vm.timeout)
            .await
            .map_err(|e| driver_error(&format!("domain '{}'", vm.name), e))?;
    }
    Ok(())
}

/// Set vCPUs as libvirt does: the agent may apply fewer than asked, so the rest is sent
/// again until none is left.
async fn set_vcpus(
    agent: &Agent,
    name: &str,
    mut left: Vec<(u32, bool)>,
    timeout: Duration,
) -> DriverResult<()> {
    while !left.is_empty() {
        let vcpus: Vec<Value> = left
            .iter()
            .map(|(id, online)| json!({ "logical-id": id, "online": online }))
            .collect();
        let v = exec(
            agent,
            name,
            "guest-set-vcpus",
            Some(json!({ "vcpus": vcpus })),
            timeout,
        )
        .await?;
        let done = v
            .as_i64()
            .filter(|n| *n > 0 && *n as usize <= left.len())
            .ok_or_else(|| malformed("guest agent returned malformed or invalid return value"))?;
        left.drain(..done as usize);
    }
    Ok(())
}

fn vcpus(v: &Value) -> DriverResult<Vec<GuestVcpu>> {
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("guest-get-vcpus reply was missing return data"))?;
    arr.iter()
        .map(|e| {
            let missing =
                |k: &str| malformed(&format!("'{k}' missing in reply of guest-get-vcpus"));
            Ok(GuestVcpu {
                id: e
                    .get("logical-id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| missing("logical-id"))? as u32,
                online: e
                    .get("online")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| missing("online"))?,
                offlinable: e
                    .get("can-offline")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| missing("can-offline"))?,
            })
        })
        .collect()
}

fn disk_address(v: &Value) -> DriverResult<GuestDiskAddress> {
    let num = |o: &Value, k: &str| {
        o.get(k)
            .and_then(Value::as_u64)
            .map(|n| n as u32)
            .ok_or_else(|| malformed(&format!("'{k}' missing")))
    };
    let pci = v
        .get("pci-controller")
        .ok_or_else(|| malformed("'pci-controller' missing"))?;
    Ok(GuestDiskAddress {
        pci: Some([
            num(pci, "domain")?,
            num(pci, "bus")?,
            num(pci, "slot")?,
            num(pci, "function")?,
        ]),
        bus: num(v, "bus")?,
        target: num(v, "target")?,
        unit: num(v, "unit")?,
        serial: v.get("serial").and_then(Value::as_str).map(str::to_owned),
        dev: v.get("dev").and_then(Value::as_str).map(str::to_owned),
        target_dev: None,
    })
}

/// Filesystems in mount order (qemu-ga lists the last mounted first, libvirt reverses).
fn fs_info(v: &Value) -> DriverResult<Vec<GuestFs>> {
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("Malformed guest-get-fsinfo data array"))?;
    arr.iter()
        .rev()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        malformed(&format!("'{k}' missing in reply of guest-get-fsinfo"))
                    })
            };
            let disks = e
                .get("disk")
                .ok_or_else(|| malformed("'disk' missing in reply of guest-get-fsinfo"))?
                .as_array()
                .ok_or_else(|| malformed("Malformed guest-get-fsinfo 'disk' data array"))?
                .iter()
                .map(disk_address)
                .collect::<DriverResult<Vec<_>>>()?;
            Ok(GuestFs {
                mountpoint: s("mountpoint")?,
                name: s("name")?,
                fstype: s("type")?,
                total_bytes: e.get("total-bytes").and_then(Value::as_u64),
                used_bytes: e.get("used-bytes").and_then(Value::as_u64),
                disks,
            })
        })
        .collect()
}

fn users(v: &Value) -> DriverResult<Vec<GuestUser>> {
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("guest-get-users reply was missing return data"))?;
    arr.iter()
        .map(|e| {
            Ok(GuestUser {
                name: e
                    .get("user")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed("'user' missing in reply of guest-get-users"))?
                    .to_owned(),
                domain: e.get("domain").and_then(Value::as_str).map(str::to_owned),
                login_ms: (e
                    .get("login-time")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| malformed("'login-time' missing in reply of guest-get-users"))?
                    * 1000.0) as u64,
            })
        })
        .collect()
}

fn disks(v: &Value) -> DriverResult<Vec<GuestDisk>> {
    let arr = v
        .as_array()
        .ok_or_else(|| malformed("qemu agent didn't return an array of disks"))?;
    arr.iter()
        .map(|e| {
            Ok(GuestDisk {
                name: e
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed("'name' missing in reply of guest-get-disks"))?
                    .to_owned(),
                partition: e
                    .get("partition")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| malformed("'partition' missing in reply of guest-get-disks"))?,
                dependencies: e
                    .get("dependencies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect(),
                address: e.get("address").map(disk_address).transpose()?,
                alias: e.get("alias").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect()
}

/// Standard base64 with padding (what the agent decodes the password from).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_glib() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"secret pw"), "c2VjcmV0IHB3");
    }

    /// What qemu-ga 7.2 in the test guest answers.
    #[test]
    fn fsinfo_in_mount_order_with_addresses() {
        let v = json!([
            {"name": "vda", "total-bytes": 52685824, "mountpoint": "/mnt/data",
             "disk": [{"bus-type": "virtio", "bus": 0, "unit": 0,
                       "pci-controller": {"bus": 4, "slot": 0, "domain": 0, "function": 0},
                       "dev": "/dev/vda", "target": 0}],
             "used-bytes": 14336, "type": "ext4"},
            {"name": "sda1", "mountpoint": "/", "disk": [], "type": "xfs"}
        ]);
        let fs = fs_info(&v).expect("parses");
        assert_eq!(fs[0].mountpoint, "/");
        assert_eq!(fs[0].total_bytes, None);
        assert_eq!(fs[1].name, "vda");
        assert_eq!(fs[1].disks[0].pci, Some([0, 4, 0, 0]));
        assert_eq!(fs[1].disks[0].dev.as_deref(), Some("/dev/vda"));
        assert!(fs_info(&json!([{"name": "x", "type": "ext4", "disk": []}])).is_err());
    }

    #[test]
    fn vcpus_need_every_field() {
        let v = json!([{"online": true, "can-offline": false, "logical-id": 0},
                       {"online": false, "can-offline": true, "logical-id": 1}]);
        let c = vcpus(&v).expect("parses");
        assert_eq!(
            c[1],
            GuestVcpu {
                id: 1,
                online: false,
                offlinable: true
            }
        );
        let e = vcpus(&json!([{"online": true, "logical-id": 0}])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'can-offline' missing in reply of guest-get-vcpus"
        );
    }
}
