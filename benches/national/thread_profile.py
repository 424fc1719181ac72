"""How much of a run could use a second core, measured on a machine other processes share.

Usage (Linux; Python 3.9+, standard library only):

    python3 benches/national/thread_profile.py [--interval 0.1] [--json OUT] -- \
        target/release/pipeline --cache-dir C run STUDY.yaml --jobs 2

On a machine loaded by other work, the wall time of a run measures the machine, so the ratio
of wall times at 1 and 2 threads says nothing about the program. What does not depend on the
load is which of the program's threads have work at the same moment. Every `--interval`
seconds this script reads each thread's CPU time (`/proc/PID/task/TID/schedstat`, first field,
nanoseconds). In each interval a thread counts as *working* when its CPU time there is at least
half of the busiest thread's; a rayon worker that only spins (yields) before going to sleep
uses far less than that. The CPU of an interval with one working thread is serial work, that
of an interval with two or more is parallel work, and an idle N-core machine would take

    wall(N) = sum over intervals of cpu_i / min(k_i, N)        (k_i working threads)

for it. With `--jobs 2` only k <= 2 can be seen, so the serial fraction s = serial CPU /
all CPU gives Amdahl's bound for more cores: speed-up(N) <= 1 / (s + (1 - s) / N)
(Amdahl 1967, AFIPS Conference Proceedings 30, 483-485).

Stages are told apart by the plain progress lines the pipeline writes on stderr when it is
not a terminal (`run     NAME`, `done    NAME (...)`): an interval's CPU goes to the stages
running in it, shared equally when several are; CPU outside every stage is the run's own
(reading the study, planning and hashing inputs before the first stage; publishing after
the last). The command's stderr is passed through.

Prints a table by stage and a total; `--json` writes the same numbers. Each stage computes on
threads of its own named `K:STAGE` (`0:landuse`, `1:landuse`, …; Linux keeps 15 bytes of a
name), so a second table gives each stage's CPU exactly, summed over its threads, and how many
of its threads ran at once; CPU a thread used after its last sample (under one `--interval`)
is not counted.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

STAGE_LINE = re.compile(r"^(run|done|FAILED)\s+([^\s:]+)")


THREAD_NAMES = {}


def thread_cpu_ns(pid):
    """CPU nanoseconds of each live thread of pid; remembers each thread's name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
            if tid not in THREAD_NAMES:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    THREAD_NAMES[tid] = f.read().strip()
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return out


def cpu_by_stage_thread(samples):
    """{stage: (CPU s, most of its threads working in one interval)} from `K:STAGE` names."""
    last = {}
    for _, cpu in samples:
        last.update(cpu)
    by_stage = {}
    for tid, ns in last.items():
        name = THREAD_NAMES.get(tid, "")
        index, _, stage = name.partition(":")
        if index.isdigit() and stage:
            by_stage[stage] = by_stage.get(stage, 0.0) + ns / 1e9
    widest = {}
    for (_, before), (_, after) in zip(samples, samples[1:]):
        deltas = {t: ns - before.get(t, 0) for t, ns in after.items() if ns > before.get(t, 0)}
        if not deltas:
            continue
        busiest = max(deltas.values())
        working = {}
        for tid, d in deltas.items():
            index, _, stage = THREAD_NAMES.get(tid, "").partition(":")
            if d >= busiest / 2 and index.isdigit() and stage:
                working[stage] = working.get(stage, 0) + 1
        for stage, k in working.items():
            widest[stage] = max(widest.get(stage, 0), k)
    return {s: (cpu, widest.get(s, 0)) for s, cpu in by_stage.items()}


def follow_stderr(stream, events, start):
    """Copies the child's stderr through and records when each stage started and ended."""
    for raw in stream:
        line = raw.decode("utf-8", "replace")
        sys.stderr.write(line)
        m = STAGE_LINE.match(line)
        if m:
            events.append((time.monotonic() - start, m.group(1), m.group(2)))


def sample(cmd, interval):
    """Runs cmd; returns its samples [(t, {tid: cpu_ns})], stage events, wall, exit code, rusage."""
    start = time.monotonic()
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    events = []
    reader = threading.Thread(target=follow_stderr, args=(child.stderr, events, start))
    reader.start()
    samples = []
    while True:
        samples.append((time.monotonic() - start, thread_cpu_ns(child.pid)))
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(interval)
    wall = time.monotonic() - start
    reader.join()
    code = os.waitstatus_to_exitcode(status)
    return samples, events, wall, code, usage


def stage_windows(events, wall):
    """{stage: (start, end)} from the progress lines; a stage with no end runs to the end."""
    windows = {}
    for t, what, name in events:
        if what == "run":
            windows[name] = [t, wall]
        elif name in windows:
            windows[name][1] = t
    return windows


def intervals(samples):
    """[(t0, t1, cpu_s, k)]: CPU of the interval and how many threads worked in it."""
    out = []
    for (t0, before), (t1, after) in zip(samples, samples[1:]):
        deltas = [ns - before.get(tid, 0) for tid, ns in after.items()]
        deltas = [d for d in deltas if d > 0]
        if not deltas:
            continue
        busiest = max(deltas)
        k = sum(1 for d in deltas if d >= busiest / 2)
        out.append((t0, t1, sum(deltas) / 1e9, k))
    return out


def running_label(windows, t):
    """The stage running at t; `a+b` when several run at once, `(run)` when none does."""
    running = sorted(n for n, (a, b) in windows.items() if a <= t < b)
    return "+".join(running) or "(run)"


def attribute(ivals, windows):
    """Per stage (or set of stages running together): CPU, serial CPU, idle 2-core wall."""
    rows = {}
    for t0, t1, cpu, k in ivals:
        r = rows.setdefault(
            running_label(windows, (t0 + t1) / 2),
            {"cpu_s": 0.0, "serial_cpu_s": 0.0, "wall2_s": 0.0},
        )
        r["cpu_s"] += cpu
        if k == 1:
            r["serial_cpu_s"] += cpu
        r["wall2_s"] += cpu / min(k, 2)
    return rows


def amdahl(serial_fraction, cores):
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / cores)


def summarise(name, r):
    cpu = r["cpu_s"]
    s = r["serial_cpu_s"] / cpu if cpu > 0 else 1.0
    return {
        "stage": name,
        "cpu_s": round(cpu, 3),
        "serial_fraction": round(s, 3),
        "idle_wall_2_s": round(r["wall2_s"], 3),
        "speedup_2": round(cpu / r["wall2_s"], 2) if r["wall2_s"] > 0 else 1.0,
        "amdahl_16": round(amdahl(s, 16), 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--json", help="write the figures, and every interval, here too")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command ...")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (put it after --)")
    samples, events, wall, code, usage = sample(cmd, args.interval)
    ivals = intervals(samples)
    rows = attribute(ivals, stage_windows(events, wall))
    total = {"cpu_s": 0.0, "serial_cpu_s": 0.0, "wall2_s": 0.0}
    for r in rows.values():
        for key in total:
            total[key] += r[key]
    table = sorted((summarise(n, r) for n, r in rows.items()), key=lambda x: -x["cpu_s"])
    table.append(summarise("TOTAL", total))
    print(f"{'stage':<32} {'CPU s':>8} {'serial':>7} {'idle 2-core s':>14} {'x2':>5} {'Amdahl x16':>11}")
    for row in table:
        print(
            f"{row['stage']:<32} {row['cpu_s']:>8.2f} {row['serial_fraction']:>7.2f} "
            f"{row['idle_wall_2_s']:>14.2f} {row['speedup_2']:>5.2f} {row['amdahl_16']:>11.2f}"
        )
    by_thread = cpu_by_stage_thread(samples)
    if by_thread:
        print(f"{'stage (its own threads)':<32} {'CPU s':>8} {'threads at once':>16}")
        for stage, (cpu, widest) in sorted(by_thread.items(), key=lambda x: -x[1][0]):
            print(f"{stage:<32} {cpu:>8.2f} {widest:>16}")
    process_cpu = usage.ru_utime + usage.ru_stime
    # The last interval before exit is not sampled: compare the sampled CPU with the process's.
    print(
        f"wall {wall:.2f} s, process CPU {process_cpu:.2f} s ({usage.ru_utime:.2f} user), "
        f"sampled {total['cpu_s']:.2f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
        f"{len(samples)} samples, exit {code}"
    )
    if args.json:
        with open(args.json, "w") as f:
            summary = {"wall_s": wall, "process_cpu_s": process_cpu, "exit": code}
            windows = stage_windows(events, wall)
            timeline = [
                [round(t0, 2), round(cpu, 4), k, running_label(windows, (t0 + t1) / 2)]
                for t0, t1, cpu, k in ivals
            ]
            threads = {s: {"cpu_s": round(c, 3), "threads_at_once": w} for s, (c, w) in by_thread.items()}
            json.dump(
                {**summary, "stages": table, "stage_threads": threads, "intervals": timeline},
                f,
                indent=1,
            )
    sys.exit(code)


if __name__ == "__main__":
    main()
