#!/usr/bin/env bash
# The demo itself, inside the private session bus that demo.sh started.
set -euo pipefail
work=$(mktemp -d /tmp/virtbus-demo.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

target/release/virtbusd --session --state-dir "$work/state" --runtime-dir "$work/run" \
    2>"$work/virtbusd.log" &
until busctl --user status org.virtbus1 >/dev/null 2>&1; do sleep 0.05; done
gdbus monitor --session --dest org.virtbus1 >"$work/signals.txt" 2>/dev/null &
sleep 0.3

run() { printf '\n$ %s\n' "$*"; "$@"; }
B=(busctl --user)
M=(org.virtbus1 /org/virtbus1 org.virtbus1.Manager)
xml="<domain type='test'><name>demo</name><memory unit='MiB'>512</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"

run "${B[@]}" call "${M[@]}" DefineDomain 'sa{sv}' "$xml" 0
dom=$("${B[@]}" call "${M[@]}" LookupDomain s demo | cut -d'"' -f2)
D=(org.virtbus1 "$dom" org.virtbus1.Domain)
run "${B[@]}" call "${D[@]}" Start 'a{sv}' 0
run "${B[@]}" get-property "${D[@]}" State StateReason Id
run "${B[@]}" call "${D[@]}" CreateSnapshot 'sa{sv}' \
    "<domainsnapshot><name>first</name><description>before changes</description></domainsnapshot>" 0
run "${B[@]}" call "${M[@]}" ListDomains 'a{sv}' 1 active b true
run "${B[@]}" call "${D[@]}" ListSnapshots 'a{sv}' 0
run "${B[@]}" get-property "${D[@]}" CurrentSnapshot SnapshotCount
run "${B[@]}" call "${D[@]}" Suspend 'a{sv}' 0
run "${B[@]}" get-property "${D[@]}" State
run "${B[@]}" call "${D[@]}" Destroy 'a{sv}' 0
run "${B[@]}" tree org.virtbus1
sleep 0.3
printf '\nSignals seen (gdbus monitor):\n'
grep -E 'PropertiesChanged|DomainEvent|InterfacesAdded' "$work/signals.txt" | sed 's/^/  /'
