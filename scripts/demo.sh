#!/usr/bin/env bash
# Run virtbusd on its defaults (the test driver) on a private session bus and drive it with
# busctl: define a domain, start it, snapshot it, list, and show the signals it sent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
install_packages "${DEMO_PACKAGES[@]}"
cargo build --locked --release --bin virtbusd
exec dbus-run-session -- bash scripts/demo-session.sh
