//! Well-known binary (ISO WKB, little-endian) for the polygon geometries units carry in the
//! `geometry` column of a table. Only what units need: Polygon and MultiPolygon, 2-D
//! (Z/M ordinates, if present, are read and dropped). Points and lines are read for
//! completeness of error messages only.

use geo::{Coord, LineString, MultiPolygon, Polygon};

/// The column that holds unit geometries, by convention, in every table that has them.
pub const GEOMETRY_COLUMN: &str = "geometry";

const POLYGON: u32 = 3;
const MULTIPOLYGON: u32 = 6;

/// Encodes a multipolygon (a single polygon is written as a Polygon).
pub fn encode(geometry: &MultiPolygon<f64>) -> Vec<u8> {
    let mut out = Vec::new();
    if geometry.0.len() == 1 {
        write_polygon(&mut out, &geometry.0[0]);
    } else {
        out.push(1);
        out.extend_from_slice(&MULTIPOLYGON.to_le_bytes());
        out.extend_from_slice(&len_u32(geometry.0.len()).to_le_bytes());
        for p in &geometry.0 {
            write_polygon(&mut out, p);
        }
    }
    out
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).expect("geometries have fewer than 2^32 parts")
}

fn write_polygon(out: &mut Vec<u8>, polygon: &Polygon<f64>) {
    out.push(1);
    out.extend_from_slice(&POLYGON.to_le_bytes());
    let rings: Vec<&LineString<f64>> = std::iter::once(polygon.exterior())
        .chain(polygon.interiors())
        .collect();
    out.extend_from_slice(&len_u32(rings.len()).to_le_bytes());
    for ring in rings {
        out.extend_from_slice(&len_u32(ring.0.len()).to_le_bytes());
        for c in &ring.0 {
            out.extend_from_slice(&c.x.to_le_bytes());
            out.extend_from_slice(&c.y.to_le_bytes());
        }
    }
}

/// Why a WKB value could not be read as (multi)polygons.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WkbError {
    #[error("the geometry ends early (byte {0})")]
    Truncated(usize),
    #[error("geometry type {0} is not a polygon or multipolygon")]
    NotPolygonal(u32),
    #[error("unknown byte order marker {0}")]
    ByteOrder(u8),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    little: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WkbError> {
        let slice = self
            .bytes
            .get(self.pos..self.pos + N)
            .ok_or(WkbError::Truncated(self.pos))?;
        self.pos += N;
        Ok(slice.try_into().expect("slice has length N"))
    }
    fn u8(&mut self) -> Result<u8, WkbError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, WkbError> {
        let b = self.take::<4>()?;
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn f64(&mut self) -> Result<f64, WkbError> {
        let b = self.take::<8>()?;
        Ok(if self.little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }
    fn header(&mut self) -> Result<(u32, usize), WkbError> {
        self.little = match self.u8()? {
            0 => false,
            1 => true,
            other => return Err(WkbError::ByteOrder(other)),
        };
        let raw = self.u32()?;
        // ISO codes: +1000 Z, +2000 M, +3000 ZM; EWKB flags in the high bits.
        let ewkb_dims = usize::from(raw & 0x8000_0000 != 0) + usize::from(raw & 0x4000_0000 != 0);
        if raw & 0x2000_0000 != 0 {
            self.u32()?; // EWKB SRID: coordinates are taken as the table's CRS.
        }
        let base = raw & 0x0FFF_FFFF;
        let iso_dims = match base / 1000 {
            1 | 2 => 1,
            3 => 2,
            _ => 0,
        };
        Ok((base % 1000, 2 + ewkb_dims + iso_dims))
    }
    /// At most how many items of `item_bytes` each the rest of the input can hold: a declared
    /// count reserves no more memory than the bytes that could back it.
    fn room_for(&self, declared: usize, item_bytes: usize) -> usize {
        declared.min(self.bytes.len().saturating_sub(self.pos) / item_bytes)
    }
    fn polygon_body(&mut self, dims: usize) -> Result<Polygon<f64>, WkbError> {
        let n_rings = self.u32()? as usize;
        let mut rings = Vec::with_capacity(self.room_for(n_rings, 4));
        for _ in 0..n_rings {
            let n = self.u32()? as usize;
            let mut coords = Vec::with_capacity(self.room_for(n, 8 * dims));
            for _ in 0..n {
                let x = self.f64()?;
                let y = self.f64()?;
                for _ in 2..dims {
                    self.f64()?;
                }
                coords.push(Coord { x, y });
            }
            rings.push(LineString(coords));
        }
        let mut rings = rings.into_iter();
        let exterior = rings.next().unwrap_or_else(|| LineString(Vec::new()));
        Ok(Polygon::new(exterior, rings.collect()))
    }
}

/// Decodes a Polygon or MultiPolygon.
pub fn decode(bytes: &[u8]) -> Result<MultiPolygon<f64>, WkbError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        little: true,
    };
    let (ty, dims) = r.header()?;
    match ty {
        POLYGON => Ok(MultiPolygon(vec![r.polygon_body(dims)?])),
        MULTIPOLYGON => {
            let n = r.u32()? as usize;
            let mut polys = Vec::with_capacity(r.room_for(n, 9));
            for _ in 0..n {
                let (ty, dims) = r.header()?;
                if ty != POLYGON {
                    return Err(WkbError::NotPolygonal(ty));
                }
                polys.push(r.polygon_body(dims)?);
            }
            Ok(MultiPolygon(polys))
        }
        other => Err(WkbError::NotPolygonal(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn round_trips_polygon_with_hole_and_multipolygon() {
        let with_hole = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 4.0, y: 4.0), (x: 0.0, y: 0.0)],
            interiors: [[(x: 1.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 2.0), (x: 1.0, y: 1.0)]],
        );
        let single = MultiPolygon(vec![with_hole.clone()]);
        assert_eq!(decode(&encode(&single)).unwrap(), single);
        let multi = MultiPolygon(vec![with_hole.clone(), with_hole]);
        assert_eq!(decode(&encode(&multi)).unwrap(), multi);
        // A polygon is 1 + 4 + 4 bytes of header, then per ring a count and 16 bytes a point.
        assert_eq!(encode(&single).len(), 9 + 2 * 4 + 8 * 16);
    }

    #[test]
    fn rejects_points_and_truncation() {
        let point = [
            1u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(decode(&point), Err(WkbError::NotPolygonal(1)));
        assert!(matches!(
            decode(&[1, 3, 0, 0, 0, 1]),
            Err(WkbError::Truncated(_))
        ));
    }

    #[test]
    fn huge_declared_counts_reserve_memory_for_the_bytes_present_only() {
        // A polygon of one ring declaring 2^32 - 1 points, then one point: 16 bytes of points
        // can hold one coordinate pair, so that is all the reader may reserve before it finds
        // the input truncated (it used to reserve 2^20 points, 16 MiB, for 29 bytes).
        let mut wkb = vec![1u8, 3, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        wkb.extend_from_slice(&[0; 16]);
        let reader = Reader {
            bytes: &wkb,
            pos: 13,
            little: true,
        };
        assert_eq!(reader.room_for(u32::MAX as usize, 16), 1);
        assert_eq!(decode(&wkb), Err(WkbError::Truncated(29)));
    }
}
