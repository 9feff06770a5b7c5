#!/usr/bin/env bash
# Install what the tests need (Debian 12, as root) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
install_packages "${TEST_PACKAGES[@]}" "${QEMU_PACKAGES[@]}" "${LXC_PACKAGES[@]}" "${COCKPIT_PACKAGES[@]}"
command -v npm >/dev/null || install_packages nodejs npm
# playwright-core for tests/cockpit, exactly as package-lock.json pins it
npm ci --prefix tests/cockpit --no-audit --no-fund --loglevel=error
cargo test --locked "$@"
