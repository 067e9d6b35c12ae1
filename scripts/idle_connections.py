#!/usr/bin/env python3
"""What idle client connections cost the broker in memory.

Starts the given rafka binary on a fresh data dir, opens COUNT connections
that each send one ApiVersions request and read its answer (then stay
idle), and reports the broker's resident memory (VmRSS) before, with the
connections open, and after they closed. Standard library only.

    cargo build --release
    python3 scripts/idle_connections.py target/release/rafka --count 10000
"""

import argparse
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

LISTENING = "rafka listening on "


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def api_versions_v0(correlation_id):
    client_id = b"idle"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        data += chunk
    return data


def settle(pid, deadline_s=10.0):
    """RSS once it stops moving (two equal readings 200 ms apart)."""
    last = rss_kib(pid)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        time.sleep(0.2)
        now = rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="open and close COUNT connections this many times")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    data_dir = tempfile.mkdtemp(prefix="rafka-idle-")
    broker = subprocess.Popen(
        [args.binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--cores", str(args.cores), "--pin", "false", "--metrics-listen", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = broker.stdout.readline()
        if not line.startswith(LISTENING):
            raise RuntimeError(f"broker did not start: {line!r}")
        host, port = line[len(LISTENING):].split()[0].rsplit(":", 1)
        addr = (host, int(port))
        base = settle(broker.pid)

        rounds = []
        for _ in range(args.rounds):
            sockets = []
            for i in range(args.count):
                sock = socket.create_connection(addr)
                sock.sendall(api_versions_v0(i))
                size = struct.unpack(">i", read_exact(sock, 4))[0]
                read_exact(sock, size)
                sockets.append(sock)
            opened = settle(broker.pid)
            for sock in sockets:
                sock.close()
            sockets.clear()
            closed = settle(broker.pid)
            rounds.append((opened, closed))
        opened, closed = rounds[0]

        per_conn = (opened - base) * 1024 / args.count
        print(f"connections={args.count} cores={args.cores}")
        print(f"rss_idle_kib={base}")
        print(f"rss_open_kib={opened}")
        print(f"rss_after_close_kib={closed}")
        for index, (round_open, round_closed) in enumerate(rounds[1:], start=2):
            print(f"round{index}_rss_open_kib={round_open} round{index}_rss_after_close_kib={round_closed}")
        print(f"bytes_per_idle_connection={per_conn:.0f}")
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    sys.exit(main())
