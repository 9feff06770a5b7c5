//! Guest agent operations beyond guest information: the guest's clock, filesystems, vCPUs,
//! passwords and SSH keys, users and disks. The driver talks to the agent; the core keeps
//! libvirt's rules: the guest must run, filesystems name the domain's disk targets, and only
//! vCPUs the guest can offline go offline.

use std::sync::Arc;

use super::{Core, Domain, Error, Result, ops::Operation};
use crate::{
    drivers::guest_agent::{
        AgentReply, AgentRequest, GuestDisk, GuestDiskAddress, GuestFs, GuestUser, GuestVcpu,
    },
    model::{
        AddressType, DomainDef,
        devices::{ControllerType, DiskBus},
    },
};

/// How SSH keys are set: libvirt's `virDomainAuthorizedSSHKeysSet` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeysMode {
    /// The keys given become the user's only keys.
    Replace,
    Append,
    Remove,
}

/// The highest vCPU id libvirt accepts in a guest vCPU map (`QEMU_GUEST_VCPU_MAX_ID`).
pub const GUEST_VCPU_MAX_ID: u32 = 4096;

/// Which of the guest's users, filesystems and disks to read; with `optional`, a part the
/// agent cannot tell is left out rather than failing the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestParts {
    pub users: bool,
    pub filesystems: bool,
    pub disks: bool,
    pub optional: bool,
}

/// The parts of [`GuestParts`] the agent told, with disk targets filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestDetails {
    pub users: Option<Vec<GuestUser>>,
    pub filesystems: Option<Vec<GuestFs>>,
    pub disks: Option<Vec<GuestDisk>>,
}

impl Core {
    /// Run one agent request with `op`'s state rule (and its job, when it has one).
    async fn agent(
        &self,
        dom: &Arc<Domain>,
        op: Operation,
        req: AgentRequest,
    ) -> Result<AgentReply> {
        let _job = match op.job() {
            Some(name) => Some(dom.begin_job(name).await?),
            None => None,
        };
        Self::require(dom, op)?;
        Ok(dom.driver.guest_agent(&self.ctx(dom), req).await?)
    }

    /// The guest's clock: seconds and nanoseconds since the epoch.
    pub async fn guest_time(&self, dom: &Arc<Domain>) -> Result<(i64, u32)> {
        match self
            .agent(dom, Operation::GuestTime, AgentRequest::GetTime)
            .await?
        {
            AgentReply::Time(s, ns) => Ok((s, ns)),
            r => Err(unexpected(r)),
        }
    }

    /// Set the guest's clock, or (`None`) have the guest read it from its RTC.
    pub async fn set_guest_time(&self, dom: &Arc<Domain>, time: Option<(i64, u32)>) -> Result<()> {
        self.agent(dom, Operation::SetGuestTime, AgentRequest::SetTime(time))
            .await
            .map(drop)
    }

    /// The guest's mounted filesystems, in mount order, with the domain's disk targets.
    pub async fn guest_fs_info(&self, dom: &Arc<Domain>) -> Result<Vec<GuestFs>> {
        let req = AgentRequest::FsInfo { optional: false };
        match self.agent(dom, Operation::GuestFsInfo, req).await? {
            AgentReply::FsInfo(fs) => {
                let (live, _) = Self::require(dom, Operation::GuestFsInfo)?;
                let mut fs = fs.unwrap_or_default();
                name_fs_disks(&live, &mut fs);
                Ok(fs)
            }
            r => Err(unexpected(r)),
        }
    }

    /// Discard unused blocks of the guest's filesystems.
    pub async fn fstrim(
        &self,
        dom: &Arc<Domain>,
        mountpoint: Option<String>,
        minimum: u64,
    ) -> Result<()> {
        let req = AgentRequest::FsTrim {
            mountpoint,
            minimum,
        };
        self.agent(dom, Operation::FsTrim, req).await.map(drop)
    }

    /// The guest's vCPUs, as the guest sees them.
    pub async fn guest_vcpus(&self, dom: &Arc<Domain>) -> Result<Vec<GuestVcpu>> {
        match self
            .agent(dom, Operation::GuestVcpus, AgentRequest::Vcpus)
            .await?
        {
            AgentReply::Vcpus(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    /// Bring the guest's vCPUs `ids` online or offline: each must exist in the guest, and
    /// going offline, be one the guest can offline.
    pub async fn set_guest_vcpus(
        &self,
        dom: &Arc<Domain>,
        ids: &[u32],
        online: bool,
    ) -> Result<()> {
        let _job = dom.begin_job("set guest vCPUs").await?;
        Self::require(dom, Operation::SetGuestVcpus)?;
        let ctx = self.ctx(dom);
        let vcpus = match dom.driver.guest_agent(&ctx, AgentRequest::Vcpus).await? {
            AgentReply::Vcpus(v) => v,
            r => return Err(unexpected(r)),
        };
        let changes = vcpu_changes(&vcpus, ids, online)?;
        Self::require(dom, Operation::SetGuestVcpus)?;
        dom.driver
            .guest_agent(&ctx, AgentRequest::SetVcpus(changes))
            .await?;
        Ok(())
    }

    /// Set a guest user's password (`crypted`: already hashed as the guest's passwd file
    /// keeps it).
    pub async fn set_user_password(
        &self,
        dom: &Arc<Domain>,
        user: String,
        password: String,
        crypted: bool,
    ) -> Result<()> {
        let req = AgentRequest::SetUserPassword {
            user,
            password,
            crypted,
        };
        self.agent(dom, Operation::SetUserPassword, req)
            .await
            .map(drop)
    }

    /// A guest user's authorized SSH keys.
    pub async fn ssh_keys(&self, dom: &Arc<Domain>, user: String) -> Result<Vec<String>> {
        match self
            .agent(dom, Operation::GetSshKeys, AgentRequest::SshKeys { user })
            .await?
        {
            AgentReply::SshKeys(k) => Ok(k),
            r => Err(unexpected(r)),
        }
    }

    /// Change a guest user's authorized SSH keys.
    pub async fn set_ssh_keys(
        &self,
        dom: &Arc<Domain>,
        user: String,
        keys: Vec<String>,
        mode: SshKeysMode,
    ) -> Result<()> {
        let req = match mode {
            SshKeysMode::Remove => AgentRequest::RemoveSshKeys { user, keys },
            SshKeysMode::Replace | SshKeysMode::Append => AgentRequest::AddSshKeys {
                user,
                keys,
                reset: mode == SshKeysMode::Replace,
            },
        };
        self.agent(dom, Operation::SetSshKeys, req).await.map(drop)
    }

    /// The guest's users, filesystems and disks, as asked.
    pub async fn guest_details(
        &self,
        dom: &Arc<Domain>,
        parts: GuestParts,
    ) -> Result<GuestDetails> {
        let optional = parts.optional;
        let mut out = GuestDetails::default();
        if parts.users {
            let req = AgentRequest::Users { optional };
            match self.agent(dom, Operation::GuestInfo, req).await? {
                AgentReply::Users(u) => out.users = u,
                r => return Err(unexpected(r)),
            }
        }
        if parts.filesystems {
            let req = AgentRequest::FsInfo { optional };
            match self.agent(dom, Operation::GuestInfo, req).await? {
                AgentReply::FsInfo(f) => out.filesystems = f,
                r => return Err(unexpected(r)),
            }
        }
        if parts.disks {
            let req = AgentRequest::Disks { optional };
            match self.agent(dom, Operation::GuestInfo, req).await? {
                AgentReply::Disks(d) => out.disks = d,
                r => return Err(unexpected(r)),
            }
        }
        if out.filesystems.is_some() || out.disks.is_some() {
            let (live, _) = Self::require(dom, Operation::GuestInfo)?;
            if let Some(fs) = &mut out.filesystems {
                name_fs_disks(&live, fs);
            }
            for d in out.disks.iter_mut().flatten() {
                if let Some(a) = &mut d.address
                    && a.target_dev.is_none()
                {
                    a.target_dev = disk_target(&live, a);
                }
            }
        }
        Ok(out)
    }
}

fn unexpected(r: AgentReply) -> Error {
    Error::Failed(format!(
        "the driver answered a guest agent request with {r:?}"
    ))
}

/// Fill in the disk targets of filesystems' disks.
fn name_fs_disks(def: &DomainDef, fs: &mut [GuestFs]) {
    for f in fs {
        for d in &mut f.disks {
            if d.target_dev.is_none() {
                d.target_dev = disk_target(def, d);
            }
        }
    }
}

/// A PCI address of the definition as numbers.
fn pci_of(info: &crate::model::DeviceInfo) -> Option<[u32; 4]> {
    let a = info
        .address
        .as_ref()
        .filter(|a| a.kind == AddressType::Pci)?;
    let n = |k: &str| {
        a.get(k)
            .map_or(Some(0), |v| crate::model::values::dec_or_hex(v).ok())
            .and_then(|n| u32::try_from(n).ok())
    };
    Some([n("domain")?, n("bus")?, n("slot")?, n("function")?])
}

/// The target of the domain's disk at `addr`, as libvirt matches it: a disk of its own PCI
/// function (virtio), or a drive on the controller at that PCI address with the same bus,
/// target and unit (SCSI, SATA, IDE).
pub fn disk_target(def: &DomainDef, addr: &GuestDiskAddress) -> Option<String> {
    let pci = addr.pci?;
    let controller = def
        .devices
        .controllers
        .iter()
        .find(|c| pci_of(&c.info) == Some(pci));
    def.devices
        .disks
        .iter()
        .find(|d| {
            if pci_of(&d.info) == Some(pci) {
                return true;
            }
            let (Some(c), Some(a)) = (controller, d.info.address.as_ref()) else {
                return false;
            };
            let bus_matches = matches!(
                (c.controller_type, d.target_bus),
                (ControllerType::Scsi, Some(DiskBus::Scsi))
                    | (ControllerType::Sata, Some(DiskBus::Sata))
                    | (ControllerType::Ide, Some(DiskBus::Ide))
            );
            let num = |k: &str| {
                a.get(k)
                    .map_or(Some(0), |v| crate::model::values::dec_or_hex(v).ok())
            };
            a.kind == AddressType::Drive
                && bus_matches
                && num("controller") == Some(u64::from(c.index.unwrap_or(0)))
                && num("bus") == Some(u64::from(addr.bus))
                && num("target") == Some(u64::from(addr.target))
                && num("unit") == Some(u64::from(addr.unit))
        })
        .map(|d| d.target_dev.clone())
}

/// The (id, online) changes that bring `ids` to `online`, in the guest's order, refused as
/// libvirt refuses them.
pub fn vcpu_changes(vcpus: &[GuestVcpu], ids: &[u32], online: bool) -> Result<Vec<(u32, bool)>> {
    let mut left: Vec<u32> = ids.to_vec();
    let mut out = Vec::new();
    for v in vcpus {
        if !left.contains(&v.id) {
            continue;
        }
        if !online && !v.offlinable {
            return Err(Error::NotSupported(format!(
                "vCPU '{}' is not offlinable",
                v.id
            )));
        }
        out.push((v.id, online));
        left.retain(|i| *i != v.id);
    }
    if !left.is_empty() {
        left.sort_unstable();
        return Err(Error::InvalidArgument(format!(
            "guest is missing vCPUs '{}'",
            format_bitmap(&left)
        )));
    }
    Ok(out)
}

/// Parse a vCPU list as libvirt's bitmaps are written (`0-3,^2,5`).
pub fn parse_bitmap(s: &str, max: u32) -> Option<Vec<u32>> {
    let mut set = std::collections::BTreeSet::new();
    let mut any = false;
    for part in s.split(',') {
        let part = part.trim();
        let (neg, body) = match part.strip_prefix('^') {
            Some(b) => (true, b),
            None => (false, part),
        };
        let num = |t: &str| t.trim().parse::<u32>().ok().filter(|n| *n < max);
        let (a, b) = match body.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(body)?;
                (n, n)
            }
        };
        if a > b {
            return None;
        }
        for n in a..=b {
            if neg {
                set.remove(&n);
            } else {
                set.insert(n);
            }
        }
        any |= !neg;
    }
    any.then(|| set.into_iter().collect())
}

/// Format sorted ids as libvirt formats bitmaps (`0-3,5`).
pub fn format_bitmap(ids: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: u32, online: bool, offlinable: bool) -> GuestVcpu {
        GuestVcpu {
            id,
            online,
            offlinable,
        }
    }

    #[test]
    fn bitmaps_as_libvirt_writes_them() {
        assert_eq!(parse_bitmap("0-3,^2,5", 4096), Some(vec![0, 1, 3, 5]));
        assert_eq!(parse_bitmap("1", 4096), Some(vec![1]));
        assert_eq!(parse_bitmap("x", 4096), None);
        assert_eq!(parse_bitmap("3-1", 4096), None);
        assert_eq!(parse_bitmap("5000", 4096), None);
        assert_eq!(format_bitmap(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(format_bitmap(&[]), "");
    }

    #[test]
    fn vcpu_changes_follow_libvirts_rules() {
        let g = [v(0, true, false), v(1, true, true)];
        assert_eq!(vcpu_changes(&g, &[1], false), Ok(vec![(1, false)]));
        assert_eq!(
            vcpu_changes(&g, &[0], false),
            Err(Error::NotSupported("vCPU '0' is not offlinable".into()))
        );
        assert_eq!(vcpu_changes(&g, &[0], true), Ok(vec![(0, true)]));
        assert_eq!(
            vcpu_changes(&g, &[1, 4, 5], true),
            Err(Error::InvalidArgument(
                "guest is missing vCPUs '4-5'".into()
            ))
        );
    }

    #[test]
    fn disks_are_found_by_their_pci_address() {
        let xml = "<domain type='qemu'><name>d</name><memory>1024</memory>\
            <os><type arch='x86_64'>hvm</type></os><devices>\
            <disk type='file' device='disk'><source file='/a'/><target dev='vdb' bus='virtio'/>\
            <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>\
            </devices></domain>";
        let def = DomainDef::from_xml(xml).expect("parses");
        let at = |pci| GuestDiskAddress {
            pci: Some(pci),
            ..Default::default()
        };
        assert_eq!(disk_target(&def, &at([0, 4, 0, 0])).as_deref(), Some("vdb"));
        assert_eq!(disk_target(&def, &at([0, 5, 0, 0])), None);
    }
}
