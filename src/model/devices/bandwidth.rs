//! `<interface><bandwidth>`: the traffic shaping of a NIC's host side, as libvirt models it
//! (kilobytes per second and kilobytes; 0 is unset, as libvirt keeps them).

use crate::model::error::XmlError;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// One direction's limits, from the guest's point of view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    /// KiB/s on average.
    pub average: u64,
    /// KiB/s at most.
    pub peak: u64,
    /// KiB sent at peak speed.
    pub burst: u64,
    /// KiB/s guaranteed (inbound of `network` interfaces only).
    pub floor: u64,
}

/// `<bandwidth>`: `inbound` is traffic to the guest, `outbound` traffic from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub inbound: Option<Rate>,
    pub outbound: Option<Rate>,
}

fn number(e: &mut Elem, name: &str) -> Result<u64> {
    let Some(v) = e.attr(name) else {
        return Ok(0);
    };
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| v.parse::<u64>().ok()).flatten() {
        Some(n) => Ok(n),
        None => Err(e.attr_invalid(
            name,
            v,
            format!("could not convert bandwidth {name} value '{v}'"),
        )),
    }
}

impl Rate {
    /// libvirt's `virNetDevBandwidthParseRate`: average (or floor) is required, peak and burst
    /// need average.
    fn read(mut e: Elem) -> Result<Rate> {
        let has = |e: &Elem, n: &str| e.node().attribute(n).is_some();
        let (avg, floor) = (has(&e, "average"), has(&e, "floor"));
        if !avg && !floor {
            return Err(e.invalid("", "Missing mandatory average or floor attributes"));
        }
        if !avg && (has(&e, "peak") || has(&e, "burst")) {
            return Err(e.invalid("", "'peak' and 'burst' require 'average' attribute"));
        }
        let r = Rate {
            average: number(&mut e, "average")?,
            peak: number(&mut e, "peak")?,
            burst: number(&mut e, "burst")?,
            floor: number(&mut e, "floor")?,
        };
        e.finish()?;
        Ok(r)
    }

    /// Whether libvirt writes this rate (an average or a floor).
    pub fn is_set(&self) -> bool {
        self.average != 0 || self.floor != 0
    }

    fn write(&self, w: &mut Writer, name: &'static str) {
        if !self.is_set() {
            return;
        }
        w.start(name);
        for (n, v) in [
            ("average", self.average),
            ("peak", self.peak),
            ("floor", self.floor),
            ("burst", self.burst),
        ] {
            if v != 0 {
                w.attr_num(n, v);
            }
        }
        w.end();
    }
}

impl Bandwidth {
    /// `<bandwidth>` of an interface; `floor` only where `allow_floor` (a `network`
    /// interface), as libvirt's parser allows it.
    pub(crate) fn read_child(e: &mut Elem, allow_floor: bool) -> Result<Option<Bandwidth>> {
        let Some(mut b) = e.child("bandwidth")? else {
            return Ok(None);
        };
        let path = b.path();
        let inbound = b.child("inbound")?.map(Rate::read).transpose()?;
        let outbound = b.child("outbound")?.map(Rate::read).transpose()?;
        b.finish()?;
        if inbound.is_some_and(|r| r.floor != 0) && !allow_floor {
            return Err(XmlError::invalid(
                format!("{path}/inbound/@floor"),
                "",
                "floor attribute is not supported for this config",
            ));
        }
        if outbound.is_some_and(|r| r.floor != 0) {
            return Err(XmlError::invalid(
                format!("{path}/outbound/@floor"),
                "",
                "'floor' attribute allowed only in <inbound> element",
            ));
        }
        let bw = Bandwidth { inbound, outbound };
        Ok((!bw.is_empty()).then_some(bw))
    }

    /// Nothing in either direction (libvirt drops such a `<bandwidth>`).
    pub fn is_empty(&self) -> bool {
        self.inbound.is_none() && self.outbound.is_none()
    }

    pub fn has_floor(&self) -> bool {
        self.inbound.is_some_and(|r| r.floor != 0)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("bandwidth");
        if let Some(r) = &self.inbound {
            r.write(w, "inbound");
        }
        if let Some(r) = &self.outbound {
            r.write(w, "outbound");
        }
        w.end_block();
    }
}

#[cfg(test)]
mod tests {
    use crate::model::DomainDef;

    fn def(iface: &str) -> Result<DomainDef, crate::model::error::XmlError> {
        DomainDef::from_xml(&format!(
            "<domain type='kvm'><name>b</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{iface}</devices></domain>"
        ))
    }

    #[test]
    fn round_trip_in_libvirts_order() {
        let d = def("<interface type='bridge'><source bridge='br0'/>\
             <bandwidth><outbound average='128' burst='256' peak='512'/>\
             <inbound average='1000'/></bandwidth></interface>")
        .unwrap();
        let xml = d.to_xml(&crate::model::FormatOptions::default());
        let want = "<bandwidth>\n        <inbound average='1000'/>\n        \
             <outbound average='128' peak='512' burst='256'/>\n      </bandwidth>";
        assert!(xml.contains(want), "{xml}");
        let again = DomainDef::from_xml(&xml).unwrap();
        assert_eq!(
            again.devices.interfaces[0].bandwidth,
            d.devices.interfaces[0].bandwidth
        );
    }

    #[test]
    fn libvirts_refusals() {
        let cases = [
            ("<inbound peak='5'/>", "Missing mandatory average or floor"),
            ("<inbound floor='5' peak='5'/>", "require 'average'"),
            (
                "<inbound average='x'/>",
                "could not convert bandwidth average value 'x'",
            ),
            ("<inbound average='-1'/>", "could not convert"),
            (
                "<inbound average='5' floor='5'/>",
                "floor attribute is not supported",
            ),
            ("<inbound average='5' color='red'/>", "color"),
            ("<sideways average='5'/>", "sideways"),
        ];
        for (inner, want) in cases {
            let e = def(&format!(
                "<interface type='bridge'><source bridge='br0'/>\
                 <bandwidth>{inner}</bandwidth></interface>"
            ))
            .unwrap_err();
            assert!(e.to_string().contains(want), "{inner}: {e}");
        }
        let e = def("<interface type='network'><source network='n'/>\
             <bandwidth><outbound average='5' floor='1'/></bandwidth></interface>")
        .unwrap_err();
        assert!(e.to_string().contains("only in <inbound>"), "{e}");
        let d = def("<interface type='network'><source network='n'/>\
             <bandwidth><inbound floor='100'/></bandwidth></interface>")
        .unwrap();
        assert!(d.devices.interfaces[0].bandwidth.unwrap().has_floor());
        assert!(
            d.to_xml(&crate::model::FormatOptions::default())
                .contains("<inbound floor='100'/>")
        );
    }
}
