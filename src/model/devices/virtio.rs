//! libvirt's virtio transport options (`<driver iommu ats packed page_per_vq>`), which
//! every virtio device takes on its `<driver>` element.

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

/// Each `None` leaves QEMU's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioOptions {
    /// Use the platform's IOMMU for DMA (QEMU's `iommu_platform`).
    pub iommu: Option<bool>,
    /// PCIe Address Translation Services.
    pub ats: Option<bool>,
    /// Packed virtqueues.
    pub packed: Option<bool>,
    /// One notification page per virtqueue.
    pub page_per_vq: Option<bool>,
}

impl VirtioOptions {
    /// libvirt's attribute names and QEMU's property names, in libvirt's order.
    const NAMES: [(&'static str, &'static str); 4] = [
        ("iommu", "iommu_platform"),
        ("ats", "ats"),
        ("packed", "packed"),
        ("page_per_vq", "page-per-vq"),
    ];

    fn fields(&self) -> [Option<bool>; 4] {
        [self.iommu, self.ats, self.packed, self.page_per_vq]
    }

    /// Takes the options from a `<driver>` element.
    pub(crate) fn read(d: &mut Elem) -> Result<VirtioOptions, XmlError> {
        Ok(VirtioOptions {
            iommu: d.attr_with("iommu", values::on_off)?,
            ats: d.attr_with("ats", values::on_off)?,
            packed: d.attr_with("packed", values::on_off)?,
            page_per_vq: d.attr_with("page_per_vq", values::on_off)?,
        })
    }

    /// Reads an optional `<driver>` child that carries only these options.
    pub(crate) fn read_child(e: &mut Elem) -> Result<VirtioOptions, XmlError> {
        match e.child("driver")? {
            None => Ok(VirtioOptions::default()),
            Some(mut d) => {
                let v = VirtioOptions::read(&mut d)?;
                d.finish()?;
                Ok(v)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == VirtioOptions::default()
    }

    /// Writes the options as attributes of an open element.
    pub(crate) fn write_attrs(&self, w: &mut Writer) {
        for ((name, _), v) in Self::NAMES.iter().zip(self.fields()) {
            w.attr_opt(name, v.map(values::on_off_str));
        }
    }

    /// `<driver .../>` with these options only, when there are any.
    pub(crate) fn write_driver(&self, w: &mut Writer) {
        if !self.is_empty() {
            w.start("driver");
            self.write_attrs(w);
            w.end();
        }
    }

    /// QEMU `-device` properties: `,iommu_platform=on,ats=on,...`.
    pub fn qemu_props(&self) -> String {
        let mut s = String::new();
        for ((_, qemu), v) in Self::NAMES.iter().zip(self.fields()) {
            if let Some(on) = v {
                s.push_str(&format!(",{qemu}={}", values::on_off_str(on)));
            }
        }
        s
    }
}
