#!/usr/bin/env bash
# The Java Kafka client (kafka-clients 3.9.1), its codec jars and jackson
# (for OAUTHBEARER), taken from the shigawire-apache-flink-libraries wheel
# on PyPI (which bundles them),
# then the Java client programs in capture/ compiled with javac 17.
# Idempotent: an existing jar set is reused; programs are recompiled.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="$here/.cache"
java_dir="$cache/java"
# jackson: kafka-clients leaves it to the application ("provided"), and its
# OAUTHBEARER login (the unsecured JWS, OIDC) parses tokens with it.
jars=(kafka-clients slf4j-api lz4-java snappy-java zstd-jni jackson-databind jackson-core jackson-annotations)

if ! command -v javac >/dev/null 2>&1; then
    echo "setup-java: javac missing; apt-get install openjdk-17-jdk-headless"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless
fi

have_all_jars() {
    local jar
    for jar in "${jars[@]}"; do
        [[ -f "$java_dir/$jar.jar" ]] || return 1
    done
}

if have_all_jars; then
    echo "setup-java: jars already in $java_dir"
else
    mkdir -p "$cache/download" "$java_dir"
    echo "setup-java: pip download shigawire-apache-flink-libraries"
    python3 -m pip download --quiet --no-deps --dest "$cache/download" \
        shigawire-apache-flink-libraries
    wheels=("$cache"/download/shigawire_apache_flink_libraries-*.whl)
    wheel="${wheels[-1]}"
    echo "setup-java: extracting ${jars[*]} from $(basename "$wheel")"
    python3 - "$wheel" "$java_dir" "${jars[@]}" <<'PY'
import sys, zipfile
wheel, out_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for name in names:
        member = f"pyflink/lib/{name}.jar"
        with archive.open(member) as src, open(f"{out_dir}/{name}.jar", "wb") as dst:
            dst.write(src.read())
PY
fi

version="$(python3 - "$java_dir/kafka-clients.jar" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as jar:
    for line in jar.read("kafka/kafka-version.properties").decode().splitlines():
        if line.startswith("version="):
            print(line[len("version="):])
PY
)"
echo "setup-java: kafka-clients $version"
if [[ "$version" != "3.9.1" ]]; then
    echo "setup-java: expected kafka-clients 3.9.1" >&2
    exit 1
fi

# The driver runs the programs with this class path.
classpath="$java_dir/classes"
for jar in "${jars[@]}"; do
    classpath+=":$java_dir/$jar.jar"
done
echo "$classpath" >"$java_dir/classpath"
mkdir -p "$java_dir/classes"
echo "setup-java: javac capture/*.java -> $java_dir/classes"
javac --release 17 -d "$java_dir/classes" -cp "$classpath" "$here"/capture/*.java
