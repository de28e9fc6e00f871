"""Login storm against the auth process with its store local or far away
(issue 13, "auth never waits").

A throwaway Dovecot with the mruby passdb stage running
Dovecot::Policy::BruteForce (one store call per successful login), driven by
--clients connections to the auth-client socket (what imap-login speaks),
each with one AUTH PLAIN outstanding at a time, for --seconds each. The store is,
in turn: Redis on loopback, the same Redis behind a proxy adding 1 ms and
10 ms to every round trip (tests/integration/redis_delay_proxy.py), and
LMDB; "redis proxy" is the proxy adding nothing, for what the proxy itself
costs (it is Python, on the same CPUs). Each configuration runs with every build given (--baseline: a build
directory of main's synchronous code, e.g. from `git worktree add`; the
current build always), interleaved, in one run: each measurement is a child
process with its own DMR_BUILD_DIR.

  python3 bench/auth_async.py --baseline /tmp/main/build --clients 100
  python3 bench/auth_async.py --baseline /tmp/main/build --imap --clients 20 --seconds 15
"""

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
PASSWORD = "secret"

POLICY = "Dovecot::Policy::BruteForce.enable!(limit: 1000000, window: 60, count_trusted: true)\n"
# (name, added round trip in seconds; None: LMDB, no proxy for plain "redis").
STORES = [("redis", 0.0), ("redis proxy", 0.0), ("redis +1ms", 0.001), ("redis +10ms", 0.010),
          ("lmdb", None)]


async def storm(path, seconds, clients):
    """`clients` connections to the auth-client socket (what imap-login
    speaks), each with one AUTH PLAIN request outstanding at a time: the
    auth process alone is measured, not login or imap processes."""
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    stop_at = time.monotonic() + seconds
    done = [0, 0]
    failures = []

    async def one(n):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"VERSION\t1\t2\nCPID\t%d\n" % (os.getpid() * 100 + n))
        while (await reader.readline()).split(b"\t")[0] != b"DONE\n":
            pass
        rid = 0
        while time.monotonic() < stop_at:
            rid += 1
            writer.write(("AUTH\t%d\tPLAIN\tservice=imap\tlip=127.0.0.1\trip=127.0.0.1\t"
                          "resp=%s\n" % (rid, token)).encode())
            line = await reader.readline()
            if line.startswith(b"OK\t"):
                done[0] += 1
            else:
                done[1] += 1
                if len(failures) < 3:
                    failures.append(line.decode(errors="replace").strip())
        writer.close()
    await asyncio.gather(*(one(n) for n in range(clients)))
    for line in failures:
        print("auth-client: " + line, file=sys.stderr)
    return done[0], done[1]


def imap_storm(d, seconds, clients):
    """The issue's own measure: `clients` IMAP clients, each connect, LOGIN,
    LOGOUT in a loop (login and imap processes included)."""
    import imaplib
    import threading
    stop_at = time.monotonic() + seconds
    counts = [0] * clients
    errors = [0] * clients

    def one(i):
        while time.monotonic() < stop_at:
            try:
                d.imap("alice").logout()
                counts[i] += 1
            except (imaplib.IMAP4.error, OSError) as e:
                errors[i] += 1
                print("imap: %s" % e, file=sys.stderr)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), sum(errors)


def child(store, seconds, clients, imap=False):
    from auth_harness import AuthDovecot
    from harness import RedisServer
    from redis_delay_proxy import RedisDelayProxy
    cleanup = []
    try:
        delay = dict(STORES)[store]
        if delay is None:
            d = AuthDovecot(POLICY, store="lmdb")
            d.passdb_args = "store=" + d.store_spec
        else:
            redis = RedisServer()
            cleanup.append(redis.stop)
            port = redis.port
            if store != "redis":
                proxy = RedisDelayProxy(redis.port, delay=delay)
                port = proxy.start()
                cleanup.append(proxy.stop)
            d = AuthDovecot(POLICY, passdb_args="store=redis://127.0.0.1:%d/0?timeout=1s" % port)
        cleanup.append(d.cleanup)
        d.start()
        d.imap("alice").logout()   # warm up: modules loaded, script compiled
        if imap:
            counts, errors = imap_storm(d, seconds, clients)
        else:
            counts, errors = asyncio.run(storm(os.path.join(d.dir, "run", "auth-client"),
                                               seconds, clients))
        problems = [line for line in d.log().splitlines()
                    if ("Error" in line or "Warning" in line or "Fatal" in line) and
                    "cannot keep the last good version" not in line]
        for line in problems[:3]:
            print("log: " + line, file=sys.stderr)
        print("%d %d" % (counts, errors))
    finally:
        for fn in reversed(cleanup):
            fn()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="build directory of the synchronous code (main)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--imap", action="store_true",
                        help="drive IMAP logins (the issue's measure) instead of auth-client")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.clients, args.imap)
        return
    builds = []
    if args.baseline:
        builds.append(("main (synchronous)", os.path.abspath(args.baseline)))
    builds.append(("this build", os.environ.get("DMR_BUILD_DIR", os.path.join(ROOT, "build"))))
    results = {}
    for store, _ in STORES:
        for label, build in builds:
            env = dict(os.environ, DMR_BUILD_DIR=build)
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", store,
                                  "--seconds", str(args.seconds), "--clients", str(args.clients)]
                                 + (["--imap"] if args.imap else []),
                                 env=env, check=True, capture_output=True, text=True)
            logins, errors = (int(x) for x in out.stdout.split()[-2:])
            problems = [line for line in out.stderr.splitlines()
                        if line.startswith(("auth-client:", "log:"))]
            results[(store, label)] = (logins / args.seconds, errors)
            print("%-12s %-20s %7.1f logins/s%s" % (
                store, label, logins / args.seconds,
                "  (%d failed)" % errors if errors else ""), flush=True)
            for line in problems:
                print("    " + line[:200], flush=True)
    print()
    print("logins/s, %d %s clients, %g s each" % (
        args.clients, "IMAP" if args.imap else "auth-client", args.seconds))
    print("%-12s" % "store" + "".join("%22s" % label for label, _ in builds))
    for store, _ in STORES:
        row = "%-12s" % store
        for label, _ in builds:
            rate = results[(store, label)][0]
            local = results[("redis", label)][0]
            row += "%22s" % ("%.1f (%3.0f%%)" % (rate, 100.0 * rate / local if local else 0))
        print(row)
    print("(%: of the same build's local-Redis figure)")


if __name__ == "__main__":
    main()
