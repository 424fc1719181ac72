//! Unit polygons from GeoJSON and ESRI Shapefiles into a [`CellTable`]: one row per feature,
//! attributes as cells (types decided later), geometries as `geo` multipolygons.
//!
//! Only areal units are read: Polygon and MultiPolygon (GeoJSON), Polygon/PolygonZ/PolygonM
//! (Shapefile). Coordinates come out in lon/lat degrees: a GeoJSON `crs` member or a shapefile
//! `.prj` naming a projection is honoured (see [`crate::io::crs`]), and a vertex outside its
//! CRS's valid range is an error naming the feature and the vertex. Rings are oriented as RFC 7946 says (exteriors counter-clockwise, holes clockwise) so
//! every unit table has the same winding whatever the source (shapefiles wind the other way).
//! Knows formats, not carbon.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use geo::line_intersection::{LineIntersection, line_intersection};
use geo::orient::Direction;
use geo::{Area, Contains, Coord, Line, LineString, MultiPolygon, Orient, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use shapefile::dbase;

use crate::io::IoError;
use crate::io::cells::{Cell, CellTable};
use crate::io::crs::SourceCrs;

// --- GeoJSON -------------------------------------------------------------------------------

/// A FeatureCollection as far as we need it. Properties keep the order of the file.
#[derive(Deserialize)]
struct RawCollection {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    features: Vec<RawFeature>,
    /// The legacy (2008) named-CRS member; RFC 7946 files have none and are lon/lat.
    #[serde(default)]
    crs: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawFeature {
    #[serde(default)]
    properties: Option<Properties>,
    #[serde(default)]
    geometry: Option<geojson::Geometry>,
}

/// A JSON object's members in file order (serde_json's own map sorts them).
struct Properties(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Properties;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(entry);
                }
                Ok(Properties(members))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

fn json_cell(value: serde_json::Value) -> Cell {
    match value {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Bool(b) => Cell::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => n.as_f64().map_or(Cell::Null, Cell::Float),
        },
        serde_json::Value::String(s) => Cell::Text(s),
        other => Cell::Text(other.to_string()),
    }
}

/// Adds one row's named values to column-ordered cells (columns in order of first appearance;
/// a name missing from a row is a null there).
fn push_row(
    names: &mut Vec<String>,
    columns: &mut Vec<Vec<Cell>>,
    row: usize,
    values: Vec<(String, Cell)>,
) {
    for (name, cell) in values {
        let i = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                columns.push(vec![Cell::Null; row]);
                names.len() - 1
            }
        };
        // A repeated key in one object: the last value wins, as in JSON parsers generally.
        if columns[i].len() > row {
            columns[i][row] = cell;
        } else {
            columns[i].push(cell);
        }
    }
    for column in columns.iter_mut() {
        if column.len() == row {
            column.push(Cell::Null);
        }
    }
}

fn ring(positions: &[geojson::Position]) -> Result<LineString<f64>, String> {
    let coords: Vec<Coord<f64>> = positions
        .iter()
        .map(|p| match p.as_slice() {
            [x, y, ..] => Ok(Coord { x: *x, y: *y }),
            _ => Err("a position has fewer than 2 coordinates".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    if coords.len() < 4 {
        return Err(format!(
            "a ring has {} positions; a closed ring needs at least 4",
            coords.len()
        ));
    }
    let mut line = LineString(coords);
    line.close();
    Ok(line)
}

fn json_polygon(rings: &[Vec<geojson::Position>]) -> Result<Polygon<f64>, String> {
    let (exterior, interiors) = rings.split_first().ok_or("a polygon has no rings")?;
    Ok(Polygon::new(
        ring(exterior)?,
        interiors
            .iter()
            .map(|r| ring(r))
            .collect::<Result<_, _>>()?,
    ))
}

fn json_geometry(geometry: Option<geojson::Geometry>) -> Result<MultiPolygon<f64>, String> {
    let geometry = geometry.ok_or("the feature has no geometry (null)")?;
    match geometry.value {
        geojson::GeometryValue::Polygon { coordinates } => {
            Ok(MultiPolygon(vec![json_polygon(&coordinates)?]))
        }
        geojson::GeometryValue::MultiPolygon { coordinates } => {
            if coordinates.is_empty() {
                return Err("the MultiPolygon is empty".to_owned());
            }
            Ok(MultiPolygon(
                coordinates
                    .iter()
                    .map(|p| json_polygon(p))
                    .collect::<Result<_, _>>()?,
            ))
        }
        other => Err(format!(
            "the geometry is a {}, but units must be Polygon or MultiPolygon",
            other.type_name()
        )),
    }
}

/// Reads a GeoJSON FeatureCollection. `shown` is the path as the user wrote it.
pub fn read_geojson(path: &Path, shown: &Path) -> Result<CellTable, IoError> {
    let file = shown.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| IoError::data(format!("cannot read {file}: {e}")))?;
    if text.trim().is_empty() {
        return Err(IoError::data(format!("{file} is empty"))
            .with_hint("a GeoJSON file holds one FeatureCollection"));
    }
    let collection: RawCollection = serde_json::from_str(&text).map_err(|e| {
        IoError::data(format!(
            "{file}:{}:{}: not a GeoJSON FeatureCollection",
            e.line(),
            e.column()
        ))
        .caused_by(&e)
    })?;
    if collection.kind != "FeatureCollection" {
        return Err(IoError::data(format!(
            "{file}: the top-level object is a {}, not a FeatureCollection",
            collection.kind
        ))
        .with_hint("wrap the features in {\"type\": \"FeatureCollection\", \"features\": [...]}"));
    }
    if collection.features.is_empty() {
        return Err(IoError::data(format!("{file} has no features")));
    }
    let crs = match collection.crs.as_ref().filter(|c| !c.is_null()) {
        None => SourceCrs::LonLat,
        Some(member) => SourceCrs::from_geojson_member(member).map_err(|e| {
            IoError::data(format!("{file}: {e}"))
                .with_hint("name the CRS as {\"type\": \"name\", \"properties\": {\"name\": \"EPSG:3857\"}}, or save the file in EPSG:4326 without a `crs` member")
        })?,
    };
    let mut names = Vec::new();
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut geometries = Vec::new();
    for (i, feature) in collection.features.into_iter().enumerate() {
        let label = format!("{file}: feature index {i}");
        let geometry = json_geometry(feature.geometry)
            .and_then(|g| crs.to_lon_lat(g))
            .map_err(|e| IoError::data(format!("{label}: {e}")))?;
        geometries.push(geometry.orient(Direction::Default));
        let values = feature.properties.map(|p| p.0).unwrap_or_default();
        push_row(
            &mut names,
            &mut columns,
            i,
            values.into_iter().map(|(k, v)| (k, json_cell(v))).collect(),
        );
        rows.push(label);
    }
    let mut table = CellTable::new(shown, names.into_iter().zip(columns).collect(), rows)?;
    table.geometry = Some(geometries);
    Ok(table)
}

// --- Shapefile -----------------------------------------------------------------------------

/// Shapefile rings in file order, each marked exterior (clockwise) or hole (counter-clockwise).
fn shape_rings<P: Copy>(
    rings: &[shapefile::PolygonRing<P>],
    xy: impl Fn(&P) -> Coord<f64>,
) -> Vec<(bool, LineString<f64>)> {
    rings
        .iter()
        .map(|r| {
            let line = LineString(r.points().iter().map(&xy).collect());
            (matches!(r, shapefile::PolygonRing::Outer(_)), line)
        })
        .collect()
}

/// Assembles polygons from shapefile rings: each hole goes to the smallest exterior ring that
/// contains it (the format does not promise a hole follows its own exterior), falling back to
/// the last exterior before it.
fn assemble(rings: Vec<(bool, LineString<f64>)>) -> Result<MultiPolygon<f64>, String> {
    let mut exteriors: Vec<Polygon<f64>> = Vec::new();
    let mut holes: Vec<(usize, LineString<f64>)> = Vec::new();
    for (outer, line) in rings {
        if line.0.len() < 4 {
            return Err(format!(
                "a ring has {} points; a closed ring needs at least 4",
                line.0.len()
            ));
        }
        if outer {
            exteriors.push(Polygon::new(line, Vec::new()));
        } else {
            let preceding = exteriors
                .len()
                .checked_sub(1)
                .ok_or("a hole comes before any exterior ring")?;
            holes.push((preceding, line));
        }
    }
    if exteriors.is_empty() {
        return Err("the polygon has no rings".to_owned());
    }
    let mut interiors: Vec<Vec<LineString<f64>>> = vec![Vec::new(); exteriors.len()];
    for (preceding, hole) in holes {
        let containing = exteriors
            .iter()
            .enumerate()
            .filter(|(_, ext)| hole.0.iter().any(|c| ext.contains(c)))
            .min_by(|(_, a), (_, b)| a.unsigned_area().total_cmp(&b.unsigned_area()))
            .map_or(preceding, |(i, _)| i);
        interiors[containing].push(hole);
    }
    Ok(MultiPolygon(
        exteriors
            .into_iter()
            .zip(interiors)
            .map(|(e, holes)| Polygon::new(e.into_inner().0, holes))
            .collect(),
    ))
}

fn shape_polygon(shape: shapefile::Shape) -> Result<MultiPolygon<f64>, String> {
    let rings = match shape {
        shapefile::Shape::Polygon(p) => shape_rings(p.rings(), |pt| Coord { x: pt.x, y: pt.y }),
        shapefile::Shape::PolygonM(p) => shape_rings(p.rings(), |pt| Coord { x: pt.x, y: pt.y }),
        shapefile::Shape::PolygonZ(p) => shape_rings(p.rings(), |pt| Coord { x: pt.x, y: pt.y }),
        shapefile::Shape::NullShape => {
            return Err("the record has no geometry (null shape)".to_owned());
        }
        other => {
            return Err(format!(
                "the shape is a {}, but units must be polygons",
                other.shapetype()
            ));
        }
    };
    assemble(rings)
}

fn dbf_cell(value: dbase::FieldValue) -> Cell {
    use dbase::FieldValue as V;
    match value {
        V::Character(Some(s)) | V::Memo(s) => {
            let s = s.trim().to_owned();
            if s.is_empty() {
                Cell::Null
            } else {
                Cell::Text(s)
            }
        }
        // dBase numbers are decimal text in the file; whole ones are read as integers, as
        // GDAL does for N fields without decimals.
        V::Numeric(Some(v)) if v.fract() == 0.0 && v.abs() < 9.0e15 => Cell::Int(v as i64),
        V::Numeric(Some(v)) | V::Double(v) | V::Currency(v) => Cell::Float(v),
        V::Float(Some(v)) => Cell::Float(f64::from(v)),
        V::Integer(v) => Cell::Int(i64::from(v)),
        V::Logical(Some(b)) => Cell::Bool(b),
        V::Date(Some(d)) => Cell::Text(format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())),
        V::DateTime(dt) => {
            let (d, t) = (dt.date(), dt.time());
            Cell::Text(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                d.year(),
                d.month(),
                d.day(),
                t.hours(),
                t.minutes(),
                t.seconds()
            ))
        }
        V::Character(None)
        | V::Numeric(None)
        | V::Float(None)
        | V::Logical(None)
        | V::Date(None) => Cell::Null,
    }
}

/// The language driver id (byte 29 of a DBF header), 0 when unreadable.
fn ldid(dbf: &Path) -> u8 {
    let mut head = [0u8; 32];
    File::open(dbf)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_or(0, |()| head[29])
}

/// The code page a DBF language driver id names (ESRI's table; only the common ones).
fn ldid_encoding(ldid: u8) -> Option<&'static encoding_rs::Encoding> {
    Some(match ldid {
        0x4D | 0x7A => encoding_rs::GBK,
        0x4F | 0x78 => encoding_rs::BIG5,
        0x13 | 0x7B => encoding_rs::SHIFT_JIS,
        0x4E | 0x79 => encoding_rs::EUC_KR,
        0x03 | 0x57 => encoding_rs::WINDOWS_1252,
        0xC8 => encoding_rs::WINDOWS_1250,
        0xC9 => encoding_rs::WINDOWS_1251,
        _ => return None,
    })
}

/// The attribute encoding and where it came from: the parameter, else the `.cpg` file, else
/// the DBF's language driver id, else UTF-8 (`None`).
fn dbf_encoding(
    path: &Path,
    shown: &Path,
    param: Option<&'static encoding_rs::Encoding>,
    notes: &mut Vec<String>,
    ldid: u8,
) -> (Option<&'static encoding_rs::Encoding>, String) {
    if let Some(e) = param {
        return (Some(e), "the `encoding` parameter".to_owned());
    }
    if let Ok(label) = std::fs::read_to_string(path.with_extension("cpg")) {
        let label = label.trim();
        if let Some(e) = crate::io::cells::encoding_for_label(label) {
            return (Some(e), format!("the .cpg file (`{label}`)"));
        }
        notes.push(format!(
            "{}: the .cpg names an unknown encoding `{label}`; ignoring it",
            shown.display()
        ));
    }
    match ldid_encoding(ldid) {
        Some(e) => (
            Some(e),
            format!("the .dbf language driver id 0x{ldid:02X} ({})", e.name()),
        ),
        None => (
            None,
            "the default (UTF-8; there is no usable .cpg file)".to_owned(),
        ),
    }
}

/// Checks the record structure of a `.shp` (ESRI, *Shapefile Technical Description*, 1998,
/// tables 1 to 6) before the shapefile crate reads it, since that crate reserves memory for the
/// part and point counts a record declares: every record must fit in the file, and the counts
/// of a polygon, polyline or multipoint must fit in its record.
fn check_shp_records(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 100 {
        return Err(format!(
            "the file has {} bytes, fewer than the 100-byte header",
            bytes.len()
        ));
    }
    let mut pos = 100;
    let mut record = 0;
    while pos + 8 <= bytes.len() {
        record += 1;
        let words = i32_at(bytes, pos + 4, true);
        let end = usize::try_from(words)
            .ok()
            .map(|w| pos + 8 + 2 * w)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("record {record} declares {words} 16-bit words of content, beyond the end of the file"))?;
        let content_len = end - pos - 8;
        // Every record holds at least its shape type; the reader would otherwise take the
        // type and counts from the bytes of the records after it.
        if content_len < 4 {
            return Err(format!(
                "record {record} is {content_len} bytes, too short to hold its shape type"
            ));
        }
        check_shp_counts(&bytes[pos + 8..end], record)?;
        pos = end;
    }
    Ok(())
}

/// The 32-bit integer at `at`, big-endian if `big` (the `.shp` record headers) else
/// little-endian (the record contents).
fn i32_at(bytes: &[u8], at: usize, big: bool) -> i32 {
    let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
    if big {
        i32::from_be_bytes(b)
    } else {
        i32::from_le_bytes(b)
    }
}

/// Checks that the part and point counts of a polygon, polyline or multipoint record
/// (`content`, at least 4 bytes) fit in it, and that its parts start in order.
fn check_shp_counts(content: &[u8], record: usize) -> Result<(), String> {
    let content_len = content.len();
    let int_at = |at: usize| i32_at(content, at, false);
    let shape_type = int_at(0);
    // The fixed part of the record: type, bounding box and the counts (parts, points).
    let needed = match shape_type {
        3 | 5 | 13 | 15 | 23 | 25 | 31 => 44,
        8 | 18 | 28 => 40,
        _ => return Ok(()),
    };
    if content_len < needed {
        return Err(format!(
            "record {record} is {content_len} bytes, too short for its shape type {shape_type}"
        ));
    }
    // Counts follow the 4-byte type and the 32-byte box, at content offset 36.
    let (parts, points) = if needed == 44 {
        (int_at(36), int_at(40))
    } else {
        (0, int_at(36))
    };
    let fits = u64::try_from(parts)
        .ok()
        .zip(u64::try_from(points).ok())
        .is_some_and(|(parts, points)| {
            needed as u64 + 4 * parts + 16 * points <= content_len as u64
        });
    if !fits {
        return Err(format!(
            "record {record} declares {parts} parts and {points} points, more than its {content_len} bytes hold"
        ));
    }
    // Each part starts at a point index, in order: the reader sizes rings from them.
    let starts = (0..usize::try_from(parts).unwrap_or(0)).map(|i| int_at(44 + 4 * i));
    let mut previous = 0;
    for (i, start) in starts.enumerate() {
        if start < previous || start >= points || (i == 0 && start != 0) {
            return Err(format!(
                "record {record}: part {} starts at point {start}, outside 0..{points} or before the part ahead of it",
                i + 1
            ));
        }
        previous = start;
    }
    Ok(())
}

/// Checks a `.dbf` header against its own fields and the file's size (dBase III+ layout as in
/// the *Xbase file format description*, 32-byte field descriptors ended by 0x0D): the record
/// length must equal the deletion flag plus the field lengths, and the declared records must
/// be in the file. The dbase crate otherwise reads misaligned records as values, silently.
fn check_dbf_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 32 {
        return Err(format!(
            "the file has {} bytes, fewer than the 32-byte header",
            bytes.len()
        ));
    }
    if bytes[0] & 0x07 == 4 {
        // dBase 7 has 48-byte field descriptors; the crate reads those itself.
        return Ok(());
    }
    let records = u64::from(u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")));
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let record_len = u64::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    let mut fields_len = 1u64;
    let mut at = 32;
    while at + 32 <= bytes.len().min(header_len) && bytes[at] != 0x0D {
        fields_len += u64::from(bytes[at + 16]);
        at += 32;
    }
    if record_len != fields_len {
        return Err(format!(
            "the header says each record takes {record_len} bytes, but its fields take {fields_len} (with the deletion flag)"
        ));
    }
    let needed = header_len as u64 + records * record_len;
    if (bytes.len() as u64) < needed {
        return Err(format!(
            "the header declares {records} records of {record_len} bytes after a {header_len}-byte header ({needed} bytes), but the file has {}",
            bytes.len()
        ));
    }
    Ok(())
}

/// The CRS of a shapefile's `.prj` (lon/lat when there is none).
fn prj_crs(path: &Path, shown: &Path) -> Result<SourceCrs, IoError> {
    let prj_path = path.with_extension("prj");
    let Ok(bytes) = std::fs::read(&prj_path) else {
        return Ok(SourceCrs::LonLat);
    };
    let shown_prj = shown.with_extension("prj");
    let text = String::from_utf8_lossy(&bytes);
    SourceCrs::from_prj(&text).map_err(|e| {
        IoError::data(format!("{}: {e}", shown_prj.display())).with_hint(
            "write the .prj as ESRI WKT (GIS software does when it saves a shapefile), or reproject the file to EPSG:4326",
        )
    })
}

/// The error for a record the shapefile crate cannot read; an attribute that does not decode
/// names its field and where the encoding came from (`from`).
fn shapefile_record_error(e: &shapefile::Error, label: &str, from: &str) -> IoError {
    let shapefile::Error::DbaseError(db) = e else {
        return IoError::data(format!("{label}: {e}"));
    };
    let field = format!("{db:?}")
        .split("name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|f| format!(" field `{f}`"))
        .unwrap_or_default();
    IoError::data(format!(
        "{label}:{field} is not valid text in the encoding taken from {from}"
    ))
    .with_hint(format!(
        "the attribute encoding came from {from}; if the names are Chinese, try `encoding: GBK` (or add a .cpg file saying GBK)"
    ))
}

/// Reads a shapefile (`.shp` with its `.dbf`; `.shx`, `.cpg` and `.prj` when present).
/// `encoding` overrides the attribute encoding; otherwise the `.cpg` file names it, else the
/// DBF's language driver id, else the attributes must be UTF-8.
pub fn read_shapefile(
    path: &Path,
    shown: &Path,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<CellTable, IoError> {
    let file = shown.display();
    let damaged = "the file is damaged: export the layer again from GIS software";
    let shp_bytes =
        std::fs::read(path).map_err(|e| IoError::data(format!("cannot read {file}: {e}")))?;
    check_shp_records(&shp_bytes)
        .map_err(|e| IoError::data(format!("{file}: {e}")).with_hint(damaged))?;
    let shapes = shapefile::ShapeReader::from_path(path)
        .map_err(|e| IoError::data(format!("cannot read {file}: {e}")))?;
    let dbf_path = path.with_extension("dbf");
    let dbf = File::open(&dbf_path).map_err(|e| {
        IoError::data(format!(
            "cannot open the attribute file {} of {file}: {e}",
            dbf_path.display()
        ))
        .with_hint(
            "a shapefile is several files: keep the .dbf (and .shx, .prj, .cpg) next to the .shp",
        )
    })?;
    if let Ok(bytes) = std::fs::read(&dbf_path) {
        check_dbf_header(&bytes).map_err(|e| {
            IoError::data(format!("{}: {e}", shown.with_extension("dbf").display()))
                .with_hint(damaged)
        })?;
    }
    let mut notes = Vec::new();
    let (encoding, from) = dbf_encoding(path, shown, encoding, &mut notes, ldid(&dbf_path));
    let builder = dbase::ReaderBuilder::new();
    let builder = match encoding.filter(|&e| e != encoding_rs::UTF_8) {
        None => builder.with_encoding(dbase::Unicode),
        Some(e) => builder.with_encoding(dbase::encoding::EncodingRs::from(e)),
    };
    let records = builder
        .build(BufReader::new(dbf))
        .map_err(|e| IoError::data(format!("cannot read {}: {e}", dbf_path.display())))?;
    let fields: Vec<String> = records
        .fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let crs = prj_crs(path, shown)?;
    let mut reader = shapefile::Reader::new(shapes, records);

    let mut columns: Vec<Vec<Cell>> = vec![Vec::new(); fields.len()];
    let mut rows = Vec::new();
    let mut geometries = Vec::new();
    for (i, item) in reader.iter_shapes_and_records().enumerate() {
        let label = format!("{file}: record {}", i + 1);
        let (shape, mut record) = item.map_err(|e| shapefile_record_error(&e, &label, &from))?;
        let geometry = shape_polygon(shape)
            .and_then(|g| crs.to_lon_lat(g))
            .map_err(|e| IoError::data(format!("{label}: {e}")))?;
        geometries.push(geometry.orient(Direction::Default));
        for (column, name) in columns.iter_mut().zip(&fields) {
            column.push(record.remove(name).map_or(Cell::Null, dbf_cell));
        }
        rows.push(label);
    }
    if rows.is_empty() {
        return Err(IoError::data(format!("{file} has no records")));
    }
    let mut table = CellTable::new(shown, fields.into_iter().zip(columns).collect(), rows)?;
    table.geometry = Some(geometries);
    table.notes = notes;
    Ok(table)
}

// --- Sanity checks ---------------------------------------------------------------------------

/// The first point where a ring crosses, touches or overlaps itself, if any (consecutive
/// edges meeting at their shared vertex are fine). Edges are indexed in an R-tree, so this is
/// about O(n log n) rather than the O(n²) of comparing every pair of edges.
fn ring_self_intersection(ring: &LineString<f64>) -> Option<Coord<f64>> {
    let mut coords = ring.0.clone();
    coords.dedup();
    let edges: Vec<Line<f64>> = coords.windows(2).map(|w| Line::new(w[0], w[1])).collect();
    let n = edges.len();
    let envelope = |l: &Line<f64>| {
        AABB::from_corners(
            [l.start.x.min(l.end.x), l.start.y.min(l.end.y)],
            [l.start.x.max(l.end.x), l.start.y.max(l.end.y)],
        )
    };
    let tree = RTree::bulk_load(
        edges
            .iter()
            .enumerate()
            .map(|(i, l)| GeomWithData::new(Rectangle::from_aabb(envelope(l)), i))
            .collect(),
    );
    for (i, edge) in edges.iter().enumerate() {
        for other in tree.locate_in_envelope_intersecting(&envelope(edge)) {
            let j = other.data;
            if j <= i {
                continue;
            }
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            match line_intersection(*edge, edges[j]) {
                None => {}
                Some(LineIntersection::SinglePoint { .. }) if adjacent => {}
                Some(LineIntersection::SinglePoint { intersection, .. }) => {
                    return Some(intersection);
                }
                Some(LineIntersection::Collinear { intersection }) => {
                    return Some(intersection.start);
                }
            }
        }
    }
    None
}

/// What is wrong with a unit geometry, if anything a later stage may trip on: non-finite
/// coordinates, rings with fewer than 4 points or no area, rings that cross or touch
/// themselves. (Holes outside their exterior and overlapping parts are not checked.)
pub fn geometry_problem(geometry: &MultiPolygon<f64>) -> Option<String> {
    for (p, polygon) in geometry.0.iter().enumerate() {
        let part = if geometry.0.len() > 1 {
            format!("part {}: ", p + 1)
        } else {
            String::new()
        };
        for (r, ring) in std::iter::once(polygon.exterior())
            .chain(polygon.interiors())
            .enumerate()
        {
            let which = if r == 0 {
                "the exterior ring".to_owned()
            } else {
                format!("hole {r}")
            };
            if ring.0.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
                return Some(format!(
                    "{part}{which} has a coordinate that is not a finite number"
                ));
            }
            if ring.0.len() < 4 {
                return Some(format!(
                    "{part}{which} has {} points; a closed ring needs at least 4",
                    ring.0.len()
                ));
            }
            if let Some(at) = ring_self_intersection(ring) {
                return Some(format!(
                    "{part}{which} crosses or touches itself at ({}, {})",
                    at.x, at.y
                ));
            }
            if Polygon::new(ring.clone(), Vec::new()).unsigned_area() == 0.0 {
                return Some(format!("{part}{which} has no area"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn properties_keep_file_order_and_missing_values_are_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.geojson");
        let square = r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#;
        std::fs::write(
            &path,
            format!(
                r#"{{"type":"FeatureCollection","features":[
                {{"type":"Feature","properties":{{"zeta":1,"alpha":"x"}},"geometry":{square}}},
                {{"type":"Feature","properties":{{"alpha":"y","beta":true}},"geometry":{square}}}]}}"#
            ),
        )
        .unwrap();
        let t = read_geojson(&path, Path::new("u.geojson")).unwrap();
        assert_eq!(t.names(), ["zeta", "alpha", "beta"]);
        let super::super::cells::Column::Cells(zeta) = &t.columns[0].1 else {
            panic!("cells")
        };
        assert_eq!(zeta, &[Cell::Int(1), Cell::Null]);
        let super::super::cells::Column::Cells(beta) = &t.columns[2].1 else {
            panic!("cells")
        };
        assert_eq!(beta, &[Cell::Null, Cell::Bool(true)]);
        // The unit square has area 1.
        assert!((t.geometry.unwrap()[1].unsigned_area() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn non_polygon_feature_is_named_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.geojson");
        std::fs::write(
            &path,
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[0,0]}}]}"#,
        )
        .unwrap();
        let err = read_geojson(&path, Path::new("p.geojson")).unwrap_err();
        assert_eq!(
            err.message,
            "p.geojson: feature index 1: the geometry is a Point, but units must be Polygon or MultiPolygon"
        );
    }

    fn vector_fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vector")
            .join(name)
    }

    /// Vertices of each unit (all rings, in order, as lon/lat).
    fn vertices(table: &CellTable) -> Vec<Vec<Coord<f64>>> {
        use geo::CoordsIter;
        let geometries = table
            .geometry
            .as_ref()
            .expect("vector tables have geometry");
        geometries
            .iter()
            .map(|g| g.coords_iter().collect())
            .collect()
    }

    #[test]
    fn projected_shapefiles_give_the_lon_lat_polygons_and_their_areas() {
        use geo::GeodesicArea;
        let lon_lat = read_geojson(
            &vector_fixture("units_lonlat.geojson"),
            Path::new("units_lonlat.geojson"),
        )
        .unwrap();
        let expected = vertices(&lon_lat);
        // Geodesic areas on WGS84 by pyproj's Geod.polygon_area_perimeter (make_fixtures.py).
        let areas_m2 = [304_644_807.580_688_5, 470_139_361.609_407_4];
        for name in [
            "albers_wgs84",
            "utm49n_wgs84",
            "gk38_cgcs2000",
            "gk_cm114_beijing1954",
        ] {
            let shp = vector_fixture(&format!("{name}.shp"));
            let table = read_shapefile(&shp, Path::new(name), None).unwrap();
            let got = vertices(&table);
            assert_eq!(got.len(), expected.len(), "{name}");
            for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
                // pyproj projected the lon/lat vertices; reading back must undo it (1e-8° ≈ 1 mm).
                assert!(
                    (g.x - e.x).abs() < 1e-8 && (g.y - e.y).abs() < 1e-8,
                    "{name}: {g:?} vs {e:?}"
                );
            }
            for (geometry, area) in table.geometry.as_ref().unwrap().iter().zip(areas_m2) {
                let got = geometry.geodesic_area_unsigned();
                assert!((got - area).abs() / area < 1e-9, "{name}: {got} vs {area}");
            }
        }
    }

    #[test]
    fn geojson_crs_member_is_honoured() {
        let lon_lat = read_geojson(
            &vector_fixture("units_lonlat.geojson"),
            Path::new("units_lonlat.geojson"),
        )
        .unwrap();
        let mercator = read_geojson(
            &vector_fixture("units_3857.geojson"),
            Path::new("units_3857.geojson"),
        )
        .unwrap();
        for (g, e) in vertices(&mercator)
            .iter()
            .flatten()
            .zip(vertices(&lon_lat).iter().flatten())
        {
            assert!(
                (g.x - e.x).abs() < 1e-9 && (g.y - e.y).abs() < 1e-9,
                "{g:?} vs {e:?}"
            );
        }
    }

    fn geojson_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.geojson");
        std::fs::write(&path, text).unwrap();
        read_geojson(&path, Path::new("u.geojson"))
            .unwrap_err()
            .message
    }

    #[test]
    fn absurd_vertex_is_an_error_naming_feature_and_vertex() {
        let message = geojson_error(
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
            "geometry":{"type":"Polygon","coordinates":[[[113,34],[114,34],[1e308,1e308],[113,34]]]}}]}"#,
        );
        assert!(
            message.starts_with(
                "u.geojson: feature index 0: the vertex [1e308, 1e308] is not a longitude/latitude"
            ),
            "{message}"
        );
        // In a projected file the same vertex is beyond any projected coordinate.
        let message = geojson_error(
            r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:3857"}},
            "features":[{"type":"Feature","properties":{},
            "geometry":{"type":"Polygon","coordinates":[[[0,0],[1000,0],[1e308,1e308],[0,0]]]}}]}"#,
        );
        assert!(
            message.starts_with("u.geojson: feature index 0: the vertex [1e308, 1e308] is not a coordinate of EPSG:3857"),
            "{message}"
        );
    }

    #[test]
    fn unknown_geojson_crs_is_an_error() {
        let message = geojson_error(
            r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:FOO::1"}},
            "features":[{"type":"Feature","properties":{},
            "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}"#,
        );
        assert_eq!(
            message,
            "u.geojson: the `crs` member names `urn:ogc:def:crs:FOO::1`, which is not an EPSG code"
        );
    }

    fn corpus(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus")
            .join(path)
    }

    #[test]
    fn shp_counts_beyond_the_record_are_errors_not_allocations() {
        // One polygon record declaring 2^31 - 1 parts (or points) in 80 bytes: the shapefile
        // crate reserved 8 GiB (32 GiB) for them before finding the record short.
        for (name, counts) in [
            ("parts_huge", "2147483647 parts and 5 points"),
            ("points_huge", "1 parts and 2147483647 points"),
        ] {
            let err = read_shapefile(
                &corpus(&format!("shapefile/{name}.shp")),
                Path::new("u.shp"),
                None,
            )
            .unwrap_err();
            assert_eq!(
                err.message,
                format!("u.shp: record 1 declares {counts}, more than its 128 bytes hold")
            );
        }
    }

    #[test]
    fn shp_part_starting_before_its_points_is_an_error() {
        // Found by the fuzzer: one ring whose start index is -4194307; the crate sized the
        // ring as 5 - (-4194307) points and reserved 64 MiB for a 309-byte file.
        let err = read_shapefile(
            &corpus("shapefile/part_index_negative.shp"),
            Path::new("u.shp"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "u.shp: record 1: part 1 starts at point -3, outside 0..5 or before the part ahead of it"
        );
    }

    #[test]
    fn shp_record_without_content_is_an_error_not_an_allocation() {
        // Found by the fuzzer: record 1 declares 0 words of content, and the crate read the
        // shape type and a part count of 1,098,907,648 from the bytes after it (4.4 GB).
        let err = read_shapefile(
            &corpus("shapefile/fuzz_record_without_content.shp"),
            Path::new("u.shp"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "u.shp: record 1 is 0 bytes, too short to hold its shape type"
        );
    }

    #[test]
    fn dbf_record_length_that_disagrees_with_its_fields_is_an_error() {
        // One C(6) field: a record is 1 + 6 = 7 bytes; the header says 3.
        let err = read_shapefile(
            &corpus("dbf/record_length_short.shp"),
            Path::new("u.shp"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "u.dbf: the header says each record takes 3 bytes, but its fields take 7 (with the deletion flag)"
        );
        let err =
            read_shapefile(&corpus("dbf/records_huge.shp"), Path::new("u.shp"), None).unwrap_err();
        assert!(
            err.message
                .starts_with("u.dbf: the header declares 4294967295 records"),
            "{}",
            err.message
        );
    }

    #[test]
    fn gbk_attributes_without_a_usable_cpg_get_the_encoding_hint() {
        // 郑州市 in GBK, with a .cpg saying `System`, `ANSI` (Esri's words for the machine's
        // code page, which a reader cannot know) and with no .cpg at all.
        for name in ["gbk_cpg_system", "gbk_cpg_ansi", "gbk_without_cpg"] {
            let err = read_shapefile(
                &corpus(&format!("dbf/{name}.shp")),
                Path::new("u.shp"),
                None,
            )
            .unwrap_err();
            assert!(
                err.message
                    .starts_with("u.shp: record 1: field `NAME` is not valid text"),
                "{name}: {}",
                err.message
            );
            assert!(err.hint.unwrap().contains("`encoding: GBK`"), "{name}");
        }
        let table = read_shapefile(
            &corpus("dbf/gbk_cpg_system.shp"),
            Path::new("u.shp"),
            Some(encoding_rs::GBK),
        )
        .unwrap();
        let super::super::cells::Column::Cells(names) = &table.columns[0].1 else {
            panic!("cells")
        };
        assert_eq!(names, &[Cell::Text("郑州市".to_owned())]);
    }

    #[test]
    fn self_intersections_are_found() {
        let square = LineString::from(vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.0, 0.0),
        ]);
        assert_eq!(ring_self_intersection(&square), None);
        // A repeated vertex is not a self-intersection.
        let repeated = LineString::from(vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.0, 0.0),
        ]);
        assert_eq!(ring_self_intersection(&repeated), None);
        // The bow-tie (0,0) (2,2) (2,0) (0,2): its edges 1 and 3 cross at (1, 1).
        let bow_tie = LineString::from(vec![
            (0.0, 0.0),
            (2.0, 2.0),
            (2.0, 0.0),
            (0.0, 2.0),
            (0.0, 0.0),
        ]);
        assert_eq!(
            ring_self_intersection(&bow_tie),
            Some(Coord { x: 1.0, y: 1.0 })
        );
        // A ring touching itself at the vertex (1, 1) without crossing.
        let touching = LineString::from(vec![
            (0.0, 0.0),
            (2.0, 0.0),
            (1.0, 1.0),
            (2.0, 2.0),
            (0.0, 2.0),
            (1.0, 1.0),
            (0.0, 0.0),
        ]);
        assert_eq!(
            ring_self_intersection(&touching),
            Some(Coord { x: 1.0, y: 1.0 })
        );
        let mp = MultiPolygon(vec![Polygon::new(bow_tie, Vec::new())]);
        assert_eq!(
            geometry_problem(&mp).unwrap(),
            "the exterior ring crosses or touches itself at (1, 1)"
        );
    }

    #[test]
    fn holes_go_to_the_exterior_that_contains_them() {
        // Two squares, then a hole inside the first one (listed last, after the second square).
        let big = LineString::from(vec![
            (0.0, 0.0),
            (0.0, 4.0),
            (4.0, 4.0),
            (4.0, 0.0),
            (0.0, 0.0),
        ]);
        let other = LineString::from(vec![
            (10.0, 0.0),
            (10.0, 1.0),
            (11.0, 1.0),
            (11.0, 0.0),
            (10.0, 0.0),
        ]);
        let hole = LineString::from(vec![
            (1.0, 1.0),
            (2.0, 1.0),
            (2.0, 2.0),
            (1.0, 2.0),
            (1.0, 1.0),
        ]);
        let mp = assemble(vec![(true, big), (true, other), (false, hole)]).unwrap();
        assert_eq!(mp.0[0].interiors().len(), 1);
        assert!(mp.0[1].interiors().is_empty());
        // Areas by hand: 16 - 1 = 15 and 1.
        assert!((mp.0[0].unsigned_area() - 15.0).abs() < 1e-12);
        assert!((mp.unsigned_area() - 16.0).abs() < 1e-12);
        let expected = polygon!(exterior: [(x: 10.0, y: 0.0), (x: 10.0, y: 1.0), (x: 11.0, y: 1.0), (x: 11.0, y: 0.0)], interiors: []);
        assert_eq!(mp.0[1], expected);
    }
}
