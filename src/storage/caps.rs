//! The storage pool capabilities (`virConnectGetStoragePoolCapabilities`): every pool type
//! libvirt 9.0 knows, in its order, with the formats its pools and volumes take, and
//! `supported='yes'` only for the types virtbus runs (`dir`), so that a client offering pool
//! types (virt-manager's "Add pool") offers only what will work.

use super::PoolType;

/// The image formats of file volumes, in libvirt's order.
const FILE_FORMATS: &[&str] = &[
    "none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk",
];
/// Partition types of a `disk` pool's volumes.
const PARTITION_FORMATS: &[&str] = &[
    "none",
    "linux",
    "fat16",
    "fat32",
    "linux-swap",
    "linux-lvm",
    "linux-raid",
    "extended",
];
const FS_SOURCE_FORMATS: &[&str] = &[
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs",
    "ocfs2", "vmfs",
];
const NETFS_SOURCE_FORMATS: &[&str] = &["auto", "nfs", "glusterfs", "cifs"];
const LOGICAL_SOURCE_FORMATS: &[&str] = &["unknown", "lvm2"];
const DISK_SOURCE_FORMATS: &[&str] = &[
    "unknown", "dos", "dvh", "gpt", "mac", "bsd", "pc98", "sun", "lvm2",
];

/// A default format and the values an enum takes.
type Options = (&'static str, &'static [&'static str]);

/// The pool types, each with its pool (source) options and volume (target) options.
const TYPES: &[(PoolType, Option<Options>, Option<Options>)] = &[
    (PoolType::Dir, None, Some(("raw", FILE_FORMATS))),
    (
        PoolType::Fs,
        Some(("auto", FS_SOURCE_FORMATS)),
        Some(("raw", FILE_FORMATS)),
    ),
    (
        PoolType::Netfs,
        Some(("auto", NETFS_SOURCE_FORMATS)),
        Some(("raw", FILE_FORMATS)),
    ),
    (
        PoolType::Logical,
        Some(("lvm2", LOGICAL_SOURCE_FORMATS)),
        None,
    ),
    (
        PoolType::Disk,
        Some(("unknown", DISK_SOURCE_FORMATS)),
        Some(("none", PARTITION_FORMATS)),
    ),
    (PoolType::Iscsi, None, None),
    (PoolType::IscsiDirect, None, None),
    (PoolType::Scsi, None, None),
    (PoolType::Mpath, None, None),
    // libvirt lists no formats for RBD volumes, though it names a default
    (PoolType::Rbd, None, Some(("raw", &[]))),
    (PoolType::Sheepdog, None, None),
    (PoolType::Gluster, None, Some(("raw", FILE_FORMATS))),
    (PoolType::Zfs, None, None),
    (PoolType::Vstorage, None, Some(("raw", FILE_FORMATS))),
];

/// Whether virtbus runs pools of type `t`.
pub fn supported(t: PoolType) -> bool {
    match t {
        PoolType::Dir => true,
        PoolType::Fs
        | PoolType::Netfs
        | PoolType::Logical
        | PoolType::Disk
        | PoolType::Iscsi
        | PoolType::IscsiDirect
        | PoolType::Scsi
        | PoolType::Mpath
        | PoolType::Rbd
        | PoolType::Sheepdog
        | PoolType::Gluster
        | PoolType::Zfs
        | PoolType::Vstorage => false,
    }
}

fn options(out: &mut String, tag: &str, enum_name: &str, (default, values): Options) {
    out.push_str(&format!(
        "    <{tag}>\n      <defaultFormat type='{default}'/>\n"
    ));
    out.push_str(&format!("      <enum name='{enum_name}'>\n"));
    for v in values {
        out.push_str(&format!("        <value>{v}</value>\n"));
    }
    out.push_str(&format!("      </enum>\n    </{tag}>\n"));
}

/// The `<storagepoolCapabilities>` document, formatted as libvirt formats it.
pub fn capabilities_xml() -> String {
    let mut out = String::from("<storagepoolCapabilities>\n");
    for (t, pool, vol) in TYPES {
        let yes = if supported(*t) { "yes" } else { "no" };
        out.push_str(&format!("  <pool type='{t}' supported='{yes}'>\n"));
        if let Some(o) = pool {
            options(&mut out, "poolOptions", "sourceFormatType", *o);
        }
        if let Some(o) = vol {
            options(&mut out, "volOptions", "targetFormatType", *o);
        }
        out.push_str("  </pool>\n");
    }
    out.push_str("</storagepoolCapabilities>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dir_pools_are_supported_and_every_type_is_listed() {
        let x = capabilities_xml();
        assert_eq!(x.matches("supported='yes'").count(), 1);
        assert!(x.contains("<pool type='dir' supported='yes'>"));
        assert_eq!(x.matches("<pool type=").count(), 14);
        assert!(x.contains("<pool type='vstorage' supported='no'>"));
    }
}
