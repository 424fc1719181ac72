"""Benchmark data and reference timings for the `landuse` stage.

Writes a synthetic CLCD-like land-use raster over Henan's Albers extent (30 m, uint8,
DEFLATE, 512 x 512 tiles) plus Henan's 123 units projected to Albers, then times
exactextract and rasterstats on it. The Rust side is `benches/bench_landuse.rs`.

    python3 -m venv /tmp/venv-landuse
    /tmp/venv-landuse/bin/pip install rasterio rasterstats exactextract pyproj
    /tmp/venv-landuse/bin/python benches/landuse/reference_tools.py make  UNITS.geojson OUTDIR [SCALE] [NOISE]
    /tmp/venv-landuse/bin/python benches/landuse/reference_tools.py time  OUTDIR [exactextract|rasterstats]

UNITS.geojson: lon/lat polygons with a `unit_id` (or `adcode`) property, e.g. the shared
henan_units123.geojson. SCALE (default 1) divides both raster dimensions (SCALE=2 → a quarter
of the pixels at 60 m) for a quicker run. NOISE (default 0) is the fraction of single pixels set to
a random class: 0 gives a very compressible map (~50x), 0.1 about the 5-6x of real CLCD files.
"""
import json
import os
import sys
import time

import numpy as np
import pyproj
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ALBERS = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
W, H = 25_200, 19_960


def make(units_path, out, scale, noise=0.0, name="lu_2000.tif"):
    os.makedirs(out, exist_ok=True)
    src = json.load(open(units_path, encoding="utf-8"))
    tr = pyproj.Transformer.from_crs("EPSG:4326", ALBERS, always_xy=True)
    feats, xs, ys = [], [], []

    def proj_rings(rings):
        out_r = []
        for ring in rings:
            x, y = tr.transform([p[0] for p in ring], [p[1] for p in ring])
            xs.extend(x)
            ys.extend(y)
            out_r.append([[a, b] for a, b in zip(x, y)])
        return out_r

    lonlat = []
    for f in src["features"]:
        props = f["properties"]
        uid = str(props.get("unit_id", props.get("adcode")))
        g = f["geometry"]
        if g["type"] == "Polygon":
            coords = proj_rings(g["coordinates"])
        else:
            coords = [proj_rings(p) for p in g["coordinates"]]
        feats.append({"type": "Feature", "properties": {"unit_id": uid},
                      "geometry": {"type": g["type"], "coordinates": coords}})
        lonlat.append({"type": "Feature", "properties": {"unit_id": uid}, "geometry": g})
    json.dump({"type": "FeatureCollection", "features": feats}, open(f"{out}/units_albers.geojson", "w"))
    json.dump({"type": "FeatureCollection", "features": lonlat}, open(f"{out}/units_lonlat.geojson", "w"))
    d = 30 * scale
    w, h = W // scale, H // scale
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    x0 = round((cx - w * d / 2) / 30) * 30
    y0 = round((cy + h * d / 2) / 30) * 30
    print(f"units bbox {min(xs):.0f} {min(ys):.0f} {max(xs):.0f} {max(ys):.0f}; raster {w} x {h} at {d} m from {x0} {y0}")
    rng = np.random.default_rng(3)
    # Coarse patches (~1.5 km) of mostly cropland, finer patches (~180 m) in 15% of places.
    classes = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 8, 8, 7], dtype=np.uint8)
    coarse_px, fine_px = max(1, 50 // scale), max(1, 6 // scale)
    coarse = classes[rng.integers(0, len(classes), size=(h // coarse_px + 2, w // coarse_px + 2))]
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=ALBERS,
                   transform=from_origin(x0, y0, d, d), nodata=0, tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    t = time.time()
    with rasterio.open(f"{out}/{name}", "w", **profile) as dst:
        for r0 in range(0, h, 512):
            rows = min(512, h - r0)
            rr = np.arange(r0, r0 + rows)
            cc = np.arange(w)
            band = coarse[np.ix_(rr // coarse_px, cc // coarse_px)]
            fine = classes[rng.integers(0, len(classes), size=(rows // fine_px + 2, w // fine_px + 2))]
            mask = rng.random(size=fine.shape) < 0.15
            fr, fc = (rr - r0) // fine_px, cc // fine_px
            band = np.where(mask[np.ix_(fr, fc)], fine[np.ix_(fr, fc)], band)
            if noise > 0:
                speckle = rng.random(size=band.shape) < noise
                band[speckle] = classes[rng.integers(0, len(classes), size=int(speckle.sum()))]
            dst.write(band[None, :, :], window=Window(0, r0, w, rows))
    print(f"wrote {out}/{name} in {time.time() - t:.1f} s, {os.path.getsize(f'{out}/{name}') / 1e6:.1f} MB")


def timed(out, which, raster_name="lu_2000.tif"):
    import resource
    raster, units = f"{out}/{raster_name}", f"{out}/units_albers.geojson"
    t = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    if which == "exactextract":
        from exactextract import exact_extract
        feats = json.load(open(units))["features"]
        res = exact_extract(raster, feats, ["unique", "frac"], include_cols=["unit_id"],
                            strategy=os.environ.get("EE_STRATEGY", "feature-sequential"))
        n = len(res)
    else:
        from rasterstats import zonal_stats
        res = zonal_stats(units, raster, categorical=True, all_touched=False)
        n = len(res)
    dt = time.time() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    print(f"{which}: {n} units in {dt:.2f} s wall, {cpu:.2f} s CPU, peak RSS {ru.ru_maxrss / 1024:.0f} MB")
    if which == "rasterstats" and os.environ.get("RS_OUT"):
        ids = [f["properties"]["unit_id"] for f in json.load(open(units))["features"]]
        with open(os.environ["RS_OUT"], "w") as fh:
            for uid, r in sorted(zip(ids, res)):
                for code, n in sorted(r.items()):
                    fh.write(f"{uid},{code},{n}\n")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        noise = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1, noise,
             "lu_2000.tif" if noise == 0 else f"lu_noise{noise}.tif")
    else:
        timed(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "exactextract",
              sys.argv[4] if len(sys.argv) > 4 else "lu_2000.tif")
