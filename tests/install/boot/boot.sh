#!/bin/bash
# Boot this machine's own OS under systemd-nspawn, with a `meson install` tree laid over it,
# and run inside.sh there as a unit: a real systemd as PID 1, the real system bus, journald,
# logind, machined and polkitd, as on an installed machine. Nothing of the host changes: the
# container's root is an overlay of / with a tmpfs on top, and this script runs in a private
# mount namespace (the test calls it through `unshare --mount`).
#
# usage: boot.sh DESTDIR OUTDIR   (inside.sh's results land in OUTDIR)
set -euo pipefail
dest=$1 out=$2
here=$(dirname "$(readlink -f "$0")")

top=$(mktemp -d /tmp/vb-boot.XXXXXX)
trap 'umount -R "$top" 2>/dev/null; rmdir "$top"' EXIT
mount -t tmpfs tmpfs "$top"
mkdir "$top/lower" "$top/upper" "$top/work" "$top/root"
# Not recursive: / alone, without the host's /proc, /sys, /dev and /run mounts.
mount --bind / "$top/lower"
mount -t overlay overlay \
    -o "lowerdir=$top/lower,upperdir=$top/upper,workdir=$top/work" "$top/root"
root=$top/root

# nspawn mounts its own /dev and /run and refuses populated ones; an empty machine-id makes
# systemd generate one (the host's would clash with the host's journal).
find "$root/dev" "$root/run" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
: > "$root/etc/machine-id"
# A host that ran the daemon keeps state that is not this boot's.
rm -rf "$root/var/lib/virtbus" "$root/etc/virtbus"

cp -a "$dest/." "$root/"
install -m 0644 "$here/virtbus-boot-test.target" "$here/virtbus-boot-test.service" \
    "$root/etc/systemd/system/"
install -D -m 0755 "$here/inside.sh" "$root/usr/local/lib/virtbus-boot-test/inside.sh"

# The custom target keeps the boot to what the test needs (no services the host has
# enabled); inside.sh powers the container off when it is done. Not exec'd: the trap cleans up.
systemd-nspawn --quiet --directory="$root" --machine=virtbus-boot-test \
    --register=no --keep-unit --link-journal=no \
    --bind="$out:/run/virtbus-boot-test" \
    --boot -- systemd.unit=virtbus-boot-test.target
