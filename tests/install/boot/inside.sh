#!/bin/bash
# Runs as a unit in the booted container: what a newcomer does after `meson install`, each
# step's output and exit status recorded in /run/virtbus-boot-test/<step>.{out,rc} for the
# test to check.
set -u
o=/run/virtbus-boot-test
step() {
    local name=$1
    shift
    "$@" >"$o/$name.out" 2>&1
    echo $? >"$o/$name.rc"
}
# Like step, retrying for up to 10 s until the output does (until) or does not (while)
# match PATTERN: for what the daemon does after a call has returned, such as registering a
# guest with machined.
step_until() { step_retry until "$@"; }
step_while() { step_retry while "$@"; }
step_retry() {
    local mode=$1 name=$2 pattern=$3
    shift 3
    for _ in $(seq 100); do
        step "$name" "$@"
        if grep -Eq "$pattern" "$o/$name.out"; then
            [ "$mode" = until ] && return
        else
            [ "$mode" = while ] && return
        fi
        sleep 0.1
    done
}
M=(org.virtbus1 /org/virtbus1 org.virtbus1.Manager)

step before systemctl is-active virtbusd.service
step activate busctl call "${M[@]}" ListDomains 'a{sv}' 0
step show systemctl show virtbusd.service -p ActiveState -p SubState -p Type -p MainPID \
    -p StatusText -p NRestarts
step status systemctl status --no-pager virtbusd.service

# A QEMU guest with no disk: the firmware runs and finds nothing to boot, which is a
# running guest all the same (no kernel or image needed here).
xml="<domain type='qemu'><name>boot-test</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><devices><serial type='pty'/></devices></domain>"
step define busctl call "${M[@]}" DefineDomain 'sa{sv}' "$xml" 0
path=$(sed -n 's/^o "\(.*\)"$/\1/p' "$o/define.out")
D=(org.virtbus1 "$path" org.virtbus1.Domain)
step start busctl call "${D[@]}" Start 'a{sv}' 0
step state-before busctl get-property "${D[@]}" State
step pid-before pgrep -x qemu-system-x86
step_until machines '^qemu-boot-test ' machinectl list --no-legend

step restart systemctl restart virtbusd.service
step state-after busctl get-property "${D[@]}" State
step pid-after pgrep -x qemu-system-x86
step main-pid-after systemctl show -p MainPID --value virtbusd.service
step machines-after machinectl list --no-legend
step machine-unit machinectl show -p Unit --value qemu-boot-test

step destroy busctl call "${D[@]}" Destroy 'a{sv}' 0
step state-destroyed busctl get-property "${D[@]}" State
step_while machines-destroyed '^qemu-boot-test ' machinectl list --no-legend
step undefine busctl call "${D[@]}" Undefine 'a{sv}' 0

step stop systemctl stop virtbusd.service
step journal journalctl --no-pager -o cat -u virtbusd.service
step journal-priority journalctl --no-pager -o cat -p info -u virtbusd.service \
    --grep 'serving org.virtbus1'
step group getent group virtbus-users
step dirs stat -c '%n %a %U' /var/lib/virtbus /run/virtbus
step boot-journal journalctl --no-pager -o short-monotonic
echo done >"$o/done"
