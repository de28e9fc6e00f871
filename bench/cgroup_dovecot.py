"""A harness Dovecot started in a cgroup-v1 cpuacct group of its own, so the
CPU of all its processes (exited imap processes included) can be read in
nanoseconds. Shared by the side-by-side benchmarks in bench/."""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Dovecot  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup/cpuacct"


class CgroupDovecot:
    def __init__(self, label, kind, **dovecot_kwargs):
        if not os.path.isdir(CGROUP_ROOT):
            sys.exit("needs a cgroup-v1 cpuacct hierarchy at %s" % CGROUP_ROOT)
        self.label = label
        self.cgroup = os.path.join(CGROUP_ROOT, "dmr-bench-%s-%s-%d" % (kind, label, os.getpid()))
        os.makedirs(self.cgroup, exist_ok=True)
        self.dovecot = Dovecot(start_prefix=["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                                             self.cgroup], **dovecot_kwargs)

    def cpu_ns(self):
        """CPU time of every process of this Dovecot so far."""
        with open(os.path.join(self.cgroup, "cpuacct.usage")) as f:
            return int(f.read())

    def imap_pids(self):
        """The pids of this Dovecot's running imap processes."""
        with open(os.path.join(self.cgroup, "cgroup.procs")) as f:
            pids = [int(x) for x in f.read().split()]
        found = []
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if f.read().split(b"\0")[0].endswith(b"/imap"):
                        found.append(pid)
            except OSError:
                pass
        return found

    def close(self):
        self.dovecot.cleanup()
        time.sleep(0.2)
        try:
            os.rmdir(self.cgroup)
        except OSError:
            pass
