//! The coordinate reference system of a land-use raster as a zonal count needs it: geographic
//! (pixel area per row) or projected (constant pixel area, equal-area or not), from the file's
//! GeoKeys or a study's override, and the reprojection of lon/lat unit polygons onto it.
//!
//! Projections are proj4rs's, which follows PROJ (Evenden, *Cartographic Projection Procedures
//! for the UNIX Environment*, USGS Open-File Report 90-284, 1990). No datum shift is applied: a
//! geographic raster on another datum is read as WGS84 lon/lat and flagged.

use geo::{Coord, LineString, MultiPolygon, Polygon};

use crate::io::IoError;
use crate::io::geotiff::GeoTiffInfo;

/// The raster CRS as the stage uses it.
pub struct RasterCrs {
    pub geographic: bool,
    /// The projection to reproject lon/lat units into (None for geographic rasters).
    pub proj: Option<proj4rs::Proj>,
    pub description: String,
    /// Metres per CRS unit (projected).
    pub to_meter: f64,
    pub equal_area: bool,
    /// A geographic CRS on another datum than WGS84 or CGCS2000, read as WGS84 lon/lat.
    pub datum_ignored: bool,
}

///
/// `crs` is the study's override (`EPSG:<code>` or a PROJ string); without it the GeoKeys of
/// `info` say. `year` names the raster in messages.
pub fn raster_crs(crs: Option<&str>, info: &GeoTiffInfo, year: i64) -> Result<RasterCrs, IoError> {
    let file = info.path.display();
    let hint = "give the rasters' CRS with `crs: EPSG:<code>` or `crs: <PROJ string>`";
    let (proj, description) = if let Some(text) = crs {
        let p = proj4rs::Proj::from_user_string(text)
            .map_err(|e| IoError::data(format!("`crs: {text}`: {e}")))?;
        (p, text.to_owned())
    } else {
        let crs = info.crs.as_ref().ok_or_else(|| {
            IoError::data(format!(
                "raster {file} (year {year}) has no GeoKeys, so its CRS is unknown"
            ))
            .with_hint(hint)
        })?;
        if crs.geographic {
            return Ok(RasterCrs {
                geographic: true,
                proj: None,
                description: crs.description.clone(),
                to_meter: 1.0,
                equal_area: true,
                datum_ignored: crs.epsg.is_some_and(|c| c != 4326 && c != 4490),
            });
        }
        let p = match (&crs.proj4, crs.epsg) {
            (Some(s), _) => proj4rs::Proj::from_proj_string(s),
            (None, Some(code)) => proj4rs::Proj::from_epsg_code(code),
            (None, None) => {
                return Err(IoError::data(format!(
                    "raster {file}: projected CRS without code or parameters"
                ))
                .with_hint(hint));
            }
        }
        .map_err(|e| {
            IoError::data(format!(
                "raster {file} (year {year}): cannot build its CRS {} for reprojection: {e}",
                crs.description
            ))
            .with_hint(hint)
        })?;
        (p, crs.description.clone())
    };
    if proj.is_latlong() {
        return Ok(RasterCrs {
            geographic: true,
            proj: None,
            description,
            to_meter: 1.0,
            equal_area: true,
            datum_ignored: false,
        });
    }
    let equal_area = matches!(
        proj.projname(),
        "aea" | "laea" | "cea" | "moll" | "eqearth" | "sinu"
    );
    let to_meter = proj.to_meter();
    Ok(RasterCrs {
        geographic: false,
        proj: Some(proj),
        description,
        to_meter,
        equal_area,
        datum_ignored: false,
    })
}

/// Reprojects lon/lat (degrees) polygons into the raster CRS; `ids` name the units in
/// messages and `crs` describes the target.
pub fn reproject(
    geoms: &[MultiPolygon<f64>],
    dst: &proj4rs::Proj,
    ids: &[String],
    crs: &str,
) -> Result<Vec<MultiPolygon<f64>>, IoError> {
    let src = proj4rs::Proj::from_proj_string("+proj=longlat +ellps=WGS84 +no_defs")
        .map_err(|e| IoError::internal(format!("WGS84: {e}")))?;
    let ring = |ls: &LineString<f64>, id: &str| -> Result<LineString<f64>, IoError> {
        let mut pts: Vec<(f64, f64, f64)> =
            ls.0.iter()
                .map(|c| (c.x.to_radians(), c.y.to_radians(), 0.0))
                .collect();
        proj4rs::transform::transform(&src, dst, pts.as_mut_slice()).map_err(|e| {
            IoError::data(format!(
                "unit `{id}`: cannot reproject its polygon to the raster CRS {crs}: {e}"
            ))
            .with_hint("check that the unit geometries are lon/lat degrees (EPSG:4326)")
        })?;
        Ok(LineString(
            pts.into_iter().map(|(x, y, _)| Coord { x, y }).collect(),
        ))
    };
    geoms
        .iter()
        .zip(ids)
        .map(|(mp, id)| {
            mp.0.iter()
                .map(|p| {
                    let ext = ring(p.exterior(), id)?;
                    let holes = p
                        .interiors()
                        .iter()
                        .map(|h| ring(h, id))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Polygon::new(ext, holes))
                })
                .collect::<Result<Vec<_>, IoError>>()
                .map(MultiPolygon)
        })
        .collect()
}
