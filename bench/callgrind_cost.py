#!/usr/bin/env python3
"""Instructions per call of the VM's entry points, counted by callgrind.

Wall-clock benchmarks on a shared 2-core machine differ by more than the
changes we want to judge (a few percent). Instruction counts do not: this
runs bench/vm_bench under callgrind and divides the inclusive instruction
count of each entry point by its number of calls, so two builds can be
compared exactly, side by side:

    python3 bench/callgrind_cost.py OLD/build/bench/vm_bench NEW/build/bench/vm_bench

It prints, per build, the instructions per call of VM start (Vm::create and
~Vm), of loading the example policy (Vm::load_source) and of one hook call
(Vm::run, from BM_HookCallTrivialHandler and BM_HookCallExamplePolicy).
"""
import os
import re
import subprocess
import sys
import tempfile

# benchmark filter -> the functions whose cost per call it measures
RUNS = [
    ("BM_VmStart$", ["dmr::mruby::Vm::create(", "dmr::mruby::Vm::~Vm()"]),
    ("BM_VmStartAndLoadExamplePolicy$", ["dmr::mruby::Vm::load_source("]),
    # a script that names JSON (the module loads) and the same without it
    ("BM_VmStartAndLoadJsonScript$", ["dmr::mruby::Vm::load_source("]),
    ("BM_VmStartAndLoadPlainScript$", ["dmr::mruby::Vm::load_source("]),
    # a script with a regexp literal (Regexp loads)
    ("BM_VmStartAndLoadRegexpScript$", ["dmr::mruby::Vm::load_source("]),
    ("BM_HookCallTrivialHandler$", ["dmr::mruby::Vm::run("]),
    ("BM_HookCallExamplePolicy$", ["dmr::mruby::Vm::run("]),
    ("BM_HookCallRegexpHandler$", ["dmr::mruby::Vm::run("]),
]


def call_costs(path, prefixes):
    """{prefix: (calls, inclusive Ir)} summed over every call site of a
    function whose name starts with prefix (callgrind's "calls=" lines and
    the cost line after each)."""
    names = {}
    totals = {p: [0, 0] for p in prefixes}
    current = None
    pending = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("cfn=") or line.startswith("cfni="):
                m = re.match(r"cfni?=\((\d+)\)(?: (.*))?", line)
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    current = names.get(m.group(1), "")
                else:
                    current = line.split("=", 1)[1]
            elif line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line)
                if m and m.group(2) is not None:
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls="):
                pending = int(line.split("=", 1)[1].split()[0])
            elif pending is not None:
                fields = line.split()
                ir = int(fields[1]) if len(fields) > 1 else 0
                for p in prefixes:
                    # "Vm::create(...)" but not "Vm::create(...)::Init::body"
                    if current and current.startswith(p) and ")::" not in current:
                        totals[p][0] += pending
                        totals[p][1] += ir
                pending = None
    return totals


def measure(binary):
    out = {}
    for bench_filter, prefixes in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "callgrind.out")
            subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + data,
                 "--compress-strings=yes", "--compress-pos=no", binary,
                 "--benchmark_filter=" + bench_filter, "--benchmark_min_time=0.05"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for prefix, (calls, ir) in call_costs(data, prefixes).items():
                key = bench_filter.rstrip("$") + " " + prefix.split("::")[-1].rstrip("(")
                out[key] = (calls, ir)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = [(b, measure(b)) for b in sys.argv[1:]]
    keys = list(results[0][1])
    print("| call | " + " | ".join(os.path.relpath(b) for b, _ in results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        cells = []
        for _, r in results:
            calls, ir = r.get(k, (0, 0))
            cells.append(f"{ir / calls:,.0f} ({calls} calls)" if calls else "not called")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
