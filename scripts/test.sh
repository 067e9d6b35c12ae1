#!/usr/bin/env bash
# The whole test suite, as the README gives it: every crate's unit and
# integration tests. Long stress tests are #[ignore]d; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
# Doc tests are not covered by --all-targets.
cargo test --workspace --doc
