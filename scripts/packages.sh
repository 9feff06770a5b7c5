# Debian packages the project needs, and a function to install the missing ones.
# Sourced by demo.sh and test.sh; run as root on Debian 12.

# The demo: a private session bus and busctl/gdbus to talk to the daemon.
DEMO_PACKAGES=(dbus-daemon systemd libglib2.0-bin)

# The tests: private buses, a real polkitd and systemd-machined, install checks with meson,
# clients as other users, GDBus and dbus-python clients from Python, Debian's libvirt-dbus over
# libvirt's test driver to compare the libvirt facade with, Cockpit's bridge to carry the
# Machines page's calls to it, and a private libvirtd with its QEMU driver as the oracle for
# domain XML (tests/oracle; virtinst and ovmf for its make-corpus.sh); the PCI and USB ID
# files virtbus names host devices from (as libvirt's node-device driver does); what virtual
# networks run (dnsmasq, nft) and ip netns for their tests (whose guest side, udhcpc, is
# busybox-static's); libvirtd's LXC driver as the oracle for virsh on lxc:/// (tests/rpc/lxc.rs)
# and the LXC benchmark's libvirt column; the kernel's input codes header, which the send-key
# table is checked against.
TEST_PACKAGES=(
    dbus-daemon systemd systemd-container polkitd libxml2-utils util-linux procps
    meson ninja-build libglib2.0-bin python3-gi gir1.2-glib-2.0 python3-dbus
    libvirt-dbus libvirt-daemon cockpit-bridge pci.ids usb.ids
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients virtinst ovmf
    dnsmasq-base nftables iproute2
    python3-libvirt libvirt-daemon-driver-lxc
    linux-libc-dev
)

# Real guests for the QEMU tests: QEMU 7.2 and a tiny guest built from Debian's kernel, busybox
# and qemu-ga; OVMF for UEFI guests, swtpm (and swtpm_setup) for emulated TPMs. qemu-utils is pinned to bookworm's because some images carry a newer one from
# backports that qemu-system-x86 7.2 refuses.
QEMU_PACKAGES=(
    qemu-utils/bookworm qemu-system-x86 qemu-guest-agent busybox-static linux-image-amd64
    e2fsprogs cpio kmod gzip xz-utils ovmf swtpm swtpm-tools
)

# Containers for the LXC driver's tests (tests/lxc) and benchmark: a static busybox copied
# into a root filesystem built at test time, util-linux's unshare for the benchmark's floor and
# losetup for the block-device tests, e2fsprogs' mkfs.ext4 and debugfs for the image tests.
LXC_PACKAGES=(busybox-static util-linux e2fsprogs)

# Cockpit's Machines page in a browser (tests/cockpit): cockpit-ws serving Debian's
# cockpit-machines (288) and the shell (cockpit-system), Debian's Chromium driven by
# playwright-core (from npm: tests/cockpit/package-lock.json), and what the page runs on the
# host: the OS list through libosinfo's GObject bindings. cockpit-machines pulls in
# libvirt-daemon-system; the tests never start it (virtbusd serves org.libvirt on a private bus).
# Node.js 20 with npm comes with the machine; scripts/test.sh installs Debian's only if npm is
# missing.
COCKPIT_PACKAGES=(
    cockpit-ws cockpit-system cockpit-machines chromium python3-gi gir1.2-libosinfo-1.0
)

# Install the packages not yet installed (apt-get update only when something is missing).
# A name may carry a release ("pkg/bookworm"): that version is installed, downgrading if need be.
install_packages() {
    local missing=()
    for p in "$@"; do
        local name=${p%%/*} want=""
        [ "$name" != "$p" ] && want=${p#*/}
        if dpkg-query -W -f='${db:Status-Status}' "$name" 2>/dev/null | grep -qx installed; then
            # Installed; with a release asked for, the installed version must come from it.
            [ -z "$want" ] && continue
            local have
            have=$(dpkg-query -W -f='${Version}' "$name")
            apt-cache madison "$name" 2>/dev/null |
                awk -F'|' -v v="$have" -v rel="$want" '
                    { gsub(/ /, "", $2) } $2 == v && $3 ~ (" " rel "[/ ]") { found = 1 }
                    END { exit !found }' && continue
        fi
        missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends --allow-downgrades "${missing[@]}"
}
