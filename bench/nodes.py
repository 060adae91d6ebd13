#!/usr/bin/env python3
"""Measure what more `haul serve` nodes buy against a host that limits each client address: one node against
three nodes on one PostgreSQL database, downloading the same batch.

The host is a haul-origin that admits at most --per-ip responses at once from one client IP address (beyond
that it answers 503 with Retry-After: 1, as a host with a per-client connection limit does) and paces each
connection at --rate. One node, however many downloads it runs, gets --per-ip connections; three nodes that
fetch from three different source addresses (`--local-address 127.0.0.2`, `.3`, `.4`: Linux routes every
address of 127.0.0.0/8 on loopback) get three times as many, so the batch should take about a third of the time.
Each node is told the host's limit (`--max-connections-per-host`, as an operator who knows it would), so neither
setup loses time to refusals.

Each setup runs on a fresh origin, a fresh database and fresh directories, with one downloads directory shared by
its nodes: --files files of --size each are added round-robin through the nodes' APIs, and the wall time runs
from the first add to the moment every download is completed. Every file's sha256 is checked against the
origin's, and the directory must hold exactly the batch (no numbered duplicates, no partial files). The origin's
per-address counts (`GET /stats`, "clients") show the connections each address held at most and its refusals.

PostgreSQL is started for the run: Debian's programs (the newest /usr/lib/postgresql/*/bin, else PATH; see
scripts/postgres-tools.sh), a cluster made with initdb in a temporary directory (as the `postgres` user when run
as root, which initdb refuses), trust authentication on a free port of 127.0.0.1, no fsync.

    python3 bench/nodes.py                          # 30 files of 16 MiB, 4 connections per address at 8 MiB/s
    python3 bench/nodes.py --files 12 --size 8M     # a quick run
    python3 bench/nodes.py --no-build --runs 3      # the median of three runs of each setup

Every request talks to 127.0.0.1 (and 127.0.0.2-4) only; the directories are removed at the end (--keep keeps
them, printed).
"""

import argparse
import glob
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The source address of each node, in order: the first setup uses the first, the second all three.
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
# Every process started and not yet stopped, killed at exit whatever went wrong.
LIVE = []


def parse_size(text):
    """`16M`, `512K`, `1G` or bytes, in powers of 1024 (as haul-origin reads them)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("/S").removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stop(proc, sig=signal.SIGTERM, timeout=30):
    """Stops a process we started: `sig`, then SIGKILL if it takes longer than `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in LIVE:
        LIVE.remove(proc)


class Postgres:
    """A PostgreSQL server of the run's own, as haul-test-support's `Postgres` makes one for a test."""

    def __init__(self):
        self.bin = self.find_binaries()
        # Its own directory under /tmp, not under the run's: the server's user must be able to reach it.
        self.dir = tempfile.mkdtemp(prefix="haul-nodes-pg-")
        self.data = os.path.join(self.dir, "data")
        self.run_as = []
        if os.geteuid() == 0:
            try:
                shutil.chown(self.dir, "postgres", "postgres")
            except LookupError:
                raise SystemExit("running as root, which initdb refuses, and there is no postgres user to run "
                                 "PostgreSQL as; scripts/postgres-tools.sh installs Debian's postgresql")
            self.run_as = ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups", "--"]
        env = {**os.environ, "LC_ALL": "C"}
        env.pop("PGDATA", None)
        subprocess.run([*self.run_as, os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                       cwd=self.dir, env=env, check=True, capture_output=True)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(
            [*self.run_as, os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-k", self.dir, "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        LIVE.append(self.proc)
        deadline = time.monotonic() + 20
        while self.psql("postgres", "SELECT 1", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL did not start; see {self.log.name}")
            time.sleep(0.05)

    @staticmethod
    def find_binaries():
        def version(path):
            name = path.split(os.sep)[-2]
            return [int(part) for part in name.split(".")] if name.replace(".", "").isdigit() else [0]

        found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
                 if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres"))]
        if found:
            return max(found, key=version)
        initdb = shutil.which("initdb")
        if initdb and shutil.which("postgres"):
            return os.path.dirname(initdb)
        raise SystemExit("no PostgreSQL programs (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH; "
                         "scripts/postgres-tools.sh installs them")

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, database, sql, check=True):
        psql = os.path.join(self.bin, "psql")
        return subprocess.run([psql if os.path.exists(psql) else "psql", "-X", "-q", "-t", "-A", "-v",
                               "ON_ERROR_STOP=1", "-d", self.url(database), "-c", sql],
                              env={**os.environ, "PGCONNECT_TIMEOUT": "5"}, capture_output=True, text=True,
                              check=check)

    def create_database(self, name):
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        # Fast shutdown; the directory goes after.
        stop(self.proc, signal.SIGINT)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One `haul serve` on a free port of 127.0.0.1, its log in DATA/serve.log."""

    def __init__(self, haul_bin, data_dir, flags):
        os.makedirs(data_dir, exist_ok=True)
        self.log = open(os.path.join(data_dir, "serve.log"), "ab")
        self.proc = subprocess.Popen(
            [haul_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--allow-net", "127.0.0.1/32",
             *flags],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        LIVE.append(self.proc)
        # The banner's first line: "haul listening on http://ADDR (...)".
        line = self.proc.stdout.readline()
        if not line.startswith("haul listening on http://"):
            stop(self.proc, signal.SIGKILL)
            raise SystemExit(f"haul serve did not start: {line!r}; see {self.log.name}")
        self.host, port = line.split()[3].removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        with open(os.path.join(data_dir, "token")) as f:
            self.token = f.read().strip()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, path, body=None, expect=200):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def warnings(self):
        with open(self.log.name, errors="replace") as f:
            return [line.strip() for line in f if " WARN " in line or " ERROR " in line]

    def stop(self):
        self.connection.close()
        stop(self.proc)
        self.proc.stdout.close()
        self.log.close()


def start_origin(origin_bin, flags):
    proc = subprocess.Popen([origin_bin, "--listen", "127.0.0.1:0", *flags], stdout=subprocess.PIPE, text=True)
    LIVE.append(proc)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        stop(proc, signal.SIGKILL)
        raise SystemExit(f"haul-origin did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def origin_stats(base):
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/stats")
    stats = json.loads(connection.getresponse().read())
    connection.close()
    return stats


def run_setup(args, label, n_nodes, postgres, run, work, expected):
    """One batch on `n_nodes` nodes; returns a result row (a dict)."""
    setup_dir = os.path.join(work, f"{label}-{run}")
    downloads = os.path.join(setup_dir, "downloads")
    database = postgres.create_database(f"{label.replace('-', '_')}_{run}")
    rate = parse_size(args.rate)
    origin, base = start_origin(args.origin, ["--per-connection-rate", str(rate), "--max-connections-per-ip",
                                              str(args.per_ip)])
    nodes = []
    try:
        for i in range(n_nodes):
            nodes.append(Node(args.haul, os.path.join(setup_dir, f"node{i + 1}"), [
                "--database", database, "--node-id", f"node{i + 1}", "--downloads-dir", downloads,
                "--local-address", ADDRESSES[i], "--max-active", str(args.max_active),
                "--max-connections-per-host", str(args.per_ip)]))
        size = parse_size(args.size)
        start = time.monotonic()
        for n, name in enumerate(expected):
            nodes[n % n_nodes].request("POST", "/v1/downloads",
                                       {"url": f"{base}/data/{size}/{name}", "kind": "file"}, expect=201)
        added = time.monotonic() - start
        deadline = start + args.timeout
        while True:
            stats = nodes[0].request("GET", "/v1/stats")
            if stats["completed"] + stats["failed"] + stats["cancelled"] >= len(expected):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: not done within {args.timeout} s: {stats}")
            time.sleep(0.05)
        wall = time.monotonic() - start
        listed = nodes[0].request("GET", f"/v1/downloads?limit={min(1000, len(expected))}")["downloads"]
        per_node = {}
        for download in listed:
            per_node[download.get("node")] = per_node.get(download.get("node"), 0) + 1
        clients = origin_stats(base).get("clients", {})
        warnings = [line for node in nodes for line in node.warnings()]
    finally:
        for node in nodes:
            node.stop()
        stop(origin, signal.SIGKILL)
    found = sorted(os.listdir(downloads))
    correct = sum(1 for name, digest in expected.items()
                  if os.path.exists(os.path.join(downloads, name))
                  and sha256_file(os.path.join(downloads, name)) == digest)
    extra = sorted(set(found) - set(expected))
    if extra:
        print(f"  {label}: unexpected files in the downloads directory: {extra[:10]}", file=sys.stderr)
    if warnings:
        print(f"  {label}: {len(warnings)} warnings in the nodes' logs, the first: {warnings[0][:200]}",
              file=sys.stderr)
    if not args.keep:
        shutil.rmtree(setup_dir, ignore_errors=True)
    total = size * len(expected)
    peaks = {ip: c["peak_concurrent"] for ip, c in clients.items()}
    refused = sum(c["responses_503"] for c in clients.values())
    print(f"  {label:12} run {run + 1}: {wall:6.2f} s ({total / MIB / wall:6.1f} MiB/s; adds took {added:.2f} s); "
          f"completed per node {per_node}; peak connections per address {peaks}; 503s {refused}; "
          f"correct {correct}/{len(expected)}", flush=True)
    return {"wall": wall, "correct": correct, "extra": len(extra), "peaks": peaks, "refused": refused,
            "completed": stats["completed"], "failed": stats["failed"] + stats["cancelled"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=30, help="files in the batch")
    parser.add_argument("--size", default="16M", help="size of each file")
    parser.add_argument("--per-ip", type=int, default=4, help="the origin's cap on one address's connections")
    parser.add_argument("--rate", default="8M", help="the origin's pace of each connection, bytes/s")
    parser.add_argument("--max-active", type=int, default=3, help="downloads each node runs at once")
    parser.add_argument("--runs", type=int, default=1, help="runs of each setup (the median is reported)")
    parser.add_argument("--timeout", type=float, default=600, help="most seconds one batch may take")
    parser.add_argument("--keep", action="store_true", help="keep the directories (printed)")
    parser.add_argument("--haul", default=os.path.join(ROOT, "target", "release", "haul"))
    parser.add_argument("--origin", default=os.path.join(ROOT, "target", "release", "haul-origin"))
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "haul", "-p", "haul-test-support"], cwd=ROOT,
                       check=True)
    size = parse_size(args.size)
    rate = parse_size(args.rate)
    names = [f"n{i:03}.bin" for i in range(args.files)]
    expected = {name: subprocess.run([args.origin, "--print-sha256", str(size), name], capture_output=True,
                                     text=True, check=True).stdout.strip() for name in names}
    total = size * args.files
    print(f"== {args.files} files of {size / MIB:g} MiB ({total / MIB:g} MiB); the host: {args.per_ip} connections "
          f"per client address at {rate / MIB:g} MiB/s each; {args.max_active} downloads at once per node",
          flush=True)
    work = tempfile.mkdtemp(prefix="haul-nodes-")
    postgres = None
    results = {}
    try:
        postgres = Postgres()
        for label, n_nodes in (("one node", 1), ("three nodes", 3)):
            results[label] = (n_nodes, [run_setup(args, label.replace(" ", "-"), n_nodes, postgres, run, work,
                                                  expected) for run in range(args.runs)])
    finally:
        for proc in list(LIVE):
            if postgres is None or proc is not postgres.proc:
                stop(proc, signal.SIGKILL)
        if postgres is not None:
            postgres.stop()
        if args.keep:
            print(f"\ndirectories kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    medians = {label: statistics.median(r["wall"] for r in runs) for label, (_, runs) in results.items()}
    print("\n| setup | source addresses | wall s | MiB/s | physical limit s | vs limit | peak connections per "
          "address | 503s | completed / failed | correct |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for label, (n_nodes, runs) in results.items():
        wall = medians[label]
        # The host's limit for this many addresses: each gets per_ip connections at the per-connection rate.
        limit = total / (n_nodes * args.per_ip * rate)
        last = runs[-1]
        peaks = ", ".join(str(peak) for _, peak in sorted(last["peaks"].items())) or "-"
        correct = sum(r["correct"] for r in runs)
        print(f"| {label} | {n_nodes} | {wall:.2f} | {total / MIB / wall:.1f} | {limit:.2f} | {wall / limit:.2f}x "
              f"| {peaks} | {sum(r['refused'] for r in runs)} | {last['completed']} / {last['failed']} "
              f"| {correct}/{len(expected) * len(runs)} |")
    speedup = medians["one node"] / medians["three nodes"]
    print(f"\nthree nodes took {medians['three nodes']:.2f} s against one node's {medians['one node']:.2f} s: "
          f"{speedup:.2f}x faster (3x at most)")
    if any(r["correct"] != len(expected) or r["extra"] for _, runs in results.values() for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
