#!/usr/bin/env bash
# The whole test suite, as the README gives it: every crate's unit and
# integration tests (including the broker binary driven by librdkafka in
# tests/), then the other real clients in scripts/compat (each installs
# itself). Long stress tests are #[ignore]d; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
# Doc tests are not covered by --all-targets.
cargo test --workspace --doc
