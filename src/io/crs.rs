//! The coordinate reference system a vector file declares (a GeoJSON `crs` member, a
//! shapefile's `.prj` in ESRI WKT), the check that every vertex lies where that CRS can put
//! one, and the conversion of polygons to the lon/lat degrees (EPSG:4326) that unit tables
//! carry. Knows formats and projections, not carbon.
//!
//! ESRI WKT is the WKT 1 dialect of OGC 01-009 (*OpenGIS Coordinate Transformation Services
//! Implementation Specification*, 2001, §7) as Esri writes it: `PROJCS[name, GEOGCS[...],
//! PROJECTION[name], PARAMETER[name, value]..., UNIT[name, metres]]`. The projections that
//! boundary files are distributed in are translated into PROJ parameters (Evenden, *Cartographic
//! Projection Procedures for the UNIX Environment*, USGS OFR 90-284, 1990) for proj4rs.
//! No datum shift is applied: CGCS2000 and WGS84 differ by centimetres, and Krasovsky-based
//! datums (Beijing 1954, Xian 1980) carry no shift parameters in ESRI WKT, so they are taken on
//! their own ellipsoid (an offset of the order of 100 m, which leaves areas unchanged to
//! within about 1e-5).

use geo::{Coord, LineString, MultiPolygon, Polygon};

/// Projected coordinates larger than this (in the CRS's units) are not on Earth. The largest
/// legitimate ones are Gauss–Krüger eastings with the zone number in front (about 4e7 m).
const PROJECTED_LIMIT: f64 = 1.0e9;

/// Nesting deeper than this is not a CRS (a real one nests 4 deep).
const WKT_MAX_DEPTH: usize = 16;

/// Where a file's coordinates live.
pub enum SourceCrs {
    /// Longitude/latitude in degrees (EPSG:4326, CRS84, CGCS2000 geographic, ...).
    LonLat,
    /// A projection; vertices are converted to lon/lat degrees.
    Projected {
        proj: Box<proj4rs::Proj>,
        /// How the file named it, for messages.
        description: String,
    },
}

impl SourceCrs {
    /// A projected CRS from a PROJ string (as built from a `.prj` or an EPSG code).
    fn projected(proj4: &str, description: String) -> Result<Self, String> {
        let proj = proj4rs::Proj::from_proj_string(proj4)
            .map_err(|e| format!("cannot use the CRS {description} ({proj4}): {e}"))?;
        Ok(if proj.is_latlong() {
            Self::LonLat
        } else {
            Self::Projected {
                proj: Box::new(proj),
                description,
            }
        })
    }

    /// The CRS a GeoJSON `crs` member names (the 2008 GeoJSON specification's named CRS, still
    /// written by GDAL and QGIS): `{"type": "name", "properties": {"name": N}}` with N
    /// `urn:ogc:def:crs:EPSG::3857`, `urn:ogc:def:crs:EPSG:6.6:3857`, `EPSG:3857` or
    /// `urn:ogc:def:crs:OGC:1.3:CRS84`. RFC 7946 dropped the member; without it, lon/lat.
    pub fn from_geojson_member(member: &serde_json::Value) -> Result<Self, String> {
        let name = match (member.get("type"), member.pointer("/properties/name")) {
            (Some(serde_json::Value::String(t)), Some(serde_json::Value::String(name)))
                if t == "name" =>
            {
                name.trim()
            }
            _ => {
                return Err(format!(
                    "the `crs` member {member} is not a named CRS ({{\"type\": \"name\", \"properties\": {{\"name\": \"EPSG:<code>\"}}}})"
                ));
            }
        };
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("CRS84") || upper.ends_with("CRS:84") {
            return Ok(Self::LonLat);
        }
        let code = upper
            .strip_prefix("EPSG:")
            .or_else(|| {
                upper
                    .strip_prefix("URN:OGC:DEF:CRS:EPSG:")
                    .and_then(|rest| rest.rsplit(':').next())
            })
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("the `crs` member names `{name}`, which is not an EPSG code"))?;
        let def = proj4rs::Proj::from_epsg_code(code).map_err(|e| {
            format!("the `crs` member names EPSG:{code}, which proj4rs cannot build: {e}")
        })?;
        Ok(if def.is_latlong() {
            Self::LonLat
        } else {
            Self::Projected {
                proj: Box::new(def),
                description: format!("EPSG:{code}"),
            }
        })
    }

    /// The CRS a shapefile's `.prj` (ESRI WKT) describes.
    pub fn from_prj(text: &str) -> Result<Self, String> {
        let root = parse_wkt(text)?;
        match root.keyword.as_str() {
            "GEOGCS" => Ok(Self::LonLat),
            "PROJCS" => {
                let proj4 = projcs_to_proj4(&root)?;
                Self::projected(&proj4, format!("`{}`", root.name().unwrap_or("PROJCS")))
            }
            other => Err(format!(
                "the .prj describes a {other}, not a geographic (GEOGCS) or projected (PROJCS) CRS"
            )),
        }
    }

    /// Checks every vertex and returns the polygons in lon/lat degrees. The error names the
    /// first vertex (as written in the file) that is not a finite number, lies outside ±180/±90
    /// (lon/lat), is too large to be on Earth (projected), or does not project back to lon/lat.
    pub fn to_lon_lat(&self, geometry: MultiPolygon<f64>) -> Result<MultiPolygon<f64>, String> {
        let polygons = geometry
            .0
            .into_iter()
            .map(|p| {
                let (exterior, interiors) = p.into_inner();
                Ok(Polygon::new(
                    self.ring_to_lon_lat(exterior)?,
                    interiors
                        .into_iter()
                        .map(|r| self.ring_to_lon_lat(r))
                        .collect::<Result<_, String>>()?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(MultiPolygon(polygons))
    }

    fn ring_to_lon_lat(&self, ring: LineString<f64>) -> Result<LineString<f64>, String> {
        let geographic_hint = "longitude must lie within ±180 and latitude within ±90";
        match self {
            Self::LonLat => {
                if let Some(c) = ring.0.iter().find(|c| !lon_lat_valid(c)) {
                    return Err(format!(
                        "the vertex {} is not a longitude/latitude ({geographic_hint}); if the file is projected, declare its CRS (a `.prj` next to a shapefile, a `crs` member in GeoJSON)",
                        vertex(c)
                    ));
                }
                Ok(ring)
            }
            Self::Projected { proj, description } => {
                if let Some(c) = ring.0.iter().find(|c| !projected_valid(c)) {
                    return Err(format!(
                        "the vertex {} is not a coordinate of {description} (not finite, or beyond {PROJECTED_LIMIT:e})",
                        vertex(c)
                    ));
                }
                let wgs84 = proj4rs::Proj::from_proj_string("+proj=longlat +ellps=WGS84 +no_defs")
                    .expect("the WGS84 PROJ string is valid");
                let mut points: Vec<(f64, f64, f64)> =
                    ring.0.iter().map(|c| (c.x, c.y, 0.0)).collect();
                let failed = |c: &Coord<f64>, why: &str| {
                    format!(
                        "the vertex {} does not convert from {description} to longitude/latitude{why}",
                        vertex(c)
                    )
                };
                proj4rs::transform::transform(proj, &wgs84, points.as_mut_slice())
                    .map_err(|e| failed(&ring.0[0], &format!(": {e}")))?;
                let out: Vec<Coord<f64>> = points
                    .iter()
                    .map(|&(x, y, _)| Coord {
                        x: x.to_degrees(),
                        y: y.to_degrees(),
                    })
                    .collect();
                if let Some(i) = out.iter().position(|c| !lon_lat_valid(c)) {
                    return Err(failed(
                        &ring.0[i],
                        " (it lies outside the projection's area)",
                    ));
                }
                Ok(LineString(out))
            }
        }
    }
}

/// A vertex as `[x, y]`, huge or tiny numbers in exponent form (`1e308`, not 309 digits).
fn vertex(c: &Coord<f64>) -> String {
    let number = |v: f64| {
        if v.is_finite() && v != 0.0 && !(1e-6..1e9).contains(&v.abs()) {
            format!("{v:e}")
        } else {
            format!("{v}")
        }
    };
    format!("[{}, {}]", number(c.x), number(c.y))
}

fn lon_lat_valid(c: &Coord<f64>) -> bool {
    c.x.is_finite() && c.y.is_finite() && c.x.abs() <= 180.0 && c.y.abs() <= 90.0
}

fn projected_valid(c: &Coord<f64>) -> bool {
    c.x.is_finite()
        && c.y.is_finite()
        && c.x.abs() <= PROJECTED_LIMIT
        && c.y.abs() <= PROJECTED_LIMIT
}

// --- ESRI WKT ------------------------------------------------------------------------------

/// One `KEYWORD[arg, ...]` node.
#[derive(Debug, PartialEq)]
struct WktNode {
    keyword: String,
    args: Vec<WktArg>,
}

#[derive(Debug, PartialEq)]
enum WktArg {
    Text(String),
    Number(f64),
    Node(WktNode),
}

impl WktNode {
    /// The node's name: its first argument when quoted.
    fn name(&self) -> Option<&str> {
        match self.args.first() {
            Some(WktArg::Text(s)) => Some(s),
            _ => None,
        }
    }
    fn children<'a, 'k>(
        &'a self,
        keyword: &'k str,
    ) -> impl Iterator<Item = &'a WktNode> + use<'a, 'k> {
        self.args.iter().filter_map(move |a| match a {
            WktArg::Node(n) if n.keyword == keyword => Some(n),
            _ => None,
        })
    }
    fn child(&self, keyword: &str) -> Option<&WktNode> {
        self.children(keyword).next()
    }
    fn number(&self, index: usize) -> Option<f64> {
        match self.args.get(index) {
            Some(WktArg::Number(v)) => Some(*v),
            _ => None,
        }
    }
}

struct WktParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl WktParser<'_> {
    fn skip_blanks(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }
    fn error(&self, what: &str) -> String {
        format!("the .prj is not WKT: {what} at byte {}", self.pos)
    }
    fn node(&mut self, depth: usize) -> Result<WktNode, String> {
        if depth > WKT_MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_blanks();
        let start = self.pos;
        while self
            .text
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.pos += 1;
        }
        let keyword = String::from_utf8_lossy(&self.text[start..self.pos]).to_ascii_uppercase();
        if keyword.is_empty() {
            return Err(self.error("expected a keyword"));
        }
        self.skip_blanks();
        let close = match self.text.get(self.pos) {
            Some(b'[') => b']',
            Some(b'(') => b')',
            _ => return Err(self.error("expected `[`")),
        };
        self.pos += 1;
        let mut args = Vec::new();
        loop {
            self.skip_blanks();
            args.push(self.arg(depth)?);
            self.skip_blanks();
            match self.text.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(&b) if b == close => {
                    self.pos += 1;
                    return Ok(WktNode { keyword, args });
                }
                _ => return Err(self.error("expected `,` or a closing bracket")),
            }
        }
    }
    fn arg(&mut self, depth: usize) -> Result<WktArg, String> {
        match self.text.get(self.pos) {
            Some(b'"') => {
                let start = self.pos + 1;
                let len = self.text[start..]
                    .iter()
                    .position(|&b| b == b'"')
                    .ok_or_else(|| self.error("unterminated quoted text"))?;
                self.pos = start + len + 1;
                Ok(WktArg::Text(
                    String::from_utf8_lossy(&self.text[start..start + len]).into_owned(),
                ))
            }
            Some(b) if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.') => {
                let start = self.pos;
                while self.text.get(self.pos).is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                }) {
                    self.pos += 1;
                }
                let literal = String::from_utf8_lossy(&self.text[start..self.pos]);
                literal
                    .parse::<f64>()
                    .map(WktArg::Number)
                    .map_err(|_| self.error(&format!("`{literal}` is not a number")))
            }
            _ => self.node(depth + 1).map(WktArg::Node),
        }
    }
}

fn parse_wkt(text: &str) -> Result<WktNode, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut parser = WktParser {
        text: text.as_bytes(),
        pos: 0,
    };
    let root = parser.node(0)?;
    parser.skip_blanks();
    if parser.pos != parser.text.len() {
        return Err(parser.error("text after the CRS"));
    }
    Ok(root)
}

/// PROJ parameters for a `PROJCS` node.
fn projcs_to_proj4(projcs: &WktNode) -> Result<String, String> {
    let projection = projcs
        .child("PROJECTION")
        .and_then(WktNode::name)
        .ok_or("the .prj's PROJCS has no PROJECTION")?;
    let params = WktParameters::of(projcs);
    let mut proj4 = projection_to_proj4(projection, &params)?;
    let x_0 = params.get(&["false_easting"]).unwrap_or(0.0);
    let y_0 = params.get(&["false_northing"]).unwrap_or(0.0);
    proj4.push_str(&format!(" +x_0={x_0} +y_0={y_0}"));
    proj4.push_str(&ellipsoid(projcs, projection)?);
    let to_meter = linear_unit_m(projcs)?;
    proj4.push_str(&format!(" +to_meter={to_meter} +no_defs"));
    Ok(proj4)
}

/// The `PARAMETER[name, value]` nodes of a PROJCS, names in lower case.
struct WktParameters(Vec<(String, f64)>);

impl WktParameters {
    fn of(projcs: &WktNode) -> Self {
        Self(
            projcs
                .children("PARAMETER")
                .filter_map(|p| Some((p.name()?.to_ascii_lowercase(), p.number(1)?)))
                .collect(),
        )
    }

    /// The value of the first parameter whose name is one of `names`.
    fn get(&self, names: &[&str]) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| *v)
    }
}

/// The projection method and its parameters as PROJ parameters (origin, parallels, scale).
fn projection_to_proj4(projection: &str, params: &WktParameters) -> Result<String, String> {
    let lat_0 = params
        .get(&["latitude_of_origin", "latitude_of_center"])
        .unwrap_or(0.0);
    let lon_0 = params
        .get(&[
            "central_meridian",
            "longitude_of_center",
            "longitude_of_origin",
        ])
        .unwrap_or(0.0);
    let lat_1 = params.get(&["standard_parallel_1"]);
    let lat_2 = params.get(&["standard_parallel_2"]);
    let k_0 = params.get(&["scale_factor"]).unwrap_or(1.0);
    Ok(match projection.to_ascii_lowercase().as_str() {
        "albers" | "albers_conic_equal_area" => format!(
            "+proj=aea +lat_0={lat_0} +lon_0={lon_0} +lat_1={} +lat_2={}",
            lat_1.ok_or("the Albers .prj has no Standard_Parallel_1")?,
            lat_2.or(lat_1).unwrap_or(lat_0)
        ),
        "transverse_mercator" | "gauss_kruger" | "gauss_kruger_3_degree" => {
            format!("+proj=tmerc +lat_0={lat_0} +lon_0={lon_0} +k_0={k_0}")
        }
        "lambert_conformal_conic"
        | "lambert_conformal_conic_2sp"
        | "lambert_conformal_conic_1sp" => {
            let lat_1 = lat_1.unwrap_or(lat_0);
            format!(
                "+proj=lcc +lat_0={lat_0} +lon_0={lon_0} +lat_1={lat_1} +lat_2={} +k_0={k_0}",
                lat_2.unwrap_or(lat_1)
            )
        }
        "lambert_azimuthal_equal_area" => format!("+proj=laea +lat_0={lat_0} +lon_0={lon_0}"),
        "mercator" | "mercator_1sp" | "mercator_2sp" | "mercator_auxiliary_sphere" => {
            format!(
                "+proj=merc +lon_0={lon_0} +lat_ts={} +k_0={k_0}",
                lat_1.unwrap_or(0.0)
            )
        }
        "cylindrical_equal_area" | "behrmann" => {
            format!("+proj=cea +lon_0={lon_0} +lat_ts={}", lat_1.unwrap_or(0.0))
        }
        other => {
            return Err(format!(
                "the .prj's projection `{other}` is not one this program converts (Albers, Transverse_Mercator, Gauss_Kruger, Lambert_Conformal_Conic, Lambert_Azimuthal_Equal_Area, Mercator, Cylindrical_Equal_Area)"
            ));
        }
    })
}

/// Metres per linear unit, from the PROJCS's own `UNIT["Meter", 1.0]` node (1 without one).
fn linear_unit_m(projcs: &WktNode) -> Result<f64, String> {
    let to_meter = projcs
        .child("UNIT")
        .and_then(|u| u.number(1))
        .unwrap_or(1.0);
    if to_meter.is_finite() && to_meter > 0.0 {
        Ok(to_meter)
    } else {
        Err(format!(
            "the .prj's UNIT is {to_meter} metres, not a positive number"
        ))
    }
}

/// ` +a=… +rf=…` from `GEOGCS[..., DATUM[..., SPHEROID[name, a, 1/f]]]`. Esri's Web Mercator
/// (`Mercator_Auxiliary_Sphere`) projects on the sphere of radius a.
fn ellipsoid(projcs: &WktNode, projection: &str) -> Result<String, String> {
    let spheroid = projcs
        .child("GEOGCS")
        .and_then(|g| g.child("DATUM"))
        .and_then(|d| d.child("SPHEROID"))
        .ok_or("the .prj's PROJCS has no GEOGCS[DATUM[SPHEROID[...]]]")?;
    let (Some(a), Some(rf)) = (spheroid.number(1), spheroid.number(2)) else {
        return Err("the .prj's SPHEROID lacks its semi-major axis or inverse flattening".into());
    };
    if !(a.is_finite() && a > 1.0 && rf.is_finite() && rf >= 0.0) {
        return Err(format!(
            "the .prj's SPHEROID [{a}, {rf}] is not an ellipsoid"
        ));
    }
    Ok(
        if rf == 0.0 || projection.eq_ignore_ascii_case("mercator_auxiliary_sphere") {
            format!(" +a={a} +b={a}")
        } else {
            format!(" +a={a} +rf={rf}")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esri_albers_becomes_proj_parameters() {
        // CLCD's Albers as Esri writes it (pyproj's to_wkt(WKT1_ESRI) of the PROJ string below).
        let wkt = r#"PROJCS["unknown",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Albers"],PARAMETER["False_Easting",0.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",105.0],PARAMETER["Standard_Parallel_1",25.0],PARAMETER["Standard_Parallel_2",47.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;
        assert_eq!(
            projcs_to_proj4(&parse_wkt(wkt).unwrap()).unwrap(),
            "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +a=6378137 +rf=298.257223563 +to_meter=1 +no_defs"
        );
        assert!(matches!(
            SourceCrs::from_prj(
                r#"GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]"#
            ),
            Ok(SourceCrs::LonLat)
        ));
    }

    #[test]
    fn malformed_wkt_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "A[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_wkt(&deep).unwrap_err(),
            "the .prj is not WKT: nesting too deep at byte 34"
        );
        for bad in [
            "",
            "PROJCS",
            "PROJCS[\"x",
            "PROJCS[1e999e]",
            "GEOGCS[\"a\"] x",
        ] {
            assert!(SourceCrs::from_prj(bad).is_err(), "{bad}");
        }
        let no_projection =
            r#"PROJCS["x",GEOGCS["g",DATUM["d",SPHEROID["s",6378137,298.3]]],UNIT["Meter",1]]"#;
        assert_eq!(
            SourceCrs::from_prj(no_projection).err().unwrap(),
            "the .prj's PROJCS has no PROJECTION"
        );
    }

    #[test]
    fn geojson_crs_names_in_every_legacy_form() {
        for lon_lat in [
            "urn:ogc:def:crs:OGC:1.3:CRS84",
            "EPSG:4326",
            "urn:ogc:def:crs:EPSG::4490",
        ] {
            let member = serde_json::json!({"type": "name", "properties": {"name": lon_lat}});
            assert!(
                matches!(
                    SourceCrs::from_geojson_member(&member),
                    Ok(SourceCrs::LonLat)
                ),
                "{lon_lat}"
            );
        }
        for mercator in [
            "urn:ogc:def:crs:EPSG::3857",
            "urn:ogc:def:crs:EPSG:6.18:3857",
            "epsg:3857",
        ] {
            let member = serde_json::json!({"type": "name", "properties": {"name": mercator}});
            let Ok(SourceCrs::Projected { proj, .. }) = SourceCrs::from_geojson_member(&member)
            else {
                panic!("{mercator} is projected");
            };
            assert_eq!(proj.projname(), "merc");
        }
        let link = serde_json::json!({"type": "link", "properties": {"href": "x"}});
        assert!(SourceCrs::from_geojson_member(&link).is_err());
    }

    #[test]
    fn web_mercator_vertex_converts_to_lon_lat() {
        let member = serde_json::json!({"type": "name", "properties": {"name": "EPSG:3857"}});
        let crs = SourceCrs::from_geojson_member(&member).unwrap();
        // x = R·λ with R = 6378137 m: λ = 1° is 111319.49079327357 m; y = R·ln(tan(π/4 + φ/2))
        // is 0 on the equator. A closed ring of four vertices.
        let x1 = 6_378_137.0 * 1f64.to_radians();
        let ring = LineString::from(vec![(0.0, 0.0), (x1, 0.0), (x1, x1), (0.0, 0.0)]);
        let out = crs
            .to_lon_lat(MultiPolygon(vec![Polygon::new(ring, vec![])]))
            .unwrap();
        let c = out.0[0].exterior().0[1];
        assert!((c.x - 1.0).abs() < 1e-12 && c.y.abs() < 1e-12, "{c:?}");
    }
}
