#!/usr/bin/env bash
# The full soak: 1,000 scans (SOAK_SCANS) through the API of one `technic serve --workers 2`,
# one after the other, cycling through four scan configs, with the server's resident memory
# (VmRSS) sampled every tenth of the run. Fails on any scan that does not end `done`, or on
# memory that grows in the second half; prints the samples. The test command runs the same
# test with 100 scans.
#
#   scripts/soak.sh              # 1,000 scans, debug build (as the README's figures)
#   scripts/soak.sh --release    # the same on a release build
#   SOAK_SCANS=5000 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SCANS="${SOAK_SCANS:-1000}" cargo test "$@" --test soak -- --nocapture
