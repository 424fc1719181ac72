//! One pass over the years of a group: every window no unit reaches is skipped, the others are
//! read for every year in parallel (one decoder per worker) and counted per unit and code by
//! [`crate::methods::zonal`], and consecutive years are counted as code pairs for the transfer
//! matrices. Each window's counts are added up as soon as it is counted: they are integers, so
//! outputs do not depend on the order or the number of threads, and memory holds the counts of
//! the windows being counted, whatever the number of years.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::io::IoError;
use crate::io::geotiff::{ChunkPixels, ChunkReader, GeoTiffInfo, GeoTransform};
use crate::io::mosaic::{Mosaic, MosaicError, MosaicReader, RegionCache};
use crate::methods::land_counts::CountMap;
use crate::methods::rasterize::Spans;
use crate::methods::zonal::{Count, Histogrammer, MAX_CODES, Pixel, TooManyCodes, Window};

/// What a pass tells and asks its caller while it runs.
pub trait PassObserver: Sync {
    /// Whether the run was cancelled (checked before every window).
    fn cancelled(&self) -> bool;
    /// `done` of `total` windows counted, each a window of every year (`unit` says so).
    fn progress(&self, done: u64, total: u64, unit: &str);
}

/// Why a pass stopped.
#[derive(Debug)]
pub enum PassError {
    /// A file could not be read or counted.
    Io(IoError),
    /// The observer asked to stop.
    Cancelled,
}

impl From<IoError> for PassError {
    fn from(e: IoError) -> Self {
        Self::Io(e)
    }
}

/// How a worker reads one layer. A file that is the whole grid and tiled like the pass's
/// windows is read chunk for chunk through the worker's one direct reader, opened for the layer
/// it reads, so a worker holds the decode buffers of one year, not of every year. A file tiled
/// otherwise keeps its reader and region cache across windows (a band of strips serves many
/// windows), as does a mosaic of several files; all those caches of one worker share one budget
/// ([`WORKER_CACHE_BYTES`]).
enum LayerReader {
    Direct,
    Region {
        reader: Box<ChunkReader>,
        region: RegionCache,
    },
    Mosaic(MosaicReader),
}

/// Per-thread state of a pass. Apart from readers that keep a region cache, its memory does
/// not grow with the number of years: one histogram counts every year and one every pair
/// (see [`count_shared`]), and the transfer matrices come from a rolling pair of years, the
/// previous year's raw codes of the window and the current year's decoded chunk (pairs are
/// consecutive layers of the pass).
struct Worker {
    readers: Vec<LayerReader>,
    /// The direct reader last opened, with its layer.
    direct: Option<(usize, ChunkReader)>,
    hist: Histogrammer,
    pair_hist: Histogrammer,
    /// Per layer, the distinct values this worker has counted: a year with more than
    /// [`MAX_CODES`] is not a categorical raster.
    seen: Vec<BTreeSet<u32>>,
    /// The previous year's raw codes of the window, capped at 255.
    prev: Vec<u8>,
    n_units: usize,
}

fn new_worker(
    layers: &[&Mosaic],
    layout: Option<&GeoTiffInfo>,
    n_units: usize,
) -> Result<Worker, IoError> {
    let readers = layers
        .iter()
        .map(|m| layer_reader(m, layout))
        .collect::<Result<_, _>>()?;
    Ok(Worker {
        readers,
        direct: None,
        hist: Histogrammer::new::<u16>(n_units),
        pair_hist: Histogrammer::new::<u16>(n_units),
        seen: vec![BTreeSet::new(); layers.len()],
        prev: Vec::new(),
        n_units,
    })
}

impl LayerReader {
    /// Bytes of decoded chunks and window buffers kept across windows.
    fn held_bytes(&self) -> usize {
        match self {
            LayerReader::Direct => 0,
            LayerReader::Region { region, .. } => region.held_bytes(),
            LayerReader::Mosaic(m) => m.held_bytes(),
        }
    }

    fn clear(&mut self) {
        match self {
            LayerReader::Direct => {}
            LayerReader::Region { region, .. } => region.clear(),
            LayerReader::Mosaic(m) => m.clear(),
        }
    }
}

/// The most bytes of decoded chunks and window buffers one worker keeps across windows for all
/// its layers together. A study of 38 years of provincial files has 38 caches per worker;
/// beyond this budget caches are emptied, so a worker's memory does not grow with the number of
/// years (a chunk dropped this way is decoded again if a later window needs it).
pub const WORKER_CACHE_BYTES: usize = 32 << 20;

/// Keeps a worker's caches within `budget` bytes after layer `current` was read: the caches
/// of the other layers are emptied, the one read most recently first (every window reads the
/// layers in order, so the layer read just before is the one needed again last), and the
/// current layer's last, when it alone is over the budget.
fn keep_within(readers: &mut [LayerReader], current: usize, budget: usize) -> usize {
    let mut held: usize = readers.iter().map(LayerReader::held_bytes).sum();
    let n = readers.len();
    let order = (0..current)
        .rev()
        .chain((current + 1..n).rev())
        .chain(std::iter::once(current));
    for k in order {
        if held <= budget {
            break;
        }
        let freed = readers[k].held_bytes();
        if freed > 0 {
            readers[k].clear();
            held -= freed;
        }
    }
    held
}

fn layer_reader(m: &Mosaic, layout: Option<&GeoTiffInfo>) -> Result<LayerReader, IoError> {
    match m.whole() {
        Some(info) if layout.is_some_and(|l| info.same_layout(l)) => Ok(LayerReader::Direct),
        Some(info) => ChunkReader::new(info).map(|reader| LayerReader::Region {
            reader: Box::new(reader),
            region: RegionCache::new(info.sample),
        }),
        None => MosaicReader::new(m).map(LayerReader::Mosaic),
    }
    .map_err(|e| IoError::data(e.to_string()))
}

/// The windows of a pass, `(chunk index of the layout file, window)`: the chunks of the first
/// layer when it is one file covering the grid (its layout), else blocks of the grid sized like
/// the first file's chunks. Windows no unit reaches are left out.
pub fn pass_windows(first: &Mosaic, spans: &Spans) -> Vec<(Option<usize>, Window)> {
    let keep = |w: &Window| window_has_spans(spans, w.col0, w.row0, w.width, w.height);
    if let Some(layout) = first.whole() {
        return (0..layout.chunk_count())
            .map(|i| {
                let (col0, row0, width, height) = layout.chunk_rect(i);
                let stride = layout.chunk_width;
                (
                    Some(i),
                    Window {
                        col0,
                        row0,
                        width,
                        height,
                        stride,
                    },
                )
            })
            .filter(|(_, w)| keep(w))
            .collect();
    }
    let info = &first.files[0].info;
    let bw = info.chunk_width.clamp(1, first.width);
    let bh = info.chunk_height.max(64).min(first.height);
    let mut out = Vec::new();
    for row0 in (0..first.height).step_by(bh) {
        for col0 in (0..first.width).step_by(bw) {
            let w = Window {
                col0,
                row0,
                width: bw.min(first.width - col0),
                height: bh.min(first.height - row0),
                stride: bw,
            };
            if keep(&w) {
                out.push((None, w));
            }
        }
    }
    out
}

/// A read error of one layer as the user should see it: two files disagreeing on a pixel are
/// named with the pixel's centre in the raster CRS.
fn layer_error(e: MosaicError, t: &GeoTransform) -> IoError {
    match e {
        MosaicError::FilesDisagree {
            first,
            second,
            col,
            row,
            first_value,
            second_value,
        } => {
            #[allow(clippy::cast_precision_loss)]
            let (x, y) = (
                t.x0 + (col as f64 + 0.5) * t.dx,
                t.y0 + (row as f64 + 0.5) * t.dy,
            );
            IoError::data(format!(
                "{first} and {second} overlap with different codes ({first_value} and {second_value}) at the pixel centred on x = {x}, y = {y}"
            ))
            .with_hint("tiles of one year must hold the same code where they overlap: check that both files belong to the same year and product")
        }
        MosaicError::File(e) => IoError::data(e.to_string()),
    }
}

fn window_has_spans(spans: &Spans, c0: usize, r0: usize, w: usize, h: usize) -> bool {
    let (c0u, c1u) = (c0 as u32, (c0 + w) as u32);
    !spans.rows_empty(r0, r0 + h)
        && (r0..r0 + h).any(|r| spans.row_window(r, c0u, c1u).iter().any(|s| s.x1 > c0u))
}

/// Reads all layers of one group window by window in parallel and returns one count map per
/// layer, then one per pair keyed by the raw codes, code_from·256 + code_to (codes above 254
/// of 16-bit rasters share 255; `check_pair_codes` refuses those). Nothing here depends on the
/// scheme, so the result can be memoised across reclassifications. `row_cm2` gives, on a
/// lon/lat grid, the pixel area of each row in whole cm², summed exactly into the counts.
pub fn histogram_pass(
    layers: &[&Mosaic],
    pairs: &[(usize, usize)],
    spans: &Spans,
    n_units: usize,
    row_cm2: Option<&[u64]>,
    transform: &GeoTransform,
    observer: &dyn PassObserver,
) -> Result<Vec<CountMap>, PassError> {
    let memory = PassMemory::new(WORKER_CACHE_BYTES);
    histogram_pass_within(
        layers, pairs, spans, n_units, row_cm2, transform, observer, &memory,
    )
}

/// What bounds the memory of a pass, and what it held.
pub struct PassMemory {
    /// Bytes of decoded chunks one worker may keep across windows (see [`WORKER_CACHE_BYTES`]).
    pub cache_budget_bytes: usize,
    /// The most bytes any worker kept across windows, after any layer of any window.
    pub peak_cached_bytes: AtomicUsize,
}

impl PassMemory {
    pub fn new(cache_budget_bytes: usize) -> Self {
        Self {
            cache_budget_bytes,
            peak_cached_bytes: AtomicUsize::new(0),
        }
    }
}

/// [`histogram_pass`] with the workers' caches held within `memory`'s budget.
#[allow(clippy::too_many_arguments)]
pub fn histogram_pass_within(
    layers: &[&Mosaic],
    pairs: &[(usize, usize)],
    spans: &Spans,
    n_units: usize,
    row_cm2: Option<&[u64]>,
    transform: &GeoTransform,
    observer: &dyn PassObserver,
    memory: &PassMemory,
) -> Result<Vec<CountMap>, PassError> {
    let layout = layers[0].whole();
    let windows = pass_windows(layers[0], spans);
    // Whether layer k is the earlier year of a pair (its codes are kept for the next layer).
    let is_from: Vec<bool> = (0..layers.len())
        .map(|k| pairs.iter().any(|&(a, _)| a == k))
        .collect();
    let pool = WorkerPool::default();
    let count = |worker: &mut Worker, index: Option<usize>, window: Window| {
        count_window(
            worker, layers, pairs, &is_from, spans, row_cm2, transform, memory, index, window,
        )
    };
    // Each window's counts go into the maps as soon as the window is counted, a layer at a time
    // under that layer's lock. Counts and areas (whole cm²) are integers, so no order of
    // windows changes a sum; memory holds the counts of the windows being counted (one a
    // thread), not a batch of windows × every layer.
    let maps: Vec<Mutex<CountMap>> = (0..layers.len() + pairs.len())
        .map(|_| Mutex::new(CountMap::new()))
        .collect();
    // Progress in tiles of all years (every window is read for every year of the pass).
    let unit = format!("tiles × {} years", layers.len());
    let done = Mutex::new(0u64);
    windows.par_iter().try_for_each_init(
        || pool.take(|| new_worker(layers, layout, n_units)),
        |worker, &(index, window)| -> Result<(), PassError> {
            if observer.cancelled() {
                return Err(PassError::Cancelled);
            }
            let worker = worker.get().map_err(|e| PassError::Io(e.clone()))?;
            add_window(&maps, count(worker, index, window)?);
            // Under the lock, so the reported counts only go up.
            let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
            *done += 1;
            observer.progress(*done, windows.len() as u64, &unit);
            Ok(())
        },
    )?;
    Ok(maps
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect())
}

/// Adds one window's counts (a list per layer) into the pass's maps.
fn add_window(maps: &[Mutex<CountMap>], counts_of_window: Vec<Vec<Count>>) {
    for (map, counts) in maps.iter().zip(counts_of_window) {
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        for c in counts {
            let e = map.entry((c.unit, c.code)).or_insert((0, 0));
            e.0 += c.pixels;
            e.1 += c.area_cm2;
        }
    }
}

/// Workers kept across the parallel jobs of a pass (opening a file and zeroing a histogram's
/// tables for every job would cost more than small windows).
#[derive(Default)]
struct WorkerPool(Mutex<Vec<Worker>>);

/// A worker on loan from a [`WorkerPool`], given back when dropped.
struct PooledWorker<'a> {
    worker: Option<Result<Worker, IoError>>,
    pool: &'a WorkerPool,
}

impl WorkerPool {
    fn take(&self, make: impl FnOnce() -> Result<Worker, IoError>) -> PooledWorker<'_> {
        let kept = self.0.lock().ok().and_then(|mut v| v.pop());
        PooledWorker {
            worker: Some(kept.map_or_else(make, Ok)),
            pool: self,
        }
    }
}

impl PooledWorker<'_> {
    fn get(&mut self) -> Result<&mut Worker, &IoError> {
        match self.worker.as_mut() {
            Some(Ok(w)) => Ok(w),
            Some(Err(e)) => Err(e),
            None => unreachable!("a pooled worker is present until dropped"),
        }
    }
}

impl Drop for PooledWorker<'_> {
    fn drop(&mut self) {
        if let (Some(Ok(w)), Ok(mut kept)) = (self.worker.take(), self.pool.0.lock()) {
            kept.push(w);
        }
    }
}

/// Reads one window of every layer and counts it: one list per layer, then one per pair.
#[allow(clippy::too_many_arguments)]
fn count_window(
    worker: &mut Worker,
    layers: &[&Mosaic],
    pairs: &[(usize, usize)],
    is_from: &[bool],
    spans: &Spans,
    row_cm2: Option<&[u64]>,
    transform: &GeoTransform,
    memory: &PassMemory,
    index: Option<usize>,
    window: Window,
) -> Result<Vec<Vec<Count>>, IoError> {
    let n_layers = layers.len();
    let mut out = vec![Vec::new(); n_layers + pairs.len()];
    let Worker {
        readers,
        direct,
        hist,
        pair_hist,
        seen,
        prev,
        n_units,
    } = worker;
    for k in 0..n_layers {
        let too_many = |e: TooManyCodes| {
            IoError::data(format!("{}: {e}", layers[k].files[0].info.path.display()))
                .with_hint("a land-use raster holds class codes; check that this is the right file")
        };
        let pixels = read_layer(readers, direct, k, layers[k], index, window, transform)?;
        // Pairs ending at this layer: counted from the previous layer's codes and this layer's
        // decoded chunk as it is (codes capped at 255, so a pair fits 16 bits; see
        // check_pair_codes), in the same walk as the layer's own histogram.
        let ending: Vec<usize> = (0..pairs.len()).filter(|&p| pairs[p].1 == k).collect();
        if ending.iter().any(|&p| pairs[p].0 + 1 != k) {
            return Err(IoError::internal(
                "a pass pair is not two consecutive layers",
            ));
        }
        let fused = match ending.first() {
            Some(&p) => match pixels {
                ChunkPixels::U8(d) => {
                    hist.count_with_pairs(pair_hist, spans, window, prev, d, row_cm2)
                }
                ChunkPixels::U16(d) => {
                    hist.count_with_pairs(pair_hist, spans, window, prev, d, row_cm2)
                }
            }
            .map(|(counts, pair_counts)| {
                for &q in &ending[1..] {
                    out[n_layers + q].clone_from(&pair_counts);
                }
                out[n_layers + p] = pair_counts;
                counts
            }),
            None => Err(TooManyCodes),
        };
        let counts = match fused {
            Ok(counts) => counts,
            Err(TooManyCodes) => {
                // No pair, or the shared tables are full: count the layer, then its pairs, each
                // in its own walk (a fresh table where one is full).
                if !ending.is_empty() {
                    *hist = Histogrammer::new::<u16>(*n_units);
                    *pair_hist = Histogrammer::new::<u16>(*n_units);
                }
                let counts = count_shared(hist, *n_units, |h| match pixels {
                    ChunkPixels::U8(d) => h.count(spans, window, d, row_cm2),
                    ChunkPixels::U16(d) => h.count(spans, window, d, row_cm2),
                })
                .map_err(too_many)?;
                for &p in &ending {
                    out[n_layers + p] = count_shared(pair_hist, *n_units, |h| match pixels {
                        ChunkPixels::U8(d) => h.count_pairs(spans, window, prev, d, row_cm2),
                        ChunkPixels::U16(d) => h.count_pairs(spans, window, prev, d, row_cm2),
                    })
                    .map_err(|e| IoError::internal(e.to_string()))?;
                }
                counts
            }
        };
        seen[k].extend(counts.iter().map(|c| c.code));
        if seen[k].len() > MAX_CODES {
            return Err(too_many(TooManyCodes));
        }
        out[k] = counts;
        // The next layer's pairs need this layer's codes after its chunk buffer is reused.
        if is_from[k] {
            prev.clear();
            match pixels {
                ChunkPixels::U8(d) => prev.extend_from_slice(d),
                ChunkPixels::U16(d) => prev.extend(d.iter().map(|&v| v.capped())),
            }
        }
        let held = keep_within(readers, k, memory.cache_budget_bytes);
        memory.peak_cached_bytes.fetch_max(held, Ordering::Relaxed);
    }
    Ok(out)
}

/// Reads one window of layer `k`.
fn read_layer<'w>(
    readers: &'w mut [LayerReader],
    direct: &'w mut Option<(usize, ChunkReader)>,
    k: usize,
    layer: &Mosaic,
    index: Option<usize>,
    window: Window,
    transform: &GeoTransform,
) -> Result<ChunkPixels<'w>, IoError> {
    let data = |e: crate::io::geotiff::GeoTiffError| IoError::data(e.to_string());
    match &mut readers[k] {
        LayerReader::Direct => {
            let index = index.expect("direct reads follow the layout's chunks");
            let info = layer.whole().expect("a direct layer is one file");
            match direct {
                Some((open, reader)) if *open != k => {
                    reader.reopen(info).map_err(data)?;
                    *open = k;
                }
                Some(_) => {}
                None => *direct = Some((k, ChunkReader::new(info).map_err(data)?)),
            }
            let (_, reader) = direct.as_mut().expect("opened above");
            reader.read(index).map_err(data)
        }
        LayerReader::Region { reader, region } => region
            .read(reader, &layer.files[0].info, window)
            .map_err(|e| IoError::data(e.to_string())),
        LayerReader::Mosaic(m) => m.read(layer, window).map_err(|e| layer_error(e, transform)),
    }
}

/// Counts a window with a histogram shared by every year (or every pair) of the pass. Its
/// value table keeps the values of all years it counted; when they fill it, a fresh table
/// counts the window again, so only a year with too many values of its own is refused (see
/// `Worker::seen`). Counts are keyed by value, so they do not depend on the table's history.
fn count_shared(
    hist: &mut Histogrammer,
    n_units: usize,
    count: impl Fn(&mut Histogrammer) -> Result<Vec<Count>, TooManyCodes>,
) -> Result<Vec<Count>, TooManyCodes> {
    count(hist).or_else(|TooManyCodes| {
        *hist = Histogrammer::new::<u16>(n_units);
        count(hist)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::rasterize::{Grid, rasterize};
    use geo::{MultiPolygon, polygon};

    /// A 1,024 × 1 px grid with one unit over all of it.
    fn one_row() -> (Spans, Window) {
        let grid = Grid {
            x0: 0.0,
            y0: 1.0,
            dx: 1.0,
            dy: -1.0,
            width: 1024,
            height: 1,
        };
        let unit = MultiPolygon(vec![polygon![
            (x: 0.0, y: 0.0), (x: 1024.0, y: 0.0), (x: 1024.0, y: 1.0), (x: 0.0, y: 1.0)
        ]]);
        let window = Window {
            col0: 0,
            row0: 0,
            width: 1024,
            height: 1,
            stride: 1024,
        };
        (rasterize(&grid, &[unit]), window)
    }

    struct Quiet;

    impl PassObserver for Quiet {
        fn cancelled(&self) -> bool {
            false
        }
        fn progress(&self, _done: u64, _total: u64, _unit: &str) {}
    }

    /// `years` layers of a 64 × 48 px Albers grid, each year two files (west and east halves,
    /// DEFLATE tiles, so each file's cache keeps a decoded 256² tile), with one unit over all of it.
    fn two_file_years(dir: &std::path::Path, years: usize) -> (Vec<Mosaic>, Spans) {
        two_file_years_of(dir, years, |c, r, year| {
            u8::try_from(1 + (c / 8 + r / 8 + year) % 9).unwrap()
        })
    }

    /// [`two_file_years`] with the code of column `c`, row `r` of layer `year` given by `code`.
    fn two_file_years_of(
        dir: &std::path::Path,
        years: usize,
        code: fn(usize, usize, usize) -> u8,
    ) -> (Vec<Mosaic>, Spans) {
        use crate::io::geotiff_writer::{CategoricalRaster, Crs, GridPlacement, write_categorical};
        use crate::io::mosaic::Placed;
        let (x0, y0, px) = (766_020.0, 3_711_150.0, 30.0);
        let part = |year: usize, name: &str, cols: std::ops::Range<usize>| {
            let codes: Vec<u8> = (0..48)
                .flat_map(|r| cols.clone().map(move |c| (c, r)))
                .map(|(c, r)| code(c, r, year))
                .collect();
            let path = dir.join(format!("lu_{year}_{name}.tif"));
            let raster = CategoricalRaster {
                width: u32::try_from(cols.len()).unwrap(),
                height: 48,
                codes: &codes,
                placement: GridPlacement {
                    x_min: x0 + px * cols.start as f64,
                    y_max: y0,
                    pixel_width: px,
                    pixel_height: px,
                },
                crs: Crs::albers_china(),
                nodata: Some(0),
                description: None,
            };
            write_categorical(&path, &raster).unwrap();
            let info = crate::io::geotiff::open(&path).unwrap();
            Placed {
                info,
                col: cols.start,
                row: 0,
            }
        };
        let mosaics = (0..years)
            .map(|y| {
                Mosaic::new(
                    vec![part(y, "west", 0..32), part(y, "east", 32..64)],
                    64,
                    48,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let grid = Grid {
            x0,
            y0,
            dx: px,
            dy: -px,
            width: 64,
            height: 48,
        };
        let (x1, y1) = (x0 + 64.0 * px, y0 - 48.0 * px);
        let unit = MultiPolygon(vec![polygon![
            (x: x0, y: y1), (x: x1, y: y1), (x: x1, y: y0), (x: x0, y: y0)
        ]]);
        (mosaics, rasterize(&grid, &[unit]))
    }

    /// Runs a pass over the first `years` layers (with their consecutive pairs) on one thread:
    /// its counts and the most bytes its worker kept across windows.
    fn pass_holding(
        mosaics: &[Mosaic],
        spans: &Spans,
        years: usize,
        budget: usize,
    ) -> (Vec<CountMap>, usize) {
        let layers: Vec<&Mosaic> = mosaics[..years].iter().collect();
        let pairs: Vec<(usize, usize)> = (1..years).map(|b| (b - 1, b)).collect();
        let memory = PassMemory::new(budget);
        let t = GeoTransform {
            x0: 766_020.0,
            y0: 3_711_150.0,
            dx: 30.0,
            dy: -30.0,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let counts = pool
            .install(|| histogram_pass_within(&layers, &pairs, spans, 1, None, &t, &Quiet, &memory))
            .unwrap();
        (counts, memory.peak_cached_bytes.load(Ordering::Relaxed))
    }

    #[test]
    fn a_worker_keeps_no_more_decoded_chunks_for_many_years_than_its_budget_and_one_year() {
        let dir = tempfile::tempdir().unwrap();
        let (mosaics, spans) = two_file_years(dir.path(), 12);
        let unlimited = usize::MAX;
        // Without a budget every year's files keep their decoded tiles: memory grows with years.
        let (_, one_year) = pass_holding(&mosaics, &spans, 1, unlimited);
        let (_, three) = pass_holding(&mosaics, &spans, 3, unlimited);
        let (all_counts, twelve) = pass_holding(&mosaics, &spans, 12, unlimited);
        assert!(
            one_year >= 2 * 256 * 256,
            "two decoded 256² tiles a year: {one_year}"
        );
        assert!(
            twelve >= 3 * three,
            "{twelve} vs {three}: caches of every year are kept"
        );
        // Within a budget of two years' worth, 12 years hold what 3 hold, at most the budget
        // whatever the number of years, and count the same.
        let budget = 2 * one_year;
        let (_, three_within) = pass_holding(&mosaics, &spans, 3, budget);
        let (counts, twelve_within) = pass_holding(&mosaics, &spans, 12, budget);
        assert!(twelve_within <= budget, "{twelve_within} > {budget}");
        assert_eq!(twelve_within, three_within);
        assert_eq!(
            counts, all_counts,
            "dropped chunks are decoded again, to the same counts"
        );
    }

    #[test]
    fn pairs_whose_codes_together_overflow_the_shared_table_are_counted_apart() {
        // Code 1 + (i·m mod 255) at pixel i = c + 64·r, m changing with the year (code 1 in the
        // first four rows): ≤ 255 code pairs between two years, but more than the table's 1,024
        // over seven years, so the walk counting a year with its pair fails part way down the
        // window, its runs half counted, and both are counted again apart.
        const M: [usize; 7] = [1, 7, 13, 29, 41, 53, 97];
        let code = |c: usize, r: usize, y: usize| {
            if r < 4 {
                1
            } else {
                u8::try_from(1 + ((c + 64 * r) * M[y]) % 255).unwrap()
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let (mosaics, spans) = two_file_years_of(dir.path(), 7, code);
        let (counts, _) = pass_holding(&mosaics, &spans, 7, usize::MAX);
        let mut expected = vec![CountMap::new(); 13];
        for (c, r) in (0..64).flat_map(|c| (0..48).map(move |r| (c, r))) {
            for (y, year) in expected[..7].iter_mut().enumerate() {
                year.entry((0, u32::from(code(c, r, y))))
                    .or_insert((0, 0))
                    .0 += 1;
            }
            for y in 1..7 {
                let pair = u32::from(code(c, r, y - 1)) * 256 + u32::from(code(c, r, y));
                let e = expected[6 + y].entry((0, pair)).or_insert((0, 0));
                e.0 += 1;
            }
        }
        let distinct_pairs: BTreeSet<u32> = expected[7..]
            .iter()
            .flat_map(|m| m.keys().map(|&(_, code)| code))
            .collect();
        assert!(distinct_pairs.len() > MAX_CODES, "{}", distinct_pairs.len());
        assert_eq!(counts, expected);
    }

    #[test]
    fn a_shared_histogram_counts_years_whose_values_together_overflow_its_table() {
        let (spans, window) = one_row();
        let mut hist = Histogrammer::new::<u16>(1);
        // Year one: the 1,024 values 0..1024, one pixel each (a full table).
        let year_one: Vec<u16> = (0..1024).collect();
        let counts =
            count_shared(&mut hist, 1, |h| h.count(&spans, window, &year_one, None)).unwrap();
        assert_eq!(counts.len(), 1024);
        // Year two: 1,000..2,024, new values the full table cannot take; a fresh one does, and
        // the counts are the year's own (one pixel each of its values, none of year one's).
        let year_two: Vec<u16> = (1000..2024).collect();
        let counts =
            count_shared(&mut hist, 1, |h| h.count(&spans, window, &year_two, None)).unwrap();
        let codes: Vec<u32> = counts.iter().map(|c| c.code).collect();
        assert_eq!(codes, (1000..2024).collect::<Vec<u32>>());
        assert!(counts.iter().all(|c| c.pixels == 1 && c.unit == 0));
    }

    #[test]
    fn a_window_with_more_values_than_a_table_holds_is_still_refused() {
        // 1,025 distinct values in one window: not a categorical raster, fresh table or not.
        let grid = Grid {
            x0: 0.0,
            y0: 1.0,
            dx: 1.0,
            dy: -1.0,
            width: 1025,
            height: 1,
        };
        let unit = MultiPolygon(vec![polygon![
            (x: 0.0, y: 0.0), (x: 1025.0, y: 0.0), (x: 1025.0, y: 1.0), (x: 0.0, y: 1.0)
        ]]);
        let spans = rasterize(&grid, &[unit]);
        let window = Window {
            col0: 0,
            row0: 0,
            width: 1025,
            height: 1,
            stride: 1025,
        };
        let data: Vec<u16> = (0..1025).collect();
        let mut hist = Histogrammer::new::<u16>(1);
        assert_eq!(
            count_shared(&mut hist, 1, |h| h.count(&spans, window, &data, None)),
            Err(TooManyCodes)
        );
    }
}
