#!/usr/bin/env bash
# Python Kafka clients for compatibility runs: confluent-kafka (its wheel
# bundles librdkafka) and kafka-python with the codec libraries it imports
# for snappy/lz4/zstd. Idempotent: an existing venv is reused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.cache/venv"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-python: creating venv $venv"
    mkdir -p "$here/.cache"
    python3 -m venv "$venv"
else
    echo "setup-python: reusing venv $venv"
fi

# kafka-python's codec.py imports snappy (python-snappy, which pulls in
# cramjam), lz4.frame and zstandard; crc32c speeds up its batch CRC.
# The clients are pinned to the versions the runs were written against
# (the kafka-python admin run reaches into its AlterConfigs internals).
packages=(confluent-kafka==2.16.1 kafka-python==3.0.12 python-snappy lz4 zstandard crc32c)
if "$venv/bin/python" -c 'import confluent_kafka, kafka, snappy, lz4.frame, zstandard, crc32c' 2>/dev/null; then
    echo "setup-python: packages already installed"
else
    echo "setup-python: pip install ${packages[*]}"
    "$venv/bin/pip" install --quiet "${packages[@]}"
fi

"$venv/bin/python" - <<'PY'
import confluent_kafka, kafka
print("setup-python: confluent-kafka", confluent_kafka.version(),
      "librdkafka", confluent_kafka.libversion()[0],
      "kafka-python", kafka.__version__)
PY
