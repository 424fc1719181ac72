//! The region a land-use study reads: each year's GeoTIFFs opened, the years grouped by CRS and
//! pixel lattice, and each group's grid (the union of its files' extents) with every year's
//! files placed on it as one mosaic, so one pass reads all years of a group window by window.
//! Knows rasters and grids, not land classes.

use crate::io::IoError;
use crate::io::geotiff::{self, GeoTiffInfo, GeoTransform, SampleType};
use crate::io::mosaic::{self, Mosaic, Placed};

/// The largest tile or strip read, in MiB (a whole-image strip of a province raster is refused).
const MAX_CHUNK_MB: usize = 64;

/// The files of one year, opened.
pub struct YearFiles {
    pub year: i64,
    /// Source names (for memo keys), in file order.
    pub sources: Vec<String>,
    pub infos: Vec<GeoTiffInfo>,
}

/// Years whose files share CRS and pixel lattice, read in one pass over the union of their
/// extents.
pub struct Group {
    /// Indices into the years, ascending.
    pub years: Vec<usize>,
    /// One mosaic per year of `years`, on the group's grid.
    pub mosaics: Vec<Mosaic>,
    /// The group's grid: the union of every file's extent.
    pub transform: GeoTransform,
    pub width: usize,
    pub height: usize,
}

/// Opens one raster of `year`, refusing chunks too large to read a few per thread.
pub fn open_raster(year: i64, path: &std::path::Path) -> Result<GeoTiffInfo, IoError> {
    let info = geotiff::open(path).map_err(|e| {
        IoError::data(format!("year {year}: {e}"))
            .with_hint("convert with `gdal_translate -ot Byte|UInt16 -co TILED=YES -co COMPRESS=DEFLATE in.tif out.tif`")
    })?;
    // Memory is a few chunks per thread: refuse chunks that would not fit that promise.
    let bytes = if info.sample == SampleType::U16 { 2 } else { 1 };
    let chunk_mb = (info.chunk_width * info.chunk_height * bytes) >> 20;
    if chunk_mb > MAX_CHUNK_MB {
        return Err(IoError::data(format!(
            "year {year}: {} is stored in chunks of {chunk_mb} MB (strips of {} rows), too large to read in parallel",
            info.path.display(),
            info.chunk_height
        ))
        .with_hint("re-tile it: `gdal_translate -co TILED=YES -co COMPRESS=DEFLATE in.tif out.tif`"));
    }
    Ok(info)
}

/// Whether `b` is on `a`'s CRS and lattice (any CRS when the study gives one): its offset in
/// `a`'s pixels, or why not.
fn on_lattice(crs_given: bool, a: &GeoTiffInfo, b: &GeoTiffInfo) -> Result<(i64, i64), String> {
    if !crs_given && a.crs != b.crs {
        let show = |i: &GeoTiffInfo| {
            i.crs
                .as_ref()
                .map_or_else(|| "no CRS".to_owned(), |c| c.description.clone())
        };
        return Err(format!("their CRSs differ: {} and {}", show(a), show(b)));
    }
    mosaic::lattice_offset(a, b)
}

/// Groups the years by CRS and lattice and places each year's files on its group's grid. The
/// files of one year must share CRS and lattice; `crs_given` (a CRS set by the study) lets
/// files whose GeoKeys differ share one.
pub fn group_years(crs_given: bool, years: &[YearFiles]) -> Result<Vec<Group>, IoError> {
    // Offsets of every file from its group's reference file (the first file of its first year).
    let mut members: Vec<Member> = Vec::new();
    for (yi, y) in years.iter().enumerate() {
        let first = &y.infos[0];
        let mut offsets = Vec::with_capacity(y.infos.len());
        for info in &y.infos {
            let off = on_lattice(crs_given, first, info).map_err(|why| {
                IoError::data(format!(
                    "year {}: {} and {} cannot be read as one mosaic: {why}",
                    y.year,
                    first.path.display(),
                    info.path.display()
                ))
                .with_hint("the files of one year must share CRS and pixel grid; warp them onto one grid (`gdalwarp -t_srs <crs> -tr <size> <size> -tap`)")
            })?;
            offsets.push(off);
        }
        let joined = members.iter_mut().find_map(|m| {
            let r = &years[m.reference].infos[0];
            on_lattice(crs_given, r, first).ok().map(|(c, row)| {
                m.years.push(yi);
                m.offsets
                    .push(offsets.iter().map(|&(a, b)| (a + c, b + row)).collect());
            })
        });
        if joined.is_none() {
            members.push(Member {
                reference: yi,
                years: vec![yi],
                offsets: vec![offsets],
            });
        }
    }
    members
        .into_iter()
        .map(|m| place(&years[m.reference].infos[0], years, m.years, &m.offsets))
        .collect()
}

/// The years of one group while grouping: each file's offset from the reference year's first
/// file, in its pixels.
struct Member {
    reference: usize,
    years: Vec<usize>,
    offsets: Vec<Vec<(i64, i64)>>,
}

/// The group's grid (the union of its files' extents) and each year's mosaic on it.
fn place(
    reference: &GeoTiffInfo,
    years: &[YearFiles],
    group: Vec<usize>,
    offsets: &[Vec<(i64, i64)>],
) -> Result<Group, IoError> {
    let dim = |n: usize| i64::try_from(n).map_err(|_| IoError::internal("a raster wider than i64"));
    let mut extent = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    for (&yi, offs) in group.iter().zip(offsets) {
        for (info, &(c, r)) in years[yi].infos.iter().zip(offs) {
            let (w, h) = (dim(info.width)?, dim(info.height)?);
            extent = (
                extent.0.min(c),
                extent.1.min(r),
                extent.2.max(c + w),
                extent.3.max(r + h),
            );
        }
    }
    let size = |n: i64| {
        usize::try_from(n).map_err(|_| IoError::internal("a mosaic grid of negative size"))
    };
    let (width, height) = (size(extent.2 - extent.0)?, size(extent.3 - extent.1)?);
    if width.saturating_mul(height) > MAX_MOSAIC_PIXELS {
        let files: Vec<String> = group
            .iter()
            .flat_map(|&yi| years[yi].infos.iter().map(|i| i.path.display().to_string()))
            .collect();
        return Err(IoError::data(format!(
            "the rasters {} span {width} × {height} pixels together: they lie far apart on one grid",
            files.join(", ")
        ))
        .with_hint("check that each year's files cover the study area (a file in the wrong place is far from the others)"));
    }
    let t = reference.transform;
    #[allow(clippy::cast_precision_loss)]
    let transform = GeoTransform {
        x0: t.x0 + extent.0 as f64 * t.dx,
        y0: t.y0 + extent.1 as f64 * t.dy,
        dx: t.dx,
        dy: t.dy,
    };
    let mut mosaics = Vec::with_capacity(group.len());
    for (&yi, offs) in group.iter().zip(offsets) {
        let files = years[yi]
            .infos
            .iter()
            .zip(offs)
            .map(|(info, &(c, r))| {
                Ok(Placed {
                    info: info.clone(),
                    col: size(c - extent.0)?,
                    row: size(r - extent.1)?,
                })
            })
            .collect::<Result<Vec<_>, IoError>>()?;
        let m = Mosaic::new(files, width, height).map_err(|e| {
            IoError::data(format!("year {}: {e}", years[yi].year))
                .with_hint("the files of one year must use one NoData value (`gdal_edit.py -a_nodata <value> file.tif`)")
        })?;
        mosaics.push(m);
    }
    Ok(Group {
        years: group,
        mosaics,
        transform,
        width,
        height,
    })
}

/// The largest grid the files of a group may span together (2³⁴ pixels: a 30 m grid of all
/// China is 2·10¹⁰); beyond it one file is in the wrong place.
const MAX_MOSAIC_PIXELS: usize = 1 << 34;
