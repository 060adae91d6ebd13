#!/usr/bin/env python3
"""Benchmark `haul get` against aria2c, axel and curl on the test origin, in several host profiles, and against
yt-dlp (alone and with aria2c as its downloader) on a video page.

Every tool downloads the same file from the same `haul-origin` profile in one run; every result's sha256 is
checked; each tool's median time is printed with its ratio to the best of the other tools and to the
physical limit (the file size over the most the host can deliver: its aggregate cap, or its connection
limit times its per-connection cap, whichever is lower). Peak memory (max RSS) is measured per run.

    python3 bench/bench.py                 # all profiles, 3 runs each (curl once on capped hosts)
    python3 bench/bench.py --profiles lan,cdn --runs 5 --tools haul,aria2c
    python3 bench/bench.py --profiles media-cdn

Media profiles (`media-...`) serve a page at /watch/SIZE/NAME whose <video> is the file: every tool reads the
page, finds the video and downloads it (haul and yt-dlp both through yt-dlp's generic extractor).
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (description, file size, haul-origin flags, per-connection cap, connection limit, aggregate cap)
PROFILES = {
    "lan": ("fast LAN host, no caps", 1024 * MIB, [], None, None, None),
    "cdn": (
        "CDN: 1 MiB/s per connection, 50 ms latency, 40 MiB/s aggregate, 48 connections",
        256 * MIB,
        ["--per-connection-rate", "1M", "--latency-ms", "50", "--aggregate-rate", "40M", "--max-connections", "48"],
        1 * MIB, 48, 40 * MIB,
    ),
    "cdn-slow": (
        "the same CDN, a quarter of connections 10x slower",
        256 * MIB,
        ["--per-connection-rate", "1M", "--latency-ms", "50", "--aggregate-rate", "40M", "--max-connections", "48",
         "--slow-fraction", "0.25", "--slow-factor", "10"],
        1 * MIB, 48, 40 * MIB,
    ),
    "flaky": ("flaky host: 30% of responses cut mid-body, 50 MiB/s per connection", 256 * MIB,
              ["--cut-fraction", "0.3", "--per-connection-rate", "50M"], 50 * MIB, None, None),
    "no-range": ("host without Range support", 1024 * MIB, ["--no-range"], None, None, None),
    # Short transfers: 64 MiB where the host allows 32 connections of 4 MiB/s, so the limit is 0.50 s and the
    # ramp to the right connection count is most of the work.
    "cdn-short": (
        "short transfer: 4 MiB/s per connection, 50 ms latency, 160 MiB/s aggregate, 32 connections",
        64 * MIB,
        ["--per-connection-rate", "4M", "--latency-ms", "50", "--aggregate-rate", "160M", "--max-connections", "32"],
        4 * MIB, 32, 160 * MIB,
    ),
    "cdn-short-slow": (
        "the same short transfer, a quarter of connections 10x slower",
        64 * MIB,
        ["--per-connection-rate", "4M", "--latency-ms", "50", "--aggregate-rate", "160M", "--max-connections", "32",
         "--slow-fraction", "0.25", "--slow-factor", "10"],
        4 * MIB, 32, 160 * MIB,
    ),
    "flaky-short": (
        "flaky short transfer: 8 MiB/s per connection, 30 ms latency, 5% of responses cut mid-body",
        64 * MIB,
        ["--per-connection-rate", "8M", "--latency-ms", "30", "--cut-fraction", "0.05"],
        8 * MIB, None, None,
    ),
    # The cdn-short host over TLS (a CA made at start; every tool is told to trust it).
    "https": (
        "cdn-short over HTTPS: 4 MiB/s per connection, 50 ms latency, 160 MiB/s aggregate, 32 connections",
        64 * MIB,
        ["--tls", "--per-connection-rate", "4M", "--latency-ms", "50", "--aggregate-rate", "160M",
         "--max-connections", "32"],
        4 * MIB, 32, 160 * MIB,
    ),
    # 300 files of 256 KiB from a 50 ms host: what counts is the cost per file and the parallel downloads.
    "many-small": (
        "300 files of 256 KiB, 50 ms latency, 16 at a time",
        256 * 1024,
        ["--latency-ms", "50"],
        None, None, None,
    ),
    "media-cdn": (
        "a video page on the CDN host: 1 MiB/s per connection, 50 ms latency, 40 MiB/s aggregate, 48 connections",
        128 * MIB,
        ["--per-connection-rate", "1M", "--latency-ms", "50", "--aggregate-rate", "40M", "--max-connections", "48"],
        1 * MIB, 48, 40 * MIB,
    ),
}

TOOLS = ["haul", "aria2c", "axel", "curl"]
# Files of the many-small profile, and how many each tool downloads at once.
MANY_FILES = 300
MANY_JOBS = 16
MEDIA_TOOLS = ["haul", "yt-dlp", "yt-dlp+aria2c"]


def physical_limit(profile):
    _, size, _, per_conn, conn_limit, aggregate = PROFILES[profile]
    caps = []
    if aggregate:
        caps.append(aggregate)
    if per_conn and conn_limit:
        caps.append(per_conn * conn_limit)
    if per_conn and "--no-range" in PROFILES[profile][2]:
        caps.append(per_conn)
    return size / min(caps) if caps else None


def media_command_for(tool, page, out_dir, haul_bin):
    """A page-to-file download; the tool names the file, which is the only one left in `out_dir`."""
    if tool == "haul":
        return [haul_bin, "get", "-q", "-d", out_dir, page]
    ytdlp = ["yt-dlp", "-q", "--no-warnings", "--no-progress", "--fixup", "never", "--no-part", "-P", out_dir,
             "-o", "%(id)s.%(ext)s"]
    if tool == "yt-dlp":
        return [*ytdlp, page]
    if tool == "yt-dlp+aria2c":
        return [*ytdlp, "--downloader", "aria2c", "--downloader-args",
                "aria2c:-x16 -s16 -k1M --file-allocation=none", page]
    raise ValueError(tool)


def only_file(out_dir):
    names = [n for n in os.listdir(out_dir) if not n.startswith(".")]
    return os.path.join(out_dir, names[0]) if len(names) == 1 else None


def command_for(tool, url, out_dir, name, haul_bin, ca=None):
    """One file; `ca` is the PEM of the test origin's certificate authority on the https profile."""
    out = os.path.join(out_dir, name)
    if tool == "haul":
        return [haul_bin, "get", "-q", *(["--ca-cert", ca] if ca else []), "-o", out, url]
    if tool == "aria2c":
        return ["aria2c", "-x16", "-s16", "-k1M", "-q", "--file-allocation=none", "--allow-overwrite=true",
                *([f"--ca-certificate={ca}"] if ca else []), "--auto-file-renaming=false", "-d", out_dir, "-o",
                name, url]
    if tool == "axel":
        # axel has no option for a certificate authority; OpenSSL reads SSL_CERT_FILE for it.
        return [*(["env", f"SSL_CERT_FILE={ca}"] if ca else []), "axel", "-n", "16", "-q", "-o", out, url]
    if tool == "curl":
        return ["curl", "-sS", "--fail", "--retry", "20", "--retry-delay", "1", "--retry-all-errors",
                *(["--cacert", ca] if ca else []), "-C", "-", "-o", out, url]
    raise ValueError(tool)


def many_command_for(tool, list_file, urls, out_dir, haul_bin):
    """Every URL of `list_file` (also given as `urls`) into `out_dir`, MANY_JOBS at a time; None where the tool
    cannot take a list."""
    jobs = str(MANY_JOBS)
    if tool == "haul":
        return [haul_bin, "get", "-q", "-j", jobs, "-i", list_file, "-d", out_dir]
    if tool == "aria2c":
        return ["aria2c", "-q", "-i", list_file, "-j", jobs, "--file-allocation=none", "--allow-overwrite=true",
                "--auto-file-renaming=false", "-d", out_dir]
    if tool == "curl":
        return ["curl", "-sS", "--fail", "--parallel", "--parallel-max", jobs, "--output-dir", out_dir,
                "--remote-name-all", *urls]
    return None


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def high_water_mark(pid):
    """The process's peak resident memory in MiB (VmHWM), which exec resets, unlike getrusage's ru_maxrss."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed_run(cmd, timeout):
    """Run `cmd`, returning (seconds, exit code, peak RSS in MiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    peak = 0.0
    while True:
        # Read the high-water mark before reaping: the zombie has no memory left to report.
        peak = max(peak, high_water_mark(proc.pid))
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            return None, "timeout", peak
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip()
    if code != 0 and err:
        print(f"    {cmd[0]} exited {code}: {err.splitlines()[-1][:200]}", file=sys.stderr)
    return elapsed, code, peak


def start_origin(origin_bin, flags):
    proc = subprocess.Popen([origin_bin, "--listen", "127.0.0.1:0", *flags], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"haul-origin did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def bench_many(profile, description, size, base, tools, origin_bin, haul_bin, work, args):
    """The many-small profile: MANY_FILES files of `size`, every one's sha256 checked; rows as main's."""
    names = [f"f{i:03}.bin" for i in range(MANY_FILES)]
    urls = [f"{base}/data/{size}/{name}" for name in names]
    list_file = os.path.join(work, "urls.txt")
    with open(list_file, "w") as f:
        f.write("".join(url + "\n" for url in urls))
    expected = {}
    for name in names:
        expected[name] = subprocess.run([origin_bin, "--print-sha256", str(size), name], capture_output=True,
                                        text=True, check=True).stdout.strip()
    total = size * MANY_FILES
    print(f"\n== {profile}: {description}; {total // MIB} MiB in all", flush=True)
    results = {}
    for tool in tools:
        runs, times, rss, correct = args.runs, [], [], 0
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="haul-bench-") as out_dir:
                command = many_command_for(tool, list_file, urls, out_dir, haul_bin)
                if command is None:
                    break
                elapsed, code, peak = timed_run(command, args.timeout)
                ok = code == 0 and all(
                    os.path.exists(os.path.join(out_dir, name))
                    and sha256_file(os.path.join(out_dir, name)) == digest for name, digest in expected.items())
                correct += ok
                if elapsed is not None and code == 0:
                    times.append(elapsed)
                rss.append(peak)
        if not rss:
            print(f"  {tool:13} takes no list of URLs: skipped", flush=True)
            continue
        median = statistics.median(times) if times else None
        results[tool] = (median, correct, runs, max(rss))
        shown = f"{median:7.2f} s" if median else "   failed"
        print(f"  {tool:13} {shown}  correct {correct}/{runs}  peak RSS {max(rss):6.1f} MiB", flush=True)
    rows = []
    for tool, (median, correct, runs, peak) in results.items():
        others = [m for t, (m, *_) in results.items() if t != tool and m]
        rows.append((profile, tool, median, total, min(others) if others else None, None, correct, runs, peak))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--tools", default=",".join(TOOLS), help="for file profiles; media profiles use " +
                        ", ".join(MEDIA_TOOLS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slow-runs", type=int, default=1,
                        help="runs for a tool expected to take over a minute (curl on capped hosts)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "haul", "-p", "haul-test-support"], cwd=ROOT,
                       check=True)
    haul_bin = os.path.join(ROOT, "target", "release", "haul")
    origin_bin = os.path.join(ROOT, "target", "release", "haul-origin")
    installed = lambda tool: tool == "haul" or all(shutil.which(part) for part in tool.split("+"))
    wanted = args.tools.split(",") if args.tools else TOOLS
    tools = [t for t in wanted if installed(t)]
    media_tools = [t for t in MEDIA_TOOLS if installed(t)]
    missing = (set(wanted) | set(MEDIA_TOOLS)) - set(tools) - set(media_tools)
    if missing:
        print(f"not installed, skipped: {', '.join(sorted(missing))}", file=sys.stderr)

    rows = []
    work = tempfile.mkdtemp(prefix="haul-bench-")
    for profile in args.profiles.split(","):
        description, size, flags, per_conn, _, _ = PROFILES[profile]
        ca = os.path.join(work, "ca.pem") if "--tls" in flags else None
        origin, base = start_origin(origin_bin, flags + (["--write-ca", ca] if ca else []))
        media = profile.startswith("media-")
        # A video page's address names no file (as on real video sites): one ending in .bin would be fetched as
        # the file it names, not read as a page.
        name = profile if media else f"{profile}.bin"
        if profile == "many-small":
            try:
                rows.extend(bench_many(profile, description, size, base, tools, origin_bin, haul_bin, work, args))
            finally:
                origin.kill()
                origin.wait()
            continue
        url = f"{base}/watch/{size}/{name}" if media else f"{base}/data/{size}/{name}"
        expected = subprocess.run([origin_bin, "--print-sha256", str(size), name], capture_output=True, text=True,
                                  check=True).stdout.strip()
        phys = physical_limit(profile)
        print(f"\n== {profile}: {description}; {size // MIB} MiB"
              + (f"; physical limit {phys:.2f} s" if phys else ""), flush=True)
        results = {}
        try:
            for tool in media_tools if media else tools:
                single_stream_capped = tool in ("curl", "yt-dlp") and per_conn and size / per_conn > 60
                runs = args.slow_runs if single_stream_capped else args.runs
                times, rss, correct = [], [], 0
                for _ in range(runs):
                    with tempfile.TemporaryDirectory(prefix="haul-bench-") as out_dir:
                        command = (media_command_for(tool, url, out_dir, haul_bin) if media
                                   else command_for(tool, url, out_dir, name, haul_bin, ca))
                        elapsed, code, peak = timed_run(command, args.timeout)
                        path = only_file(out_dir) if media else os.path.join(out_dir, name)
                        ok = code == 0 and path and os.path.exists(path) and sha256_file(path) == expected
                        correct += ok
                        if elapsed is not None and code == 0:
                            times.append(elapsed)
                        rss.append(peak)
                median = statistics.median(times) if times else None
                results[tool] = (median, correct, runs, max(rss))
                shown = f"{median:7.2f} s" if median else "   failed"
                print(f"  {tool:13} {shown}  correct {correct}/{runs}  peak RSS {max(rss):6.1f} MiB", flush=True)
        finally:
            origin.kill()
            origin.wait()
        for tool, (median, correct, runs, peak) in results.items():
            others = [m for t, (m, *_) in results.items() if t != tool and m]
            best_other = min(others) if others else None
            rows.append((profile, tool, median, size, best_other, phys, correct, runs, peak))

    shutil.rmtree(work, ignore_errors=True)
    print("\n| profile | tool | median s | MiB/s | vs best other | vs physical limit | correct | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for profile, tool, median, size, best_other, phys, correct, runs, peak in rows:
        fmt = lambda x: f"{x:.2f}" if x else "-"
        speed = size / MIB / median if median else None
        vs_other = median / best_other if median and best_other else None
        vs_phys = median / phys if median and phys else None
        print(f"| {profile} | {tool} | {fmt(median)} | {fmt(speed)} | {fmt(vs_other)}x | {fmt(vs_phys)}x "
              f"| {correct}/{runs} | {peak:.1f} |")


if __name__ == "__main__":
    main()
