#!/usr/bin/env python3
"""Engine benchmark: the cache hit path and reruns of `pipeline`, side by side with DVC and
Snakemake on the equivalent pipeline.

Standard library only. It calls the `pipeline` release binary and `dvc` / `snakemake` from a
throwaway venv (`--venv`, default /tmp/venv-bench; create it with
`python3 -m venv /tmp/venv-bench && /tmp/venv-bench/bin/pip install dvc snakemake`). A tool
that is missing is reported and left out.

Two workspaces are generated under a temp dir (removed afterwards unless `--keep`):

* `many`: 100 input files of 1 MiB of deterministic bytes and a chain of 20 stages; stage i
  reads 5 of the files (declared `scripts` sources in `pipeline`, `deps` in DVC, `input` in
  Snakemake) and the previous stage's output, and writes a two-line CSV with `printf`.
* `large`: one 2 GiB input file (a repeated 1 MiB random block) feeding one stage.

Scenarios, each timed `--reps` times (wall clock median and min, and the median CPU time, user
+ system of the tool and its children, which a loaded machine disturbs less; warm page cache):

* `no-op`: nothing changed since the last run;
* `one input changed`: 8 bytes in the middle of one input are overwritten with a value never
  used before (size kept), then the tool runs;
* `touch all inputs` (`many` only): every input's mtime moves, contents unchanged.

Before each timed run of a changed scenario the driver sleeps `--settle` seconds (as a user's
edit precedes the command by more than that; `pipeline` distrusts stat records within 50 ms of
a file's mtime, as git does), and after it runs the tool once untimed so the next repetition
starts from a settled state. The `ran` column counts the stages that executed their command in
the timed runs (from `--summary-json` for `pipeline`, from output files rewritten for the
others).

    python3 benches/engine/run_bench.py [--quick] [--reps 5] [--venv /tmp/venv-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHAIN_STAGES = 20
FILES_PER_STAGE = 5


# ---------------------------------------------------------------- workspace generation


def det_bytes(seed: int, size: int) -> bytes:
    """`size` deterministic pseudo-random bytes (BLAKE2b in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.blake2b(
            seed.to_bytes(8, "little") + counter.to_bytes(8, "little"), digest_size=64
        ).digest()
        counter += 1
    return bytes(out[:size])


def stage_name(i: int) -> str:
    return f"s{i:02d}"


def file_name(j: int) -> str:
    return f"data/f{j:03d}.bin"


def printf_cmd(name: str, out: str) -> str:
    # A constant two-line CSV: the command's cost is a process start, so the timings are the
    # tools' own overhead.
    return f"printf 'stage,value\\n{name},1\\n' > {out}"


def write_many(root: Path, file_bytes: int) -> list[Path]:
    (root / "data").mkdir(parents=True)
    files = []
    for j in range(CHAIN_STAGES * FILES_PER_STAGE):
        p = root / file_name(j)
        p.write_bytes(det_bytes(j, file_bytes))
        files.append(p)
    return files


def write_large(root: Path, size: int) -> Path:
    (root / "data").mkdir(parents=True)
    p = root / "data" / "big.bin"
    block = random.Random(7).randbytes(1 << 20)
    with open(p, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
    return p


def stages_many():
    """(name, deps (files), upstream name or None) for the chain."""
    out = []
    for i in range(CHAIN_STAGES):
        files = [file_name(i * FILES_PER_STAGE + k) for k in range(FILES_PER_STAGE)]
        out.append((stage_name(i), files, stage_name(i - 1) if i else None))
    return out


def stages_large():
    return [("big", ["data/big.bin"], None)]


def pipeline_yaml(stages) -> str:
    lines = ["study: engine-bench", "outputs: out", "stages:"]
    for name, files, up in stages:
        lines.append(f"  {name}:")
        lines.append("    kind: command")
        if up:
            lines.append(f"    inputs: {{ prev: {up} }}")
            lines.append("    ports: [prev]")
        lines.append("    scripts: [" + ", ".join(files) + "]")
        lines.append("    format: csv")
        lines.append(f'    run: "{printf_cmd(name, "{output.table}")}"')
    return "\n".join(lines) + "\n"


def dvc_yaml(stages) -> str:
    lines = ["stages:"]
    for name, files, up in stages:
        lines.append(f"  {name}:")
        lines.append(f"    cmd: {json.dumps(printf_cmd(name, f'dvc_out/{name}.csv'))}")
        lines.append("    deps:")
        for f in files + ([f"dvc_out/{up}.csv"] if up else []):
            lines.append(f"      - {f}")
        lines.append("    outs:")
        lines.append(f"      - dvc_out/{name}.csv")
    return "\n".join(lines) + "\n"


def snakefile(stages) -> str:
    names = [s[0] for s in stages]
    lines = [
        "rule all:",
        "    input: [" + ", ".join(f'"smk_out/{n}.csv"' for n in names) + "]",
        "",
    ]
    for name, files, up in stages:
        inputs = [f'"{f}"' for f in files] + ([f'"smk_out/{up}.csv"'] if up else [])
        cmd = printf_cmd(name, "{output}").replace("\\", "\\\\")
        lines += [
            f"rule {name}:",
            f"    input: [{', '.join(inputs)}]",
            f'    output: "smk_out/{name}.csv"',
            f'    shell: "{cmd}"',
            "",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------- tools


class Tool:
    name = ""

    def __init__(self, root: Path):
        self.root = root

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(os.environ)

    def run(self, check: bool = True) -> float:
        """Runs the tool once; returns the wall time and keeps the CPU time (user + system, of
        the tool and its children) in `self.cpu`."""
        with tempfile.TemporaryFile() as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                self.argv(), cwd=self.root, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
            _, status, usage = os.wait4(proc.pid, 0)
            dt = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu = usage.ru_utime + usage.ru_stime
            if check and proc.returncode != 0:
                log.seek(0)
                sys.exit(
                    f"{self.name} failed in {self.root} (exit {proc.returncode}):\n"
                    + log.read().decode(errors="replace")[-3000:]
                )
        return dt

    def ran(self) -> int:
        """Stages executed by the last run."""
        raise NotImplementedError


class Pipeline(Tool):
    name = "pipeline"

    def __init__(self, root: Path, binary: Path, stages):
        super().__init__(root)
        self.binary = binary
        (root / "study.yaml").write_text(pipeline_yaml(stages))

    def argv(self):
        return [
            str(self.binary),
            "--cache-dir",
            str(self.root / ".pipeline-cache"),
            "run",
            "study.yaml",
            "--quiet",
            "--summary-json",
            str(self.root / ".summary.json"),
        ]

    def ran(self) -> int:
        s = json.loads((self.root / ".summary.json").read_text())
        return sum(1 for st in s["stages"] if st["status"] == "ran")


class OutputCounting(Tool):
    """Counts stages run by outputs whose (inode, mtime) moved."""

    out_dir = ""

    def snapshot(self):
        d = self.root / self.out_dir
        if not d.exists():
            return {}
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in d.iterdir()}

    def run(self, check: bool = True) -> float:
        before = self.snapshot()
        dt = super().run(check)
        after = self.snapshot()
        self._ran = sum(1 for k, v in after.items() if before.get(k) != v)
        return dt

    def ran(self) -> int:
        return self._ran


class Dvc(OutputCounting):
    name = "dvc"
    out_dir = "dvc_out"

    def __init__(self, root: Path, venv: Path, stages):
        super().__init__(root)
        self.exe = venv / "bin" / "dvc"
        (root / "dvc_out").mkdir(exist_ok=True)
        (root / "dvc.yaml").write_text(dvc_yaml(stages))
        subprocess.run(
            [str(self.exe), "init", "--no-scm", "-q"], cwd=root, env=self.env(), check=True
        )
        subprocess.run(
            [str(self.exe), "config", "core.analytics", "false"],
            cwd=root,
            env=self.env(),
            check=True,
        )

    def env(self):
        e = dict(os.environ)
        e["DVC_NO_ANALYTICS"] = "1"
        return e

    def argv(self):
        return [str(self.exe), "repro", "-q"]


class Snakemake(OutputCounting):
    name = "snakemake"
    out_dir = "smk_out"

    def __init__(self, root: Path, venv: Path, stages):
        super().__init__(root)
        self.exe = venv / "bin" / "snakemake"
        (root / "Snakefile").write_text(snakefile(stages))

    def argv(self):
        return [str(self.exe), "-c1", "--quiet"]


def version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return r.stdout.strip().splitlines()[-1] if r.returncode == 0 else "?"
    except OSError:
        return "not installed"


# ---------------------------------------------------------------- scenarios


class Mutator:
    """Overwrites 8 bytes in the middle of a file with a value never written before."""

    def __init__(self):
        self.n = 0

    def change(self, path: Path):
        self.n += 1
        size = path.stat().st_size
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, (0xB0B0_0000_0000 + self.n).to_bytes(8, "little"), size // 2)
        finally:
            os.close(fd)


def touch_all(files: list[Path]):
    now = time.time_ns()
    for p in files:
        os.utime(p, ns=(now, now))


def measure(tool: Tool, reps: int, mutate, settle: float):
    """Times `reps` runs; `mutate` (or None for a no-op) precedes each."""
    times, cpus, ran = [], [], []
    for _ in range(reps):
        if mutate:
            mutate()
            time.sleep(settle)
        times.append(tool.run())
        cpus.append(tool.cpu)
        ran.append(tool.ran())
        if mutate:
            # Settle: let the tool record the new state untimed, past any racy window.
            time.sleep(settle)
            tool.run()
    return times, cpus, ran


def fmt_s(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def bench_workspace(label, root, stages, tools_wanted, args, files, changed_file):
    tools: list[Tool] = []
    if "pipeline" in tools_wanted:
        tools.append(Pipeline(root, args.pipeline, stages))
    if "dvc" in tools_wanted:
        tools.append(Dvc(root, args.venv, stages))
    if "snakemake" in tools_wanted:
        tools.append(Snakemake(root, args.venv, stages))

    scenarios = [("no-op", None)]
    mut = Mutator()
    scenarios.append((f"one input changed ({changed_file.name})", lambda: mut.change(changed_file)))
    if len(files) > 1:
        scenarios.append((f"touch all {len(files)} inputs", lambda: touch_all(files)))

    rows = []
    for tool in tools:
        first = tool.run()
        time.sleep(args.settle)
        tool.run()  # settle the stat records of the first run
        print(f"  [{label}] {tool.name}: first run {fmt_s(first)}", file=sys.stderr)
        for scen, mutate in scenarios:
            times, cpus, ran = measure(tool, args.reps, mutate, args.settle)
            rows.append(
                {
                    "workspace": label,
                    "scenario": scen,
                    "tool": tool.name,
                    "median": statistics.median(times),
                    "min": min(times),
                    "cpu": statistics.median(cpus),
                    "ran": sorted(set(ran)),
                    "first": first,
                }
            )
            print(
                f"  [{label}] {tool.name:9} {scen:32} median {fmt_s(statistics.median(times)):>9}"
                f"  min {fmt_s(min(times)):>9}  cpu {fmt_s(statistics.median(cpus)):>9}"
                f"  ran {sorted(set(ran))}",
                file=sys.stderr,
            )
    return rows


def ratio(a: float, b: float) -> str:
    r = a / b
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def table(rows) -> str:
    """Markdown table: one line per (workspace, scenario), ratios to pipeline's median."""
    tools = []
    for r in rows:
        if r["tool"] not in tools:
            tools.append(r["tool"])
    head = ["workspace", "scenario"]
    for t in tools:
        head += [f"{t} median (min)", f"{t} cpu", f"{t} ran"]
    for t in tools:
        if t != "pipeline":
            head.append(f"{t} / pipeline")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = []
    for r in rows:
        k = (r["workspace"], r["scenario"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        by = {r["tool"]: r for r in rows if (r["workspace"], r["scenario"]) == k}
        cells = list(k)
        for t in tools:
            r = by.get(t)
            cells += (
                [
                    f"{fmt_s(r['median'])} ({fmt_s(r['min'])})",
                    fmt_s(r["cpu"]),
                    "/".join(map(str, r["ran"])),
                ]
                if r
                else ["-", "-", "-"]
            )
        base = by.get("pipeline")
        for t in tools:
            if t == "pipeline":
                continue
            r = by.get(t)
            cells.append(ratio(r["median"], base["median"]) if r and base else "-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    ap.add_argument("--pipeline", type=Path, default=target / "release" / "pipeline")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/venv-bench"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--settle", type=float, default=0.2, help="seconds between edit and run")
    ap.add_argument("--quick", action="store_true", help="64 KiB files, 64 MiB large input, 3 reps")
    ap.add_argument("--large-mib", type=int, default=2048)
    ap.add_argument("--tools", default="pipeline,dvc,snakemake")
    ap.add_argument("--only", choices=["many", "large"], help="run one workspace")
    ap.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated workspaces")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()

    file_bytes = 1 << 20
    large = args.large_mib << 20
    if args.quick:
        file_bytes, large, args.reps = 64 << 10, 64 << 20, min(args.reps, 3)

    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    if not args.pipeline.is_file():
        sys.exit(f"no pipeline binary at {args.pipeline}: run `cargo build --release` first")
    for tool, exe in (("dvc", "dvc"), ("snakemake", "snakemake")):
        if tool in wanted and not (args.venv / "bin" / exe).is_file():
            print(f"note: {exe} not found in {args.venv}; leaving it out", file=sys.stderr)
            wanted.remove(tool)

    base = args.workdir or Path(tempfile.mkdtemp(prefix="pipeline-engine-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"workspaces under {base}", file=sys.stderr)
    started = time.perf_counter()
    rows = []
    try:
        if args.only in (None, "many"):
            root = base / "many"
            files = write_many(root, file_bytes)
            rows += bench_workspace(
                "many", root, stages_many(), wanted, args, files, files[len(files) // 2]
            )
        if args.only in (None, "large"):
            root = base / "large"
            big = write_large(root, large)
            rows += bench_workspace("large", root, stages_large(), wanted, args, [big], big)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print()
    print(f"machine: {os.cpu_count()} CPUs ({cpu}); load average {os.getloadavg()[0]:.1f}")
    print(f"pipeline: {version([str(args.pipeline), '--version'])}")
    if "dvc" in wanted:
        print(f"dvc: {version([str(args.venv / 'bin' / 'dvc'), '--version'])}")
    if "snakemake" in wanted:
        print(f"snakemake: {version([str(args.venv / 'bin' / 'snakemake'), '--version'])}")
    print(
        f"many: {CHAIN_STAGES} stages, {CHAIN_STAGES * FILES_PER_STAGE} files × "
        f"{file_bytes >> 10} KiB; large: one {large >> 20} MiB file; {args.reps} reps"
    )
    print()
    print(table(rows))
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
