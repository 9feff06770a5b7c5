#!/usr/bin/env bash
# Regenerate the generated groups of tests/oracle/corpus/ (see README.md there):
#   vi-*       virt-install --print-xml for common osinfo profiles
#   cockpit-*  the virt-install invocations of Cockpit Machines 288 (install_machine.py)
#   lv-*       libvirt 9.0's own test inputs listed in libvirt-inputs.txt
# The hand-written group (hand-*) is not touched.
#
# Runs as root on Debian 12 with virtinst, ovmf, libvirt-daemon-driver-qemu, libvirt-clients and
# qemu-system-x86 installed. virt-install talks to a private libvirtd started here the way
# tests/support/libvirtd.rs starts it: in a mount and network namespace of its own, with its
# /run, /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt bind-mounted
# from a temporary directory, so the host's libvirt (if any) is never touched.
#
# LIBVIRT_SRC: a libvirt 9.0.0 source tree for the lv-* group; when unset, `apt-get source
# libvirt` fetches one into a temporary directory (needs a deb-src line in APT's sources).
set -euo pipefail
cd "$(dirname "$0")"
OUT=$PWD/corpus
mkdir -p "$OUT"

# --- a private libvirtd -------------------------------------------------------------------
LV=$(mktemp -d /tmp/vblv-corpus.XXXXXX)
mkdir -p "$LV"/{etc,run,lib/images,cache,log,sock,tmp}
cat >"$LV/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$LV/sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$LV/libvirtd.log"
EOF
cat >"$LV/etc/qemu.conf" <<EOF
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
namespaces = [ ]
stdio_handler = "file"
EOF
unshare --mount --propagation private --net -- /bin/sh -c "
    mount --bind '$LV/run' /run &&
    mount --bind '$LV/etc' /etc/libvirt &&
    mount --bind '$LV/lib' /var/lib/libvirt &&
    mount --bind '$LV/cache' /var/cache/libvirt &&
    mount --bind '$LV/log' /var/log/libvirt &&
    exec libvirtd -f /etc/libvirt/libvirtd.conf" >"$LV/stderr" 2>&1 &
LVPID=$!
cleanup() {
    kill "$LVPID" 2>/dev/null || true
    wait "$LVPID" 2>/dev/null || true
    rm -rf "$LV"
}
trap cleanup EXIT
for _ in $(seq 300); do [ -S "$LV/sock/libvirt-sock" ] && break; sleep 0.1; done
URI="qemu:///system?socket=$LV/sock/libvirt-sock"
virsh -q -c "$URI" domcapabilities --virttype qemu >/dev/null

# Keep the last domain document virt-install printed, without what is random per run
# (UUID, MAC addresses), with this run's temporary directory replaced by a fixed one, and
# with Cockpit's metadata added when $2 names a JSON args object.
TIDY=$(cat <<'EOF'
import json, re, sys
text = sys.stdin.read()
docs = re.findall(r"<domain[ >].*?</domain>", text, re.S)
doc = docs[-1]
doc = re.sub(r"\n *<uuid>[^<]*</uuid>", "", doc)
doc = re.sub(r"\n *<mac address=\"[^\"]*\"/>", "", doc)
doc = doc.replace(sys.argv[1] + "/lib/", "/var/lib/libvirt/")
doc = doc.replace(sys.argv[1] + "/tmp/", "/var/lib/libvirt/images/")
if sys.argv[2]:
    # install_machine.py's inject_metadata(), for a VM created and not started
    args = json.loads(sys.argv[2])
    meta = (
        '<cockpit_machines:data xmlns:cockpit_machines="https://github.com/cockpit-project/cockpit-machines">\n'
        f'      <cockpit_machines:has_install_phase>{args["phase"]}</cockpit_machines:has_install_phase>\n'
        f'      <cockpit_machines:install_source_type>{args["sourceType"]}</cockpit_machines:install_source_type>\n'
        f'      <cockpit_machines:install_source>{args["source"]}</cockpit_machines:install_source>\n'
        f'      <cockpit_machines:os_variant>{args["os"]}</cockpit_machines:os_variant>\n'
        '    </cockpit_machines:data>\n  ')
    if "<metadata>" in doc:
        doc = doc.replace("</metadata>", "  " + meta + "</metadata>", 1)
    else:
        doc = doc.replace("</uuid>", "</uuid>\n  <metadata>\n    " + meta + "</metadata>", 1)
print(doc)
EOF
)
tidy() { python3 -c "$TIDY" "$LV" "${1:-}"; }

# --- virt-install profiles -----------------------------------------------------------------
# vi NAME ARGS...: virt-install --print-xml with --virt-type qemu (this machine has no KVM).
vi() {
    local name=$1
    shift
    virt-install --connect "$URI" --print-xml --virt-type qemu --name "$name" "$@" |
        tidy >"$OUT/vi-$name.xml"
}
rm -f "$OUT"/vi-*.xml "$OUT"/cockpit-*.xml "$OUT"/lv-*.xml

vi linux2022 --os-variant linux2022 --memory 2048 --disk size=10
vi linux2022-minimal --os-variant linux2022 --memory 1024 --disk none --network none --graphics none
vi linux2022-uefi --os-variant linux2022 --memory 2048 --disk size=10 --boot uefi
vi linux2022-pc --os-variant linux2022 --memory 1024 --disk size=8 --machine pc
vi debian11 --os-variant debian11 --memory 2048 --disk size=20 --network user --graphics vnc
vi debian11-spice --os-variant debian11 --memory 2048 --disk size=20 --graphics spice
vi debian11-headless --os-variant debian11 --memory 1024 --disk none --graphics none --network user
vi debian11-pc-spice --os-variant debian11 --memory 1024 --disk size=8 --machine pc --graphics spice
vi debian10 --os-variant debian10 --memory 1024 --disk size=10
vi ubuntu22.04 --os-variant ubuntu22.04 --memory 4096 --vcpus 2 --disk size=25
vi ubuntu22.04-uefi --os-variant ubuntu22.04 --memory 4096 --disk size=25 --boot uefi
vi ubuntu22.04-spice-user --os-variant ubuntu22.04 --memory 2048 --disk size=25 --graphics spice --network user
vi ubuntu20.04 --os-variant ubuntu20.04 --memory 2048 --disk size=20
vi fedora37 --os-variant fedora37 --memory 2048 --disk size=20
vi fedora37-uefi --os-variant fedora37 --memory 2048 --disk size=20 --boot uefi
vi fedora37-headless --os-variant fedora37 --memory 2048 --disk size=20 --graphics none --network none
vi fedora36 --os-variant fedora36 --memory 2048 --disk size=20
vi centos-stream9 --os-variant centos-stream9 --memory 2048 --disk size=20
vi centos-stream9-uefi --os-variant centos-stream9 --memory 2048 --disk size=20 --boot uefi
vi centos-stream8 --os-variant centos-stream8 --memory 2048 --disk size=20
vi rhel9.1 --os-variant rhel9.1 --memory 2048 --vcpus 4 --disk size=20
vi rhel9.0-vnc --os-variant rhel9.0 --memory 2048 --disk size=20 --graphics vnc --network none
vi almalinux9 --os-variant almalinux9 --memory 2048 --disk size=20
vi rocky9 --os-variant rocky9 --memory 2048 --disk size=20
vi opensuse15.4 --os-variant opensuse15.4 --memory 2048 --disk size=20
vi opensuse15.4-headless --os-variant opensuse15.4 --memory 1024 --disk size=20 --graphics none
vi alpinelinux3.17 --os-variant alpinelinux3.17 --memory 512 --disk size=4
vi alpinelinux3.17-nodisk --os-variant alpinelinux3.17 --memory 512 --disk none --network user
vi freebsd13.1 --os-variant freebsd13.1 --memory 2048 --disk size=20
vi win10 --os-variant win10 --memory 4096 --disk size=40
vi win10-uefi --os-variant win10 --memory 4096 --disk size=40 --boot uefi
vi win11 --os-variant win11 --memory 4096 --disk size=64
vi win2k22 --os-variant win2k22 --memory 4096 --disk size=40
vi win2k19-vnc --os-variant win2k19 --memory 4096 --disk size=40 --graphics vnc
vi generic --os-variant generic --memory 1024 --disk size=8
vi generic-minimal --os-variant generic --memory 512 --disk none --network none --graphics none

# --- Cockpit Machines 288 ------------------------------------------------------------------
# install_machine.py, "Create" without "Immediately start VM": virt-install --print-xml=1 with
# both graphics types the host offers (listen 127.0.0.1), then its metadata, then virsh define.
cockpit() {
    local name=$1 os=$2 mem=$3 disk=$4 type=$5 source=$6
    shift 6
    local wait=(--wait -1)
    [ "$type" = disk_image ] && wait=()
    virt-install --connect "$URI" --quiet --os-variant "$os" --memory "$mem" --name "$name" \
        "${wait[@]}" --disk "$disk" --graphics vnc,listen=127.0.0.1 \
        --graphics spice,listen=127.0.0.1 --print-xml=1 --virt-type qemu "$@" |
        tidy "{\"phase\": \"$([ "$type" = disk_image ] && echo false || echo true)\", \"sourceType\": \"$type\", \"source\": \"$source\", \"os\": \"$os\"}" \
            >"$OUT/cockpit-$name.xml"
}
cockpit fedora37-iso fedora37 2048 size=20,format=qcow2 file /var/lib/libvirt/images/Fedora-37.iso
cockpit ubuntu22.04-url ubuntu22.04 2048 size=15,format=qcow2 url https://releases.ubuntu.com/22.04/ubuntu-22.04-live-server-amd64.iso
cockpit debian11-nostorage debian11 1024 none url https://deb.debian.org/debian/dists/bullseye/main/installer-amd64/
cockpit rhel9.1-os rhel9.1 2048 size=20,format=qcow2 os rhel9.1
cockpit win10-iso win10 4096 size=40,format=qcow2 file /var/lib/libvirt/images/Win10.iso
cockpit centos-stream9-uefi centos-stream9 2048 size=20,format=qcow2 file /var/lib/libvirt/images/CentOS-Stream-9.iso --boot uefi
cockpit fedora37-vcpus fedora37 2048 size=20,format=qcow2 file /var/lib/libvirt/images/Fedora-37.iso --vcpus 3
: >"$LV/tmp/alpine.qcow2"
cockpit alpine-import alpinelinux3.17 512 "$LV/tmp/alpine.qcow2,device=disk" disk_image /var/lib/libvirt/images/alpine.qcow2
# "Create and run" / "Import and run": Cockpit reads libvirt's dumpxml --inactive back and
# defines it again with its metadata, so libvirt's own output is also an input.
for n in fedora37-iso alpine-import; do
    virsh -q -c "$URI" define "$OUT/cockpit-$n.xml" >/dev/null
    virsh -q -c "$URI" dumpxml --inactive --security-info "$n" |
        sed -e '/<uuid>/d' -e '/<mac address=/d' >"$OUT/cockpit-$n-redefine.xml"
    virsh -q -c "$URI" undefine --nvram "$n" >/dev/null
done

# --- libvirt's own test inputs -------------------------------------------------------------
if [ -z "${LIBVIRT_SRC:-}" ]; then
    SRC=$(mktemp -d /tmp/vblv-src.XXXXXX)
    (cd "$SRC" && apt-get source -q libvirt >/dev/null)
    LIBVIRT_SRC=$(echo "$SRC"/libvirt-*/)
fi
grep -v '^#' libvirt-inputs.txt | while read -r f; do
    [ -n "$f" ] && cp "$LIBVIRT_SRC/tests/$f" "$OUT/lv-$(basename "$(dirname "$f")" | sed 's/data$//')-$(basename "$f")"
done
ls "$OUT" | wc -l
