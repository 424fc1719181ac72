"""Times the reference tools on the same national work as `bench_national_stages`.

Usage (a throwaway venv outside the repository):

    python3 -m venv /tmp/venv-scale
    /tmp/venv-scale/bin/pip install pygeoda libpysal esda geopandas numba
    target/release/examples/bench_national_stages BOUNDARIES.geojson --write /tmp/national-bench
    /tmp/venv-scale/bin/python benches/national/reference_tools.py \
        BOUNDARIES.geojson /tmp/national-bench /tmp/national-bench/reference.csv
    target/release/examples/bench_national_stages BOUNDARIES.geojson --reference /tmp/national-bench/reference.csv

What is timed (reading files is not):
- contiguity: libpysal `Queen.from_dataframe` on the GeoJSON read with geopandas.
- autocorrelation: for each of the 38 years, esda `Moran` and `Moran_Local` with 999
  permutations on the bench's contiguity edges (`edges.gal`, row-standardised), as the stage
  computes both; `Moran_Local` with numba's compiled `crand` (the first call, which compiles,
  is run once untimed).
- skater k: auto / redcap k: auto: pygeoda 0.1.3 `skater(30, ...)` and
  `redcap(30, ..., "fullorder-averagelinkage")` once on the unit means of ecc, esc, nce_t_c.
  `k: auto` evaluates every k from 2 to 30; with pygeoda that is 29 calls, so one call is a
  lower bound of its cost. The within-cluster sum of squares at k = 30 is printed next to the
  bench's (`skater_summary.csv`) as a check that both did the same work.

Writes `what,tool,wall_s,cpu_s` rows to OUT (the bench's `--reference` file).
"""

import csv
import sys
import time


def timed(label, fn):
    """Runs fn; returns its result and (wall, CPU) seconds (CPU: all threads of this process,
    steadier than wall time on a shared machine)."""
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    secs = (time.perf_counter() - t, time.process_time() - c)
    print(f"{label}: {secs[0]:.3f} s wall, {secs[1]:.3f} s CPU", flush=True)
    return result, secs


def main():
    boundaries, d, out = sys.argv[1:4]
    rows = []

    import geopandas
    from libpysal.weights import Queen

    gdf = geopandas.read_file(boundaries)
    w_queen, secs = timed("libpysal Queen.from_dataframe", lambda: Queen.from_dataframe(gdf, use_index=False))
    print(f"  {w_queen.s0 / 2:.0f} pairs, {len(w_queen.islands)} islands")
    rows.append(("contiguity", "libpysal Queen.from_dataframe", secs))

    import numpy as np
    import esda
    import libpysal

    w = libpysal.io.open(f"{d}/edges.gal").read()
    w.transform = "r"
    order = w.id_order
    by_year = {}
    with open(f"{d}/values.csv") as f:
        for r in csv.DictReader(f):
            by_year.setdefault(int(r["year"]), {})[r["unit_id"]] = float(r["nce_t_c"])
    years = sorted(by_year)
    ys = [np.array([by_year[y][u] for u in order]) for y in years]
    esda.Moran_Local(ys[0], w, permutations=999, seed=1)  # numba compiles here

    def all_years():
        for y in ys:
            esda.Moran(y, w, permutations=999)
            esda.Moran_Local(y, w, permutations=999, seed=1)

    _, secs = timed(f"esda Moran + Moran_Local, 999 permutations, {len(years)} years", all_years)
    rows.append(("autocorrelation", f"esda Moran + Moran_Local ({len(years)} years)", secs))

    import pygeoda

    with open(f"{d}/means.csv") as f:
        means = list(csv.DictReader(f))
    ids = [r["unit_id"] for r in means]
    cols = [[float(r[c]) for r in means] for c in ("ecc", "esc", "nce_t_c")]
    gw = pygeoda.read_gal(f"{d}/edges.gal", ids)
    for method, name in (("skater", "skater k: auto"), ("redcap", "redcap k: auto")):
        if method == "skater":
            res, secs = timed("pygeoda skater(30)", lambda: pygeoda.skater(30, gw, cols))
        else:
            res, secs = timed(
                "pygeoda redcap(30, fullorder-averagelinkage)",
                lambda: pygeoda.redcap(30, gw, cols, "fullorder-averagelinkage"),
            )
        with open(f"{d}/{method}_summary.csv") as f:
            ours = {int(r["k"]): float(r["within_ss"]) for r in csv.DictReader(f)}
        print(
            f"  within SS at k = 30: pygeoda {res['Total within-cluster sum of squares']:.6f}, "
            f"bench {ours.get(30, float('nan')):.6f}"
        )
        rows.append((name, f"pygeoda {method}(30) once", secs))

    with open(out, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["what", "tool", "wall_s", "cpu_s"])
        for what, tool, (wall, cpu) in rows:
            wr.writerow([what, tool, f"{wall:.4f}", f"{cpu:.4f}"])


if __name__ == "__main__":
    main()
