"""A harness Dovecot started in a cgroup of its own, so the CPU of all its
processes (exited imap processes included) can be read in nanoseconds.
Shared by the side-by-side benchmarks in bench/.

The cgroup is made under $DMR_CGROUP_ROOT, by default the cgroup-v1 cpuacct
hierarchy /sys/fs/cgroup/cpuacct (cpuacct.usage, ns); a cgroup-v2 directory
works too (cpu.stat usage_usec). A chroot has no /sys/fs/cgroup of its own:
bind-mount the host's hierarchy into it and point DMR_CGROUP_ROOT there, e.g.
for the Debian 13 root R (docs/benchmarks.md):
  mkdir -p R/srv/bench/.cgroup && mount --bind /sys/fs/cgroup/cpuacct R/srv/bench/.cgroup
  chroot R env DMR_CGROUP_ROOT=/srv/bench/.cgroup python3 bench/login_cpu.py
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Dovecot  # noqa: E402

CGROUP_ROOT = os.environ.get("DMR_CGROUP_ROOT", "/sys/fs/cgroup/cpuacct")


class CgroupDovecot:
    def __init__(self, label, kind, **dovecot_kwargs):
        if os.path.exists(os.path.join(CGROUP_ROOT, "cpuacct.usage")):
            self.v2 = False
        elif os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            self.v2 = True
        else:
            sys.exit("needs a cgroup-v1 cpuacct hierarchy or a cgroup-v2 directory at %s "
                     "(DMR_CGROUP_ROOT)" % CGROUP_ROOT)
        self.label = label
        self.cgroup = os.path.join(CGROUP_ROOT, "dmr-bench-%s-%s-%d" % (kind, label, os.getpid()))
        os.makedirs(self.cgroup, exist_ok=True)
        self.dovecot = Dovecot(start_prefix=["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                                             self.cgroup], **dovecot_kwargs)

    def cpu_ns(self):
        """CPU time of every process of this Dovecot so far."""
        if self.v2:
            with open(os.path.join(self.cgroup, "cpu.stat")) as f:
                fields = dict(line.split() for line in f)
            return int(fields["usage_usec"]) * 1000
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
