//! The display projection of the report's maps: Albers equal-area conic on the WGS 84
//! ellipsoid, the projection of the CLCD/CNLUCC grids (lat_1 = 25°, lat_2 = 47°,
//! lon_0 = 105°, lat_0 = 0°). Small and self-contained so the report needs no PROJ.

/// Albers equal-area conic parameters (degrees) on an ellipsoid (semi-major axis `a` in
/// metres, first eccentricity squared `e2`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Albers {
    pub lat_1: f64,
    pub lat_2: f64,
    pub lat_0: f64,
    pub lon_0: f64,
    pub a: f64,
    pub e2: f64,
}

/// WGS 84 semi-major axis (m) and flattening.
const WGS84_A: f64 = 6_378_137.0;
const WGS84_F: f64 = 1.0 / 298.257_223_563;

impl Albers {
    /// The Albers grid of the Chinese land-use products on WGS 84.
    pub fn china() -> Self {
        Self {
            lat_1: 25.0,
            lat_2: 47.0,
            lat_0: 0.0,
            lon_0: 105.0,
            a: WGS84_A,
            e2: WGS84_F * (2.0 - WGS84_F),
        }
    }

    fn m(&self, sin_phi: f64) -> f64 {
        (1.0 - sin_phi * sin_phi).sqrt() / (1.0 - self.e2 * sin_phi * sin_phi).sqrt()
    }

    fn q(&self, sin_phi: f64) -> f64 {
        let e2 = self.e2;
        if e2 == 0.0 {
            return 2.0 * sin_phi;
        }
        let e = e2.sqrt();
        let es = e * sin_phi;
        (1.0 - e2)
            * (sin_phi / (1.0 - es * es) - (1.0 / (2.0 * e)) * ((1.0 - es) / (1.0 + es)).ln())
    }

    /// Projects longitude/latitude (degrees) to easting/northing (metres).
    ///
    /// # Units
    /// Degrees in, metres out.
    ///
    /// # References
    /// Snyder, J. P. (1987). *Map Projections — A Working Manual*. USGS Professional Paper 1395,
    /// pp. 98–103, equations (14-3) to (14-6) and (3-12) for q, (14-15) for m.
    ///
    /// # Examples
    /// ```
    /// use pipeline::report::projection::Albers;
    /// // pyproj 3.7.2 / PROJ 9.5.1, `+proj=aea +lat_1=25 +lat_2=47 +lon_0=105 +ellps=WGS84`:
    /// // (113, 34) → (725596.5505, 3651150.3699).
    /// let (x, y) = Albers::china().project(113.0, 34.0);
    /// assert!((x - 725596.5505).abs() < 1e-3 && (y - 3651150.3699).abs() < 1e-3);
    /// ```
    pub fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (s1, s2, s0) = (
            self.lat_1.to_radians().sin(),
            self.lat_2.to_radians().sin(),
            self.lat_0.to_radians().sin(),
        );
        let (m1, m2) = (self.m(s1), self.m(s2));
        let (q1, q2, q0) = (self.q(s1), self.q(s2), self.q(s0));
        let n = if (self.lat_1 - self.lat_2).abs() < 1e-12 {
            s1
        } else {
            (m1 * m1 - m2 * m2) / (q2 - q1)
        };
        let c = m1 * m1 + n * q1;
        let rho0 = self.a * (c - n * q0).max(0.0).sqrt() / n;
        let q = self.q(lat.to_radians().sin());
        let rho = self.a * (c - n * q).max(0.0).sqrt() / n;
        let mut dlon = lon - self.lon_0;
        if dlon > 180.0 {
            dlon -= 360.0;
        } else if dlon < -180.0 {
            dlon += 360.0;
        }
        let theta = n * dlon.to_radians();
        (rho * theta.sin(), rho0 - rho * theta.cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pyproj() {
        // Reference values from pyproj 3.7.2 (PROJ 9.5.1) in a throwaway venv:
        // Transformer.from_crs("EPSG:4326", "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105
        // +ellps=WGS84 +units=m", always_xy=True).transform(lon, lat)
        let cases = [
            ((113.0, 34.0), (725596.5505, 3651150.3699)),
            ((96.0, 40.0), (-754687.0963, 4334090.3476)),
            ((105.0, 25.0), (0.0, 2613973.6597)),
            ((119.1, 37.75), (1215974.6927, 4132109.5342)),
        ];
        let p = Albers::china();
        for ((lon, lat), (ex, ey)) in cases {
            let (x, y) = p.project(lon, lat);
            assert!(
                (x - ex).abs() < 1e-3 && (y - ey).abs() < 1e-3,
                "({lon}, {lat}) → ({x}, {y})"
            );
        }
    }
}
