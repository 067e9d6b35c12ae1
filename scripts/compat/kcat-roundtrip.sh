#!/usr/bin/env bash
# Roundtrip with kcat (Debian's librdkafka) against a running broker: per
# codec, COUNT keyed records with headers to an auto-created topic, read back
# to the end of the partition and compared exactly (see
# roundtrip/kcat_roundtrip.sh). Installs kcat itself (setup-kcat.sh).
#
# usage: scripts/compat/kcat-roundtrip.sh [BOOTSTRAP]   (env: BOOTSTRAP, COUNT, CODECS)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=roundtrip/common.sh
source "$here/roundtrip/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-kcat.sh" >&2
roundtrip_run kcat "none gzip snappy lz4 zstd" "$here/roundtrip/kcat_roundtrip.sh"
