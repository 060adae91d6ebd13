#!/usr/bin/env python3
"""Measure `haul serve` at scale: a store of many jobs, and many downloads running at once on one node.

Phase 1, a full store (the goals: 100,000 jobs, adds hold 1,000/s, start-up under 2 s, a page of the list and
`GET /v1/stats` under 50 ms at p99, memory flat):
  1. a fresh server on a temporary data directory is filled with --jobs downloads through the real API
     (`POST /v1/downloads`) by --clients client processes, each on one kept-alive connection, as fast as the
     server answers. The jobs are added paused (`"paused": true`): the store, the queue's indexes, every add's
     per-account cap check and the scheduler's wake-up all do their real work, but no download runs, so the
     figure is the cost of an add and not of the downloads it would start. The add rate is reported overall
     and over the last tenth of the store, where it is lowest if an add's cost grows with the store;
  2. the server is stopped (SIGTERM) and started again on the same data directory: the start-up time is from
     the process's start to its first authenticated answer (`GET /v1/stats`), and its RSS (VmRSS, and VmHWM
     the peak) is read from /proc, to compare with the same server on an empty store;
  3. p50 / p99 / max latency of --requests sequential requests each: the first page of `GET /v1/downloads`
     (default page size), a page in the middle and the last page (by `offset`, as the list's `next` links
     page), the first page of one state (`state=paused`), and `GET /v1/stats`.

Phase 2, --active downloads at once on one node: a fresh server with `--max-active` as many and no per-host
connection cap downloads --active files of --active-size each (each job at most --connections connections)
from a haul-origin that paces every connection at --rate. The server's CPU time (utime + stime from
/proc/PID/stat) and RSS are sampled every second; the figures are the server's CPU per throughput (CPU % of
one core per 100 MiB/s, i.e. how much of a core 100 MiB/s costs) over the steady part, where every download
runs, and over the whole run, with its peak RSS. The origin runs on the same machine and takes CPU too. The
defaults (100 MiB/s for 24 s, 2.4 GiB in all) stay under what the kernel lets pile up in the page cache before
it throttles writers, so that the figure is haul's and not the disk's; more can be asked for with --active-size
and --rate. Each second's sample is itself a list and a `GET /v1/stats`: the slowest, and any that failed, are
reported, as is the number of warnings in the server's log (slow pool acquires, failed progress writes).

    python3 bench/scale.py                      # 100,000 jobs, then 200 downloads of 12 MiB at 2 x 256 KiB/s
    python3 bench/scale.py --jobs 20000 --requests 200 --active 50   # a quick run
    python3 bench/scale.py --no-build --skip-active                  # phase 1 only
    python3 bench/scale.py --no-build --haul /tmp/haul-old           # another build of haul, copied aside

Every request talks to 127.0.0.1 only; the data directories are removed at the end (--keep to keep them).
"""

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Every server and origin started and not yet stopped, killed at exit whatever went wrong.
LIVE = []


def parse_size(text):
    """`24M`, `512K`, `1G` or bytes, in powers of 1024 (as haul-origin reads them)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def proc_status(pid):
    """VmRSS and VmHWM of `pid` in MiB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def cpu_seconds(pid):
    """User plus system CPU time of `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_origin(origin_bin, flags):
    proc = subprocess.Popen([origin_bin, "--listen", "127.0.0.1:0", *flags], stdout=subprocess.PIPE, text=True)
    LIVE.append(proc)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"haul-origin did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def stop_origin(proc):
    proc.kill()
    proc.wait()
    LIVE.remove(proc)


class Server:
    """One `haul serve` on 127.0.0.1 (a free port), its log in DATA/serve.log."""

    def __init__(self, haul_bin, data_dir, flags):
        self.data_dir = data_dir
        self.log = open(os.path.join(data_dir, "serve.log"), "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [haul_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--allow-net", "127.0.0.1/32",
             *flags],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        LIVE.append(self.proc)
        self.pid = self.proc.pid
        # The banner's first line: "haul listening on http://ADDR (...)".
        line = self.proc.stdout.readline()
        self.listening = time.monotonic() - self.started
        if not line.startswith("haul listening on http://"):
            self.proc.kill()
            raise SystemExit(f"haul serve did not start: {line!r}; see {self.log.name}")
        self.address = line.split()[3].removeprefix("http://")
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)
        with open(os.path.join(data_dir, "token")) as f:
            self.token = f.read().strip()
        # The first authenticated answer: the store is open and the account's totals can be read.
        client = Client(self.host, self.port, self.token)
        while True:
            try:
                client.request("GET", "/v1/stats")
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() - self.started > 60:
                    raise SystemExit("haul serve did not answer within 60 s")
                client.reconnect()
                time.sleep(0.01)
        self.answering = time.monotonic() - self.started
        client.close()

    def client(self):
        return Client(self.host, self.port, self.token)

    def stop(self):
        """SIGTERM, as a service manager stops it: running downloads are paused with their progress saved."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        LIVE.remove(self.proc)


class Client:
    """One kept-alive HTTP/1.1 connection to the server, with the token."""

    def __init__(self, host, port, token):
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def reconnect(self):
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, path, body=None, expect=200):
        data = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=data, headers=self.headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def timed(self, method, path):
        start = time.perf_counter()
        self.request(method, path)
        return time.perf_counter() - start

    def close(self):
        self.connection.close()


def add_worker(task):
    """One client process: adds its share of the jobs over one connection; returns each add's end time and
    latency (time.monotonic is the same clock in every process)."""
    host, port, token, base, first, count = task
    client = Client(host, port, token)
    ends, latencies = [], []
    for n in range(first, first + count):
        body = {"url": f"{base}/data/1024/job{n:07}.bin", "paused": True}
        start = time.monotonic()
        client.request("POST", "/v1/downloads", body, expect=201)
        end = time.monotonic()
        ends.append(end)
        latencies.append(end - start)
    client.close()
    return ends, latencies


def fill(server, base, jobs, clients):
    """Adds `jobs` paused downloads with `clients` processes; returns (adds/s overall, adds/s over the last
    tenth, p50 and p99 add latency in ms, the client processes' CPU seconds)."""
    share, extra = divmod(jobs, clients)
    tasks, first = [], 0
    for i in range(clients):
        count = share + (i < extra)
        tasks.append((server.host, server.port, server.token, base, first, count))
        first += count
    before = os.times()
    start = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(add_worker, tasks)
    elapsed = time.monotonic() - start
    after = os.times()
    ends = sorted(end for result in results for end in result[0])
    latencies = [latency for result in results for latency in result[1]]
    tenth = max(1, jobs // 10)
    last_tenth = ends[-tenth:]
    # The rate over the last tenth of adds: from the end of the add before it to the end of the last one.
    since = ends[-tenth - 1] if len(ends) > tenth else start
    tail_rate = len(last_tenth) / max(1e-9, last_tenth[-1] - since)
    client_cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return (jobs / elapsed, tail_rate, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000,
            client_cpu, elapsed)


def latencies(client, path, requests):
    client.request("GET", path)  # warm
    times = [client.timed("GET", path) for _ in range(requests)]
    return statistics.median(times) * 1000, percentile(times, 0.99) * 1000, max(times) * 1000


def phase_store(args, haul_bin, origin_bin, work):
    rows = []
    data_dir = os.path.join(work, "store")
    os.makedirs(data_dir)
    origin, base = start_origin(origin_bin, [])
    try:
        print(f"== store: {args.jobs} jobs, added paused by {args.clients} clients", flush=True)
        server = Server(haul_bin, data_dir, [])
        empty_rss, _ = proc_status(server.pid)
        rows.append(("start-up, empty store (to first authenticated answer)", f"{server.answering * 1000:.0f} ms"))
        rows.append(("RSS, empty store after start", f"{empty_rss:.1f} MiB"))
        cpu_before = cpu_seconds(server.pid)
        rate, tail_rate, p50, p99, client_cpu, elapsed = fill(server, base, args.jobs, args.clients)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        print(f"  added {args.jobs} in {elapsed:.1f} s: {rate:.0f}/s, last tenth {tail_rate:.0f}/s; add p50 "
              f"{p50:.1f} ms, p99 {p99:.1f} ms; CPU: server {server_cpu:.1f} s, clients {client_cpu:.1f} s",
              flush=True)
        rows.append((f"adds/s, {args.jobs} jobs ({args.clients} clients)", f"{rate:.0f}"))
        rows.append(("adds/s, last tenth of the store", f"{tail_rate:.0f}"))
        rows.append(("add latency p50 / p99", f"{p50:.1f} / {p99:.1f} ms"))
        rows.append(("server CPU per add", f"{server_cpu / args.jobs * 1e6:.0f} us"))
        filled_rss, filled_hwm = proc_status(server.pid)
        rows.append(("RSS after the adds (VmRSS / VmHWM)", f"{filled_rss:.1f} / {filled_hwm:.1f} MiB"))
        server.stop()
        database = os.path.join(data_dir, "haul.db")
        sizes = [os.path.getsize(database + suffix) / MIB if os.path.exists(database + suffix) else 0.0
                 for suffix in ("", "-wal")]
        rows.append(("database size (haul.db / haul.db-wal)", f"{sizes[0]:.1f} / {sizes[1]:.1f} MiB"))

        server = Server(haul_bin, data_dir, [])
        started_rss, _ = proc_status(server.pid)
        print(f"  restart with {args.jobs} jobs: listening after {server.listening * 1000:.0f} ms, first answer "
              f"after {server.answering * 1000:.0f} ms, RSS {started_rss:.1f} MiB", flush=True)
        rows.append((f"start-up, {args.jobs} jobs (to listening banner)", f"{server.listening * 1000:.0f} ms"))
        rows.append((f"start-up, {args.jobs} jobs (to first authenticated answer)",
                     f"{server.answering * 1000:.0f} ms"))
        rows.append((f"RSS, {args.jobs} jobs after start", f"{started_rss:.1f} MiB"))
        client = server.client()
        listed = client.request("GET", "/v1/downloads")
        total = listed["total"]
        if total != args.jobs:
            print(f"  warning: the list's total is {total}, not {args.jobs}", file=sys.stderr)
        page = len(listed["downloads"])
        middle = (total // 2) // page * page
        last = max(0, (total - 1) // page * page)
        paths = [
            ("GET /v1/downloads (first page)", "/v1/downloads"),
            ("GET /v1/downloads (middle page)", f"/v1/downloads?offset={middle}"),
            ("GET /v1/downloads (last page)", f"/v1/downloads?offset={last}"),
            ("GET /v1/downloads?state=paused (first page)", "/v1/downloads?state=paused"),
            ("GET /v1/stats", "/v1/stats"),
        ]
        for name, path in paths:
            p50, p99, worst = latencies(client, path, args.requests)
            print(f"  {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms", flush=True)
            rows.append((f"{name}, p50 / p99 ({args.requests} requests)", f"{p50:.2f} / {p99:.2f} ms"))
        client.close()
        rss, hwm = proc_status(server.pid)
        rows.append((f"RSS, {args.jobs} jobs after the reads (VmRSS / VmHWM)", f"{rss:.1f} / {hwm:.1f} MiB"))
        server.stop()
    finally:
        stop_origin(origin)
    return rows


def phase_active(args, haul_bin, origin_bin, work):
    rows = []
    data_dir = os.path.join(work, "active")
    os.makedirs(data_dir)
    size = parse_size(args.active_size)
    rate = parse_size(args.rate)
    per_job = rate * args.connections
    print(f"\n== active: {args.active} downloads of {size / MIB:g} MiB at once, at most {args.connections} "
          f"connections each at {rate / 1024:g} KiB/s (physical limit {args.active * per_job / MIB:.0f} MiB/s, "
          f"{size / per_job:.1f} s)", flush=True)
    origin, base = start_origin(origin_bin, ["--per-connection-rate", str(rate)])
    server = Server(haul_bin, data_dir, ["--max-active", str(args.active), "--max-connections-per-host", "0"])
    try:
        client = server.client()
        samples = []  # (time, server CPU s, RSS MiB, bytes done, active, completed, failed)
        failed_reads, slowest_read = [], 0.0

        def sample():
            nonlocal slowest_read
            start = time.monotonic()
            try:
                listed = client.request("GET", f"/v1/downloads?limit={min(1000, args.active)}")
                stats = client.request("GET", "/v1/stats")
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                # The server is slow or failing under the load: counted, and the run goes on.
                failed_reads.append(str(error)[:200])
                client.reconnect()
                return
            finally:
                slowest_read = max(slowest_read, time.monotonic() - start)
            done = sum(d["bytes_done"] if d["state"] != "completed" else (d["size"] or size)
                       for d in listed["downloads"])
            rss, _ = proc_status(server.pid)
            samples.append((time.monotonic(), cpu_seconds(server.pid), rss, done, stats["active"],
                            stats["completed"], stats["failed"] + stats["cancelled"]))

        sample()
        for n in range(args.active):
            client.request("POST", "/v1/downloads",
                           {"url": f"{base}/data/{size}/active{n:04}.bin", "connections": args.connections},
                           expect=201)
        deadline = time.monotonic() + args.timeout
        while True:
            time.sleep(1)
            sample()
            _, _, _, _, _, completed, ended = samples[-1]
            if completed + ended >= args.active or time.monotonic() > deadline:
                break
        client.close()
        _, _, _, _, _, completed, ended = samples[-1]
        peak_rss = max(s[2] for s in samples)
        _, hwm = proc_status(server.pid)
        # Steady part: the samples between which every download was running.
        steady = [(a, b) for a, b in zip(samples, samples[1:]) if a[4] >= args.active and b[4] >= args.active]
        rows.append((f"{args.active} downloads: completed / failed", f"{completed} / {ended}"))
        most = max(s[4] for s in samples)
        rows.append(("most running at once", f"{most}"))
        rows.append(("API during the run: failed reads / slowest list + stats",
                     f"{len(failed_reads)} / {slowest_read * 1000:.0f} ms"))
        if failed_reads:
            print(f"  {len(failed_reads)} reads failed, the first: {failed_reads[0]}", flush=True)

        def cpu_per(pairs, label):
            if not pairs:
                rows.append((label, "no interval with every download running"))
                return
            seconds = pairs[-1][1][0] - pairs[0][0][0]
            cpu = pairs[-1][1][1] - pairs[0][0][1]
            mib = (pairs[-1][1][3] - pairs[0][0][3]) / MIB
            speed = mib / seconds
            per_100 = cpu / seconds * 100 / (speed / 100) if speed else float("inf")
            rows.append((label, f"{speed:.0f} MiB/s, CPU {cpu / seconds * 100:.0f}% of a core, "
                                f"{per_100:.1f}% per 100 MiB/s ({cpu / mib * 1000:.2f} ms per MiB)"))
            print(f"  {label}: {rows[-1][1]}", flush=True)

        cpu_per(steady, f"steady, all {args.active} running ({len(steady)} s)")
        cpu_per(list(zip(samples, samples[1:])), "whole run, first add to last completion")
        rows.append(("peak RSS (sampled / VmHWM)", f"{peak_rss:.1f} / {hwm:.1f} MiB"))
        with open(server.log.name, errors="replace") as f:
            warnings = [line for line in f if " WARN " in line or " ERROR " in line]
        rows.append(("server log: warnings and errors", f"{len(warnings)}"))
        if warnings:
            print(f"  {len(warnings)} warnings in the server log, the first: {warnings[0].strip()[:200]}", flush=True)
        print(f"  peak RSS {peak_rss:.1f} MiB (VmHWM {hwm:.1f} MiB)", flush=True)
    finally:
        server.stop()
        stop_origin(origin)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the store (phase 1)")
    parser.add_argument("--clients", type=int, default=4, help="client processes adding jobs at once")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per endpoint")
    parser.add_argument("--active", type=int, default=200, help="downloads running at once (phase 2)")
    parser.add_argument("--active-size", default="12M", help="size of each of those files")
    parser.add_argument("--rate", default="256K", help="the origin's pace of each connection, bytes/s")
    parser.add_argument("--connections", type=int, default=2, help="most connections of each download")
    parser.add_argument("--timeout", type=float, default=600, help="most seconds phase 2 may take")
    parser.add_argument("--skip-store", action="store_true", help="skip phase 1")
    parser.add_argument("--skip-active", action="store_true", help="skip phase 2")
    parser.add_argument("--keep", action="store_true", help="keep the data directories (printed)")
    parser.add_argument("--haul", default=os.path.join(ROOT, "target", "release", "haul"),
                        help="the haul binary (to compare builds: copy one aside and point here)")
    parser.add_argument("--origin", default=os.path.join(ROOT, "target", "release", "haul-origin"))
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "haul", "-p", "haul-test-support"], cwd=ROOT,
                       check=True)
    haul_bin, origin_bin = args.haul, args.origin
    work = tempfile.mkdtemp(prefix="haul-scale-")
    rows = []
    try:
        if not args.skip_store:
            rows += phase_store(args, haul_bin, origin_bin, work)
        if not args.skip_active:
            rows += phase_active(args, haul_bin, origin_bin, work)
    finally:
        for proc in LIVE:
            proc.kill()
            proc.wait()
        if args.keep:
            print(f"\ndata directories kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| measure | figure |")
    print("|---|---:|")
    for name, figure in rows:
        print(f"| {name} | {figure} |")


if __name__ == "__main__":
    main()
