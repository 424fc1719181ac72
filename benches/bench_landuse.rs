//! Times the `landuse` stage (decode + zonal histogram) and reports raster pixels per CPU-second,
//! wall time and peak resident memory.
//!
//! ```text
//! # CLCD-like rasters (class patches, villages, towns, rivers, lakes, speckle) in CLCD's Albers,
//! # each year twice: LZW strips of one row (as GDAL writes CLCD's provincial files) and DEFLATE
//! # 256 × 256 tiles; plus a lattice of jittered quadrilateral units in lon/lat.
//! cargo run --release --example bench_landuse -- texture DIR WIDTH HEIGHT [YEARS] [PIXEL_M] [UNIT_KM] [X_MIN Y_MAX] [lzw|deflate]
//! cargo run --release --example bench_landuse -- DIR/lzw_2000.tif DIR/units_lonlat.geojson [runs] [more years' rasters…]
//! ```
//!
//! The rasters of a run are years 2000, 2001, … in the order given. A CPU-second is user + system
//! time of the process (`getrusage`), so the figure does not depend on the thread count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BinaryArray, RecordBatch};
use pipeline::engine::stage::{Entry, Inputs, PreparedStage, StageContext, StageEntry};
use pipeline::stages::landuse::LandUse;
use pipeline::table::TableBuilder;
use rayon::prelude::*;
use support::cpu_seconds;

mod support;

fn units_table(path: &str) -> RecordBatch {
    let text = std::fs::read_to_string(path).expect("units GeoJSON is readable");
    let fc: geojson::FeatureCollection = text.parse().expect("units file is a FeatureCollection");
    let mut ids = Vec::new();
    let mut wkb = Vec::new();
    for f in fc.features {
        let props = f.properties.as_ref().expect("features have properties");
        let id = match props.get("unit_id").or_else(|| props.get("adcode")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => panic!("a feature has neither unit_id nor adcode"),
        };
        let g: geo::Geometry<f64> =
            geo::Geometry::try_from(&f.geometry.expect("features have geometry").value)
                .expect("valid geometry");
        let mp = match g {
            geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
            geo::Geometry::MultiPolygon(m) => m,
            _ => panic!("unit {id} is not a polygon"),
        };
        ids.push(id);
        wkb.push(pipeline::io::wkb::encode(&mp));
    }
    TableBuilder::new()
        .str("unit_id", &ids)
        .array(
            "geometry",
            Arc::new(BinaryArray::from_iter_values(wkb.iter())),
        )
        .build()
        .expect("units table builds")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("texture") => return texture_command(&args[2..]),
        Some("decode") => return decode_command(&args[2..]),
        _ => {}
    }
    if args.len() < 3 {
        eprintln!(
            "usage: bench_landuse RASTER.tif UNITS_LONLAT.geojson [runs] [MORE_RASTERS.tif…]\n       bench_landuse texture DIR WIDTH HEIGHT [YEARS] [PIXEL_M] [UNIT_KM] [X_MIN Y_MAX] [lzw|deflate]\n       bench_landuse decode RASTER.tif…"
        );
        std::process::exit(2);
    }
    let runs: usize = args
        .get(3)
        .map_or(3, |s| s.parse().expect("runs is a number"));
    let units = units_table(&args[2]);
    let paths: Vec<&String> = std::iter::once(&args[1])
        .chain(args.iter().skip(4))
        .collect();
    let pixels = raster_pixels(&paths);
    let prepared = landuse_stage(&paths);
    println!(
        "threads: {}, units: {}, years: {}, raster pixels read per run: {:.3} Gpx",
        rayon::current_num_threads(),
        units.num_rows(),
        paths.len(),
        pixels as f64 / 1e9
    );
    for run in 0..runs {
        time_run(run, &*prepared, &units, pixels);
    }
}

/// The pixels of all the rasters, describing the first one's layout.
fn raster_pixels(paths: &[&String]) -> u64 {
    let mut pixels = 0u64;
    for p in paths {
        let info = pipeline::io::geotiff::open(Path::new(p.as_str())).expect("raster opens");
        pixels += (info.width * info.height) as u64;
        if p == &paths[0] {
            println!(
                "raster {} × {} px, {} chunks of {} × {}, {}",
                info.width,
                info.height,
                info.chunk_count(),
                info.chunk_width,
                info.chunk_height,
                info.compression
            );
        }
    }
    pixels
}

/// The `landuse` stage over the rasters, one year each from 2000.
fn landuse_stage(paths: &[&String]) -> Box<dyn PreparedStage> {
    let mut rasters = serde_json::Map::new();
    for (i, p) in paths.iter().enumerate() {
        rasters.insert(
            (2000 + i).to_string(),
            serde_json::Value::String((*p).clone()),
        );
    }
    // Units the rasters miss (the national boundaries' far-south islands) are kept with zero areas.
    let params =
        serde_json::json!({ "rasters": rasters, "scheme": "clcd", "allow_empty_units": true });
    Entry::<LandUse>::new()
        .prepare(params)
        .expect("parameters are valid")
}

/// One timed run of the stage, printed; the first also reports its warnings and, with
/// `LANDUSE_BENCH_CODES`, writes its code counts.
fn time_run(run: usize, prepared: &dyn PreparedStage, units: &RecordBatch, pixels: u64) {
    let sources: BTreeMap<String, PathBuf> = prepared
        .sources()
        .into_iter()
        .map(|s| (s.name, s.path))
        .collect();
    let ctx = StageContext::new("landuse", Path::new("."), sources);
    let inputs = Inputs::new(BTreeMap::from([("units".to_owned(), units.clone())]));
    let (t, cpu0) = (Instant::now(), cpu_seconds());
    let out = prepared.run(&inputs, &ctx).expect("stage runs");
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let rows: Vec<String> = out
        .iter()
        .map(|(n, b)| format!("{n}={}", b.num_rows()))
        .collect();
    let px: i64 = pipeline::table::i64s(&out[0].1, "areas", "pixels")
        .expect("pixels")
        .iter()
        .sum();
    println!(
        "run {run}: wall {secs:.3} s, CPU {cpu:.3} s, {:.3} Gpx per CPU-second, {:.3} Gpx/s wall, peak RSS {:.0} MB  ({}; classified pixels {px})",
        pixels as f64 / 1e9 / cpu,
        pixels as f64 / 1e9 / secs,
        support::peak_rss_mib(),
        rows.join(" "),
    );
    if run > 0 {
        return;
    }
    if let Ok(path) = std::env::var("LANDUSE_BENCH_CODES") {
        write_codes(&out[3].1, &path);
    }
    for w in ctx.take_warnings().iter().take(5) {
        println!("  warning: {w}");
    }
}

/// unit_id,code,pixels of the first year, for comparison with the Python references.
fn write_codes(codes: &RecordBatch, path: &str) {
    let ids = pipeline::table::ids(codes, "codes", "unit_id").expect("unit_id");
    let code = pipeline::table::i64s(codes, "codes", "code").expect("code");
    let px = pipeline::table::i64s(codes, "codes", "pixels").expect("pixels");
    let lines: Vec<String> = (0..ids.len())
        .map(|i| format!("{},{},{}", ids[i], code[i], px[i]))
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("codes file is writable");
}

// ---------------------------------------------------------------------------------------------
// CLCD-like texture

/// Default origin of the synthetic rasters in CLCD's Albers (metres): Henan's north-west corner.
const X_MIN: f64 = 200_000.0;
const Y_MAX: f64 = 3_900_000.0;

/// Where a synthetic raster lies and its pixel size, in CLCD's Albers (metres).
#[derive(Clone, Copy)]
struct Place {
    x_min: f64,
    y_max: f64,
    pixel_m: f64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash3(seed: u64, a: i64, b: i64) -> u64 {
    splitmix64(seed ^ splitmix64((a as u64) ^ splitmix64(b as u64).rotate_left(17)))
}

fn unit01(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Value noise in [0, 1] with lattice spacing `cell` (metres), smooth-step interpolated.
fn noise(seed: u64, x: f64, y: f64, cell: f64) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fx.floor(), fy.floor());
    let (tx, ty) = ((fx - ix) as f32, (fy - iy) as f32);
    let (ix, iy) = (ix as i64, iy as i64);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(tx), s(ty));
    let v = |a, b| unit01(hash3(seed, a, b));
    let top = v(ix, iy) * (1.0 - sx) + v(ix + 1, iy) * sx;
    let bottom = v(ix, iy + 1) * (1.0 - sx) + v(ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// A settlement of radius up to `r_max` metres in each `cell`-metre lattice cell with
/// probability `p`: whether (x, y) is inside one, growing by `growth` per year.
fn settlement(seed: u64, x: f64, y: f64, cell: f64, p: f32, r_max: f64, growth: f64) -> bool {
    let (cx, cy) = ((x / cell).floor() as i64, (y / cell).floor() as i64);
    let h = hash3(seed, cx, cy);
    if unit01(h) >= p {
        return false;
    }
    let h2 = splitmix64(h);
    let ox = (cx as f64 + 0.2 + 0.6 * f64::from(unit01(h2))) * cell;
    let oy = (cy as f64 + 0.2 + 0.6 * f64::from(unit01(splitmix64(h2)))) * cell;
    let r = r_max * (0.3 + 0.7 * f64::from(unit01(splitmix64(h2 ^ 7)))) * growth;
    // A ragged edge: the radius varies with direction.
    let (dx, dy) = (x - ox, y - oy);
    let wobble = 1.0 + 0.25 * (3.0 * dy.atan2(dx) + f64::from(unit01(h2 >> 3)) * 6.0).sin();
    dx * dx + dy * dy < (r * wobble) * (r * wobble)
}

/// CLCD codes of one raster row: 1 cropland, 2 forest, 3 shrub, 4 grassland, 5 water,
/// 7 barren, 8 impervious, 9 wetland. `year` (0, 1, …) grows towns and moves speckle.
fn texture_row(row: usize, at: Place, year: u32, out: &mut [u8]) {
    let y = at.y_max - (row as f64 + 0.5) * at.pixel_m;
    let growth = 1.0 + 0.015 * f64::from(year);
    for (col, v) in out.iter_mut().enumerate() {
        let x = at.x_min + (col as f64 + 0.5) * at.pixel_m;
        // Relief and moisture at regional scale; patches at field to landscape scales, with
        // the coordinates warped so that edges meander.
        let relief = noise(1, x, y, 60_000.0) * 0.7 + noise(2, x, y, 15_000.0) * 0.3;
        let wx = x + 800.0 * f64::from(noise(3, x, y, 4_000.0) - 0.5);
        let wy = y + 800.0 * f64::from(noise(4, x, y, 4_000.0) - 0.5);
        let patch = noise(5, wx, wy, 2_500.0) * 0.6 + noise(6, wx, wy, 700.0) * 0.4;
        let moist = noise(7, x, y, 90_000.0);
        let mut code = if relief > 0.62 {
            if patch > 0.35 {
                2
            } else if moist < 0.3 {
                4
            } else {
                3
            }
        } else if relief > 0.5 {
            if patch > 0.6 {
                2
            } else if patch > 0.45 {
                4
            } else {
                1
            }
        } else if moist < 0.25 && patch > 0.7 {
            7
        } else if patch > 0.78 {
            4
        } else {
            1
        };
        // Rivers: a level line of a smooth field; lakes and wetlands in its lows.
        let river = noise(8, wx, wy, 20_000.0);
        if (river - 0.5).abs() < 0.006 || noise(9, wx, wy, 6_000.0) > 0.9 {
            code = 5;
        } else if (river - 0.5).abs() < 0.009 && relief < 0.4 {
            code = 9;
        }
        // Towns on the plains, villages among the fields.
        if code != 5
            && relief < 0.55
            && (settlement(10, x, y, 25_000.0, 0.35, 3_000.0, growth)
                || (code == 1 && settlement(11, x, y, 700.0, 0.55, 110.0, growth)))
        {
            code = 8;
        }
        // Speckle: single pixels classified otherwise, partly different every year.
        let h = hash3(12 + u64::from(year % 2), col as i64, row as i64);
        if unit01(h) < 0.02 {
            code = [1, 2, 4, 8, 1, 4, 2, 1][(h & 7) as usize];
        }
        *v = code;
    }
}

// ---------------------------------------------------------------------------------------------
// Writing the rasters

/// The GeoKey directory and parameters of CLCD's Albers, as the project's own writer encodes them.
fn albers_keys() -> (Vec<u16>, Vec<f64>, String) {
    use pipeline::io::geotiff_writer::{CategoricalRaster, Crs, GridPlacement, encode_categorical};
    let bytes = encode_categorical(&CategoricalRaster {
        width: 1,
        height: 1,
        codes: &[0],
        placement: GridPlacement {
            x_min: 0.0,
            y_max: 0.0,
            pixel_width: 30.0,
            pixel_height: 30.0,
        },
        crs: Crs::albers_china(),
        nodata: Some(0),
        description: None,
    })
    .expect("a 1 × 1 raster encodes");
    let mut dec =
        tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).expect("our TIFF decodes");
    let keys = dec
        .get_tag_u16_vec(tiff::tags::Tag::GeoKeyDirectoryTag)
        .expect("GeoKeys");
    let doubles = dec
        .get_tag_f64_vec(tiff::tags::Tag::GeoDoubleParamsTag)
        .expect("GeoDoubles");
    let ascii = dec
        .get_tag_ascii_string(tiff::tags::Tag::GeoAsciiParamsTag)
        .expect("GeoAscii");
    (keys, doubles, ascii)
}

/// Writes a CLCD-like raster: LZW strips of one row (`tiled` false) or DEFLATE 256 × 256 tiles.
/// Chunks are coded in parallel, band by band, so memory stays at one band of rows.
fn write_raster(path: &Path, w: usize, h: usize, at: Place, year: u32, tiled: bool) {
    use tiff::encoder::TiffEncoder;
    use tiff::tags::Tag;
    const TILE: usize = 256;
    let file = BufWriter::with_capacity(1 << 20, File::create(path).expect("raster is writable"));
    let mut enc = TiffEncoder::new(file).expect("TIFF header");
    let mut dir = enc.image_directory().expect("IFD");
    let (mut offsets, mut counts) = (Vec::<u32>::new(), Vec::<u32>::new());
    for band0 in (0..h).step_by(TILE) {
        let rows = TILE.min(h - band0);
        let mut band = vec![0u8; rows * w];
        band.par_chunks_mut(w)
            .enumerate()
            .for_each(|(r, out)| texture_row(band0 + r, at, year, out));
        let chunks: Vec<Vec<u8>> = if tiled {
            (0..w.div_ceil(TILE))
                .into_par_iter()
                .map(|tx| {
                    let mut tile = vec![0u8; TILE * TILE];
                    let cols = TILE.min(w - tx * TILE);
                    for r in 0..rows {
                        tile[r * TILE..r * TILE + cols]
                            .copy_from_slice(&band[r * w + tx * TILE..r * w + tx * TILE + cols]);
                    }
                    miniz_oxide::deflate::compress_to_vec_zlib(&tile, 6)
                })
                .collect()
        } else {
            band.par_chunks(w)
                .map(|row| {
                    weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                        .encode(row)
                        .expect("LZW encodes")
                })
                .collect()
        };
        for c in chunks {
            let at = dir.write_data(&c[..]).expect("chunk written");
            offsets.push(u32::try_from(at).expect("file under 4 GiB"));
            counts.push(u32::try_from(c.len()).expect("chunk under 4 GiB"));
        }
    }
    let (keys, doubles, ascii) = albers_keys();
    dir.write_tag(Tag::ImageWidth, w as u32).unwrap();
    dir.write_tag(Tag::ImageLength, h as u32).unwrap();
    dir.write_tag(Tag::BitsPerSample, 8u16).unwrap();
    dir.write_tag(Tag::Compression, if tiled { 8u16 } else { 5u16 })
        .unwrap();
    dir.write_tag(Tag::PhotometricInterpretation, 1u16).unwrap();
    dir.write_tag(Tag::SamplesPerPixel, 1u16).unwrap();
    if tiled {
        dir.write_tag(Tag::TileWidth, TILE as u32).unwrap();
        dir.write_tag(Tag::TileLength, TILE as u32).unwrap();
        dir.write_tag(Tag::TileOffsets, &offsets[..]).unwrap();
        dir.write_tag(Tag::TileByteCounts, &counts[..]).unwrap();
    } else {
        dir.write_tag(Tag::StripOffsets, &offsets[..]).unwrap();
        dir.write_tag(Tag::RowsPerStrip, 1u32).unwrap();
        dir.write_tag(Tag::StripByteCounts, &counts[..]).unwrap();
    }
    dir.write_tag(Tag::SampleFormat, 1u16).unwrap();
    dir.write_tag(Tag::ModelPixelScaleTag, &[at.pixel_m, at.pixel_m, 0.0][..])
        .unwrap();
    dir.write_tag(
        Tag::ModelTiepointTag,
        &[0.0, 0.0, 0.0, at.x_min, at.y_max, 0.0][..],
    )
    .unwrap();
    dir.write_tag(Tag::GeoKeyDirectoryTag, &keys[..]).unwrap();
    dir.write_tag(Tag::GeoDoubleParamsTag, &doubles[..])
        .unwrap();
    dir.write_tag(Tag::GeoAsciiParamsTag, ascii.as_str())
        .unwrap();
    dir.write_tag(Tag::GdalNodata, "0").unwrap();
    dir.finish().expect("IFD written");
}

/// Units: a lattice of quadrilaterals of about `unit_km` a side with jittered shared corners,
/// densified edges, inverse-projected to lon/lat (so the stage reprojects them, as it does
/// counties). Written as GeoJSON with `unit_id`.
fn write_units(path: &Path, w: usize, h: usize, at: Place, unit_km: f64) {
    let albers = proj4rs::Proj::from_proj_string(
        "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs",
    )
    .expect("Albers");
    let lonlat = proj4rs::Proj::from_proj_string("+proj=longlat +ellps=WGS84 +no_defs").unwrap();
    let (width_m, height_m) = (w as f64 * at.pixel_m, h as f64 * at.pixel_m);
    let (nx, ny) = (
        (width_m / (unit_km * 1000.0)).round().max(1.0) as i64,
        (height_m / (unit_km * 1000.0)).round().max(1.0) as i64,
    );
    let (cw, ch) = (width_m / nx as f64, height_m / ny as f64);
    let corner = |i: i64, j: i64| -> (f64, f64) {
        let jitter = |k: u64, edge: bool| {
            if edge {
                0.0
            } else {
                (f64::from(unit01(hash3(20 + k, i, j))) - 0.5) * 0.5
            }
        };
        (
            at.x_min + (i as f64 + jitter(0, i == 0 || i == nx)) * cw,
            at.y_max - (j as f64 + jitter(1, j == 0 || j == ny)) * ch,
        )
    };
    let mut features = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            let quad = [
                corner(i, j),
                corner(i + 1, j),
                corner(i + 1, j + 1),
                corner(i, j + 1),
            ];
            let mut ring = Vec::new();
            for k in 0..4 {
                let (a, b) = (quad[k], quad[(k + 1) % 4]);
                for s in 0..16 {
                    let t = f64::from(s) / 16.0;
                    let mut p = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, 0.0);
                    proj4rs::transform::transform(&albers, &lonlat, &mut p).expect("projects");
                    ring.push(vec![p.0.to_degrees(), p.1.to_degrees()]);
                }
            }
            ring.push(ring[0].clone());
            features.push(serde_json::json!({
                "type": "Feature",
                "properties": { "unit_id": format!("U{:05}", j * nx + i) },
                "geometry": { "type": "Polygon", "coordinates": [ring] },
            }));
        }
    }
    let fc = serde_json::json!({ "type": "FeatureCollection", "features": features });
    std::fs::write(path, fc.to_string()).expect("units written");
}

fn texture_command(args: &[String]) {
    let arg = |i: usize, default: f64| -> f64 {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let dir = PathBuf::from(args.first().expect("DIR"));
    let (w, h) = (arg(1, 20_000.0) as usize, arg(2, 17_550.0) as usize);
    let (years, unit_km) = (arg(3, 1.0) as u32, arg(5, 40.0));
    let at = Place {
        pixel_m: arg(4, 30.0),
        x_min: arg(6, X_MIN),
        y_max: arg(7, Y_MAX),
    };
    let formats: &[(bool, &str)] = match args.get(8).map(String::as_str) {
        Some("lzw") => &[(false, "lzw")],
        Some("deflate") => &[(true, "deflate")],
        _ => &[(false, "lzw"), (true, "deflate")],
    };
    std::fs::create_dir_all(&dir).expect("DIR is writable");
    for year in 0..years {
        for &(tiled, name) in formats {
            let path = dir.join(format!("{name}_{}.tif", 2000 + year));
            let t = Instant::now();
            write_raster(&path, w, h, at, year, tiled);
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            println!(
                "{}: {w} × {h} px, {:.1} MB ({:.2} bits a pixel), {:.1} s",
                path.display(),
                size as f64 / 1e6,
                size as f64 * 8.0 / (w * h) as f64,
                t.elapsed().as_secs_f64()
            );
        }
    }
    write_units(&dir.join("units_lonlat.geojson"), w, h, at, unit_km);
    println!("{}", dir.join("units_lonlat.geojson").display());
}

/// Decodes every chunk of each file on one thread, with the `tiff` crate's chunk reader (what
/// `io::geotiff` used before it read chunks itself) and with `io::geotiff::ChunkReader`, and
/// prints Mpx per second of each and whether they decoded the same pixels.
fn decode_command(paths: &[String]) {
    use pipeline::io::geotiff::{ChunkPixels, ChunkReader, open};
    use tiff::decoder::{Decoder, DecodingResult};
    for p in paths {
        let info = open(Path::new(p)).expect("raster opens");
        let px = (info.width * info.height) as f64;
        // The tiff crate, chunk by chunk into one reused buffer, as io::geotiff did.
        let file = std::io::BufReader::with_capacity(1 << 16, File::open(p).unwrap());
        let mut dec = Decoder::new(file).expect("TIFF");
        let (cw, _) = dec.chunk_dimensions();
        let n = dec
            .get_tag_u64_vec(if info.tiled {
                tiff::tags::Tag::TileOffsets
            } else {
                tiff::tags::Tag::StripOffsets
            })
            .unwrap()
            .len();
        let mut buf = DecodingResult::U8(Vec::new());
        let (mut sum_old, t) = (0u64, Instant::now());
        for i in 0..n {
            dec.read_chunk_to_buffer(&mut buf, i as u32, cw as usize)
                .expect("chunk decodes");
            if let DecodingResult::U8(v) = &buf {
                sum_old += v.iter().map(|&b| u64::from(b)).sum::<u64>();
            }
        }
        let old = t.elapsed().as_secs_f64();
        let mut reader = ChunkReader::new(&info).expect("reader");
        let (mut sum_new, t) = (0u64, Instant::now());
        for i in 0..info.chunk_count() {
            let (_, _, w, h) = info.chunk_rect(i);
            let stride = reader.stride();
            if let ChunkPixels::U8(v) = reader.read(i).expect("chunk decodes") {
                sum_new += v[..stride * (h - 1) + w]
                    .iter()
                    .map(|&b| u64::from(b))
                    .sum::<u64>();
            }
        }
        let new = t.elapsed().as_secs_f64();
        println!(
            "{p}: {} {} chunks; tiff crate {:.0} Mpx/s, ChunkReader {:.0} Mpx/s ({} chunks), same sum: {}",
            n,
            info.compression,
            px / old / 1e6,
            px / new / 1e6,
            info.chunk_count(),
            sum_old == sum_new
        );
    }
}
