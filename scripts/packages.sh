# Debian packages the project needs, and a function to install the missing ones.
# Sourced by demo.sh and test.sh; run as root on Debian 12.

# The demo: a private session bus and busctl/gdbus to talk to the daemon.
DEMO_PACKAGES=(dbus-daemon systemd libglib2.0-bin)

# The tests: private buses, a real polkitd and systemd-machined, install checks with meson,
# clients as other users, GDBus and dbus-python clients from Python, and Debian's libvirt-dbus
# over libvirt's test driver to compare the libvirt facade with.
TEST_PACKAGES=(
    dbus-daemon systemd systemd-container polkitd libxml2-utils util-linux procps
    meson ninja-build libglib2.0-bin python3-gi gir1.2-glib-2.0 python3-dbus
    libvirt-dbus libvirt-daemon
)

# Install the packages not yet installed (apt-get update only when something is missing).
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
