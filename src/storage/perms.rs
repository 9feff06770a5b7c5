//! `<permissions>` of a pool's directory or a volume's file.

use crate::model::{XmlError, writer::Writer, xml::Elem};

/// Mode, owner, group and security label; each may be left unset (libvirt's -1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perms {
    pub mode: Option<u32>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub label: Option<String>,
}

impl Perms {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none() && self.label.is_none()
    }

    /// What a file's metadata says (the label stays unset: no SELinux here).
    pub fn of(meta: &std::fs::Metadata) -> Perms {
        use std::os::unix::fs::MetadataExt;
        Perms {
            mode: Some(meta.mode() & 0o777),
            owner: Some(meta.uid()),
            group: Some(meta.gid()),
            label: None,
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<Perms, XmlError> {
        let mode = e.child_text_with("mode", |t| {
            u32::from_str_radix(t, 8)
                .ok()
                .filter(|m| m & !0o777 == 0)
                .ok_or_else(|| "expected an octal mode no larger than 0777".to_string())
        })?;
        let id = |t: &str| -> Result<Option<u32>, String> {
            if t == "-1" {
                return Ok(None);
            }
            t.parse::<u32>()
                .map(Some)
                .map_err(|_| "expected a numeric id (or -1 for none)".to_string())
        };
        let owner = e.child_text_with("owner", id)?.flatten();
        let group = e.child_text_with("group", id)?.flatten();
        let label = e.child_text("label")?;
        e.finish()?;
        Ok(Perms {
            mode,
            owner,
            group,
            label,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.start("permissions");
        if let Some(m) = self.mode {
            w.leaf("mode", &format!("0{m:o}"));
        }
        if let Some(o) = self.owner {
            w.leaf("owner", &o.to_string());
        }
        if let Some(g) = self.group {
            w.leaf("group", &g.to_string());
        }
        w.leaf_opt("label", self.label.as_deref());
        w.end();
    }
}
