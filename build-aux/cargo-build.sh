#!/bin/sh
# Build one binary with cargo and copy it where meson expects its output.
# Usage: cargo-build.sh CARGO TARGET_DIR PROFILE_DIR BIN OUTPUT [CARGO BUILD ARGS...]
set -eu
cargo=$1 target_dir=$2 profile=$3 bin=$4 output=$5
shift 5
"$cargo" build --bin "$bin" "$@"
cp "$target_dir/$profile/$bin" "$output"
