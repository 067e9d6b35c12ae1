#!/usr/bin/env bash
# Builds the release archive: the rafka binary (release profile), README,
# an example server.properties, the systemd unit and the Grafana
# dashboard, as dist/rafka-VERSION-ARCH-linux.tar.gz with a SHA-256
# checksum file beside it. The release workflow runs it on a tag after
# .ci/run; it runs the same by hand.
#
# usage: scripts/release.sh [VERSION]   (default: the binary's own version)
#   env: RELEASE_NO_BUILD=1 packs $CARGO_TARGET_DIR/release/rafka as it is
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [[ -z ${RELEASE_NO_BUILD:-} ]]; then
    cargo build --release --locked -p rafka
fi
binary=$TARGET_DIR/release/rafka
# `rafka --version` prints "rafka X.Y.Z".
version=${1:-$("$binary" --version | awk '{ print $2 }')}
version=${version#v}
arch=$(uname -m)
name=rafka-$version-$arch-linux

files=(README.md deploy/server.properties deploy/systemd/rafka.service deploy/grafana/rafka.json)
for file in "${files[@]}"; do
    if [[ ! -f $file ]]; then
        echo "release.sh: $file is missing" >&2
        exit 1
    fi
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name"
install -m 0755 "$binary" "$stage/$name/rafka"
for file in "${files[@]}"; do
    install -m 0644 "$file" "$stage/$name/$(basename "$file")"
done
# Release binaries carry line tables (profile.release debug = 1) for
# backtraces; strip nothing.

mkdir -p dist
archive=dist/$name.tar.gz
# Reproducible metadata: fixed owner and order, mtime of the commit.
mtime=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" \
    -C "$stage" -czf "$archive" "$name"
(cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$archive"
echo "dist/$name.tar.gz.sha256"
