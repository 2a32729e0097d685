#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60), starting from the seeds in
# fuzz/seeds/ and the corpus grown by earlier runs (fuzz/corpus/, not kept in
# git). A finding stops its target and is saved under fuzz/artifacts/.
#
#   fuzz/run-all.sh [SECONDS]
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain provide them. Install it once with `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
status=0
for target in query headers answers config; do
    mkdir -p "corpus/$target"
    if RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" 2> "corpus/$target.log"; then
        echo "$target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "corpus/$target.log"), no finding"
    else
        echo "$target: FINDING, see fuzz/artifacts/$target and fuzz/corpus/$target.log"
        status=1
    fi
done
exit $status
