#!/usr/bin/env bash
# The whole test suite, as the README gives it: every crate's unit and
# integration tests (including the broker binary driven by librdkafka in
# tests/), then the other real clients in scripts/compat (each installs
# itself). Long stress tests are #[ignore]d; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
# The fault tests in tests/cluster_faults.rs run the Java client beside
# librdkafka: install it first (idempotent, cached in scripts/compat/.cache).
bash scripts/compat/setup-java.sh
cargo test --workspace --all-targets
# Doc tests are not covered by --all-targets.
cargo test --workspace --doc
# Real clients beyond librdkafka: confluent-kafka, kafka-python, kafkajs,
# the Java client (kafka-clients 3.9.1, idempotent by default) and kcat,
# each installed by its own script under scripts/compat/.cache.
bash scripts/compat/run-all.sh
