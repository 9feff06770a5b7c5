//! The virtio-net tuning an `<interface><driver>` carries besides `name` and `queues`:
//! transmit mode, ring sizes, RSS, the host/guest offloads and the virtio transport options.
//! Each maps to one `virtio-net-pci` property, so QEMU applies it as written.

use crate::model::devices::virtio::VirtioOptions;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// How virtio-net transmits: in a bottom half (`iothread`) or on a timer.
    pub enum TxMode {
        Iothread = "iothread",
        Timer = "timer",
    }
}

/// libvirt's `<host>` offload attributes and QEMU's property for each, in libvirt's order.
pub const HOST_OFFLOADS: [(&str, &str); 7] = [
    ("csum", "csum"),
    ("gso", "gso"),
    ("tso4", "host_tso4"),
    ("tso6", "host_tso6"),
    ("ecn", "host_ecn"),
    ("ufo", "host_ufo"),
    ("mrg_rxbuf", "mrg_rxbuf"),
];

/// libvirt's `<guest>` offload attributes and QEMU's property for each.
pub const GUEST_OFFLOADS: [(&str, &str); 5] = [
    ("csum", "guest_csum"),
    ("tso4", "guest_tso4"),
    ("tso6", "guest_tso6"),
    ("ecn", "guest_ecn"),
    ("ufo", "guest_ufo"),
];

/// Each `None` leaves QEMU's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDriver {
    pub txmode: Option<TxMode>,
    pub ioeventfd: Option<bool>,
    pub event_idx: Option<bool>,
    pub rx_queue_size: Option<u32>,
    pub tx_queue_size: Option<u32>,
    pub rss: Option<bool>,
    pub rss_hash_report: Option<bool>,
    pub virtio: VirtioOptions,
    /// In `HOST_OFFLOADS` order.
    pub host: [Option<bool>; 7],
    /// In `GUEST_OFFLOADS` order.
    pub guest: [Option<bool>; 5],
}

/// A ring size: QEMU takes powers of two from 256 to 1024.
fn queue_size(v: &str) -> std::result::Result<u32, String> {
    let n = values::u32_pos(v)?;
    if !n.is_power_of_two() || !(256..=1024).contains(&n) {
        return Err("expected a power of two from 256 to 1024".into());
    }
    Ok(n)
}

impl NetDriver {
    /// Reads the attributes and children of `<driver>` this struct owns.
    pub(crate) fn read(d: &mut Elem) -> Result<NetDriver> {
        let mut n = NetDriver {
            txmode: d.attr_with("txmode", values::keyword::<TxMode>)?,
            ioeventfd: d.attr_with("ioeventfd", values::on_off)?,
            event_idx: d.attr_with("event_idx", values::on_off)?,
            rx_queue_size: d.attr_with("rx_queue_size", queue_size)?,
            tx_queue_size: d.attr_with("tx_queue_size", queue_size)?,
            rss: d.attr_with("rss", values::on_off)?,
            rss_hash_report: d.attr_with("rss_hash_report", values::on_off)?,
            virtio: VirtioOptions::read(d)?,
            ..NetDriver::default()
        };
        if let Some(mut h) = d.child("host")? {
            for (i, (name, _)) in HOST_OFFLOADS.iter().enumerate() {
                n.host[i] = h.attr_with(name, values::on_off)?;
            }
            h.finish()?;
        }
        if let Some(mut g) = d.child("guest")? {
            for (i, (name, _)) in GUEST_OFFLOADS.iter().enumerate() {
                n.guest[i] = g.attr_with(name, values::on_off)?;
            }
            g.finish()?;
        }
        Ok(n)
    }

    pub fn is_empty(&self) -> bool {
        *self == NetDriver::default()
    }

    /// The attributes after `name` and `queues`, in libvirt's order.
    pub(crate) fn write_attrs(&self, w: &mut Writer) {
        w.attr_opt("txmode", self.txmode.map(|t| t.as_str()));
        w.attr_opt("ioeventfd", self.ioeventfd.map(values::on_off_str));
        w.attr_opt("event_idx", self.event_idx.map(values::on_off_str));
    }

    /// The attributes libvirt writes after `queues`.
    pub(crate) fn write_attrs_tail(&self, w: &mut Writer) {
        w.attr_num_opt("rx_queue_size", self.rx_queue_size);
        w.attr_num_opt("tx_queue_size", self.tx_queue_size);
        w.attr_opt("rss", self.rss.map(values::on_off_str));
        w.attr_opt(
            "rss_hash_report",
            self.rss_hash_report.map(values::on_off_str),
        );
        self.virtio.write_attrs(w);
    }

    /// `<host>` and `<guest>`, when any offload is set.
    pub(crate) fn write_children(&self, w: &mut Writer) {
        if self.host.iter().any(Option::is_some) {
            w.start("host");
            for ((name, _), v) in HOST_OFFLOADS.iter().zip(self.host) {
                w.attr_opt(name, v.map(values::on_off_str));
            }
            w.end();
        }
        if self.guest.iter().any(Option::is_some) {
            w.start("guest");
            for ((name, _), v) in GUEST_OFFLOADS.iter().zip(self.guest) {
                w.attr_opt(name, v.map(values::on_off_str));
            }
            w.end();
        }
    }

    /// The `virtio-net-pci` properties, in libvirt's order: `,tx=bh,ioeventfd=off,...`
    /// (the virtio transport options come first, as libvirt builds them).
    pub fn qemu_props(&self) -> String {
        fn sw(s: &mut String, k: &str, v: Option<bool>) {
            if let Some(v) = v {
                s.push_str(&format!(",{k}={}", values::on_off_str(v)));
            }
        }
        let mut s = self.virtio.qemu_props();
        match self.txmode {
            Some(TxMode::Iothread) => s.push_str(",tx=bh"),
            Some(TxMode::Timer) => s.push_str(",tx=timer"),
            None => {}
        }
        sw(&mut s, "ioeventfd", self.ioeventfd);
        sw(&mut s, "event_idx", self.event_idx);
        for ((_, q), v) in HOST_OFFLOADS.iter().zip(self.host) {
            sw(&mut s, q, v);
        }
        for ((_, q), v) in GUEST_OFFLOADS.iter().zip(self.guest) {
            sw(&mut s, q, v);
        }
        if let Some(n) = self.rx_queue_size {
            s.push_str(&format!(",rx_queue_size={n}"));
        }
        if let Some(n) = self.tx_queue_size {
            s.push_str(&format!(",tx_queue_size={n}"));
        }
        sw(&mut s, "rss", self.rss);
        sw(&mut s, "hash", self.rss_hash_report);
        s
    }
}
