//! Reading categorical GeoTIFFs: single-band 8- or 16-bit unsigned rasters, stripped or tiled,
//! uncompressed, DEFLATE, LZW or PackBits (with or without the horizontal predictor), through the
//! pure-Rust `tiff` decoder, plus our own reader of the georeferencing tags (ModelPixelScale +
//! ModelTiepoint or ModelTransformation), the GeoKey directory (CRS) and GDAL's NoData tag.
//!
//! The file is read chunk by chunk (a tile or a strip), so memory stays at one chunk per reader;
//! open one [`ChunkReader`] per thread. Knows TIFF, not land classes.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use tiff::decoder::{ChunkType, Decoder, Limits};
use tiff::tags::Tag;

/// Why a GeoTIFF could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoTiffError {
    #[error("cannot open {path}: {source}")]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable TIFF: {message}")]
    TiffInvalid { path: PathBuf, message: String },
    #[error("{path}: {what} is not supported")]
    FeatureUnsupported { path: PathBuf, what: String },
    #[error("{path}: {message}")]
    GeoreferenceInvalid { path: PathBuf, message: String },
}

/// The pixel type of a supported raster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    U8,
    U16,
}

/// The affine map of a north-up raster: pixel (col, row)'s top-left corner is at
/// (x0 + col·dx, y0 + row·dy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoTransform {
    pub x0: f64,
    pub y0: f64,
    pub dx: f64,
    pub dy: f64,
}

/// The coordinate reference system as the GeoKeys declare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Crs {
    /// Longitude/latitude in degrees (GTModelType 2).
    pub geographic: bool,
    /// The EPSG code of the projected or geographic CRS, when it is a registered one.
    pub epsg: Option<u16>,
    /// A PROJ string built from the GeoKeys of a user-defined projected CRS.
    pub proj4: Option<String>,
    /// A short description for messages.
    pub description: String,
}

/// What [`open`] learns about a GeoTIFF.
#[derive(Debug, Clone)]
pub struct GeoTiffInfo {
    pub path: PathBuf,
    pub width: usize,
    pub height: usize,
    pub sample: SampleType,
    pub tiled: bool,
    /// Size of a full chunk (tile, or strip: width × rows per strip).
    pub chunk_width: usize,
    pub chunk_height: usize,
    pub compression: &'static str,
    pub nodata: Option<u32>,
    pub transform: GeoTransform,
    /// `None` when the file has no GeoKey directory.
    pub crs: Option<Crs>,
    /// Where the chunks lie in the file and how they are coded.
    storage: Arc<Storage>,
}

impl GeoTiffInfo {
    /// Chunks across and down.
    pub fn chunks_across(&self) -> usize {
        self.width.div_ceil(self.chunk_width)
    }
    pub fn chunks_down(&self) -> usize {
        self.height.div_ceil(self.chunk_height)
    }
    /// Total chunks (tiles or strips).
    pub fn chunk_count(&self) -> usize {
        self.chunks_across() * self.chunks_down()
    }
    /// The pixel rectangle `(col0, row0, width, height)` of chunk `index`.
    pub fn chunk_rect(&self, index: usize) -> (usize, usize, usize, usize) {
        let across = self.chunks_across();
        let (cx, cy) = (index % across, index / across);
        let col0 = cx * self.chunk_width;
        let row0 = cy * self.chunk_height;
        (
            col0,
            row0,
            self.chunk_width.min(self.width - col0),
            self.chunk_height.min(self.height - row0),
        )
    }
    /// Whether two rasters share grid and chunk layout (so chunk `i` of one covers the same
    /// pixels as chunk `i` of the other).
    pub fn same_layout(&self, other: &GeoTiffInfo) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.chunk_width == other.chunk_width
            && self.chunk_height == other.chunk_height
    }
}

fn tiff_err(path: &Path, e: impl std::fmt::Display) -> GeoTiffError {
    GeoTiffError::TiffInvalid {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn unsupported(path: &Path, what: impl Into<String>) -> GeoTiffError {
    GeoTiffError::FeatureUnsupported {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn georef(path: &Path, message: impl Into<String>) -> GeoTiffError {
    GeoTiffError::GeoreferenceInvalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The tiff crate's decoder over a GeoTIFF's first image (it reads only the tags here).
type TagReader = Decoder<BufReader<File>>;

fn decoder(path: &Path) -> Result<TagReader, GeoTiffError> {
    let file = File::open(path).map_err(|source| GeoTiffError::FileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    first_ifd_fits(&file, file_len).map_err(|message| tiff_err(path, message))?;
    std::io::Seek::rewind(&mut (&file)).map_err(|e| tiff_err(path, e))?;
    Ok(Decoder::new(BufReader::with_capacity(1 << 16, file))
        .map_err(|e| tiff_err(path, e))?
        .with_limits(limits(file_len)))
}

/// Checks that every tag of the first IFD declares no more values than the file holds (TIFF
/// 6.0, Adobe 1992, section 2; BigTIFF as Aware Systems describe it). The tiff crate reads that
/// IFD with its own limits before ours apply, and reserves 32 bytes a declared value.
fn first_ifd_fits(file: &File, file_len: usize) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut reader = BufReader::with_capacity(4096, file);
    let mut head = [0u8; 16];
    if reader.read_exact(&mut head).is_err() {
        // Too short to hold an IFD: the decoder says what is wrong.
        return Ok(());
    }
    let little = &head[..2] == b"II";
    let int = |b: &[u8]| -> u64 {
        let mut v = 0u64;
        for i in 0..b.len() {
            let byte = if little { b[b.len() - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        v
    };
    let big = int(&head[2..4]) == 43;
    let ifd = if big {
        int(&head[8..16])
    } else {
        int(&head[4..8])
    };
    let (entry_len, count_len, inline) = if big { (20, 8, 8) } else { (12, 4, 4) };
    let mut count_bytes = [0u8; 8];
    let entries_len = if big { 8 } else { 2 };
    let counted = reader.seek(SeekFrom::Start(ifd)).is_ok()
        && reader.read_exact(&mut count_bytes[..entries_len]).is_ok();
    if !counted {
        return Ok(());
    }
    let entries = int(&count_bytes[..entries_len]);
    let file_len = file_len as u64;
    if entries.saturating_mul(entry_len as u64) > file_len {
        return Err(format!(
            "the first IFD declares {entries} tags, more than the file holds"
        ));
    }
    let mut entry = [0u8; 20];
    for _ in 0..entries {
        if reader.read_exact(&mut entry[..entry_len]).is_err() {
            return Ok(());
        }
        let (tag, kind) = (int(&entry[0..2]), int(&entry[2..4]));
        let count = int(&entry[4..4 + count_len]);
        // Value sizes by field type: SHORT, SSHORT 2; LONG, SLONG, FLOAT, IFD 4; RATIONAL,
        // SRATIONAL, DOUBLE, LONG8, SLONG8, IFD8 8; BYTE, ASCII, UNDEFINED and unknown 1.
        let size = match kind {
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16 | 17 | 18 => 8,
            _ => 1,
        };
        let bytes = count.saturating_mul(size);
        if bytes > inline && bytes > file_len {
            return Err(format!(
                "tag {tag} declares {count} values ({bytes} bytes), more than the file's {file_len} bytes"
            ));
        }
    }
    Ok(())
}

/// Bytes one decoded chunk may take per byte of file, beyond [`CHUNK_ALLOWANCE`]. DEFLATE
/// expands at most 1032-fold; a constant LZW strip a little more, but then the file holds
/// other chunks too.
const EXPANSION_PER_FILE_BYTE: usize = 1024;
/// What any chunk may take whatever the file's size (a 2048 × 2048 tile of 8-bit codes).
const CHUNK_ALLOWANCE: usize = 4 << 20;

/// Decoder limits set by the file's size, not by the sizes its tags declare: a tag's values
/// lie inside the file, and a chunk cannot decode to more than its bytes can expand to. So a
/// small file declaring a 2^30-pixel tile or a 2^32-entry offset table is an error, not an
/// attempt to allocate it.
fn limits(file_len: usize) -> Limits {
    let mut limits = Limits::default();
    limits.ifd_value_size = file_len;
    limits.decoding_buffer_size =
        CHUNK_ALLOWANCE.saturating_add(file_len.saturating_mul(EXPANSION_PER_FILE_BYTE));
    limits.intermediate_buffer_size = limits.decoding_buffer_size;
    limits
}

/// Reads the header, georeferencing and CRS of a GeoTIFF (first image only).
pub fn open(path: &Path) -> Result<GeoTiffInfo, GeoTiffError> {
    let mut dec = decoder(path)?;
    let (width, height) = dec.dimensions().map_err(|e| tiff_err(path, e))?;
    let (width, height) = (width as usize, height as usize);
    let sample = sample_type(path, &mut dec)?;
    let compression = compression(path, &mut dec)?;
    let tiled = dec.get_chunk_type() == ChunkType::Tile;
    let storage = read_storage(path, &mut dec, compression, sample, tiled, height)?;
    let (chunk_width, chunk_height) = if tiled {
        let (w, h) = dec.chunk_dimensions();
        (w as usize, h as usize)
    } else {
        (
            width,
            (storage.strip_rows * storage.strips_per_chunk).min(height),
        )
    };
    check_chunk_fits(path, chunk_width, chunk_height, sample, storage.file_len)?;
    let nodata = nodata(path, &mut dec, sample)?;
    let (transform, crs) = georeferencing(path, &mut dec)?;
    Ok(GeoTiffInfo {
        path: path.to_owned(),
        width,
        height,
        sample,
        tiled,
        chunk_width,
        chunk_height,
        compression,
        nodata,
        transform,
        crs,
        storage: Arc::new(storage),
    })
}

fn tag_u64(path: &Path, dec: &mut TagReader, tag: Tag) -> Result<Option<u64>, GeoTiffError> {
    dec.find_tag_unsigned::<u64>(tag)
        .map_err(|e| tiff_err(path, e))
}

fn tag_f64s(path: &Path, dec: &mut TagReader, tag: Tag) -> Result<Option<Vec<f64>>, GeoTiffError> {
    dec.find_tag(tag)
        .map_err(|e| tiff_err(path, e))?
        .map(|v| v.into_f64_vec().map_err(|e| tiff_err(path, e)))
        .transpose()
}

fn tag_string(path: &Path, dec: &mut TagReader, tag: Tag) -> Result<Option<String>, GeoTiffError> {
    dec.find_tag(tag)
        .map_err(|e| tiff_err(path, e))?
        .map(|v| v.into_string().map_err(|e| tiff_err(path, e)))
        .transpose()
}

/// The pixel type: one band of unsigned 8- or 16-bit samples.
fn sample_type(path: &Path, dec: &mut TagReader) -> Result<SampleType, GeoTiffError> {
    let samples = tag_u64(path, dec, Tag::SamplesPerPixel)?.unwrap_or(1);
    if samples != 1 {
        return Err(unsupported(
            path,
            format!("a raster with {samples} bands (only single-band rasters are read)"),
        ));
    }
    let bits = tag_u64(path, dec, Tag::BitsPerSample)?.unwrap_or(1);
    let format = tag_u64(path, dec, Tag::SampleFormat)?.unwrap_or(1);
    let what = match (bits, format) {
        (8, 1) => return Ok(SampleType::U8),
        (16, 1) => return Ok(SampleType::U16),
        (b, 1) => format!("{b}-bit unsigned pixels (only 8 and 16 bits)"),
        (b, 2) => format!("{b}-bit signed pixels (only unsigned 8- and 16-bit categories)"),
        (b, 3) => {
            format!("{b}-bit floating-point pixels (a land-use raster holds integer codes)")
        }
        (b, f) => format!("{b}-bit pixels of sample format {f}"),
    };
    Err(unsupported(path, what))
}

/// The Compression tag's method by name, or what to do about one not supported.
fn compression(path: &Path, dec: &mut TagReader) -> Result<&'static str, GeoTiffError> {
    let resave = "compression (re-save with COMPRESS=DEFLATE or LZW)";
    let what = match tag_u64(path, dec, Tag::Compression)?.unwrap_or(1) {
        1 => return Ok("none"),
        5 => return Ok("LZW"),
        8 | 32946 => return Ok("DEFLATE"),
        32773 => return Ok("PackBits"),
        7 => "JPEG compression (lossy; categories need lossless data)".to_owned(),
        50000 => format!("ZSTD {resave}"),
        34887 => format!("LERC {resave}"),
        34925 => format!("LZMA {resave}"),
        other => {
            format!("compression method {other} (supported: none, DEFLATE, LZW, PackBits)")
        }
    };
    Err(unsupported(path, what))
}

/// Refuses chunks larger than the file's bytes could decode to (see [`limits`]).
fn check_chunk_fits(
    path: &Path,
    chunk_width: usize,
    chunk_height: usize,
    sample: SampleType,
    file_len: u64,
) -> Result<(), GeoTiffError> {
    let decoded_bytes = chunk_width
        .saturating_mul(chunk_height)
        .saturating_mul(sample.bytes());
    let file_len = usize::try_from(file_len).unwrap_or(usize::MAX);
    if decoded_bytes > limits(file_len).decoding_buffer_size {
        return Err(tiff_err(
            path,
            format!(
                "chunks of {chunk_width} × {chunk_height} pixels cannot be coded in a file of {file_len} bytes"
            ),
        ));
    }
    Ok(())
}

/// GDAL's NoData tag as a pixel value; `None` without the tag or when the pixel type cannot
/// hold its value (then it marks no pixel).
fn nodata(
    path: &Path,
    dec: &mut TagReader,
    sample: SampleType,
) -> Result<Option<u32>, GeoTiffError> {
    let Some(text) = tag_string(path, dec, Tag::GdalNodata)? else {
        return Ok(None);
    };
    let text = text.trim_matches(char::from(0)).trim();
    let value: f64 = text
        .parse()
        .map_err(|_| georef(path, format!("the NoData tag holds `{text}`, not a number")))?;
    let max = if sample == SampleType::U8 {
        255.0
    } else {
        65_535.0
    };
    if value.fract() == 0.0 && (0.0..=max).contains(&value) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Ok(Some(value as u32));
    }
    Ok(None)
}

/// The pixel grid's affine map and the CRS of the GeoKeys (`None` without a GeoKey directory).
fn georeferencing(
    path: &Path,
    dec: &mut TagReader,
) -> Result<(GeoTransform, Option<Crs>), GeoTiffError> {
    let scale = tag_f64s(path, dec, Tag::ModelPixelScaleTag)?;
    let tiepoint = tag_f64s(path, dec, Tag::ModelTiepointTag)?;
    let matrix = tag_f64s(path, dec, Tag::ModelTransformationTag)?;
    let geokeys = geokeys(path, dec)?;
    let mut transform = transform_from_tags(path, scale, tiepoint, matrix)?;
    if !(transform.dx > 0.0
        && transform.dy != 0.0
        && transform.dx.is_finite()
        && transform.dy.is_finite())
    {
        return Err(unsupported(
            path,
            format!(
                "pixel size {} × {} (needs a positive width)",
                transform.dx, transform.dy
            ),
        ));
    }
    if geokeys
        .as_ref()
        .is_some_and(|k| k.get_short(GT_RASTER_TYPE) == Some(RASTER_PIXEL_IS_POINT))
    {
        // The tie point is a pixel centre: move it to the corner.
        transform.x0 -= transform.dx / 2.0;
        transform.y0 -= transform.dy / 2.0;
    }
    let crs = geokeys
        .map(|k| k.crs())
        .transpose()
        .map_err(|m| unsupported(path, m))?;
    Ok((transform, crs))
}

/// The GeoKey directory with its double and ASCII parameters, if the file has one.
fn geokeys(path: &Path, dec: &mut TagReader) -> Result<Option<GeoKeys>, GeoTiffError> {
    let keys = dec
        .find_tag(Tag::GeoKeyDirectoryTag)
        .map_err(|e| tiff_err(path, e))?
        .map(|v| v.into_u16_vec().map_err(|e| tiff_err(path, e)))
        .transpose()?;
    let doubles = tag_f64s(path, dec, Tag::GeoDoubleParamsTag)?.unwrap_or_default();
    let ascii = tag_string(path, dec, Tag::GeoAsciiParamsTag)?.unwrap_or_default();
    keys.map(|k| GeoKeys::parse(&k, &doubles, &ascii))
        .transpose()
        .map_err(|m| georef(path, m))
}

/// The affine map from ModelPixelScale + one ModelTiepoint, else ModelTransformation, else a
/// world file beside the raster.
fn transform_from_tags(
    path: &Path,
    scale: Option<Vec<f64>>,
    tiepoint: Option<Vec<f64>>,
    matrix: Option<Vec<f64>>,
) -> Result<GeoTransform, GeoTiffError> {
    match (scale, tiepoint, matrix) {
        (Some(s), Some(t), _) if s.len() >= 2 && t.len() >= 6 => {
            if t.len() > 6 {
                return Err(unsupported(
                    path,
                    "georeferencing by several tie points (warp the raster to a regular grid first)",
                ));
            }
            Ok(GeoTransform {
                x0: t[3] - t[0] * s[0],
                y0: t[4] + t[1] * s[1],
                dx: s[0],
                dy: -s[1],
            })
        }
        (_, _, Some(m)) if m.len() >= 8 => {
            if m[1] != 0.0 || m[4] != 0.0 {
                return Err(unsupported(
                    path,
                    "a rotated or sheared raster (ModelTransformation with rotation terms)",
                ));
            }
            Ok(GeoTransform {
                x0: m[3],
                y0: m[7],
                dx: m[0],
                dy: m[5],
            })
        }
        _ => match world_file(path) {
            Some(wf) => read_world_file(path, &wf),
            None => Err(georef(
                path,
                "no georeferencing (needs ModelPixelScale + ModelTiepoint, or ModelTransformation, or a `.tfw` world file beside it)",
            )),
        },
    }
}

/// The world file beside a raster (`x.tfw` for `x.tif`), if any.
pub fn world_file(path: &Path) -> Option<PathBuf> {
    Some(path.with_extension("tfw")).filter(|p| p.is_file())
}

/// Reads an ESRI world file: six numbers, one a line: pixel width A, rotation terms D and B,
/// pixel height E (negative for north-up), and the map coordinates C, F of the centre of the
/// upper-left pixel. The corner is half a pixel up-left of that centre.
///
/// # References
/// ESRI, "World files for raster datasets", ArcGIS Desktop help (the six-line format).
fn read_world_file(path: &Path, wf: &Path) -> Result<GeoTransform, GeoTiffError> {
    let text = std::fs::read_to_string(wf).map_err(|source| GeoTiffError::FileUnreadable {
        path: wf.to_owned(),
        source,
    })?;
    let numbers: Vec<f64> = text
        .split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    georef(
                        wf,
                        format!(
                            "`{t}` is not a number (a world file holds six numbers, one a line)"
                        ),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let [a, d, b, e, c, f] = numbers[..] else {
        return Err(georef(
            wf,
            format!("holds {} numbers, a world file has six", numbers.len()),
        ));
    };
    if d != 0.0 || b != 0.0 {
        return Err(unsupported(
            path,
            format!(
                "a rotated grid (world file {} has rotation terms)",
                wf.display()
            ),
        ));
    }
    Ok(GeoTransform {
        x0: c - a / 2.0,
        y0: f - e / 2.0,
        dx: a,
        dy: e,
    })
}

const GT_MODEL_TYPE: u16 = 1024;
const GT_RASTER_TYPE: u16 = 1025;
const RASTER_PIXEL_IS_POINT: u16 = 2;
const GEOGRAPHIC_TYPE: u16 = 2048;
const GEOG_GEODETIC_DATUM: u16 = 2050;
const GEOG_ANGULAR_UNITS: u16 = 2054;
const GEOG_ELLIPSOID: u16 = 2056;
const GEOG_SEMI_MAJOR: u16 = 2057;
const GEOG_SEMI_MINOR: u16 = 2058;
const GEOG_INV_FLATTENING: u16 = 2059;
const PROJECTED_CS_TYPE: u16 = 3072;
const PROJ_COORD_TRANS: u16 = 3075;
const PROJ_LINEAR_UNITS: u16 = 3076;
const PROJ_STD_PARALLEL1: u16 = 3078;
const PROJ_STD_PARALLEL2: u16 = 3079;
const PROJ_NAT_ORIGIN_LONG: u16 = 3080;
const PROJ_NAT_ORIGIN_LAT: u16 = 3081;
const PROJ_FALSE_EASTING: u16 = 3082;
const PROJ_FALSE_NORTHING: u16 = 3083;
const PROJ_FALSE_ORIGIN_LONG: u16 = 3084;
const PROJ_FALSE_ORIGIN_LAT: u16 = 3085;
const PROJ_FALSE_ORIGIN_EASTING: u16 = 3086;
const PROJ_FALSE_ORIGIN_NORTHING: u16 = 3087;
const PROJ_CENTER_LONG: u16 = 3088;
const PROJ_CENTER_LAT: u16 = 3089;
const PROJ_SCALE_AT_NAT_ORIGIN: u16 = 3092;
const USER_DEFINED: u16 = 32767;

#[derive(Debug, Clone, PartialEq)]
enum KeyValue {
    Short(u16),
    Double(f64),
    Ascii(String),
}

/// The GeoKey directory (GeoTIFF 1.1, OGC 19-008r4 §7.1) with values resolved.
#[derive(Debug, Clone, Default)]
struct GeoKeys {
    keys: Vec<(u16, KeyValue)>,
}

impl GeoKeys {
    fn parse(dir: &[u16], doubles: &[f64], ascii: &str) -> Result<GeoKeys, String> {
        if dir.len() < 4 {
            return Err("the GeoKey directory is shorter than its header".into());
        }
        let n = dir[3] as usize;
        let mut keys = Vec::with_capacity(n);
        for k in 0..n {
            let e = dir
                .get(4 + 4 * k..8 + 4 * k)
                .ok_or("the GeoKey directory ends early")?;
            let (id, location, count, offset) = (e[0], e[1], e[2] as usize, e[3] as usize);
            let value = match location {
                0 => KeyValue::Short(offset as u16),
                34736 => KeyValue::Double(
                    *doubles
                        .get(offset)
                        .ok_or(format!("GeoKey {id} points past the double parameters"))?,
                ),
                34737 => {
                    let s = ascii
                        .get(offset..offset + count)
                        .ok_or(format!("GeoKey {id} points past the ASCII parameters"))?;
                    KeyValue::Ascii(s.trim_end_matches('|').to_owned())
                }
                34735 => KeyValue::Short(
                    *dir.get(offset)
                        .ok_or(format!("GeoKey {id} points past the directory"))?,
                ),
                other => return Err(format!("GeoKey {id} is stored in unknown tag {other}")),
            };
            keys.push((id, value));
        }
        Ok(GeoKeys { keys })
    }

    fn get(&self, id: u16) -> Option<&KeyValue> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    fn get_short(&self, id: u16) -> Option<u16> {
        match self.get(id) {
            Some(KeyValue::Short(v)) => Some(*v),
            _ => None,
        }
    }

    fn get_double(&self, id: u16) -> Option<f64> {
        match self.get(id) {
            Some(KeyValue::Double(v)) => Some(*v),
            Some(KeyValue::Short(v)) => Some(f64::from(*v)),
            _ => None,
        }
    }

    /// The ellipsoid as PROJ parameters.
    fn ellipsoid(&self) -> Result<String, String> {
        let datum = self.get_short(GEOG_GEODETIC_DATUM);
        let gcs = self.get_short(GEOGRAPHIC_TYPE);
        Ok(match (self.get_short(GEOG_ELLIPSOID), datum, gcs) {
            (Some(7030), ..) | (_, Some(6326), _) | (_, _, Some(4326)) => "+ellps=WGS84".into(),
            (Some(7019), ..) | (_, Some(6490 | 6269), _) | (_, _, Some(4490 | 4269)) => {
                "+ellps=GRS80".into()
            }
            (Some(7024), ..) | (_, Some(6214), _) | (_, _, Some(4214)) => "+ellps=krass".into(),
            _ => match (
                self.get_double(GEOG_SEMI_MAJOR),
                self.get_double(GEOG_INV_FLATTENING),
                self.get_double(GEOG_SEMI_MINOR),
            ) {
                (Some(a), Some(rf), _) if rf > 0.0 => format!("+a={a} +rf={rf}"),
                (Some(a), _, Some(b)) => format!("+a={a} +b={b}"),
                (Some(a), ..) => format!("+a={a} +b={a}"),
                _ => return Err("a user-defined CRS without an ellipsoid".into()),
            },
        })
    }

    fn crs(&self) -> Result<Crs, String> {
        match self.get_short(GT_MODEL_TYPE) {
            Some(2) => self.geographic_crs(),
            Some(1) => self.projected_crs(),
            Some(other) => Err(format!(
                "model type {other} (only projected 1 and geographic 2)"
            )),
            None => Err("GeoKeys without a model type".into()),
        }
    }

    fn geographic_crs(&self) -> Result<Crs, String> {
        if let Some(units) = self.get_short(GEOG_ANGULAR_UNITS)
            && units != 9102
        {
            return Err(format!(
                "geographic coordinates in angular unit {units} (only degrees, 9102)"
            ));
        }
        let epsg = self
            .get_short(GEOGRAPHIC_TYPE)
            .filter(|&c| c != USER_DEFINED);
        let description = epsg.map_or_else(
            || "geographic (user-defined datum)".to_owned(),
            |c| format!("EPSG:{c}"),
        );
        Ok(Crs {
            geographic: true,
            epsg,
            proj4: None,
            description,
        })
    }

    /// A projected CRS by its EPSG code, or a user-defined one as a PROJ string.
    fn projected_crs(&self) -> Result<Crs, String> {
        let code = self
            .get_short(PROJECTED_CS_TYPE)
            .filter(|&c| c != USER_DEFINED);
        if let Some(code) = code {
            return Ok(Crs {
                geographic: false,
                epsg: Some(code),
                proj4: None,
                description: format!("EPSG:{code}"),
            });
        }
        if let Some(units) = self.get_short(PROJ_LINEAR_UNITS)
            && units != 9001
        {
            return Err(format!(
                "projected coordinates in linear unit {units} (only metres, 9001)"
            ));
        }
        let proj4 = self.user_defined_proj4()?;
        Ok(Crs {
            geographic: false,
            epsg: None,
            description: proj4.clone(),
            proj4: Some(proj4),
        })
    }

    /// The first of the keys `ids` that is present, or 0 (GeoTIFF's default for offsets and
    /// origins).
    fn first_double(&self, ids: &[u16]) -> f64 {
        ids.iter()
            .find_map(|&id| self.get_double(id))
            .unwrap_or(0.0)
    }

    /// The PROJ string of a user-defined projected CRS in metres.
    fn user_defined_proj4(&self) -> Result<String, String> {
        let fe = self.first_double(&[PROJ_FALSE_EASTING, PROJ_FALSE_ORIGIN_EASTING]);
        let fn_ = self.first_double(&[PROJ_FALSE_NORTHING, PROJ_FALSE_ORIGIN_NORTHING]);
        let ellps = self.ellipsoid()?;
        let body = self.projection_method()?;
        Ok(format!(
            "{body} +x_0={fe} +y_0={fn_} {ellps} +units=m +no_defs"
        ))
    }

    /// The projection method and its parameters as PROJ parameters.
    fn projection_method(&self) -> Result<String, String> {
        let d = |id: u16| self.get_double(id).unwrap_or(0.0);
        let lon0 = self.first_double(&[
            PROJ_NAT_ORIGIN_LONG,
            PROJ_FALSE_ORIGIN_LONG,
            PROJ_CENTER_LONG,
        ]);
        let lat0 =
            self.first_double(&[PROJ_NAT_ORIGIN_LAT, PROJ_FALSE_ORIGIN_LAT, PROJ_CENTER_LAT]);
        match self.get_short(PROJ_COORD_TRANS) {
            Some(11) => Ok(format!(
                "+proj=aea +lat_1={} +lat_2={} +lat_0={lat0} +lon_0={lon0}",
                d(PROJ_STD_PARALLEL1),
                d(PROJ_STD_PARALLEL2)
            )),
            Some(10) => Ok(format!("+proj=laea +lat_0={lat0} +lon_0={lon0}")),
            Some(1) => Ok(format!(
                "+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k={}",
                self.get_double(PROJ_SCALE_AT_NAT_ORIGIN).unwrap_or(1.0)
            )),
            Some(8) => Ok(format!(
                "+proj=lcc +lat_1={} +lat_2={} +lat_0={lat0} +lon_0={lon0}",
                d(PROJ_STD_PARALLEL1),
                d(PROJ_STD_PARALLEL2)
            )),
            Some(other) => Err(format!(
                "user-defined projection method {other} (read: Albers 11, Lambert azimuthal 10, transverse Mercator 1, Lambert conic 8); give the CRS with the `crs` parameter"
            )),
            None => Err("a user-defined projected CRS without a projection method".into()),
        }
    }
}

/// Pixels of one chunk, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub enum ChunkPixels<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
}

impl SampleType {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            SampleType::U8 => 1,
            SampleType::U16 => 2,
        }
    }
}

/// How the chunks of a file are compressed (TIFF 6.0, Adobe 1992, section 3 and 13; DEFLATE
/// as the Adobe PageMaker 6.0 TIFF Technical Notes, 1995, define it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    None,
    Lzw,
    Deflate,
    PackBits,
}

/// Decoded strips a chunk of a stripped file gathers, at least: files written with a few rows
/// per strip (GDAL's default is one 8 KB strip) are read in batches of strips, so the cost of
/// a chunk (a task, a read, a decoder reset, a window of the histogram) is spread over enough
/// pixels.
const STRIP_BATCH_BYTES: usize = 256 << 10;

/// Where the chunks of a file lie and how they are coded: the IFD's StripOffsets/TileOffsets
/// and byte counts, Compression, Predictor and the byte order.
struct Storage {
    offsets: Vec<u64>,
    byte_counts: Vec<u64>,
    codec: Codec,
    /// Horizontal differencing (Predictor = 2, TIFF 6.0 section 14).
    predictor: bool,
    big_endian: bool,
    /// Rows of one strip (the image height for tiled files: unused there).
    strip_rows: usize,
    /// Strips read as one chunk (1 for tiled files).
    strips_per_chunk: usize,
    file_len: u64,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Storage {{ {} chunks, {:?}, predictor {}, {} rows a strip, {} strips a chunk }}",
            self.offsets.len(),
            self.codec,
            self.predictor,
            self.strip_rows,
            self.strips_per_chunk
        )
    }
}

/// Reads what [`ChunkReader`] needs from the IFD and checks that every chunk lies in the file.
fn read_storage(
    path: &Path,
    dec: &mut TagReader,
    compression: &str,
    sample: SampleType,
    tiled: bool,
    height: usize,
) -> Result<Storage, GeoTiffError> {
    let codec = match compression {
        "LZW" => Codec::Lzw,
        "DEFLATE" => Codec::Deflate,
        "PackBits" => Codec::PackBits,
        _ => Codec::None,
    };
    let predictor = horizontal_predictor(path, dec)?;
    let (offsets_tag, counts_tag) = if tiled {
        (Tag::TileOffsets, Tag::TileByteCounts)
    } else {
        (Tag::StripOffsets, Tag::StripByteCounts)
    };
    let offsets = dec
        .get_tag_u64_vec(offsets_tag)
        .map_err(|e| tiff_err(path, e))?;
    let byte_counts = dec
        .get_tag_u64_vec(counts_tag)
        .map_err(|e| tiff_err(path, e))?;
    let file_len = std::fs::metadata(path)
        .map_err(|e| tiff_err(path, e))?
        .len();
    check_chunks_in_file(path, &offsets, &byte_counts, file_len)?;
    let (strip_rows, strips_per_chunk) = if tiled {
        (height, 1)
    } else {
        strip_batching(path, dec, sample, height)?
    };
    Ok(Storage {
        offsets,
        byte_counts,
        codec,
        predictor,
        big_endian: dec.byte_order() == tiff::tags::ByteOrder::BigEndian,
        strip_rows,
        strips_per_chunk,
        file_len,
    })
}

/// Whether the samples are stored as horizontal differences (TIFF predictor 2); an error for
/// any predictor other than none (1) and that.
fn horizontal_predictor(path: &Path, dec: &mut TagReader) -> Result<bool, GeoTiffError> {
    match dec
        .find_tag_unsigned::<u16>(Tag::Predictor)
        .map_err(|e| tiff_err(path, e))?
        .unwrap_or(1)
    {
        1 => Ok(false),
        2 => Ok(true),
        other => Err(unsupported(
            path,
            format!("predictor {other} (only none and horizontal differencing for integers)"),
        )),
    }
}

/// An error naming the first chunk that ends past the end of the file (`file_len` bytes).
fn check_chunks_in_file(
    path: &Path,
    offsets: &[u64],
    byte_counts: &[u64],
    file_len: u64,
) -> Result<(), GeoTiffError> {
    let past_end = (0..offsets.len().min(byte_counts.len())).find(|&i| {
        offsets[i]
            .checked_add(byte_counts[i])
            .is_none_or(|end| end > file_len)
    });
    match past_end {
        None => Ok(()),
        Some(i) => Err(tiff_err(
            path,
            format!(
                "chunk {i} ({} bytes at offset {}) ends past the end of the file ({file_len} bytes)",
                byte_counts[i], offsets[i]
            ),
        )),
    }
}

/// Rows per strip, and how many strips are decoded together so that a batch holds about
/// [`STRIP_BATCH_BYTES`].
fn strip_batching(
    path: &Path,
    dec: &mut TagReader,
    sample: SampleType,
    height: usize,
) -> Result<(usize, usize), GeoTiffError> {
    let rows = dec.chunk_dimensions().1 as usize;
    let rows = rows.clamp(1, height.max(1));
    let (width, _) = dec.dimensions().map_err(|e| tiff_err(path, e))?;
    let strip_bytes = (width as usize).saturating_mul(rows) * sample.bytes();
    Ok((rows, STRIP_BATCH_BYTES.div_ceil(strip_bytes.max(1)).max(1)))
}

/// The decoder state of one codec, kept from chunk to chunk so that decoding allocates nothing.
enum Inflater {
    None,
    Lzw(crate::io::lzw::LzwTable),
    Deflate(Box<flate2::Decompress>),
    PackBits,
}

impl Inflater {
    fn new(codec: Codec) -> Self {
        match codec {
            Codec::None => Inflater::None,
            Codec::Lzw => Inflater::Lzw(crate::io::lzw::LzwTable::default()),
            Codec::Deflate => Inflater::Deflate(Box::new(flate2::Decompress::new(true))),
            Codec::PackBits => Inflater::PackBits,
        }
    }

    /// Decodes one chunk's bytes into `out`, filling it; returns the bytes written when the
    /// data ends early. Bytes past `out` are ignored (some writers pad the last strip).
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        match self {
            Inflater::None => {
                let n = input.len().min(out.len());
                out[..n].copy_from_slice(&input[..n]);
                Ok(n)
            }
            Inflater::Lzw(table) => {
                crate::io::lzw::decode(input, out, table).map_err(|e| e.to_string())
            }
            Inflater::Deflate(d) => inflate(d, input, out),
            Inflater::PackBits => Ok(unpack_bits(input, out)),
        }
    }
}

/// Inflates one chunk's zlib stream (RFC 1950 around RFC 1951's DEFLATE) into `out`, the
/// whole chunk at once, with `flate2`'s zlib-rs (`miniz_oxide`, which the writer uses, was
/// slower on CLCD-like tiles: docs/performance.md); returns the bytes written. A stream that
/// ends early is not an error here: the caller compares the bytes written with those expected.
fn inflate(d: &mut flate2::Decompress, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    d.reset(true);
    d.decompress(input, out, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("DEFLATE: {e}"))?;
    Ok(usize::try_from(d.total_out()).unwrap_or(usize::MAX))
}

/// Decodes PackBits (Apple Technical Note TN1023, 1996; TIFF 6.0 section 9): a header byte n
/// copies n + 1 literal bytes (0 ≤ n ≤ 127) or repeats the next byte 1 − n times
/// (−127 ≤ n ≤ −1); −128 is skipped. Returns the bytes written.
fn unpack_bits(input: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < input.len() && o < out.len() {
        let n = input[i].cast_signed();
        i += 1;
        if n >= 0 {
            let len = (usize::from(n.cast_unsigned()) + 1)
                .min(input.len() - i)
                .min(out.len() - o);
            out[o..o + len].copy_from_slice(&input[i..i + len]);
            i += len;
            o += len;
        } else if n != -128 {
            let Some(&v) = input.get(i) else { break };
            i += 1;
            let len = (1 + usize::from(n.unsigned_abs())).min(out.len() - o);
            out[o..o + len].fill(v);
            o += len;
        }
    }
    o
}

/// Undoes horizontal differencing (TIFF 6.0, section 14) on rows of `row_len` samples.
fn undo_predictor<T: Copy>(data: &mut [T], row_len: usize, add: impl Fn(T, T) -> T) {
    for row in data.chunks_mut(row_len.max(1)) {
        for i in 1..row.len() {
            row[i] = add(row[i], row[i - 1]);
        }
    }
}

/// A decoder for one thread: reads a chunk's bytes with one read and decodes them straight
/// into a reused buffer (no allocation once the buffers have grown to a chunk).
pub struct ChunkReader {
    path: PathBuf,
    file: File,
    storage: Arc<Storage>,
    sample: SampleType,
    stride: usize,
    chunk_height: usize,
    height: usize,
    tiled: bool,
    inflater: Inflater,
    compressed: Vec<u8>,
    /// Decoded bytes (8-bit pixels, or 16-bit ones before byte-order conversion).
    bytes: Vec<u8>,
    wide: Vec<u16>,
}

impl ChunkReader {
    pub fn new(info: &GeoTiffInfo) -> Result<Self, GeoTiffError> {
        let file = File::open(&info.path).map_err(|source| GeoTiffError::FileUnreadable {
            path: info.path.clone(),
            source,
        })?;
        Ok(Self {
            path: info.path.clone(),
            file,
            storage: Arc::clone(&info.storage),
            sample: info.sample,
            stride: info.chunk_width,
            chunk_height: info.chunk_height,
            height: info.height,
            tiled: info.tiled,
            inflater: Inflater::new(info.storage.codec),
            compressed: Vec::new(),
            bytes: Vec::new(),
            wide: Vec::new(),
        })
    }

    /// Points the reader at another file, keeping its buffers and decoder state: a pass that
    /// reads a window of every year with one reader then opens a file per year and window but
    /// allocates nothing (a fresh reader would allocate and zero a chunk's buffers each time).
    pub fn reopen(&mut self, info: &GeoTiffInfo) -> Result<(), GeoTiffError> {
        self.file = File::open(&info.path).map_err(|source| GeoTiffError::FileUnreadable {
            path: info.path.clone(),
            source,
        })?;
        if info.storage.codec != self.storage.codec {
            self.inflater = Inflater::new(info.storage.codec);
        }
        self.path.clone_from(&info.path);
        self.storage = Arc::clone(&info.storage);
        self.sample = info.sample;
        self.stride = info.chunk_width;
        self.chunk_height = info.chunk_height;
        self.height = info.height;
        self.tiled = info.tiled;
        Ok(())
    }

    /// Pixels from one row of a chunk to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Decodes chunk `index` (row-major over the chunk grid). The pixels are the chunk's data
    /// rectangle ([`GeoTiffInfo::chunk_rect`]) row by row, each row [`Self::stride`] pixels
    /// apart (the full tile width: edge tiles keep their padding columns).
    pub fn read(&mut self, index: usize) -> Result<ChunkPixels<'_>, GeoTiffError> {
        let px = self.sample.bytes();
        let storage = Arc::clone(&self.storage);
        let (first, count, rows) = if self.tiled {
            (index, 1, self.chunk_height)
        } else {
            let first = index * storage.strips_per_chunk;
            let row0 = first * storage.strip_rows;
            let rows = self.chunk_height.min(self.height.saturating_sub(row0));
            (first, rows.div_ceil(storage.strip_rows), rows)
        };
        if count == 0 || first + count > storage.offsets.len() {
            return Err(tiff_err(&self.path, format!("no chunk {index}")));
        }
        self.bytes.resize(self.stride * rows * px, 0);
        self.read_compressed(first, count)?;
        let mut at = 0; // into `compressed`
        for k in 0..count {
            let strip = first + k;
            let n_in = usize::try_from(storage.byte_counts[strip]).unwrap_or(usize::MAX);
            let rows_here = if self.tiled {
                rows
            } else {
                storage.strip_rows.min(rows - k * storage.strip_rows)
            };
            let want = self.stride * rows_here * px;
            let out_at = k * storage.strip_rows * self.stride * px;
            let out = &mut self.bytes[out_at..out_at + want];
            let got = self
                .inflater
                .decode(&self.compressed[at..at + n_in], out)
                .map_err(|m| tiff_err(&self.path, format!("chunk {strip}: {m}")))?;
            if got < want {
                return Err(tiff_err(
                    &self.path,
                    format!("chunk {strip} decodes to {got} bytes, {want} expected"),
                ));
            }
            at += n_in;
        }
        Ok(self.finish())
    }

    /// Reads the compressed bytes of chunks `first .. first + count` into `compressed`, one
    /// after the other: with one read when they lie back to back in the file, as writers put them.
    fn read_compressed(&mut self, first: usize, count: usize) -> Result<(), GeoTiffError> {
        use std::io::{Read, Seek, SeekFrom};
        let s = &self.storage;
        let range = first..first + count;
        let total: u64 = s.byte_counts[range.clone()].iter().sum();
        let total = usize::try_from(total).map_err(|e| tiff_err(&self.path, e))?;
        self.compressed.resize(total, 0);
        let contiguous = range
            .clone()
            .skip(1)
            .all(|i| s.offsets[i] == s.offsets[i - 1] + s.byte_counts[i - 1]);
        let read = |offset: u64, buf: &mut [u8]| -> Result<(), GeoTiffError> {
            (&self.file)
                .seek(SeekFrom::Start(offset))
                .and_then(|_| (&self.file).read_exact(buf))
                .map_err(|e| tiff_err(&self.path, format!("reading chunk data: {e}")))
        };
        if contiguous {
            return read(s.offsets[first], &mut self.compressed);
        }
        let mut at = 0;
        for i in range {
            let n = usize::try_from(s.byte_counts[i]).map_err(|e| tiff_err(&self.path, e))?;
            read(s.offsets[i], &mut self.compressed[at..at + n])?;
            at += n;
        }
        Ok(())
    }

    /// Undoes the predictor and the byte order on the decoded bytes.
    fn finish(&mut self) -> ChunkPixels<'_> {
        let row = self.stride;
        match self.sample {
            SampleType::U8 => {
                if self.storage.predictor {
                    undo_predictor(&mut self.bytes, row, u8::wrapping_add);
                }
                ChunkPixels::U8(&self.bytes)
            }
            SampleType::U16 => {
                let big = self.storage.big_endian;
                self.wide.clear();
                self.wide.extend(self.bytes.chunks_exact(2).map(|b| {
                    let b = [b[0], b[1]];
                    if big {
                        u16::from_be_bytes(b)
                    } else {
                        u16::from_le_bytes(b)
                    }
                }));
                if self.storage.predictor {
                    undo_predictor(&mut self.wide, row, u16::wrapping_add);
                }
                ChunkPixels::U16(&self.wide)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_fills_the_chunk_ignores_padding_and_refuses_corrupt_data() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i / 300 % 7) as u8).collect();
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&data, 6);
        let mut d = flate2::Decompress::new(true);
        let mut out = vec![0u8; data.len()];
        assert_eq!(inflate(&mut d, &packed, &mut out), Ok(data.len()));
        assert_eq!(out, data);
        // A chunk shorter than the stream (a padded last strip): filled, the rest ignored; the
        // same decompressor is reused.
        let mut out = vec![0u8; 1_000];
        assert_eq!(inflate(&mut d, &packed, &mut out), Ok(1_000));
        assert_eq!(out, data[..1_000]);
        // Data cut short: what it holds, for the caller to compare with the chunk's size.
        let mut out = vec![0u8; data.len()];
        let got = inflate(&mut d, &packed[..packed.len() / 2], &mut out).unwrap();
        assert!(got < data.len());
        assert_eq!(out[..got], data[..got]);
        // A flipped byte in the checksum, and bytes that are no DEFLATE stream, are errors.
        let mut bad = packed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(inflate(&mut d, &bad, &mut out).is_err());
        assert!(inflate(&mut d, &[0x78, 0x9c, 0xff, 0xff, 0xff], &mut out).is_err());
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/landuse")
            .join(name)
    }

    /// Decodes a whole raster chunk by chunk into a row-major vector.
    fn read_all(info: &GeoTiffInfo) -> Vec<u32> {
        let mut out = vec![u32::MAX; info.width * info.height];
        let mut r = ChunkReader::new(info).unwrap();
        let stride = r.stride();
        for i in 0..info.chunk_count() {
            let (c0, r0, w, h) = info.chunk_rect(i);
            let px: Vec<u32> = match r.read(i).unwrap() {
                ChunkPixels::U8(v) => v.iter().map(|&x| u32::from(x)).collect(),
                ChunkPixels::U16(v) => v.iter().map(|&x| u32::from(x)).collect(),
            };
            assert!(px.len() >= stride * (h - 1) + w, "chunk {i}");
            for y in 0..h {
                for x in 0..w {
                    out[(r0 + y) * info.width + c0 + x] = px[y * stride + x];
                }
            }
        }
        out
    }

    #[test]
    fn a_reopened_reader_reads_another_file_like_a_fresh_one() {
        // Every layout, codec and sample type in turn through one reader, there and back.
        let names = [
            "proj_u8_tiled_deflate.tif",
            "proj_u16_strip_deflate_pred2.tif",
            "proj_u8_strip_lzw.tif",
            "proj_u16_tiled_lzw.tif",
            "proj_u8_tiled_packbits.tif",
            "proj_u16_strip_packbits.tif",
            "proj_u8_strip_none.tif",
            "proj_u16_tiled_none.tif",
        ];
        let infos: Vec<GeoTiffInfo> = names.iter().map(|n| open(&fixture(n)).unwrap()).collect();
        let as_u32 = |p: ChunkPixels<'_>| -> Vec<u32> {
            match p {
                ChunkPixels::U8(v) => v.iter().map(|&x| u32::from(x)).collect(),
                ChunkPixels::U16(v) => v.iter().map(|&x| u32::from(x)).collect(),
            }
        };
        let mut reader = ChunkReader::new(&infos[0]).unwrap();
        for info in infos.iter().chain(infos.iter().rev()) {
            reader.reopen(info).unwrap();
            let mut fresh = ChunkReader::new(info).unwrap();
            assert_eq!(reader.stride(), fresh.stride());
            for i in 0..info.chunk_count() {
                let reused = as_u32(reader.read(i).unwrap());
                assert_eq!(
                    reused,
                    as_u32(fresh.read(i).unwrap()),
                    "{} chunk {i}",
                    info.path.display()
                );
            }
        }
    }

    #[test]
    fn every_layout_and_compression_decodes_the_same_pixels() {
        // The pattern of make_fixtures.py: top half 1|2|4|8 in bands of 10 columns, bottom
        // half 5|1|0|7, a 3 × 2 block of 12 at rows 30..33, cols 35..37.
        let expect = |c: usize, r: usize| -> u32 {
            if (30..33).contains(&r) && (35..37).contains(&c) {
                12
            } else if r < 18 {
                [1, 2, 4, 8][c / 10]
            } else {
                [5, 1, 0, 7][c / 10]
            }
        };
        let files = [
            ("proj_u8_tiled_deflate.tif", SampleType::U8, true, "DEFLATE"),
            (
                "proj_u16_strip_deflate_pred2.tif",
                SampleType::U16,
                false,
                "DEFLATE",
            ),
            ("proj_u8_strip_lzw.tif", SampleType::U8, false, "LZW"),
            ("proj_u16_tiled_lzw.tif", SampleType::U16, true, "LZW"),
            (
                "proj_u8_tiled_packbits.tif",
                SampleType::U8,
                true,
                "PackBits",
            ),
            (
                "proj_u16_strip_packbits.tif",
                SampleType::U16,
                false,
                "PackBits",
            ),
            ("proj_u8_strip_none.tif", SampleType::U8, false, "none"),
            ("proj_u16_tiled_none.tif", SampleType::U16, true, "none"),
        ];
        for (name, sample, tiled, compression) in files {
            let info = open(&fixture(name)).unwrap();
            assert_eq!((info.width, info.height), (40, 36), "{name}");
            assert_eq!(
                (info.sample, info.tiled, info.compression),
                (sample, tiled, compression),
                "{name}"
            );
            // Tiles 16 × 16 (3 × 3 of them, partial at the edges); the 5 strips of 8 rows are
            // read as one chunk (they hold far less than STRIP_BATCH_BYTES).
            assert_eq!(info.chunk_count(), if tiled { 9 } else { 1 }, "{name}");
            assert_eq!(info.nodata, Some(0));
            // Origin written by make_fixtures.py (Albers x, y of 113.5° E 34.5° N rounded to 30 m).
            assert_eq!(
                info.transform,
                GeoTransform {
                    x0: 766_020.0,
                    y0: 3_711_150.0,
                    dx: 30.0,
                    dy: -30.0
                }
            );
            let crs = info.crs.clone().unwrap();
            assert!(!crs.geographic);
            assert_eq!(
                crs.proj4.as_deref(),
                Some(
                    "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
                )
            );
            let px = read_all(&info);
            for r in 0..36 {
                for c in 0..40 {
                    assert_eq!(px[r * 40 + c], expect(c, r), "{name} at col {c}, row {r}");
                }
            }
        }
    }

    #[test]
    fn strips_read_in_batches_decode_like_the_image_written() {
        use tiff::encoder::colortype::{Gray8, Gray16};
        use tiff::encoder::{Compression, DeflateLevel, TiffEncoder};
        use tiff::tags::Predictor;
        // 4096 × 300 with 7 rows a strip: 43 strips, the last of 6 rows; 8-bit strips of 28 KB
        // are read 10 at a time (5 chunks, the last of 20 rows), 16-bit ones 5 at a time.
        let (w, h) = (4096usize, 300usize);
        let value = |c: usize, r: usize| ((c / 50 + r / 9) % 7 + (c * r) % 3) as u16;
        let dir = tempfile::tempdir().unwrap();
        let kinds = [
            (Compression::Lzw, Predictor::None),
            (Compression::Deflate(DeflateLevel::Fast), Predictor::None),
            (
                Compression::Deflate(DeflateLevel::Fast),
                Predictor::Horizontal,
            ),
            (Compression::Packbits, Predictor::None),
            (Compression::Uncompressed, Predictor::None),
        ];
        for (k, (compression, predictor)) in kinds.into_iter().enumerate() {
            for wide in [false, true] {
                let path = dir.path().join(format!("{k}_{wide}.tif"));
                let mut file = File::create(&path).unwrap();
                let mut enc = TiffEncoder::new(&mut file)
                    .unwrap()
                    .with_compression(compression)
                    .with_predictor(predictor);
                let scale = [30.0, 30.0, 0.0];
                let tie = [0.0, 0.0, 0.0, 500_000.0, 3_800_000.0, 0.0];
                macro_rules! write {
                    ($color:ty, $data:expr) => {{
                        let mut image = enc.new_image::<$color>(w as u32, h as u32).unwrap();
                        image.rows_per_strip(7).unwrap();
                        let e = image.encoder();
                        e.write_tag(Tag::ModelPixelScaleTag, &scale[..]).unwrap();
                        e.write_tag(Tag::ModelTiepointTag, &tie[..]).unwrap();
                        image.write_data(&$data).unwrap();
                    }};
                }
                let grid = (0..h).flat_map(|r| (0..w).map(move |c| value(c, r)));
                if wide {
                    write!(Gray16, grid.map(|v| v * 1000).collect::<Vec<u16>>());
                } else {
                    write!(Gray8, grid.map(|v| v as u8).collect::<Vec<u8>>());
                }
                let info = open(&path).unwrap();
                assert_eq!(info.chunk_count(), if wide { 9 } else { 5 }, "{k} {wide}");
                let px = read_all(&info);
                for r in 0..h {
                    for c in 0..w {
                        let want = u32::from(value(c, r)) * if wide { 1000 } else { 1 };
                        assert_eq!(
                            px[r * w + c],
                            want,
                            "kind {k}, 16-bit {wide}, col {c}, row {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn palette_geotiff_reads_as_codes() {
        // make_palette.py: the pattern of proj_u8_strip_lzw.tif written by GDAL with
        // Photometric = Palette (3) and CLCD's colour table, as ArcGIS and QGIS export maps.
        let palette = fixture("proj_u8_strip_lzw_palette.tif");
        let mut dec = decoder(&palette).unwrap();
        assert_eq!(
            dec.find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
                .unwrap(),
            Some(3)
        );
        assert!(dec.find_tag(Tag::ColorMap).unwrap().is_some());
        let info = open(&palette).unwrap();
        let grey = open(&fixture("proj_u8_strip_lzw.tif")).unwrap();
        assert_eq!((info.sample, info.nodata), (SampleType::U8, Some(0)));
        assert_eq!(info.transform, grey.transform);
        let codes = read_all(&info);
        assert_eq!(codes, read_all(&grey));
        // Codes, not colours: the unmapped 12 block and the CLCD values themselves.
        assert_eq!(
            (codes[31 * 40 + 35], codes[0], codes[35 * 40 + 39]),
            (12, 1, 7)
        );
    }

    #[test]
    fn reads_geographic_keys_and_nodata() {
        let info = open(&fixture("geo_u16_tiled_deflate.tif")).unwrap();
        assert_eq!(info.nodata, Some(65_535));
        assert_eq!(
            info.transform,
            GeoTransform {
                x0: 113.0,
                y0: 35.0,
                dx: 0.01,
                dy: -0.01
            }
        );
        let crs = info.crs.unwrap();
        assert!(crs.geographic);
        assert_eq!(crs.epsg, Some(4326));
        // MODIS fixture: 750 × 560, 256 × 256 tiles, NoData 255, origin 89° E 54° N, 0.05°.
        let m = open(&fixture("mcd12c1_2019_igbp_yrb9.tif")).unwrap();
        assert_eq!(
            (m.width, m.height, m.chunk_width, m.nodata),
            (750, 560, 256, Some(255))
        );
        assert_eq!(
            m.transform,
            GeoTransform {
                x0: 89.0,
                y0: 54.0,
                dx: 0.05,
                dy: -0.05
            }
        );
    }

    /// Writes a 4 × 2 uint8 GeoTIFF with the tiff crate's encoder and hand-made geo tags.
    fn write_geotiff(path: &Path, transformation: &[f64], geokeys: &[u16]) {
        let mut file = File::create(path).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(&mut file).unwrap();
        let mut image = enc
            .new_image::<tiff::encoder::colortype::Gray8>(4, 2)
            .unwrap();
        image
            .encoder()
            .write_tag(Tag::ModelTransformationTag, transformation)
            .unwrap();
        image
            .encoder()
            .write_tag(Tag::GeoKeyDirectoryTag, geokeys)
            .unwrap();
        image.encoder().write_tag(Tag::GdalNodata, "255").unwrap();
        image.write_data(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    }

    #[test]
    fn reads_model_transformation_epsg_codes_and_pixel_is_point() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("utm.tif");
        // ModelTransformation (row-major 4 × 4): x = 30·col + 500000, y = −30·row + 3800000.
        let m = [
            30.0,
            0.0,
            0.0,
            500_000.0,
            0.0,
            -30.0,
            0.0,
            3_800_000.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ];
        // GeoKeys: version 1.1.0, 3 keys: model type 1 (projected), raster type 2 (PixelIsPoint),
        // ProjectedCSType 32650 (WGS 84 / UTM 50N).
        let keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 2, 3072, 0, 1, 32650];
        write_geotiff(&path, &m, &keys);
        let info = open(&path).unwrap();
        // PixelIsPoint: the matrix maps pixel centres, so the corner is half a pixel up-left.
        assert_eq!(
            info.transform,
            GeoTransform {
                x0: 499_985.0,
                y0: 3_800_015.0,
                dx: 30.0,
                dy: -30.0
            }
        );
        let crs = info.crs.unwrap();
        assert_eq!(
            (crs.geographic, crs.epsg, crs.proj4),
            (false, Some(32650), None)
        );
        assert_eq!(info.nodata, Some(255));
        // A rotated transformation is refused with a clear message.
        let rotated = [
            30.0,
            5.0,
            0.0,
            500_000.0,
            5.0,
            -30.0,
            0.0,
            3_800_000.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ];
        write_geotiff(&path, &rotated, &keys);
        let err = open(&path).unwrap_err().to_string();
        assert!(
            err.contains("rotated or sheared raster") && err.contains("not supported"),
            "{err}"
        );
        // A user-defined projection method the reader does not build (6 = oblique Mercator).
        let keys = [
            1, 1, 0, 4, 1024, 0, 1, 1, 2048, 0, 1, 4326, 3072, 0, 1, 32767, 3075, 0, 1, 6,
        ];
        write_geotiff(&path, &m, &keys);
        let err = open(&path).unwrap_err().to_string();
        assert!(
            err.contains("user-defined projection method 6") && err.contains("`crs` parameter"),
            "{err}"
        );
    }

    #[test]
    fn declared_sizes_beyond_the_file_are_errors_not_allocations() {
        // Files of a few hundred bytes from the malformed-input corpus: a StripOffsets tag
        // declaring 2^30 - 1 entries (8 GiB of values) and a 2^30 × 2^30-pixel tile. Without
        // limits set by the file's size, the decoder tried to allocate both.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/geotiff");
        for name in [
            "strip_offsets_count_huge.tif",
            "tiles_huge.tif",
            "geokeys_count_huge.tif",
            // Found by the fuzzer: ImageLength with 524,289 values, which the decoder reserved
            // 16 MiB for while reading the IFD, before any limit of ours applied.
            "fuzz_image_length_count_huge.tif",
        ] {
            let path = corpus.join(name);
            let opened = open(&path).and_then(|info| {
                let mut reader = ChunkReader::new(&info)?;
                reader.read(0).map(drop)
            });
            let message = opened.unwrap_err().to_string();
            assert!(message.contains(name), "{message}");
        }
        assert_eq!(limits(1000).ifd_value_size, 1000);
        assert_eq!(limits(1000).decoding_buffer_size, (4 << 20) + 1_024_000);
    }

    #[test]
    fn unsupported_files_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        // A float raster written with the tiff crate's encoder.
        let path = dir.path().join("float.tif");
        let mut file = File::create(&path).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(&mut file).unwrap();
        enc.write_image::<tiff::encoder::colortype::Gray32Float>(2, 2, &[0.0, 1.0, 2.0, 3.0])
            .unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("floating-point pixels"), "{err}");
        // A valid 8-bit TIFF without georeferencing.
        let path = dir.path().join("plain.tif");
        let mut file = File::create(&path).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(&mut file).unwrap();
        enc.write_image::<tiff::encoder::colortype::Gray8>(2, 2, &[0, 1, 2, 3])
            .unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("no georeferencing"), "{err}");
        // With a world file beside it: georeferenced, CRS unknown (the stage's `crs:` gives it).
        // Pixel centre (766035, 3711135) with 30 m pixels puts the corner at (766020, 3711150).
        std::fs::write(
            dir.path().join("plain.tfw"),
            "30\n0\n0\n-30\n766035\n3711135\n",
        )
        .unwrap();
        let info = open(&path).unwrap();
        assert_eq!(
            info.transform,
            GeoTransform {
                x0: 766_020.0,
                y0: 3_711_150.0,
                dx: 30.0,
                dy: -30.0
            }
        );
        assert!(info.crs.is_none());
        std::fs::write(dir.path().join("plain.tfw"), "30\n0\n0\n-30\n766035\n").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(
            err.contains("plain.tfw") && err.contains("5 numbers"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("plain.tfw"),
            "30\n0.5\n0\n-30\n766035\n3711135\n",
        )
        .unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("rotated"), "{err}");
        let err = open(&dir.path().join("missing.tif"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot open"), "{err}");
    }
}
