#!/usr/bin/env bash
# Install what the tests need (Debian 12, as root) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
install_packages "${TEST_PACKAGES[@]}" "${QEMU_PACKAGES[@]}"
cargo test --locked "$@"
