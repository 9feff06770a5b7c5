//! The definition kept with a managed save image (libvirt's `managedsave-dumpxml`,
//! `managedsave-define`, `managedsave-edit`): what the guest comes back with at its next
//! start, changed only where the saved guest cannot tell (disk sources, graphics, lifecycle
//! actions, title, description, metadata), and whether it comes back running or paused.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Result,
    events::lock,
    ops::{Action, DomainOp, Operation},
};
use crate::model::{DomainDef, FormatOptions};

impl Core {
    /// The definition the managed save image restores into.
    pub fn managed_save_xml(&self, dom: &Domain, secure: bool) -> Result<String> {
        let def = self.saved_def(dom)?;
        Ok(def.to_xml(&FormatOptions { id: None, secure }))
    }

    /// Replace the definition kept with the managed save image by `xml` (the same guest
    /// hardware), and with `paused` (when given) how the guest comes back.
    pub async fn managed_save_define(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        paused: Option<bool>,
    ) -> Result<()> {
        let mut new = self.parse_domain(xml)?;
        let _job = dom.begin_job("managed save define").await?;
        let old = self.saved_def(dom)?;
        if new.uuid != old.uuid || new.name != old.name {
            return Err(Error::Failed(format!(
                "cannot restore domain '{}' uuid {} from a file which belongs to domain '{}' \
                 uuid {}",
                new.name, new.uuid, old.name, old.uuid
            )));
        }
        dom.driver.post_parse(&mut new).await?;
        dom.driver.check(&new)?;
        if let Some(what) = abi_change(&old, &new) {
            return Err(Error::NotSupported(format!(
                "the definition changes {what} of the guest saved in the managed save image \
                 (only disk sources, graphics, lifecycle actions, title, description and \
                 metadata may change)"
            )));
        }
        self.update(dom, |d| {
            if let Some(m) = &mut d.managed_save {
                m.def = Some(Arc::new(new));
                if let Some(p) = paused {
                    m.paused = p;
                }
            }
            ((), Vec::new())
        });
        self.persist(dom).await
    }

    /// The definition a managed save image restores into; refused without an image.
    fn saved_def(&self, dom: &Domain) -> Result<Arc<DomainDef>> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        match &d.managed_save {
            None => Err(Error::InvalidState(
                "domain does not have managed save image".into(),
            )),
            Some(m) => Ok(m.def.clone().unwrap_or_else(|| d.def.clone())),
        }
    }
}

/// What of the guest's hardware `new` changes from `old` (`None`: nothing the guest sees).
fn abi_change(old: &DomainDef, new: &DomainDef) -> Option<&'static str> {
    let mask = |d: &DomainDef| {
        let mut d = d.clone();
        d.title = None;
        d.description = None;
        d.metadata = None;
        d.on_poweroff = None;
        d.on_reboot = None;
        d.on_crash = None;
        d.devices.graphics.clear();
        d.seclabels.clear();
        for disk in &mut d.devices.disks {
            disk.source = None;
            disk.backing_store = None;
        }
        d
    };
    let (o, n) = (mask(old), mask(new));
    if o == n {
        return None;
    }
    Some(
        if o.memory_kib != n.memory_kib || o.current_memory_kib != n.current_memory_kib {
            "the memory"
        } else if o.max_vcpus != n.max_vcpus || o.current_vcpus != n.current_vcpus {
            "the vCPUs"
        } else if o.os != n.os {
            "the OS and machine"
        } else if o.cpu != n.cpu || o.features != n.features || o.clock != n.clock {
            "the CPU, features or clock"
        } else if o.devices.disks.len() != n.devices.disks.len()
            || o.devices.disks != n.devices.disks
        {
            "the disks"
        } else if o.devices != n.devices {
            "the devices"
        } else {
            "the configuration"
        },
    )
}

/// The definition kept with the managed save image; secrets need a second permission.
#[derive(Debug, Clone)]
pub struct ManagedSaveXml {
    pub secure: bool,
}

impl DomainOp for ManagedSaveXml {
    type Output = String;

    fn operation(&self) -> Operation {
        Operation::ManagedSaveXml
    }

    fn actions(&self) -> Vec<Action> {
        if self.secure {
            vec![Action::DomainRead, Action::DomainReadSecure]
        } else {
            vec![Action::DomainRead]
        }
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<String> {
        core.managed_save_xml(dom, self.secure)
    }
}

/// Replace the definition kept with the managed save image.
#[derive(Debug, Clone)]
pub struct ManagedSaveDefine {
    pub xml: String,
    /// How the guest comes back: paused (`Some(true)`), running, or as it was saved.
    pub paused: Option<bool>,
}

impl DomainOp for ManagedSaveDefine {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::ManagedSaveDefine
    }

    /// libvirt asks for write and hibernate (saving) permission both.
    fn actions(&self) -> Vec<Action> {
        vec![Action::DomainWrite, Action::DomainStop]
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.managed_save_define(dom, &self.xml, self.paused).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(extra: &str, memory: u32) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>{memory}</memory>\
             <os><type>hvm</type></os>{extra}<devices><disk type='file' device='disk'>\
             <source file='/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
        ))
        .expect("definition")
    }

    #[test]
    fn only_what_the_guest_cannot_see_may_change() {
        let old = def("", 256);
        let mut new = def("<title>t</title><on_reboot>destroy</on_reboot>", 256);
        new.uuid = old.uuid;
        if let Some(disk) = new.devices.disks.first_mut() {
            disk.source = None;
        }
        assert_eq!(abi_change(&old, &new), None);
        let mut bigger = def("", 512);
        bigger.uuid = old.uuid;
        assert_eq!(abi_change(&old, &bigger), Some("the memory"));
    }
}
