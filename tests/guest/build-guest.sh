#!/bin/bash
# Build a tiny, real test guest from Debian packages installed on this host.
#
#   build-guest.sh OUTDIR
#
# Produces OUTDIR/vmlinux (uncompressed ELF kernel; falls back to the bzImage
# under the same name when extraction fails), OUTDIR/initramfs.cpio.gz and
# OUTDIR/kernel-release. Skips all work when OUTDIR is complete and newer than
# every input. Safe to run concurrently for the same OUTDIR (flock).
#
# Host packages: busybox-static linux-image-amd64 qemu-guest-agent e2fsprogs
# kmod (modprobe) cpio gzip xz-utils (zstd only for zstd-compressed kernels or
# modules). Override the kernel with GUEST_KVER=<release>, and the root under
# which lib/modules/<release> is found with GUEST_MODULES_BASE=<dir> (default /),
# and the bzImage with GUEST_VMLINUZ=<file>.
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

OUT=$1
SELF=$(readlink -f "${BASH_SOURCE[0]}")
BUSYBOX=/bin/busybox
QGA=/usr/sbin/qemu-ga
MKE2FS=/sbin/mke2fs
GUEST_HOSTNAME=${GUEST_HOSTNAME:-vbguest}

# Modules the guest needs; dependencies (and softdeps such as crc32c for ext4)
# are resolved by modprobe against the target kernel's modules.dep.
MODULES=(
    virtio_pci virtio_console virtio_blk virtio_net virtio_rng virtio_balloon
    crc32c ext4 button evdev ahci sr_mod efivarfs virtio_scsi sd_mod virtiofs
    xhci_pci i6300esb
)

die() { echo "build-guest: $*" >&2; exit 1; }

for tool in "$BUSYBOX" "$QGA" "$MKE2FS"; do
    [[ -x $tool ]] || die "missing $tool (install busybox-static, qemu-guest-agent, e2fsprogs)"
done
for cmd in modprobe cpio gzip ldd; do
    command -v "$cmd" >/dev/null || die "missing command $cmd"
done

# --- pick the kernel ---------------------------------------------------------
if [[ -n ${GUEST_KVER:-} ]]; then
    KVER=$GUEST_KVER
else
    KVER=
    # newest /boot/vmlinuz-* that has a matching module tree
    while read -r k; do
        r=${k#/boot/vmlinuz-}
        [[ -f ${GUEST_MODULES_BASE:-}/lib/modules/$r/modules.dep ]] && KVER=$r
    done < <(printf '%s\n' /boot/vmlinuz-* | sort -V)
    [[ -n $KVER ]] || die "no /boot/vmlinuz-* with /lib/modules/<release> (install linux-image-amd64)"
fi
VMLINUZ=${GUEST_VMLINUZ:-/boot/vmlinuz-$KVER}
MODBASE=${GUEST_MODULES_BASE:-/}
MODDIR=${MODBASE%/}/lib/modules/$KVER
[[ -r $VMLINUZ ]] || die "cannot read $VMLINUZ"
[[ -f $MODDIR/modules.dep ]] || die "no $MODDIR/modules.dep"

mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
exec 9>"$OUT/.lock"
flock 9

# --- idempotency: complete and newer than every input -> nothing to do --------
STAMP=$OUT/.complete
INPUTS=("$SELF" "$VMLINUZ" "$MODDIR/modules.dep" "$BUSYBOX" "$QGA" "$MKE2FS")
# name, size and mtime of every input: a package upgrade installs files with
# the package's (older) mtimes, which "newer than" alone would miss
KEY="kver=$KVER hostname=$GUEST_HOSTNAME
$(stat -L -c '%n %s %Y' "${INPUTS[@]}")"
if [[ -s $OUT/vmlinux && -s $OUT/initramfs.cpio.gz && -f $STAMP ]] &&
    [[ $(cat "$STAMP") == "$KEY" ]] &&
    [[ -z $(find -L "${INPUTS[@]}" -newer "$STAMP" -print -quit 2>/dev/null) ]]; then
    exit 0
fi
rm -f "$STAMP"

WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root

# --- kernel: uncompressed ELF from the bzImage --------------------------------
# The x86 boot protocol (>= 2.08) header says where the compressed payload is:
# setup_sects at 0x1f1, payload_offset/payload_length at 0x248/0x24c, relative to
# the protected-mode code that starts after (setup_sects + 1) * 512 bytes. The
# kernel build appends the uncompressed size (le32) to the payload, which lets us
# check that decompression produced the whole image.
le() { # le FILE OFFSET BYTES -> unsigned little-endian integer
    od -An -t "u$3" -j "$2" -N "$3" "$1" 2>/dev/null | tr -d ' '
}
decompress_stream() { # decompress_stream MAGICHEX < in > out
    case $1 in
    fd377a585a00*) if command -v xz >/dev/null; then xz -dc --single-stream; else "$BUSYBOX" xzcat; fi ;;
    1f8b*) gzip -dc ;;
    28b52ffd*) zstd -dc ;;
    425a68*) if command -v bzip2 >/dev/null; then bzip2 -dc; else "$BUSYBOX" bzcat; fi ;;
    5d0000*) if command -v xz >/dev/null; then xz -dc --format=lzma; else "$BUSYBOX" lzcat; fi ;;
    02214c18*) lz4 -dc ;;
    894c5a4f*) lzop -dc ;;
    *) return 1 ;;
    esac
}
extract_vmlinux() { # extract_vmlinux BZIMAGE OUT
    local img=$1 out=$2 setup ver poff plen start want got magic
    [[ $(dd if="$img" bs=1 skip=$((0x202)) count=4 2>/dev/null) == HdrS ]] || return 1
    ver=$(le "$img" $((0x206)) 2)
    ((ver >= 0x208)) || return 1
    setup=$(le "$img" $((0x1f1)) 1)
    ((setup == 0)) && setup=4
    poff=$(le "$img" $((0x248)) 4)
    plen=$(le "$img" $((0x24c)) 4)
    start=$(((setup + 1) * 512 + poff))
    ((plen > 4)) || return 1
    tail -c +$((start + 1)) "$img" | head -c "$plen" >"$WORK/payload"
    want=$(le "$WORK/payload" $((plen - 4)) 4)
    magic=$(od -An -t x1 -N 6 "$WORK/payload" | tr -d ' \n')
    head -c $((plen - 4)) "$WORK/payload" | decompress_stream "$magic" >"$out" 2>/dev/null || true
    rm -f "$WORK/payload"
    got=$(stat -c %s "$out")
    [[ $(od -An -t x1 -N 4 "$out" | tr -d ' \n') == 7f454c46 && $got -eq $want ]]
}
if extract_vmlinux "$VMLINUZ" "$WORK/vmlinux"; then
    echo elf >"$WORK/kernel-kind"
else
    echo "build-guest: could not extract an ELF kernel from $VMLINUZ; using the bzImage" >&2
    cp "$VMLINUZ" "$WORK/vmlinux"
    echo bzimage >"$WORK/kernel-kind"
fi &
KPID=$!

# --- initramfs tree ------------------------------------------------------------
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc/acpi/PWRF,etc/qemu-ga,proc,sys,dev,run,tmp,mnt/data,var/log,lib/modules}
ln -s ../run "$ROOT/var/run"
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"

# copy_with_libs BIN DEST: the binary plus every shared library ldd reports and
# the dynamic loader, each at the path ldd names (symlinks resolved).
copy_with_libs() {
    local bin=$1 dest=$2 line lib
    install -D -m 0755 "$bin" "$ROOT$dest"
    while read -r line; do
        case $line in
        *"=> not found"*) die "$bin: unresolved library: $line" ;;
        *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
        /*) lib=${line%% (*} ;;
        *) continue ;;
        esac
        [[ -e $ROOT$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$ROOT$lib"
    done < <(ldd "$bin")
}
copy_with_libs "$QGA" /usr/sbin/qemu-ga
copy_with_libs "$MKE2FS" /sbin/mke2fs
[[ -f /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$ROOT/etc/"

# modules, decompressed, plus the insmod order
: >"$ROOT/lib/modules/load.list"
declare -A SEEN=()
for m in "${MODULES[@]}"; do
    deps=$(modprobe -d "$MODBASE" -S "$KVER" --show-depends "$m" 2>&1) || die "modprobe cannot resolve $m for $KVER: $deps"
    while read -r verb path _; do
        [[ $verb == insmod ]] || continue # "builtin X" needs nothing
        name=${path##*/}
        base=${name%%.ko*}
        [[ -n ${SEEN[$base]:-} ]] && continue
        SEEN[$base]=1
        case $path in
        *.ko) cp "$path" "$ROOT/lib/modules/$base.ko" ;;
        *.ko.xz) xz -dc "$path" >"$ROOT/lib/modules/$base.ko" ;;
        *.ko.zst) zstd -qdc "$path" >"$ROOT/lib/modules/$base.ko" ;;
        *.ko.gz) gzip -dc "$path" >"$ROOT/lib/modules/$base.ko" ;;
        *) die "unknown module format: $path" ;;
        esac
        echo "/lib/modules/$base.ko" >>"$ROOT/lib/modules/load.list"
    done <<<"$deps"
done

echo "$GUEST_HOSTNAME" >"$ROOT/etc/hostname"
cat >"$ROOT/etc/os-release" <<'EOF'
NAME="virtbus test guest"
ID=vbguest
ID_LIKE=debian
PRETTY_NAME="virtbus test guest (busybox)"
VERSION_ID=1
VERSION="1"
EOF
echo 'root:x:0:0:root:/:/bin/sh' >"$ROOT/etc/passwd"
echo 'root:x:0:' >"$ROOT/etc/group"

# udhcpc hook: configure the lease (QEMU user networking hands out 10.0.2.15)
cat >"$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc sets: interface ip mask router dns
# shellcheck disable=SC2154
case $1 in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
        ip route del default 2>/dev/null
        for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "udhcpc: $interface $ip/${mask:-24}" >/dev/console
    ;;
esac
exit 0
EOF

# clean power-off, used by acpid (power button) and by qemu-ga's guest-shutdown
cat >"$ROOT/sbin/vb-poweroff" <<'EOF'
#!/bin/sh
# $1: -P (power off, default), -H (halt) or -r (reboot)
sync
umount /mnt/data 2>/dev/null || mount -o remount,ro /mnt/data 2>/dev/null
sync
case ${1:--P} in
-r) reboot -f ;;
-H) halt -f ;;
*) poweroff -f ;;
esac
EOF
# busybox acpid runs /etc/acpi/<action> for the power button (PWRF/00000080)
cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
exec /sbin/vb-poweroff -P
EOF
# qemu-ga's guest-shutdown runs "/sbin/shutdown -h|-r -P|-H +0 <message>"
cat >"$ROOT/sbin/shutdown" <<'EOF'
#!/bin/sh
mode=-P
for a in "$@"; do case $a in -r) mode=-r ;; -H) mode=-H ;; esac; done
/sbin/vb-poweroff "$mode" </dev/null >/dev/null 2>&1 &
exit 0
EOF

# qemu-ga runs this with "freeze" before it freezes and "thaw" after it thaws. A test makes
# the next freeze fail, with the agent's own error, by creating /run/vb-fail-freeze.
cat >"$ROOT/etc/qemu-ga/fsfreeze-hook" <<'EOF'
#!/bin/sh
[ "$1" = freeze ] && [ -e /run/vb-fail-freeze ] && exit 3
exit 0
EOF

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/virtio-ports
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
hostname "$(cat /etc/hostname)"
ip link set lo up

while read -r m; do insmod "$m" 2>/dev/null; done </lib/modules/load.list

# /dev/virtio-ports/<name> links (no udev); a port's name arrives from the host
# shortly after the port appears, so callers retry
link_vports() {
    for p in /sys/class/virtio-ports/*; do
        [ -r "$p/name" ] || continue
        n=$(cat "$p/name")
        [ -n "$n" ] || continue
        [ -e "/dev/virtio-ports/$n" ] || ln -sf "../${p##*/}" "/dev/virtio-ports/$n"
    done
}

acpid -l /tmp/acpid.log 2>/dev/null

# network: every virtio NIC via DHCP
for n in /sys/class/net/*; do
    i=${n##*/}
    [ "$i" = lo ] && continue
    ip link set "$i" up
    udhcpc -i "$i" -s /etc/udhcpc.script -f -t 20 -T 1 -A 3 >/dev/null 2>&1 &
done

# data disk: first virtio disk, formatted ext4 if blank
disk=
for d in /sys/block/vd*; do [ -e "$d" ] && { disk=/dev/${d##*/}; break; }; done
if [ -n "$disk" ]; then
    if [ -z "$(dd if="$disk" bs=65536 count=1 2>/dev/null | tr -d '\000' | head -c 1)" ]; then
        echo "init: formatting blank $disk as ext4"
        # explicit UUID and hash seed: mke2fs would otherwise block in
        # getrandom() for seconds under TCG when the guest has no virtio-rng
        /sbin/mke2fs -q -F -t ext4 -U "$(cat /proc/sys/kernel/random/uuid)" \
            -E "nodiscard,lazy_itable_init=1,lazy_journal_init=1,hash_seed=$(cat /proc/sys/kernel/random/uuid)" \
            -L data "$disk"
    fi
    mount -t ext4 "$disk" /mnt/data || echo "init: cannot mount $disk"
fi

# guest agent, respawning; started last, so that an answering agent means
# the disk is mounted. A second agent serves tests on the port org.virtbus.test.0 when the
# domain has one (the daemon holds the first); it never freezes anything.
agent_loop() { # agent_loop PORT ARGS...
    agent=/dev/virtio-ports/$1
    shift
    while :; do
        i=0
        while [ ! -e "$agent" ] && [ $i -lt 200 ]; do link_vports; [ -e "$agent" ] || usleep 20000; i=$((i + 1)); done
        if [ -e "$agent" ]; then
            /usr/sbin/qemu-ga -m virtio-serial -p "$agent" "$@"
            echo "init: qemu-ga on $agent exited ($?), respawning"
        fi
        sleep 1
    done
}
mkdir -p /run/qga-test
agent_loop org.qemu.guest_agent.0 -t /run -F/etc/qemu-ga/fsfreeze-hook &
agent_loop org.virtbus.test.0 -t /run/qga-test -f /run/qga-test.pid &

# an interactive shell on the serial port, respawning, for console sessions
( while :; do sh -i </dev/ttyS0 >/dev/ttyS0 2>&1; sleep 1; done ) &

link_vports
echo "init: vbguest ready"
while :; do
    link_vports
    sleep 5
done
EOF
chmod 0755 "$ROOT/init" "$ROOT/etc/udhcpc.script" "$ROOT/etc/qemu-ga/fsfreeze-hook" "$ROOT/sbin/vb-poweroff" \
    "$ROOT/sbin/shutdown" "$ROOT/etc/acpi/PWRF/00000080"

(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet | gzip -1 -n) >"$WORK/initramfs.cpio.gz"

wait "$KPID" || die "kernel extraction failed"
mv -f "$WORK/vmlinux" "$OUT/vmlinux"
mv -f "$WORK/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
mv -f "$WORK/kernel-kind" "$OUT/kernel-kind"
echo "$KVER" >"$OUT/kernel-release"
echo "$KEY" >"$STAMP"
