#!/usr/bin/env bash
# The test command (README): everything the tests need, then every test.
# Tests start what they need themselves (technic processes, temp files); this script
# installs what a fresh machine may lack.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
  echo "cargo is required: install Rust from your package manager or rustup" >&2
  exit 1
fi

cargo test --locked --all-targets "$@"
# Doc tests are not part of --all-targets.
cargo test --locked --doc
