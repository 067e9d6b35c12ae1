#!/usr/bin/env bash
# The whole test suite, as the README gives it: every crate's unit and
# integration tests. Long stress tests are #[ignore]d; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
# TEMPORARY: the end-to-end tests of the binary (tests/, package `rafka`)
# wait for the Produce/Fetch handlers of issue 3; they rejoin this run as
# soon as those land.
cargo test --workspace --all-targets --exclude rafka
# Doc tests are not covered by --all-targets.
cargo test --workspace --doc --exclude rafka
