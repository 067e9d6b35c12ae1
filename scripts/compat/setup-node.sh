#!/usr/bin/env bash
# kafkajs with its optional codecs, in .cache/node. kafkajs itself does
# gzip; snappy (pure JS) and lz4 (native, built by node-gyp) come from
# plug-in packages, installed one by one so that a codec whose build fails
# only drops that codec. No zstd: @kafkajs/zstd builds cppzst, whose C++11
# flags no longer compile against node 20's headers.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node_dir="$here/.cache/node"
mkdir -p "$node_dir"
[[ -f "$node_dir/package.json" ]] || echo '{"name":"rafka-compat-node","private":true}' >"$node_dir/package.json"

install() {
    local package="$1" module="$2"
    if (cd "$node_dir" && node -e "require.resolve('$module')" 2>/dev/null); then
        echo "setup-node: $package already installed"
    elif (cd "$node_dir" && npm install --no-audit --no-fund --silent "$package"); then
        echo "setup-node: installed $package"
    else
        echo "setup-node: could not install $package; its codec is skipped" >&2
    fi
}

install kafkajs kafkajs
install kafkajs-snappy kafkajs-snappy
install kafkajs-lz4 kafkajs-lz4

(cd "$node_dir" && node -e "console.log('setup-node: kafkajs ' + require('kafkajs/package.json').version)")
