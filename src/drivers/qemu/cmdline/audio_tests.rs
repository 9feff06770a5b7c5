//! `<audio>` tuning against libvirt 9.0's tests/qemuxml2argvdata/audio-*-{full,best}.args
//! (libvirt writes `-audiodev` as JSON, we as QEMU's dotted `key=value`).

use super::tests::{parse_error, plan_on_pc};
use crate::model::{DomainDef, FormatOptions};

const IO: &str = "<input mixingEngine='yes' fixedSettings='yes' voices='1' bufferLength='100' \
    {IN}><settings frequency='44100' channels='2' format='s16'/></input>\
    <output mixingEngine='yes' fixedSettings='yes' voices='2' bufferLength='200' {OUT}>\
    <settings frequency='22050' channels='4' format='f32'/></output>";

fn audio(top: &str, input: &str, output: &str) -> String {
    format!(
        "<audio id='1' {top}>{}</audio>",
        IO.replace("{IN}", input).replace("{OUT}", output)
    )
}

fn audiodev(devices: &str) -> String {
    let plan = plan_on_pc(devices).expect("builds");
    let i = plan
        .args
        .iter()
        .position(|a| a == "-audiodev")
        .expect("audiodev");
    plan.args[i + 1].clone()
}

const COMMON_IN: &str = ",in.mixing-engine=on,in.fixed-settings=on,in.voices=1,\
    in.buffer-length=100,in.frequency=44100,in.channels=2,in.format=s16";
const COMMON_OUT: &str = ",out.mixing-engine=on,out.fixed-settings=on,out.voices=2,\
    out.buffer-length=200,out.frequency=22050,out.channels=4,out.format=f32";

#[test]
fn backends_as_libvirt() {
    let alsa = audio(
        "type='alsa' timerPeriod='50'",
        "dev='/dev/dsp0'",
        "dev='/dev/dsp1'",
    );
    assert_eq!(
        audiodev(&alsa),
        format!(
            "alsa,id=audio1,timer-period=50{COMMON_IN},in.dev=/dev/dsp0{COMMON_OUT},\
             out.dev=/dev/dsp1"
        )
    );
    let oss = audio(
        "type='oss' tryMMap='yes' exclusive='yes' dspPolicy='3'",
        "dev='/dev/dsp0' bufferCount='50' tryPoll='yes'",
        "dev='/dev/dsp1' bufferCount='30' tryPoll='no'",
    );
    assert_eq!(
        audiodev(&oss),
        format!(
            "oss,id=audio1,try-mmap=on,exclusive=on,dsp-policy=3{COMMON_IN},in.dev=/dev/dsp0,\
             in.buffer-count=50,in.try-poll=on{COMMON_OUT},out.dev=/dev/dsp1,\
             out.buffer-count=30,out.try-poll=off"
        )
    );
    let pa = audio(
        "type='pulseaudio' serverName='acme.example.org'",
        "name='fish' streamName='food' latency='100'",
        "name='fish' streamName='food' latency='200'",
    );
    assert_eq!(
        audiodev(&pa),
        format!(
            "pa,id=audio1,server=acme.example.org{COMMON_IN},in.name=fish,in.stream-name=food,\
             in.latency=100{COMMON_OUT},out.name=fish,out.stream-name=food,out.latency=200"
        )
    );
    let jack = audio(
        "type='jack'",
        "serverName='fish' clientName='food' connectPorts='yum'",
        "exactName='yes'",
    );
    assert_eq!(
        audiodev(&jack),
        format!(
            "jack,id=audio1{COMMON_IN},in.server-name=fish,in.client-name=food,\
             in.connect-ports=yum{COMMON_OUT},out.exact-name=on"
        )
    );
    let file = audio("type='file' path='audio.wav'", "", "");
    assert_eq!(
        audiodev(&file),
        format!("wav,id=audio1,path=audio.wav{COMMON_IN}{COMMON_OUT}")
    );
    let plan = plan_on_pc("<audio id='1' type='sdl' driver='pulseaudio'/>").expect("sdl");
    assert_eq!(
        plan.env,
        [("SDL_AUDIODRIVER".to_owned(), "pulseaudio".to_owned())]
    );
}

#[test]
fn written_back_in_libvirts_order() {
    let oss = audio(
        "type='oss' timerPeriod='50' tryMMap='yes' exclusive='yes' dspPolicy='3'",
        "dev='/dev/dsp0' bufferCount='50' tryPoll='yes'",
        "",
    );
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type></os>\
         <devices>{oss}</devices></domain>"
    );
    let d = DomainDef::from_xml(&xml).expect("parses");
    let out = d.to_xml(&FormatOptions::default());
    assert!(
        out.contains(
            "<audio id='1' type='oss' timerPeriod='50' tryMMap='yes' exclusive='yes' \
             dspPolicy='3'>\n      <input mixingEngine='yes' fixedSettings='yes' voices='1' \
             bufferLength='100' dev='/dev/dsp0' bufferCount='50' tryPoll='yes'>\n        \
             <settings frequency='44100' channels='2' format='s16'/>\n      </input>"
        ),
        "{out}"
    );
    assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
}

#[test]
fn attributes_of_other_backends_are_unknown() {
    let e = parse_error("<audio id='1' type='alsa' serverName='x'/>");
    assert!(e.contains("/domain/devices/audio/@serverName"), "{e}");
    let e = parse_error("<audio id='1' type='none'><input dev='/dev/dsp'/></audio>");
    assert!(e.contains("/domain/devices/audio/input/@dev"), "{e}");
    let e = parse_error(
        "<audio id='1' type='none'><input fixedSettings='no'><settings channels='2'/>\
         </input></audio>",
    );
    assert!(e.contains("needs fixedSettings='yes'"), "{e}");
    let e = parse_error("<audio id='1' type='none'><output voices='0'/></audio>");
    assert!(e.contains("/domain/devices/audio/output/@voices"), "{e}");
}
