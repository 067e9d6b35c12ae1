#!/usr/bin/env bash
# kcat from Debian (links Debian's librdkafka, 2.0.2 on bookworm): a second,
# older librdkafka for compatibility runs. Idempotent: skips when installed.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
    echo "setup-kcat: kcat already installed"
else
    echo "setup-kcat: apt-get install kcat"
    sudo_cmd=()
    if [[ "$(id -u)" -ne 0 ]]; then
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq kcat
fi
kcat -V | grep -m1 "^Version" | sed "s/^/setup-kcat: /"
