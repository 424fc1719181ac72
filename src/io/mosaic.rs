//! Several GeoTIFFs on one pixel lattice read as one raster, without copying: the provincial
//! files of a national study, or the overlapping tiles an Earth Engine export writes. Windows of
//! the mosaic are assembled from the chunks of the files that overlap them; pixels no file
//! covers read as the mosaic's fill value (its NoData). Where files overlap, their data must
//! agree. Knows TIFF and grids, not land classes.

use crate::io::geotiff::{ChunkPixels, ChunkReader, GeoTiffError, GeoTiffInfo, SampleType};
use crate::methods::zonal::Window;

/// Offsets and pixel sizes equal to this fraction of a pixel count as equal (floating-point
/// noise in the georeferencing tags of files cut from one grid).
const LATTICE_TOLERANCE_PX: f64 = 1e-3;

/// Whether `b` lies on `a`'s pixel lattice: same pixel size and an offset of whole pixels.
/// Returns the offset of `b`'s top-left pixel in `a`'s pixels (columns, rows), or a sentence on
/// how they differ.
pub fn lattice_offset(a: &GeoTiffInfo, b: &GeoTiffInfo) -> Result<(i64, i64), String> {
    let (ta, tb) = (a.transform, b.transform);
    let same = |u: f64, v: f64| (u - v).abs() <= LATTICE_TOLERANCE_PX * u.abs().min(v.abs());
    if !same(ta.dx, tb.dx) || !same(ta.dy, tb.dy) {
        return Err(format!(
            "pixel sizes differ: {} × {} and {} × {}",
            ta.dx,
            ta.dy.abs(),
            tb.dx,
            tb.dy.abs()
        ));
    }
    let cols = (tb.x0 - ta.x0) / ta.dx;
    let rows = (tb.y0 - ta.y0) / ta.dy;
    let off = |v: f64| (v - v.round()).abs();
    if off(cols) > LATTICE_TOLERANCE_PX || off(rows) > LATTICE_TOLERANCE_PX {
        return Err(format!(
            "the second is offset by {cols:.4} columns and {rows:.4} rows from the first ({} , {} in CRS units), not by whole pixels",
            tb.x0 - ta.x0,
            tb.y0 - ta.y0
        ));
    }
    if !(cols.abs() < 1e12 && rows.abs() < 1e12) {
        return Err(format!(
            "the second is {cols} columns and {rows} rows away from the first"
        ));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok((cols.round() as i64, rows.round() as i64))
}

/// One file of a mosaic and where its top-left pixel lies on the mosaic's grid.
#[derive(Debug, Clone)]
pub struct Placed {
    pub info: GeoTiffInfo,
    pub col: usize,
    pub row: usize,
}

impl Placed {
    fn rect(&self) -> (usize, usize, usize, usize) {
        (self.col, self.row, self.info.width, self.info.height)
    }
}

/// The files of one layer on a common grid of `width` × `height` pixels.
#[derive(Debug, Clone)]
pub struct Mosaic {
    pub files: Vec<Placed>,
    pub width: usize,
    pub height: usize,
    /// The pixel type windows are read as (16-bit when a fill value had to be found).
    pub sample: SampleType,
    /// The value of NoData pixels, including pixels no file covers.
    pub nodata: Option<u32>,
}

/// The value pixels no file covers read as when the files declare no NoData: out of range of
/// 8-bit codes, so the mosaic is read as 16-bit.
pub const FILL_WITHOUT_NODATA: u32 = 65_535;

impl Mosaic {
    /// A mosaic of `files` placed on a grid of `width` × `height`. The files must declare the
    /// same NoData value (or none).
    pub fn new(files: Vec<Placed>, width: usize, height: usize) -> Result<Mosaic, String> {
        let first = &files[0].info;
        if let Some(other) = files.iter().find(|f| f.info.nodata != first.nodata) {
            let show = |v: Option<u32>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            return Err(format!(
                "{} declares NoData {} but {} declares {}",
                first.path.display(),
                show(first.nodata),
                other.info.path.display(),
                show(other.info.nodata)
            ));
        }
        let covers_grid = files.len() == 1 && files[0].rect() == (0, 0, width, height);
        let all_u8 = files.iter().all(|f| f.info.sample == SampleType::U8);
        let (sample, nodata) = match first.nodata {
            Some(v) => (
                if all_u8 {
                    SampleType::U8
                } else {
                    SampleType::U16
                },
                Some(v),
            ),
            None if covers_grid => (first.sample, None),
            None => (SampleType::U16, Some(FILL_WITHOUT_NODATA)),
        };
        Ok(Mosaic {
            files,
            width,
            height,
            sample,
            nodata,
        })
    }

    /// The single file that is the whole mosaic, read as it is stored.
    pub fn whole(&self) -> Option<&GeoTiffInfo> {
        let f = &self.files[0];
        (self.files.len() == 1
            && f.rect() == (0, 0, self.width, self.height)
            && f.info.sample == self.sample)
            .then_some(&f.info)
    }
}

/// Decoded chunks kept while the windows being read overlap them, for reading windows that do
/// not coincide with a file's chunks (a band of strips serves every window across the band).
pub struct RegionCache {
    chunks: Vec<(usize, usize, OwnedChunk)>,
    out: OwnedChunk,
}

enum OwnedChunk {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl OwnedChunk {
    fn new(sample: SampleType) -> Self {
        match sample {
            SampleType::U8 => OwnedChunk::U8(Vec::new()),
            SampleType::U16 => OwnedChunk::U16(Vec::new()),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            OwnedChunk::U8(v) => v.len(),
            OwnedChunk::U16(v) => 2 * v.len(),
        }
    }
    fn pixels(&self) -> ChunkPixels<'_> {
        match self {
            OwnedChunk::U8(v) => ChunkPixels::U8(v),
            OwnedChunk::U16(v) => ChunkPixels::U16(v),
        }
    }
}

/// A window as both readers use it: its pixel rectangle on the grid (ends exclusive), the
/// stride of its buffer and the buffer's length (the last row needs only `width` pixels).
#[derive(Debug, Clone, Copy)]
struct Extent {
    col0: usize,
    row0: usize,
    col1: usize,
    row1: usize,
    stride: usize,
    len: usize,
}

impl Extent {
    fn of(window: Window) -> Self {
        let Window {
            col0,
            row0,
            width,
            height,
            stride,
        } = window;
        Self {
            col0,
            row0,
            col1: col0 + width,
            row1: row0 + height,
            stride,
            len: stride * (height - 1) + width,
        }
    }

    /// The part of the window inside `(col, row, width, height)` as `(x0, x1, y0, y1)` in grid
    /// pixels, ends exclusive; `None` when they do not meet.
    fn clip(&self, rect: (usize, usize, usize, usize)) -> Option<(usize, usize, usize, usize)> {
        let (c, r, w, h) = rect;
        let (x0, x1) = (self.col0.max(c), self.col1.min(c + w));
        let (y0, y1) = (self.row0.max(r), self.row1.min(r + h));
        (x0 < x1 && y0 < y1).then_some((x0, x1, y0, y1))
    }

    /// The index in the window's buffer of grid pixel (`x`, `y`).
    fn offset(&self, x: usize, y: usize) -> usize {
        (y - self.row0) * self.stride + (x - self.col0)
    }
}

/// The most chunk bytes one region cache keeps.
const REGION_CACHE_BYTES: usize = 64 << 20;

fn copy_rect<T: Copy>(
    dst: &mut [T],
    dst_stride: usize,
    src: &[T],
    src_stride: usize,
    rows: usize,
    cols: usize,
) {
    for r in 0..rows {
        dst[r * dst_stride..r * dst_stride + cols]
            .copy_from_slice(&src[r * src_stride..r * src_stride + cols]);
    }
}

impl RegionCache {
    pub fn new(sample: SampleType) -> Self {
        Self {
            chunks: Vec::new(),
            out: OwnedChunk::new(sample),
        }
    }

    /// Bytes held: the decoded chunks kept and the window buffer.
    pub fn held_bytes(&self) -> usize {
        let out = match &self.out {
            OwnedChunk::U8(v) => v.capacity(),
            OwnedChunk::U16(v) => 2 * v.capacity(),
        };
        self.chunks.iter().map(|(.., c)| c.bytes()).sum::<usize>() + out
    }

    /// Drops every chunk and the window buffer (a later read decodes what it needs again).
    pub fn clear(&mut self) {
        self.chunks = Vec::new();
        self.out = match self.out {
            OwnedChunk::U8(_) => OwnedChunk::U8(Vec::new()),
            OwnedChunk::U16(_) => OwnedChunk::U16(Vec::new()),
        };
    }

    /// Drops the chunks that end at or above grid row `row` (windows come in row-major order).
    fn forget_above(&mut self, row: usize) {
        self.chunks.retain(|(_, row_end, _)| *row_end > row);
    }

    /// The pixels of `window` of the file (laid out `window.stride` apart), assembled from the
    /// chunks of `info` that overlap it.
    pub fn read(
        &mut self,
        reader: &mut ChunkReader,
        info: &GeoTiffInfo,
        window: Window,
    ) -> Result<ChunkPixels<'_>, GeoTiffError> {
        let extent = Extent::of(window);
        // Windows come in row-major order: chunks ending above this one are done with.
        self.forget_above(extent.row0);
        match &mut self.out {
            OwnedChunk::U8(v) => v.resize(extent.len, 0),
            OwnedChunk::U16(v) => v.resize(extent.len, 0),
        }
        let src_stride = reader.stride();
        let (cw, ch) = (info.chunk_width, info.chunk_height);
        for cy in extent.row0 / ch..=(extent.row1 - 1) / ch {
            for cx in extent.col0 / cw..=(extent.col1 - 1) / cw {
                let index = cy * info.chunks_across() + cx;
                let chunk_rect = info.chunk_rect(index);
                let (_, cr0, _, chei) = chunk_rect;
                let chunk = cached_chunk(&mut self.chunks, reader, index, cr0 + chei)?;
                copy_overlap(&mut self.out, &extent, chunk, chunk_rect, src_stride);
            }
        }
        Ok(self.out.pixels())
    }
}

/// Chunk `index` from the cache, read into it first if it is not there (the cache is
/// emptied when it holds more than [`REGION_CACHE_BYTES`]); `bottom` is the row below it.
fn cached_chunk<'a>(
    chunks: &'a mut Vec<(usize, usize, OwnedChunk)>,
    reader: &mut ChunkReader,
    index: usize,
    bottom: usize,
) -> Result<&'a OwnedChunk, GeoTiffError> {
    if !chunks.iter().any(|(i, ..)| *i == index) {
        let cached: usize = chunks.iter().map(|(.., c)| c.bytes()).sum();
        if cached > REGION_CACHE_BYTES {
            chunks.clear();
        }
        let owned = match reader.read(index)? {
            ChunkPixels::U8(d) => OwnedChunk::U8(d.to_vec()),
            ChunkPixels::U16(d) => OwnedChunk::U16(d.to_vec()),
        };
        chunks.push((index, bottom, owned));
    }
    let (_, _, chunk) = chunks
        .iter()
        .find(|(i, ..)| *i == index)
        .expect("chunk was just cached");
    Ok(chunk)
}

/// Copies the part of `chunk` (at `chunk_rect`, rows `src_stride` pixels apart) that lies in
/// the window `extent` into `out`.
fn copy_overlap(
    out: &mut OwnedChunk,
    extent: &Extent,
    chunk: &OwnedChunk,
    chunk_rect: (usize, usize, usize, usize),
    src_stride: usize,
) {
    let (cc0, cr0, ..) = chunk_rect;
    let (x0, x1, y0, y1) = extent
        .clip(chunk_rect)
        .expect("the chunks visited overlap the window");
    let dst_at = extent.offset(x0, y0);
    let src_at = (y0 - cr0) * src_stride + (x0 - cc0);
    let stride = extent.stride;
    match (out, chunk) {
        (OwnedChunk::U8(d), OwnedChunk::U8(s)) => copy_rect(
            &mut d[dst_at..],
            stride,
            &s[src_at..],
            src_stride,
            y1 - y0,
            x1 - x0,
        ),
        (OwnedChunk::U16(d), OwnedChunk::U16(s)) => copy_rect(
            &mut d[dst_at..],
            stride,
            &s[src_at..],
            src_stride,
            y1 - y0,
            x1 - x0,
        ),
        _ => unreachable!("a raster's chunks all have its pixel type"),
    }
}

/// Why a window of a mosaic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MosaicError {
    #[error(transparent)]
    File(#[from] GeoTiffError),
    /// Two files hold different data for one pixel of the mosaic grid.
    #[error(
        "{first} and {second} overlap with different values at pixel (column {col}, row {row}) of the mosaic: {first_value} and {second_value}"
    )]
    FilesDisagree {
        first: String,
        second: String,
        col: usize,
        row: usize,
        first_value: u32,
        second_value: u32,
    },
}

/// A reader of one mosaic for one thread: a decoder and a region cache per file, and the
/// window being assembled with, per pixel, the file that wrote it.
pub struct MosaicReader {
    files: Vec<(ChunkReader, RegionCache)>,
    out: OwnedChunk,
    owner: Vec<u16>,
}

impl MosaicReader {
    pub fn new(mosaic: &Mosaic) -> Result<Self, GeoTiffError> {
        let files = mosaic
            .files
            .iter()
            .map(|f| Ok((ChunkReader::new(&f.info)?, RegionCache::new(f.info.sample))))
            .collect::<Result<_, GeoTiffError>>()?;
        Ok(Self {
            files,
            out: OwnedChunk::new(mosaic.sample),
            owner: Vec::new(),
        })
    }

    /// Bytes held: every file's region cache and the window buffers.
    pub fn held_bytes(&self) -> usize {
        let out = match &self.out {
            OwnedChunk::U8(v) => v.capacity(),
            OwnedChunk::U16(v) => 2 * v.capacity(),
        };
        let files: usize = self.files.iter().map(|(_, r)| r.held_bytes()).sum();
        files + out + 2 * self.owner.capacity()
    }

    /// Drops every file's cached chunks and the window buffers.
    pub fn clear(&mut self) {
        for (_, region) in &mut self.files {
            region.clear();
        }
        self.owner = Vec::new();
        self.out = match self.out {
            OwnedChunk::U8(_) => OwnedChunk::U8(Vec::new()),
            OwnedChunk::U16(_) => OwnedChunk::U16(Vec::new()),
        };
    }

    /// The pixels of `window` of the mosaic grid, laid out `window.stride` apart.
    pub fn read(
        &mut self,
        mosaic: &Mosaic,
        window: Window,
    ) -> Result<ChunkPixels<'_>, MosaicError> {
        let extent = Extent::of(window);
        self.start_window(extent.len, mosaic.nodata.unwrap_or(0));
        for (k, placed) in mosaic.files.iter().enumerate() {
            let Some((x0, x1, y0, y1)) = extent.clip(placed.rect()) else {
                // A file this window misses may hold chunks of rows the pass has left behind.
                self.files[k]
                    .1
                    .forget_above(extent.row0.saturating_sub(placed.row));
                continue;
            };
            let (fc, fr) = (placed.col, placed.row);
            let local = Window {
                col0: x0 - fc,
                row0: y0 - fr,
                width: x1 - x0,
                height: y1 - y0,
                stride: x1 - x0,
            };
            let (reader, region) = &mut self.files[k];
            let src = region.read(reader, &placed.info, local)?;
            let at = Overlay {
                file: u16::try_from(k).expect("fewer than 65535 files in a mosaic"),
                nodata: placed.info.nodata,
                dst_at: extent.offset(x0, y0),
                stride: extent.stride,
                rows: y1 - y0,
                cols: x1 - x0,
            };
            let conflict = match (&mut self.out, src) {
                (OwnedChunk::U8(d), ChunkPixels::U8(s)) => at.apply(d, &mut self.owner, s),
                (OwnedChunk::U16(d), ChunkPixels::U8(s)) => at.apply(d, &mut self.owner, s),
                (OwnedChunk::U16(d), ChunkPixels::U16(s)) => at.apply(d, &mut self.owner, s),
                (OwnedChunk::U8(_), ChunkPixels::U16(_)) => {
                    unreachable!("a mosaic with a 16-bit file is read as 16-bit")
                }
            };
            if let Some(conflict) = conflict {
                return Err(files_disagree(mosaic, placed, &extent, conflict));
            }
        }
        Ok(self.out.pixels())
    }

    /// Fills the output with `len` NoData pixels (`fill`) owned by no file.
    fn start_window(&mut self, len: usize, fill: u32) {
        match &mut self.out {
            OwnedChunk::U8(v) => {
                v.clear();
                v.resize(
                    len,
                    u8::try_from(fill).expect("8-bit mosaics have 8-bit NoData"),
                );
            }
            OwnedChunk::U16(v) => {
                v.clear();
                v.resize(
                    len,
                    u16::try_from(fill).expect("NoData fits the pixel type"),
                );
            }
        }
        self.owner.clear();
        self.owner.resize(len, u16::MAX);
    }
}

/// The error for the first pixel of the window `extent` where `placed` and an earlier file
/// disagree: `conflict` as [`Overlay::apply`] returns it.
fn files_disagree(
    mosaic: &Mosaic,
    placed: &Placed,
    extent: &Extent,
    (i, first, first_value, second_value): (usize, u16, u32, u32),
) -> MosaicError {
    let (r, c) = (i / extent.stride, i % extent.stride);
    MosaicError::FilesDisagree {
        first: mosaic.files[usize::from(first)]
            .info
            .path
            .display()
            .to_string(),
        second: placed.info.path.display().to_string(),
        col: extent.col0 + c,
        row: extent.row0 + r,
        first_value,
        second_value,
    }
}

/// Where one file's part of a window goes.
struct Overlay {
    file: u16,
    nodata: Option<u32>,
    dst_at: usize,
    stride: usize,
    rows: usize,
    cols: usize,
}

impl Overlay {
    /// Copies the file's data pixels (not its NoData) into `dst`; returns the first pixel
    /// (index in `dst`, earlier file, its value, this file's value) where an earlier file
    /// wrote a different value.
    fn apply<S, D>(
        &self,
        dst: &mut [D],
        owner: &mut [u16],
        src: &[S],
    ) -> Option<(usize, u16, u32, u32)>
    where
        S: Copy + Into<u32> + Into<D>,
        D: Copy + Into<u32>,
    {
        for r in 0..self.rows {
            for c in 0..self.cols {
                let v = src[r * self.cols + c];
                let value: u32 = v.into();
                if self.nodata == Some(value) {
                    continue;
                }
                let i = self.dst_at + r * self.stride + c;
                let earlier = owner[i];
                if earlier != u16::MAX {
                    let before: u32 = dst[i].into();
                    if before != value {
                        return Some((i, earlier, before, value));
                    }
                    continue;
                }
                dst[i] = v.into();
                owner[i] = self.file;
            }
        }
        None
    }
}
