//! Writes single-band categorical (`u8`) GeoTIFFs: tiled, DEFLATE-compressed, with the
//! GeoTIFF georeferencing tags (ModelPixelScale 33550, ModelTiepoint 33922, GeoKeyDirectory
//! 34735 with GeoDoubleParams 34736 and GeoAsciiParams 34737) and GDAL's nodata tag (42113).
//!
//! Knows the TIFF/GeoTIFF layout, nothing about land use. The output is byte-deterministic:
//! tags are written in ascending order by the `tiff` encoder, tiles in row-major order, and
//! tiles are compressed with `miniz_oxide` directly (a pure function of its input; going
//! through flate2 would let feature unification pick the backend and change the bytes).
//!
//! Checked with GDAL: files written by [`write_categorical`] with [`Crs::Epsg4326`] (the demo
//! land-use rasters), [`Crs::albers_china`] and `EpsgProjected(32649)` were opened with rasterio
//! 1.4.4 (GDAL 3.10.3) in a throwaway venv (`/tmp/venv-demo/bin/pip install rasterio`). GDAL
//! reported `EPSG:4326`; `+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0
//! +datum=WGS84 +units=m`; `EPSG:32649`; the transform; `nodata = 0`; `compress = deflate`;
//! 256 × 256 blocks; the ImageDescription; and the same pixel histogram as written.

use std::io::{Cursor, Seek, Write};
use std::path::Path;

use tiff::encoder::{DirectoryEncoder, TiffEncoder, TiffKind};
use tiff::tags::{
    CompressionMethod, PhotometricInterpretation, PlanarConfiguration, SampleFormat, Tag,
};

/// Edge length of the square tiles, in pixels (GDAL's default block size for tiled GeoTIFFs).
pub const TILE_SIZE: u32 = 256;

/// The coordinate reference system written into the GeoKey directory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crs {
    /// WGS 84 longitude/latitude in degrees (GTModelType 2, GeographicType 4326).
    Epsg4326,
    /// A projected CRS by its EPSG code (GTModelType 1, ProjectedCSType = code), metres.
    EpsgProjected(u16),
    /// A user-defined Albers equal-area conic on WGS 84, in metres (CT_AlbersEqualArea).
    Albers {
        /// First standard parallel, degrees.
        lat_1: f64,
        /// Second standard parallel, degrees.
        lat_2: f64,
        /// Latitude of origin, degrees.
        lat_0: f64,
        /// Central meridian, degrees.
        lon_0: f64,
        /// False easting, metres.
        x_0: f64,
        /// False northing, metres.
        y_0: f64,
    },
}

impl Crs {
    /// The Albers grid of CLCD and CNLUCC: lat_1 = 25, lat_2 = 47, lon_0 = 105, WGS 84.
    pub const fn albers_china() -> Self {
        Crs::Albers {
            lat_1: 25.0,
            lat_2: 47.0,
            lat_0: 0.0,
            lon_0: 105.0,
            x_0: 0.0,
            y_0: 0.0,
        }
    }
}

/// Where the raster sits: the upper-left corner of the upper-left pixel and the pixel size,
/// in CRS units (degrees for EPSG:4326). Rows run north to south.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridPlacement {
    pub x_min: f64,
    pub y_max: f64,
    pub pixel_width: f64,
    pub pixel_height: f64,
}

/// A categorical raster in memory: `width × height` codes, row-major from the north-west.
#[derive(Debug, Clone, Copy)]
pub struct CategoricalRaster<'a> {
    pub width: u32,
    pub height: u32,
    pub codes: &'a [u8],
    pub placement: GridPlacement,
    pub crs: Crs,
    /// The code that means "no data" (written as GDAL_NODATA), if any.
    pub nodata: Option<u8>,
    /// Written as the TIFF ImageDescription tag (270), if given.
    pub description: Option<&'a str>,
}

/// Why a raster could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GeoTiffWriteError {
    #[error("raster of {width} × {height} pixels needs {expected} codes, got {got}")]
    SizeMismatch {
        width: u32,
        height: u32,
        expected: u64,
        got: usize,
    },
    #[error("TIFF text tags must be ASCII: {0:?}")]
    NonAscii(String),
    #[error("raster has zero width or height")]
    Empty,
    #[error("pixel size must be positive and finite, got {0} × {1}")]
    PixelSize(f64, f64),
    #[error("the compressed raster exceeds 4 GiB, the limit of a classic TIFF")]
    TooLarge,
    #[error("encoding the TIFF: {0}")]
    Tiff(#[from] tiff::TiffError),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Encodes the raster as a GeoTIFF in memory.
///
/// # Examples
/// ```
/// use pipeline::io::geotiff_writer::{encode_categorical, CategoricalRaster, Crs, GridPlacement};
/// let codes = [1u8, 2, 0, 8];
/// let raster = CategoricalRaster {
///     width: 2, height: 2, codes: &codes, crs: Crs::Epsg4326, nodata: Some(0), description: None,
///     placement: GridPlacement { x_min: 113.0, y_max: 35.0, pixel_width: 0.01, pixel_height: 0.01 },
/// };
/// let bytes = encode_categorical(&raster).unwrap();
/// assert_eq!(&bytes[..4], b"II*\0"); // a little-endian classic TIFF
/// ```
pub fn encode_categorical(raster: &CategoricalRaster<'_>) -> Result<Vec<u8>, GeoTiffWriteError> {
    check_categorical(raster)?;
    let mut buf = Cursor::new(Vec::new());
    {
        let mut encoder = TiffEncoder::new(&mut buf)?;
        let mut dir = encoder.image_directory()?;
        let (offsets, counts) = write_tiles(&mut dir, raster)?;
        let (w, h) = (raster.width, raster.height);
        dir.write_tag(Tag::ImageWidth, w)?;
        if let Some(text) = raster.description {
            dir.write_tag(Tag::ImageDescription, text)?;
        }
        dir.write_tag(Tag::ImageLength, h)?;
        dir.write_tag(Tag::BitsPerSample, 8u16)?;
        dir.write_tag(Tag::Compression, CompressionMethod::Deflate)?;
        dir.write_tag(
            Tag::PhotometricInterpretation,
            PhotometricInterpretation::BlackIsZero,
        )?;
        dir.write_tag(Tag::SamplesPerPixel, 1u16)?;
        dir.write_tag(Tag::PlanarConfiguration, PlanarConfiguration::Chunky)?;
        dir.write_tag(Tag::TileWidth, TILE_SIZE)?;
        dir.write_tag(Tag::TileLength, TILE_SIZE)?;
        dir.write_tag(Tag::TileOffsets, &offsets[..])?;
        dir.write_tag(Tag::TileByteCounts, &counts[..])?;
        dir.write_tag(Tag::SampleFormat, &[SampleFormat::Uint][..])?;
        write_georeference(&mut dir, raster)?;
        dir.finish()?;
    }
    Ok(buf.into_inner())
}

/// Checks a raster before anything is written: not empty, one code per pixel, positive finite
/// pixel sizes and an ASCII description (a TIFF ASCII tag holds nothing else).
fn check_categorical(raster: &CategoricalRaster<'_>) -> Result<(), GeoTiffWriteError> {
    let (w, h) = (raster.width, raster.height);
    if w == 0 || h == 0 {
        return Err(GeoTiffWriteError::Empty);
    }
    let expected = u64::from(w) * u64::from(h);
    if raster.codes.len() as u64 != expected {
        return Err(GeoTiffWriteError::SizeMismatch {
            width: w,
            height: h,
            expected,
            got: raster.codes.len(),
        });
    }
    let p = raster.placement;
    if !(p.pixel_width > 0.0
        && p.pixel_height > 0.0
        && p.pixel_width.is_finite()
        && p.pixel_height.is_finite())
    {
        return Err(GeoTiffWriteError::PixelSize(p.pixel_width, p.pixel_height));
    }
    if let Some(text) = raster.description.filter(|t| !t.is_ascii()) {
        return Err(GeoTiffWriteError::NonAscii(text.to_owned()));
    }
    Ok(())
}

/// Writes the tiles (row-major), each padded to a full tile with the nodata code and
/// deflated; returns their offsets and byte counts.
fn write_tiles<W: Write + Seek, K: TiffKind>(
    dir: &mut DirectoryEncoder<'_, W, K>,
    raster: &CategoricalRaster<'_>,
) -> Result<(Vec<u32>, Vec<u32>), GeoTiffWriteError> {
    let (w, h) = (raster.width, raster.height);
    let fill = raster.nodata.unwrap_or(0);
    let tiles_across = w.div_ceil(TILE_SIZE);
    let tiles_down = h.div_ceil(TILE_SIZE);
    let mut offsets = Vec::with_capacity((tiles_across * tiles_down) as usize);
    let mut counts = Vec::with_capacity(offsets.capacity());
    let mut tile = vec![fill; (TILE_SIZE * TILE_SIZE) as usize];
    for ty in 0..tiles_down {
        for tx in 0..tiles_across {
            tile.fill(fill);
            let x0 = tx * TILE_SIZE;
            let y0 = ty * TILE_SIZE;
            let cols = TILE_SIZE.min(w - x0) as usize;
            for r in 0..TILE_SIZE.min(h - y0) {
                let src = ((y0 + r) as usize) * w as usize + x0 as usize;
                let dst = (r * TILE_SIZE) as usize;
                tile[dst..dst + cols].copy_from_slice(&raster.codes[src..src + cols]);
            }
            // zlib stream (RFC 1950) at level 9, as TIFF compression 8 ("Adobe Deflate") expects.
            let packed = miniz_oxide::deflate::compress_to_vec_zlib(&tile, 9);
            let offset = dir.write_data(&packed[..])?;
            offsets.push(u32::try_from(offset).map_err(|_| GeoTiffWriteError::TooLarge)?);
            counts.push(u32::try_from(packed.len()).map_err(|_| GeoTiffWriteError::TooLarge)?);
        }
    }
    Ok((offsets, counts))
}

/// Writes where the raster lies (pixel scale, tie point, GeoKeys) and its nodata code.
fn write_georeference<W: Write + Seek, K: TiffKind>(
    dir: &mut DirectoryEncoder<'_, W, K>,
    raster: &CategoricalRaster<'_>,
) -> Result<(), GeoTiffWriteError> {
    let p = raster.placement;
    dir.write_tag(
        Tag::ModelPixelScaleTag,
        &[p.pixel_width, p.pixel_height, 0.0][..],
    )?;
    dir.write_tag(
        Tag::ModelTiepointTag,
        &[0.0, 0.0, 0.0, p.x_min, p.y_max, 0.0][..],
    )?;
    let keys = GeoKeys::for_crs(raster.crs);
    dir.write_tag(Tag::GeoKeyDirectoryTag, &keys.directory[..])?;
    if !keys.doubles.is_empty() {
        dir.write_tag(Tag::GeoDoubleParamsTag, &keys.doubles[..])?;
    }
    if !keys.ascii.is_empty() {
        dir.write_tag(Tag::GeoAsciiParamsTag, keys.ascii.as_str())?;
    }
    if let Some(nodata) = raster.nodata {
        dir.write_tag(Tag::GdalNodata, nodata.to_string().as_str())?;
    }
    Ok(())
}

/// Encodes the raster and writes it to `path` (replacing any file there).
pub fn write_categorical(
    path: &Path,
    raster: &CategoricalRaster<'_>,
) -> Result<u64, GeoTiffWriteError> {
    let bytes = encode_categorical(raster)?;
    std::fs::write(path, &bytes).map_err(|source| GeoTiffWriteError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(bytes.len() as u64)
}

/// How a streamed raster is cut into chunks and compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Strips of `rows` rows, LZW-compressed (TIFF compression 5), as CLCD ships.
    LzwStrips { rows: u32 },
    /// [`TILE_SIZE`]² tiles, DEFLATE-compressed (TIFF compression 8), as [`encode_categorical`].
    DeflateTiles,
}

impl Layout {
    /// LZW strips of GDAL's default height for stripped GeoTIFFs: as many rows as fit in
    /// 8 KiB, at least one.
    pub fn lzw_strips_for_width(width: u32) -> Self {
        Layout::LzwStrips {
            rows: (8192 / width.max(1)).max(1),
        }
    }

    /// Rows of one band: the strip height, or the tile height.
    fn band_rows(self) -> u32 {
        match self {
            Layout::LzwStrips { rows } => rows,
            Layout::DeflateTiles => TILE_SIZE,
        }
    }
}

/// Everything of a streamed raster but its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterHeader {
    pub width: u32,
    pub height: u32,
    pub placement: GridPlacement,
    pub crs: Crs,
    pub nodata: Option<u8>,
    pub description: Option<String>,
}

/// Writes a categorical GeoTIFF row band by row band, so a raster larger than memory can be
/// written: chunks are compressed (in parallel) and appended as soon as their rows are in, and
/// the image directory goes at the end, its offset patched into the header. Only the chunk
/// offsets and byte counts stay in memory. The bytes are a pure function of the pixels.
pub struct StreamingGeoTiff {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    header: RasterHeader,
    layout: Layout,
    /// Bytes written so far (the next chunk's offset).
    position: u64,
    offsets: Vec<u32>,
    counts: Vec<u32>,
    /// Rows received but not yet a whole band.
    pending: Vec<u8>,
    rows_received: u32,
}

impl StreamingGeoTiff {
    /// Creates `path` (replacing any file there) and writes the TIFF header.
    pub fn create(
        path: &Path,
        header: RasterHeader,
        layout: Layout,
    ) -> Result<Self, GeoTiffWriteError> {
        use std::io::Write as _;
        if header.width == 0 || header.height == 0 {
            return Err(GeoTiffWriteError::Empty);
        }
        let p = header.placement;
        if !(p.pixel_width > 0.0
            && p.pixel_height > 0.0
            && p.pixel_width.is_finite()
            && p.pixel_height.is_finite())
        {
            return Err(GeoTiffWriteError::PixelSize(p.pixel_width, p.pixel_height));
        }
        if let Some(text) = header.description.as_deref().filter(|t| !t.is_ascii()) {
            return Err(GeoTiffWriteError::NonAscii(text.to_owned()));
        }
        let io = |source| GeoTiffWriteError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        // Little-endian classic TIFF; the directory offset is patched in by `finish`.
        file.write_all(b"II*\0\0\0\0\0").map_err(io)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            header,
            layout,
            position: 8,
            offsets: Vec::new(),
            counts: Vec::new(),
            pending: Vec::new(),
            rows_received: 0,
        })
    }

    /// Appends whole rows (`rows.len()` a multiple of the width), north to south.
    pub fn write_rows(&mut self, rows: &[u8]) -> Result<(), GeoTiffWriteError> {
        let w = self.header.width as usize;
        let n = rows.len() / w;
        if !rows.len().is_multiple_of(w)
            || self.rows_received as usize + n > self.header.height as usize
        {
            return Err(GeoTiffWriteError::SizeMismatch {
                width: self.header.width,
                height: self.header.height,
                expected: u64::from(self.header.width) * u64::from(self.header.height),
                got: (self.rows_received as usize * w) + rows.len(),
            });
        }
        self.rows_received += u32::try_from(n).expect("rows fit the height, a u32");
        let band = self.layout.band_rows() as usize * w;
        let last = self.rows_received == self.header.height;
        // Whole bands are compressed together, straight from the caller's rows when nothing is
        // pending, so a block of many bands keeps every core busy and nothing is copied twice.
        let whole = |len: usize| if last { len } else { len - len % band };
        if self.pending.is_empty() {
            let cut = whole(rows.len());
            self.write_bands(&rows[..cut])?;
            self.pending.extend_from_slice(&rows[cut..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(rows);
            let cut = whole(pending.len());
            self.write_bands(&pending[..cut])?;
            pending.drain(..cut);
            self.pending = pending;
        }
        Ok(())
    }

    /// Compresses whole bands (the raster's last may be short) into their chunks, all in
    /// parallel, and appends them in chunk order.
    fn write_bands(&mut self, bands: &[u8]) -> Result<(), GeoTiffWriteError> {
        use rayon::prelude::*;
        use std::io::Write as _;
        if bands.is_empty() {
            return Ok(());
        }
        let w = self.header.width as usize;
        let chunks: Vec<Vec<u8>> = match self.layout {
            Layout::LzwStrips { rows } => {
                bands.par_chunks(rows as usize * w).map(lzw_strip).collect()
            }
            Layout::DeflateTiles => {
                let fill = self.header.nodata.unwrap_or(0);
                let t = TILE_SIZE as usize;
                let across = w.div_ceil(t);
                let band_len = t * w;
                (0..bands.len().div_ceil(band_len) * across)
                    .into_par_iter()
                    .map(|i| {
                        let band = &bands[(i / across) * band_len..];
                        let band = &band[..band.len().min(band_len)];
                        let tx = i % across;
                        let mut tile = vec![fill; t * t];
                        let cols = t.min(w - tx * t);
                        for r in 0..band.len() / w {
                            let src = r * w + tx * t;
                            tile[r * t..r * t + cols].copy_from_slice(&band[src..src + cols]);
                        }
                        miniz_oxide::deflate::compress_to_vec_zlib(&tile, 9)
                    })
                    .collect()
            }
        };
        for chunk in chunks {
            self.file
                .write_all(&chunk)
                .map_err(|source| self.io(source))?;
            self.offsets
                .push(u32::try_from(self.position).map_err(|_| GeoTiffWriteError::TooLarge)?);
            self.counts
                .push(u32::try_from(chunk.len()).map_err(|_| GeoTiffWriteError::TooLarge)?);
            self.position += chunk.len() as u64;
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> GeoTiffWriteError {
        GeoTiffWriteError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes the image directory and closes the file; returns its size in bytes. Fails if
    /// fewer rows than the height were written.
    pub fn finish(mut self) -> Result<u64, GeoTiffWriteError> {
        use std::io::{Seek as _, SeekFrom, Write as _};
        if self.rows_received != self.header.height {
            return Err(GeoTiffWriteError::SizeMismatch {
                width: self.header.width,
                height: self.header.height,
                expected: u64::from(self.header.width) * u64::from(self.header.height),
                got: self.rows_received as usize * self.header.width as usize,
            });
        }
        let ifd = IfdBuilder::for_raster(&self.header, self.layout, &self.offsets, &self.counts);
        let (bytes, ifd_offset) = ifd.encode(self.position)?;
        self.file
            .write_all(&bytes)
            .map_err(|source| self.io(source))?;
        let size = self.position + bytes.len() as u64;
        self.file
            .seek(SeekFrom::Start(4))
            .and_then(|_| self.file.write_all(&ifd_offset.to_le_bytes()))
            .and_then(|()| self.file.flush())
            .map_err(|source| self.io(source))?;
        Ok(size)
    }
}

/// One strip in TIFF's LZW (TIFF 6.0, Adobe 1992, §13: MSB-first codes, the early code-size
/// switch). Encoded into a Vec: the `tiff` crate's `Lzw::write_to` streams through a zeroed
/// 16 MiB buffer per call, which costs far more than encoding an 8 KiB strip.
fn lzw_strip(strip: &[u8]) -> Vec<u8> {
    weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
        .encode(strip)
        .expect("LZW at 8 bits encodes any bytes")
}

/// One TIFF directory entry's value.
enum IfdValue {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Double(Vec<f64>),
    Ascii(String),
}

/// A classic little-endian TIFF image directory (TIFF 6.0, Adobe 1992, §2), built by hand for
/// the streaming writer, whose chunks are already on disk when the directory is written.
struct IfdBuilder {
    entries: Vec<(u16, IfdValue)>,
}

impl IfdBuilder {
    fn for_raster(header: &RasterHeader, layout: Layout, offsets: &[u32], counts: &[u32]) -> Self {
        use IfdValue::{Ascii, Double, Long, Short};
        let p = header.placement;
        let mut entries = vec![
            (256, Long(vec![header.width])),
            (257, Long(vec![header.height])),
            (258, Short(vec![8])),
            (262, Short(vec![1])),
            (277, Short(vec![1])),
            (284, Short(vec![1])),
            (339, Short(vec![1])),
            (33550, Double(vec![p.pixel_width, p.pixel_height, 0.0])),
            (33922, Double(vec![0.0, 0.0, 0.0, p.x_min, p.y_max, 0.0])),
        ];
        match layout {
            Layout::LzwStrips { rows } => {
                entries.push((259, Short(vec![5])));
                entries.push((273, Long(offsets.to_vec())));
                entries.push((278, Long(vec![rows])));
                entries.push((279, Long(counts.to_vec())));
            }
            Layout::DeflateTiles => {
                entries.push((259, Short(vec![8])));
                entries.push((322, Long(vec![TILE_SIZE])));
                entries.push((323, Long(vec![TILE_SIZE])));
                entries.push((324, Long(offsets.to_vec())));
                entries.push((325, Long(counts.to_vec())));
            }
        }
        if let Some(text) = &header.description {
            entries.push((270, Ascii(text.clone())));
        }
        let keys = GeoKeys::for_crs(header.crs);
        entries.push((34735, Short(keys.directory)));
        if !keys.doubles.is_empty() {
            entries.push((TAG_DOUBLE_PARAMS, Double(keys.doubles)));
        }
        if !keys.ascii.is_empty() {
            entries.push((TAG_ASCII_PARAMS, Ascii(keys.ascii)));
        }
        if let Some(nodata) = header.nodata {
            entries.push((42113, Ascii(nodata.to_string())));
        }
        entries.sort_by_key(|(tag, _)| *tag);
        Self { entries }
    }

    /// The directory's bytes for a file whose data ends at `start`: out-of-line values first
    /// (word-aligned), then the directory; returns the bytes and the directory's offset.
    fn encode(self, start: u64) -> Result<(Vec<u8>, u32), GeoTiffWriteError> {
        let too_large = |_| GeoTiffWriteError::TooLarge;
        let mut out = Vec::new();
        if !start.is_multiple_of(2) {
            out.push(0);
        }
        let mut table = Vec::with_capacity(2 + 12 * self.entries.len() + 4);
        table.extend_from_slice(
            &u16::try_from(self.entries.len())
                .expect("a few dozen tags")
                .to_le_bytes(),
        );
        for (tag, value) in &self.entries {
            let (ty, count, bytes): (u16, usize, Vec<u8>) = match value {
                IfdValue::Short(v) => {
                    (3, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
                IfdValue::Long(v) => (4, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                IfdValue::Double(v) => (
                    12,
                    v.len(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                IfdValue::Ascii(s) => {
                    let mut b = s.as_bytes().to_vec();
                    b.push(0);
                    (2, b.len(), b)
                }
            };
            table.extend_from_slice(&tag.to_le_bytes());
            table.extend_from_slice(&ty.to_le_bytes());
            table.extend_from_slice(&u32::try_from(count).map_err(too_large)?.to_le_bytes());
            if bytes.len() <= 4 {
                let mut inline = [0u8; 4];
                inline[..bytes.len()].copy_from_slice(&bytes);
                table.extend_from_slice(&inline);
            } else {
                let at = u32::try_from(start + out.len() as u64).map_err(too_large)?;
                out.extend_from_slice(&bytes);
                if !out.len().is_multiple_of(2) {
                    out.push(0);
                }
                table.extend_from_slice(&at.to_le_bytes());
            }
        }
        table.extend_from_slice(&0u32.to_le_bytes());
        let ifd_offset = u32::try_from(start + out.len() as u64).map_err(too_large)?;
        out.extend_from_slice(&table);
        Ok((out, ifd_offset))
    }
}

// GeoKey ids and codes (GeoTIFF 1.0 specification, §6.2–6.3; OGC GeoTIFF 1.1 standard 19-008r4).
const GT_MODEL_TYPE: u16 = 1024;
const GT_RASTER_TYPE: u16 = 1025;
const GT_CITATION: u16 = 1026;
const GEOGRAPHIC_TYPE: u16 = 2048;
const GEOG_ANGULAR_UNITS: u16 = 2054;
const PROJECTED_CS_TYPE: u16 = 3072;
const PCS_CITATION: u16 = 3073;
const PROJECTION: u16 = 3074;
const PROJ_COORD_TRANS: u16 = 3075;
const PROJ_LINEAR_UNITS: u16 = 3076;
const PROJ_STD_PARALLEL_1: u16 = 3078;
const PROJ_STD_PARALLEL_2: u16 = 3079;
const PROJ_NAT_ORIGIN_LONG: u16 = 3080;
const PROJ_NAT_ORIGIN_LAT: u16 = 3081;
const PROJ_FALSE_EASTING: u16 = 3082;
const PROJ_FALSE_NORTHING: u16 = 3083;
const MODEL_TYPE_PROJECTED: u16 = 1;
const MODEL_TYPE_GEOGRAPHIC: u16 = 2;
const RASTER_PIXEL_IS_AREA: u16 = 1;
const USER_DEFINED: u16 = 32767;
const CT_ALBERS_EQUAL_AREA: u16 = 11;
const LINEAR_METER: u16 = 9001;
const ANGULAR_DEGREE: u16 = 9102;
const TAG_DOUBLE_PARAMS: u16 = 34736;
const TAG_ASCII_PARAMS: u16 = 34737;

/// The GeoKeyDirectory (header + sorted key entries) and its double and ASCII parameter blocks.
struct GeoKeys {
    directory: Vec<u16>,
    doubles: Vec<f64>,
    ascii: String,
}

enum KeyValue {
    Short(u16),
    Double(f64),
    Ascii(String),
}

impl GeoKeys {
    fn for_crs(crs: Crs) -> Self {
        Self::from_keys(crs_keys(crs))
    }

    /// The directory of `keys`, sorted by id as the GeoTIFF specification requires, with
    /// doubles and citations in their own tags.
    fn from_keys(mut keys: Vec<(u16, KeyValue)>) -> Self {
        use KeyValue::{Ascii, Double, Short};
        keys.sort_by_key(|(id, _)| *id);
        let count = u16::try_from(keys.len()).expect("a GeoKey directory has fewer than 2^16 keys");
        // Header: KeyDirectoryVersion 1, KeyRevision 1.0, number of keys.
        let mut directory = vec![1, 1, 0, count];
        let mut doubles = Vec::new();
        let mut ascii = String::new();
        for (id, value) in keys {
            match value {
                Short(v) => directory.extend([id, 0, 1, v]),
                Double(v) => {
                    let index = u16::try_from(doubles.len()).expect("few double GeoKeys");
                    doubles.push(v);
                    directory.extend([id, TAG_DOUBLE_PARAMS, 1, index]);
                }
                Ascii(text) => {
                    let index = u16::try_from(ascii.len()).expect("short GeoKey citations");
                    // Each ASCII value ends with `|`, which counts in its length.
                    let len = u16::try_from(text.len() + 1).expect("short GeoKey citations");
                    ascii.push_str(&text);
                    ascii.push('|');
                    directory.extend([id, TAG_ASCII_PARAMS, len, index]);
                }
            }
        }
        Self {
            directory,
            doubles,
            ascii,
        }
    }
}

/// The GeoKeys that say which CRS a raster is in (pixels are areas).
fn crs_keys(crs: Crs) -> Vec<(u16, KeyValue)> {
    use KeyValue::{Ascii, Double, Short};
    let mut keys: Vec<(u16, KeyValue)> = vec![(GT_RASTER_TYPE, Short(RASTER_PIXEL_IS_AREA))];
    match crs {
        Crs::Epsg4326 => {
            keys.push((GT_MODEL_TYPE, Short(MODEL_TYPE_GEOGRAPHIC)));
            keys.push((GEOGRAPHIC_TYPE, Short(4326)));
            keys.push((GEOG_ANGULAR_UNITS, Short(ANGULAR_DEGREE)));
        }
        Crs::EpsgProjected(code) => {
            keys.push((GT_MODEL_TYPE, Short(MODEL_TYPE_PROJECTED)));
            keys.push((PROJECTED_CS_TYPE, Short(code)));
            keys.push((PROJ_LINEAR_UNITS, Short(LINEAR_METER)));
        }
        Crs::Albers {
            lat_1,
            lat_2,
            lat_0,
            lon_0,
            x_0,
            y_0,
        } => {
            let name = format!(
                "WGS 84 / Albers equal-area (lat_1={lat_1} lat_2={lat_2} lat_0={lat_0} lon_0={lon_0})"
            );
            keys.push((GT_MODEL_TYPE, Short(MODEL_TYPE_PROJECTED)));
            keys.push((GT_CITATION, Ascii(name.clone())));
            keys.push((GEOGRAPHIC_TYPE, Short(4326)));
            keys.push((GEOG_ANGULAR_UNITS, Short(ANGULAR_DEGREE)));
            keys.push((PROJECTED_CS_TYPE, Short(USER_DEFINED)));
            keys.push((PCS_CITATION, Ascii(name)));
            keys.push((PROJECTION, Short(USER_DEFINED)));
            keys.push((PROJ_COORD_TRANS, Short(CT_ALBERS_EQUAL_AREA)));
            keys.push((PROJ_LINEAR_UNITS, Short(LINEAR_METER)));
            keys.push((PROJ_STD_PARALLEL_1, Double(lat_1)));
            keys.push((PROJ_STD_PARALLEL_2, Double(lat_2)));
            keys.push((PROJ_NAT_ORIGIN_LONG, Double(lon_0)));
            keys.push((PROJ_NAT_ORIGIN_LAT, Double(lat_0)));
            keys.push((PROJ_FALSE_EASTING, Double(x_0)));
            keys.push((PROJ_FALSE_NORTHING, Double(y_0)));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiff::decoder::{Decoder, DecodingResult};

    fn sample(w: u32, h: u32) -> Vec<u8> {
        // A pattern with every code 0..=9 and structure across tile borders.
        (0..h)
            .flat_map(|r| (0..w).map(move |c| ((r / 7 + c / 11) % 10) as u8))
            .collect()
    }

    fn decode(bytes: &[u8]) -> Decoder<Cursor<&[u8]>> {
        Decoder::new(Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn round_trips_pixels_and_tags_epsg4326() {
        // 300 × 270 spans 2 × 2 tiles with partial edge tiles.
        let (w, h) = (300, 270);
        let codes = sample(w, h);
        let placement = GridPlacement {
            x_min: 110.25,
            y_max: 36.5,
            pixel_width: 0.0027,
            pixel_height: 0.0027,
        };
        let raster = CategoricalRaster {
            width: w,
            height: h,
            codes: &codes,
            placement,
            crs: Crs::Epsg4326,
            nodata: Some(0),
            description: Some("test"),
        };
        let bytes = encode_categorical(&raster).unwrap();
        let mut d = decode(&bytes);
        assert_eq!(d.dimensions().unwrap(), (w, h));
        assert_eq!(d.tile_count().unwrap(), 4);
        assert_eq!(d.chunk_dimensions(), (256, 256));
        assert_eq!(d.get_tag_u32(Tag::Compression).unwrap(), 8);
        assert_eq!(
            d.get_tag_f64_vec(Tag::ModelPixelScaleTag).unwrap(),
            vec![0.0027, 0.0027, 0.0]
        );
        assert_eq!(
            d.get_tag_f64_vec(Tag::ModelTiepointTag).unwrap(),
            vec![0.0, 0.0, 0.0, 110.25, 36.5, 0.0]
        );
        // Header (1, 1, 0, 4 keys), then GTModelType = 2, GTRasterType = 1, GeographicType = 4326,
        // GeogAngularUnits = 9102 (degree), sorted by key id as the specification requires.
        assert_eq!(
            d.get_tag_u16_vec(Tag::GeoKeyDirectoryTag).unwrap(),
            vec![
                1, 1, 0, 4, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326, 2054, 0, 1, 9102
            ]
        );
        assert_eq!(d.get_tag_ascii_string(Tag::GdalNodata).unwrap(), "0");
        assert_eq!(
            d.get_tag_ascii_string(Tag::ImageDescription).unwrap(),
            "test"
        );
        match d.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, codes),
            other => panic!("expected u8 pixels, got {other:?}"),
        }
    }

    #[test]
    fn albers_keys_carry_the_projection_parameters() {
        let codes = sample(10, 10);
        let placement = GridPlacement {
            x_min: 500_000.0,
            y_max: 4_000_000.0,
            pixel_width: 30.0,
            pixel_height: 30.0,
        };
        let raster = CategoricalRaster {
            width: 10,
            height: 10,
            codes: &codes,
            placement,
            crs: Crs::albers_china(),
            nodata: None,
            description: None,
        };
        let bytes = encode_categorical(&raster).unwrap();
        let mut d = decode(&bytes);
        let keys = d.get_tag_u16_vec(Tag::GeoKeyDirectoryTag).unwrap();
        assert_eq!(&keys[..4], &[1, 1, 0, 16]);
        let entries: Vec<&[u16]> = keys[4..].chunks(4).collect();
        assert!(
            entries.windows(2).all(|p| p[0][0] < p[1][0]),
            "keys sorted by id"
        );
        assert!(entries.contains(&&[1024u16, 0, 1, 1][..]));
        assert!(entries.contains(&&[3075u16, 0, 1, 11][..]));
        // Std parallels 25 and 47, central meridian 105 in GeoDoubleParams, in key order.
        assert_eq!(
            d.get_tag_f64_vec(Tag::GeoDoubleParamsTag).unwrap(),
            vec![25.0, 47.0, 105.0, 0.0, 0.0, 0.0]
        );
        assert!(
            d.get_tag_ascii_string(Tag::GeoAsciiParamsTag)
                .unwrap()
                .contains("lat_1=25")
        );
        assert!(d.find_tag(Tag::GdalNodata).unwrap().is_none());
        match d.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, codes),
            other => panic!("expected u8 pixels, got {other:?}"),
        }
    }

    #[test]
    fn same_raster_gives_same_bytes_and_bad_sizes_are_refused() {
        let codes = sample(64, 33);
        let placement = GridPlacement {
            x_min: 0.0,
            y_max: 1.0,
            pixel_width: 0.5,
            pixel_height: 0.5,
        };
        let raster = CategoricalRaster {
            width: 64,
            height: 33,
            codes: &codes,
            placement,
            crs: Crs::EpsgProjected(3857),
            nodata: Some(255),
            description: None,
        };
        assert_eq!(
            encode_categorical(&raster).unwrap(),
            encode_categorical(&raster).unwrap()
        );
        let short = CategoricalRaster {
            codes: &codes[..10],
            ..raster
        };
        assert!(matches!(
            encode_categorical(&short),
            Err(GeoTiffWriteError::SizeMismatch { .. })
        ));
    }

    fn streamed(layout: Layout, codes: &[u8], w: u32, h: u32, dir: &Path) -> Vec<u8> {
        let path = dir.join(format!("{layout:?}.tif"));
        let header = RasterHeader {
            width: w,
            height: h,
            placement: GridPlacement {
                x_min: -2_000_000.0,
                y_max: 5_000_000.0,
                pixel_width: 90.0,
                pixel_height: 90.0,
            },
            crs: Crs::albers_china(),
            nodata: Some(0),
            description: Some("streamed".into()),
        };
        let mut writer = StreamingGeoTiff::create(&path, header, layout).unwrap();
        // Uneven pieces: 1 row, then 5, then the rest, so bands are assembled across calls.
        let row = w as usize;
        writer.write_rows(&codes[..row]).unwrap();
        writer.write_rows(&codes[row..6 * row]).unwrap();
        writer.write_rows(&codes[6 * row..]).unwrap();
        writer.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn lzw_strips_are_the_bytes_of_tiffs_own_lzw_writer() {
        use crate::methods::rng::SplitMix64;
        use tiff::encoder::compression::{CompressionAlgorithm, Lzw};
        let mut rng = SplitMix64::new(3);
        let noise: Vec<u8> = (0..50_000).map(|_| (rng.next_u64() % 10) as u8).collect();
        // Patterned, noisy (past 4,096 codes: dictionary resets), one long run, one byte, none.
        for strip in [sample(8192, 1), noise, vec![7; 100_000], vec![3], vec![]] {
            let mut theirs = Vec::new();
            Lzw.write_to(&mut theirs, &strip).unwrap();
            assert_eq!(lzw_strip(&strip), theirs, "strip of {} bytes", strip.len());
        }
    }

    #[test]
    fn streamed_bytes_do_not_depend_on_how_rows_are_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        // 300 × 600: three tile bands (the last short) and 23 strips of 27 rows (the last short).
        let (w, h) = (300, 600);
        let codes = sample(w, h);
        for layout in [Layout::LzwStrips { rows: 27 }, Layout::DeflateTiles] {
            let header = RasterHeader {
                width: w,
                height: h,
                placement: GridPlacement {
                    x_min: 0.0,
                    y_max: 0.0,
                    pixel_width: 30.0,
                    pixel_height: 30.0,
                },
                crs: Crs::albers_china(),
                nodata: Some(0),
                description: None,
            };
            let write = |name: &str, pieces: &[usize]| {
                let path = dir.path().join(name);
                let mut writer = StreamingGeoTiff::create(&path, header.clone(), layout).unwrap();
                let mut at = 0;
                for &rows in pieces {
                    writer
                        .write_rows(&codes[at..at + rows * w as usize])
                        .unwrap();
                    at += rows * w as usize;
                }
                writer.finish().unwrap();
                std::fs::read(path).unwrap()
            };
            let at_once = write("once.tif", &[600]);
            // Row by row: every band is assembled from pieces.
            assert_eq!(at_once, write("rows.tif", &[1; 600]), "{layout:?}");
            // Pieces that straddle band and strip ends.
            assert_eq!(at_once, write("mixed.tif", &[300, 1, 299]), "{layout:?}");
            match decode(&at_once).read_image().unwrap() {
                DecodingResult::U8(px) => assert_eq!(px, codes),
                other => panic!("expected u8 pixels, got {other:?}"),
            }
        }
    }

    #[test]
    fn streamed_lzw_strips_and_deflate_tiles_round_trip_with_their_tags() {
        let dir = tempfile::tempdir().unwrap();
        // 300 × 270: partial tiles at the right and bottom, a short last strip (270 = 27 × 10).
        let (w, h) = (300, 270);
        let codes = sample(w, h);
        let lzw = streamed(Layout::LzwStrips { rows: 27 }, &codes, w, h, dir.path());
        let tiles = streamed(Layout::DeflateTiles, &codes, w, h, dir.path());
        for (bytes, compression) in [(&lzw, 5), (&tiles, 8)] {
            let mut d = decode(bytes);
            assert_eq!(d.dimensions().unwrap(), (w, h));
            assert_eq!(d.get_tag_u32(Tag::Compression).unwrap(), compression);
            assert_eq!(
                d.get_tag_f64_vec(Tag::ModelTiepointTag).unwrap(),
                vec![0.0, 0.0, 0.0, -2_000_000.0, 5_000_000.0, 0.0]
            );
            assert_eq!(
                d.get_tag_f64_vec(Tag::GeoDoubleParamsTag).unwrap(),
                vec![25.0, 47.0, 105.0, 0.0, 0.0, 0.0]
            );
            assert_eq!(d.get_tag_ascii_string(Tag::GdalNodata).unwrap(), "0");
            assert_eq!(
                d.get_tag_ascii_string(Tag::ImageDescription).unwrap(),
                "streamed"
            );
            match d.read_image().unwrap() {
                DecodingResult::U8(px) => assert_eq!(px, codes),
                other => panic!("expected u8 pixels, got {other:?}"),
            }
        }
        let mut d = decode(&lzw);
        assert_eq!(d.get_tag_u32(Tag::RowsPerStrip).unwrap(), 27);
        assert_eq!(d.strip_count().unwrap(), 10);
        let d = decode(&tiles);
        assert_eq!(d.chunk_dimensions(), (256, 256));
        // Same pixels, same bytes.
        assert_eq!(
            lzw,
            streamed(Layout::LzwStrips { rows: 27 }, &codes, w, h, dir.path())
        );
    }

    #[test]
    fn streaming_refuses_too_many_or_too_few_rows() {
        let dir = tempfile::tempdir().unwrap();
        let header = RasterHeader {
            width: 4,
            height: 2,
            placement: GridPlacement {
                x_min: 0.0,
                y_max: 0.0,
                pixel_width: 1.0,
                pixel_height: 1.0,
            },
            crs: Crs::Epsg4326,
            nodata: None,
            description: None,
        };
        let path = dir.path().join("a.tif");
        let mut w = StreamingGeoTiff::create(&path, header.clone(), Layout::DeflateTiles).unwrap();
        assert!(
            w.write_rows(&[1; 12]).is_err(),
            "three rows of a two-row raster"
        );
        w.write_rows(&[1; 4]).unwrap();
        assert!(matches!(
            w.finish(),
            Err(GeoTiffWriteError::SizeMismatch { .. })
        ));
        assert_eq!(
            Layout::lzw_strips_for_width(150_000),
            Layout::LzwStrips { rows: 1 }
        );
        assert_eq!(
            Layout::lzw_strips_for_width(1_000),
            Layout::LzwStrips { rows: 8 }
        );
    }
}
