//! `<interface type='network'>` once the core resolved its network to a bridge: the same
//! tap as a `bridge` interface, plugged into the network's bridge.

use super::Setup;
use super::tests::plan_on_pc;

#[test]
fn network_interface_uses_its_networks_bridge() {
    let plan = plan_on_pc(
        "<interface type='network'><mac address='52:54:00:00:00:09'/>\
         <source network='default' bridge='virbr0'/><model type='virtio'/></interface>",
    )
    .unwrap();
    let args = plan.args.join(" ");
    assert!(
        args.contains("-netdev tap,id=hostnet0,ifname=vb3n0,script=no,downscript=no"),
        "{args}"
    );
    assert!(
        args.contains("-device virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:09"),
        "{args}"
    );
    assert_eq!(
        plan.setup,
        [Setup::Bridge {
            tap: "vb3n0".into(),
            bridge: "virbr0".into()
        }]
    );
    let live = plan.live.to_xml(&Default::default());
    assert!(
        live.contains("<source network='default' bridge='virbr0'/>"),
        "{live}"
    );
    assert!(live.contains("<target dev='vb3n0'/>"), "{live}");
}
