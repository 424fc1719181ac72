//! One pass over the years of a group: every window no unit reaches is skipped, the others are
//! read for every year in parallel (one decoder per worker) and counted per unit and code by
//! [`crate::methods::zonal`], and consecutive years are counted as code pairs for the transfer
//! matrices. Counts are added up in window order batch by batch, so outputs do not depend on
//! the number of threads and memory holds one batch of counts.

use rayon::prelude::*;

use crate::io::IoError;
use crate::io::geotiff::{ChunkPixels, ChunkReader, GeoTiffInfo, GeoTransform, SampleType};
use crate::io::mosaic::{Mosaic, MosaicError, MosaicReader, RegionCache};
use crate::methods::land_counts::CountMap;
use crate::methods::rasterize::Spans;
use crate::methods::zonal::{Count, Histogrammer, Window};

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

/// How a worker reads one layer: a file that is the whole grid, chunk for chunk when it is
/// tiled like the pass's windows or through a region cache; or a mosaic of several files.
enum LayerReader {
    File {
        reader: Box<ChunkReader>,
        region: RegionCache,
        direct: bool,
    },
    Mosaic(MosaicReader),
}

/// Per-thread state of a pass: one reader and histogram per layer, one histogram per pair.
struct Worker {
    readers: Vec<LayerReader>,
    hists: Vec<Histogrammer>,
    classes: Vec<Vec<u8>>,
    pair_buf: Vec<u16>,
}

fn new_worker(
    layers: &[&Mosaic],
    layout: Option<&GeoTiffInfo>,
    n_pairs: usize,
    n_units: usize,
) -> Result<Worker, IoError> {
    let mut readers = Vec::with_capacity(layers.len());
    let mut hists = Vec::with_capacity(layers.len() + n_pairs);
    for m in layers {
        readers.push(
            match m.whole() {
                Some(info) => ChunkReader::new(info).map(|reader| LayerReader::File {
                    reader: Box::new(reader),
                    region: RegionCache::new(info.sample),
                    direct: layout.is_some_and(|l| info.same_layout(l)),
                }),
                None => MosaicReader::new(m).map(LayerReader::Mosaic),
            }
            .map_err(|e| IoError::data(e.to_string()))?,
        );
        hists.push(match m.sample {
            SampleType::U8 => Histogrammer::new::<u8>(n_units),
            SampleType::U16 => Histogrammer::new::<u16>(n_units),
        });
    }
    hists.extend((0..n_pairs).map(|_| Histogrammer::new::<u16>(n_units)));
    Ok(Worker {
        readers,
        hists,
        classes: vec![Vec::new(); layers.len()],
        pair_buf: Vec::new(),
    })
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
/// scheme, so the result can be memoised across reclassifications.
pub fn histogram_pass(
    layers: &[&Mosaic],
    pairs: &[(usize, usize)],
    spans: &Spans,
    n_units: usize,
    row_area: Option<&[f64]>,
    transform: &GeoTransform,
    observer: &dyn PassObserver,
) -> Result<Vec<CountMap>, PassError> {
    let layout = layers[0].whole();
    let windows = pass_windows(layers[0], spans);
    let in_pair: Vec<bool> = (0..layers.len())
        .map(|k| pairs.iter().any(|&(a, b)| a == k || b == k))
        .collect();
    let pool = WorkerPool::default();
    let count = |worker: &mut Worker, index: Option<usize>, window: Window| {
        count_window(
            worker, layers, pairs, &in_pair, spans, row_area, transform, index, window,
        )
    };
    // Windows in batches, each batch's counts added up in window order before the next is read:
    // float sums do not depend on scheduling, and memory holds one batch of counts, not the
    // counts of every window of every year.
    let mut maps: Vec<CountMap> = vec![CountMap::new(); layers.len() + pairs.len()];
    // Progress in tiles of all years (every window is read for every year of the pass).
    let unit = format!("tiles × {} years", layers.len());
    let mut done = 0u64;
    for batch in windows.chunks(WINDOWS_PER_BATCH) {
        let per_window: Vec<Vec<Vec<Count>>> = batch
            .par_iter()
            .map_init(
                || pool.take(|| new_worker(layers, layout, pairs.len(), n_units)),
                |worker, &(index, window)| -> Result<Vec<Vec<Count>>, PassError> {
                    if observer.cancelled() {
                        return Err(PassError::Cancelled);
                    }
                    let worker = worker.get().map_err(|e| PassError::Io(e.clone()))?;
                    Ok(count(worker, index, window)?)
                },
            )
            .collect::<Result<_, _>>()?;
        for counts_of_window in per_window {
            for (layer, counts) in counts_of_window.into_iter().enumerate() {
                for c in counts {
                    let e = maps[layer].entry((c.unit, c.code)).or_insert((0, 0.0));
                    e.0 += c.pixels;
                    e.1 += c.area_m2;
                }
            }
        }
        done += batch.len() as u64;
        observer.progress(done, windows.len() as u64, &unit);
    }
    Ok(maps)
}

/// Windows read in parallel before their counts are added up.
const WINDOWS_PER_BATCH: usize = 256;

/// Workers kept across the batches of a pass (opening a file and zeroing a histogram's tables
/// for every batch would cost more than small windows).
#[derive(Default)]
struct WorkerPool(std::sync::Mutex<Vec<Worker>>);

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
    in_pair: &[bool],
    spans: &Spans,
    row_area: Option<&[f64]>,
    transform: &GeoTransform,
    index: Option<usize>,
    window: Window,
) -> Result<Vec<Vec<Count>>, IoError> {
    let mut out = Vec::with_capacity(layers.len() + pairs.len());
    let Worker {
        readers,
        hists,
        classes,
        pair_buf,
    } = worker;
    for k in 0..layers.len() {
        let too_many = |e| {
            IoError::data(format!("{}: {e}", layers[k].files[0].info.path.display()))
                .with_hint("a land-use raster holds class codes; check that this is the right file")
        };
        let pixels = match &mut readers[k] {
            LayerReader::File {
                reader,
                direct: true,
                ..
            } => reader
                .read(index.expect("direct reads follow the layout's chunks"))
                .map_err(|e| IoError::data(e.to_string()))?,
            LayerReader::File { reader, region, .. } => region
                .read(reader, &layers[k].files[0].info, window)
                .map_err(|e| IoError::data(e.to_string()))?,
            LayerReader::Mosaic(m) => m
                .read(layers[k], window)
                .map_err(|e| layer_error(e, transform))?,
        };
        let counts = match pixels {
            ChunkPixels::U8(d) => hists[k]
                .count(spans, window, d, row_area)
                .map_err(too_many)?,
            ChunkPixels::U16(d) => hists[k]
                .count(spans, window, d, row_area)
                .map_err(too_many)?,
        };
        out.push(counts);
        if in_pair[k] {
            // Raw codes, capped at 255 so a pair fits 16 bits (see check_pair_codes).
            let cls = &mut classes[k];
            cls.clear();
            match pixels {
                ChunkPixels::U8(d) => cls.extend_from_slice(d),
                ChunkPixels::U16(d) => {
                    cls.extend(d.iter().map(|&v| u8::try_from(v).unwrap_or(u8::MAX)))
                }
            }
        }
    }
    for (p, &(a, b)) in pairs.iter().enumerate() {
        let n = classes[a].len().min(classes[b].len());
        pair_buf.clear();
        pair_buf.extend(
            classes[a][..n]
                .iter()
                .zip(&classes[b][..n])
                .map(|(&x, &y)| u16::from(x) << 8 | u16::from(y)),
        );
        let counts = hists[layers.len() + p]
            .count(spans, window, pair_buf, row_area)
            .map_err(|e| IoError::internal(e.to_string()))?;
        out.push(counts);
    }
    Ok(out)
}
