#!/usr/bin/env python3
"""The connection attacks of issue 25 item 1, against a gatekeeper on loopback, bounded.

Each phase runs one attack for --phase-secs seconds from attacker addresses 127.0.0.2 and up
(Linux routes all of 127/8 to loopback) while a legitimate client on 127.0.0.1 asks
GET /healthz every 100 ms on a new connection, and, if --ekg and --pki are given, runs
`ekg load` (real key and release requests). It samples the server's RSS and open
descriptors and the kernel's TCP memory, and prints one Markdown row per phase.

Phases:
  slow-readers   1,100 connections, each pipelining 200 GET /metrics and never reading
  idle-flood     2,000 connections that send nothing
  slowloris-head 1,000 connections sending one header line a second, never ending the head
  slowloris-body 1,000 connections declaring a 100,000-byte body and sending a byte a second
Connections the server closes are opened again (the attack keeps its pressure).
Everything stops by itself after the phase; only loopback addresses are used.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

PHASES = {
    "slow-readers": 1100,
    "idle-flood": 2000,
    "slowloris-head": 1000,
    "slowloris-body": 1000,
}
ATTACKER_ADDRESSES = 40  # 127.0.0.2 .. 127.0.0.41


def attacker_address(i):
    return f"127.0.0.{2 + i % ATTACKER_ADDRESSES}"


async def connect(src, target):
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((src, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(s, target), 5)
    except BaseException:
        s.close()
        raise
    return s


def closed_by_peer(s):
    try:
        data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return data == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def send_some(s, data):
    """Sends what the socket takes now; False if the connection is gone."""
    try:
        s.send(data)
        return True
    except BlockingIOError:
        return True
    except OSError:
        return False


async def attacker(kind, i, target, deadline, stats):
    src = attacker_address(i)
    pipelined = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 200
    while time.monotonic() < deadline:
        try:
            s = await connect(src, target)
        except (OSError, asyncio.TimeoutError):
            stats["connect_failures"] += 1
            await asyncio.sleep(0.2)
            continue
        stats["connections"] += 1
        alive = True
        if kind == "slow-readers":
            alive = send_some(s, pipelined)
        elif kind == "slowloris-head":
            alive = send_some(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        elif kind == "slowloris-body":
            head = b"POST /key-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/cms\r\nContent-Length: 100000\r\n\r\n"
            alive = send_some(s, head)
        while alive and time.monotonic() < deadline:
            await asyncio.sleep(1)
            if kind == "slow-readers":
                alive = send_some(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            elif kind == "idle-flood":
                alive = not closed_by_peer(s)
            elif kind == "slowloris-head":
                alive = not closed_by_peer(s) and send_some(s, b"X-a: b\r\n")
            elif kind == "slowloris-body":
                alive = not closed_by_peer(s) and send_some(s, b"0")
        if not alive:
            stats["closed_by_server"] += 1
        s.close()


async def legitimate(target, deadline, latencies, failures):
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            s = await connect("127.0.0.1", target)
            await loop.sock_sendall(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = await asyncio.wait_for(loop.sock_recv(s, 4096), 5)
                if not chunk:
                    break
                data += chunk
            s.close()
            if data.startswith(b"HTTP/1.1 200"):
                latencies.append(time.monotonic() - started)
            else:
                failures.append(data[:40])
        except (OSError, asyncio.TimeoutError) as e:
            failures.append(repr(e))
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


def tcp_memory_bytes():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1]) * 4096
    return 0


def server_sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, tcp_memory_bytes()


async def sampler(pid, deadline, samples):
    while time.monotonic() < deadline:
        samples.append(server_sample(pid))
        await asyncio.sleep(0.5)


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run_load(args, secs):
    if not (args.ekg and args.pki):
        return None
    cmd = [args.ekg, "load", "--target", f"http://{args.target}/", "--pki", args.pki,
           "--concurrency", "2", "--duration", str(secs), "--requests", "300"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load_summary(proc):
    if proc is None:
        return ""
    out, _ = proc.communicate(timeout=600)
    parts = []
    for line in out.splitlines():
        f = line.split()
        # operation sent ok req/s p50(ms) p99(ms) max(ms)
        if len(f) == 7 and f[0] in ("issuance", "release"):
            parts.append(f"{f[0]} {f[2]}/{f[1]} ok, p99 {f[5]} ms")
    return "; ".join(parts) + ("" if proc.returncode == 0 else f" (exit {proc.returncode})")


async def phase(kind, args):
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    n = PHASES[kind]
    stats = {"connections": 0, "connect_failures": 0, "closed_by_server": 0}
    latencies, failures, samples = [], [], []
    start = time.monotonic()
    deadline = start + args.phase_secs
    load = run_load(args, max(5, args.phase_secs - 8))
    tasks = []
    # Open the attack's connections in batches (the listen queue is finite).
    for i in range(n):
        tasks.append(asyncio.create_task(attacker(kind, i, target, deadline, stats)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # the attack in place before the legitimate client starts
    tasks.append(asyncio.create_task(legitimate(target, deadline, latencies, failures)))
    tasks.append(asyncio.create_task(sampler(args.pid, deadline, samples)))
    await asyncio.gather(*tasks)
    loaded = await asyncio.get_running_loop().run_in_executor(None, load_summary, load)
    await asyncio.sleep(2)
    after = server_sample(args.pid)
    ms = lambda x: f"{x * 1000:.0f}"
    mib = lambda x: f"{x / 2**20:.0f}"
    rss = max(s[0] for s in samples)
    fds = max(s[1] for s in samples)
    tcp = max(s[2] for s in samples)
    print(f"| {kind} | {n} | {stats['connections']} | {stats['closed_by_server']} | {len(latencies)} | {len(failures)} "
          f"| {ms(percentile(latencies, 50))} | {ms(percentile(latencies, 99))} | {ms(max(latencies) if latencies else float('nan'))} "
          f"| {mib(rss)} | {fds} | {mib(tcp)} | {mib(after[0])} / {after[1]} | {loaded} |", flush=True)
    if failures:
        print(f"<!-- {kind}: failures {failures[:5]} -->", flush=True)
    return percentile(latencies, 99), len(failures)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--pid", required=True, type=int, help="the server's process id")
    ap.add_argument("--phase-secs", type=int, default=20, help="seconds per phase (5 to 120)")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated phases")
    ap.add_argument("--ekg", help="the ekg binary, for `ekg load` during each phase")
    ap.add_argument("--pki", help="the demo's pki directory, for `ekg load`")
    args = ap.parse_args()
    if not args.target.startswith("127.") or not 5 <= args.phase_secs <= 120:
        sys.exit("attack.py: a loopback target (127.x) and 5 to 120 seconds per phase only")
    print("| attack | attack connections | opened | closed by the server | legitimate answers | legitimate failures "
          "| p50 ms | p99 ms | max ms | server RSS max MiB | server fds max | kernel TCP memory max MiB "
          "| RSS MiB / fds 2 s after | ekg load (real requests) during the attack |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| none | 0 | | | | | | | | {server_sample(args.pid)[0] // 2**20} | {server_sample(args.pid)[1]} "
          f"| {tcp_memory_bytes() // 2**20} | | |", flush=True)
    worst = 0.0
    failed = 0
    for kind in args.phases.split(","):
        p99, f = await phase(kind, args)
        worst = max(worst, p99)
        failed += f
    print(f"\nworst legitimate p99: {worst * 1000:.0f} ms; legitimate failures: {failed}")
    sys.exit(0 if worst < 1.0 and failed == 0 else 1)


if __name__ == "__main__":
    asyncio.run(main())
