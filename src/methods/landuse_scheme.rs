//! Reclassification of land-use / land-cover codes to the six carbon-accounting classes
//! (cultivated, forest, grassland, water, construction, unused), optionally with a seventh,
//! wetland: the built-in CLCD, CNLUCC and IGBP schemes and user tables. Knows codes and
//! classes, not files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One of the six land classes every carbon-budget stage works with, or the optional seventh,
/// wetland (kept apart only when a study asks for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LandClass {
    Cultivated,
    Forest,
    Grassland,
    Water,
    Construction,
    Unused,
    Wetland,
}

impl LandClass {
    /// The six classes in their canonical order (the order rows come out in).
    pub const ALL: [LandClass; 6] = [
        LandClass::Cultivated,
        LandClass::Forest,
        LandClass::Grassland,
        LandClass::Water,
        LandClass::Construction,
        LandClass::Unused,
    ];

    /// The six classes followed by wetland: the classes of a study that keeps wetland apart.
    pub const WITH_WETLAND: [LandClass; 7] = [
        LandClass::Cultivated,
        LandClass::Forest,
        LandClass::Grassland,
        LandClass::Water,
        LandClass::Construction,
        LandClass::Unused,
        LandClass::Wetland,
    ];

    /// The name used in tables (`cultivated`, `forest`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LandClass::Cultivated => "cultivated",
            LandClass::Forest => "forest",
            LandClass::Grassland => "grassland",
            LandClass::Water => "water",
            LandClass::Construction => "construction",
            LandClass::Unused => "unused",
            LandClass::Wetland => "wetland",
        }
    }

    /// Position in [`LandClass::WITH_WETLAND`] (0–6).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a class name (case-insensitive, surrounding spaces ignored).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::landuse_scheme::LandClass;
    /// assert_eq!(LandClass::parse(" Forest "), Some(LandClass::Forest));
    /// assert_eq!(LandClass::parse("wetland"), Some(LandClass::Wetland));
    /// assert_eq!(LandClass::parse("marsh"), None);
    /// ```
    pub fn parse(name: &str) -> Option<LandClass> {
        let name = name.trim().to_ascii_lowercase();
        LandClass::WITH_WETLAND
            .into_iter()
            .find(|c| c.as_str() == name)
            .or_else(|| {
                CHINESE_CLASS_NAMES
                    .iter()
                    .find(|(zh, _)| *zh == name)
                    .map(|(_, c)| *c)
            })
    }
}

/// The first-level classes as Chinese tables name them, accepted wherever a class name is:
/// CNLUCC's six first-level classes (刘纪远 et al., RESDC land use/cover classification;
/// 耕地, 林地, 草地, 水域, 城乡、工矿、居民用地, 未利用土地) and the first-level classes of
/// GB/T 21010-2017 *Current land use classification* that correspond one to one
/// (耕地, 林地, 草地, 水域及水利设施用地, 其他土地 is not listed: it mixes bare land with
/// facility land), plus the everyday 建设用地 and 未利用地.
///
/// # Examples
/// ```
/// use pipeline::methods::landuse_scheme::LandClass;
/// assert_eq!(LandClass::parse("水域及水利设施用地"), Some(LandClass::Water));
/// assert_eq!(LandClass::parse("城乡、工矿、居民用地"), Some(LandClass::Construction));
/// ```
pub const CHINESE_CLASS_NAMES: &[(&str, LandClass)] = &[
    ("耕地", LandClass::Cultivated),
    ("林地", LandClass::Forest),
    ("草地", LandClass::Grassland),
    ("水域", LandClass::Water),
    ("水域及水利设施用地", LandClass::Water),
    ("建设用地", LandClass::Construction),
    ("城乡、工矿、居民用地", LandClass::Construction),
    ("城乡工矿居民用地", LandClass::Construction),
    ("未利用地", LandClass::Unused),
    ("未利用土地", LandClass::Unused),
];

impl fmt::Display for LandClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scheme says about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// The code belongs to a carbon class.
    Class(LandClass),
    /// The code is fill / no data / outside the study (e.g. CLCD 0, CNLUCC 99 sea, IGBP 255):
    /// its pixels are counted in `codes` but not in any class.
    Excluded,
    /// The scheme does not know the code: reported as a warning, not counted in any class.
    Unmapped,
}

/// A code → class table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// Name for messages (`clcd`, `cnlucc`, `igbp`, or the CSV path).
    pub name: String,
    map: BTreeMap<i64, Option<LandClass>>,
    /// CNLUCC only: map three-digit codes by their first two digits (111 → 11).
    third_level_by_prefix: bool,
    /// Codes the nomenclature names wetland; `map` holds the six-class class they fold into
    /// unless [`Scheme::with_wetland_class`] keeps them apart.
    wetland_codes: BTreeSet<i64>,
}

impl Scheme {
    /// A scheme from explicit pairs; `None` marks an excluded (fill) code.
    pub fn from_pairs(
        name: impl Into<String>,
        pairs: impl IntoIterator<Item = (i64, Option<LandClass>)>,
    ) -> Scheme {
        Scheme {
            name: name.into(),
            map: pairs.into_iter().collect(),
            third_level_by_prefix: false,
            wetland_codes: BTreeSet::new(),
        }
    }

    /// Marks `codes` as wetland codes of the nomenclature (their class in the map is what they
    /// fold into by default).
    fn with_wetland_codes(mut self, codes: impl IntoIterator<Item = i64>) -> Scheme {
        self.wetland_codes.extend(codes);
        self
    }

    /// The scheme with its wetland codes mapped to [`LandClass::Wetland`] instead of the class
    /// they fold into by default (CLCD 9 and IGBP 11 → water, CNLUCC 64 marsh → unused).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::landuse_scheme::{CodeClass, LandClass, Scheme};
    /// let clcd = Scheme::builtin("clcd").unwrap();
    /// assert_eq!(clcd.classify(9), CodeClass::Class(LandClass::Water));
    /// let kept = clcd.with_wetland_class();
    /// assert_eq!(kept.classify(9), CodeClass::Class(LandClass::Wetland));
    /// assert_eq!(kept.classify(5), CodeClass::Class(LandClass::Water));
    /// ```
    #[must_use]
    pub fn with_wetland_class(mut self) -> Scheme {
        for code in &self.wetland_codes {
            self.map.insert(*code, Some(LandClass::Wetland));
        }
        self
    }

    /// A built-in scheme by name: `clcd`, `cnlucc` or `igbp`.
    ///
    /// # References
    /// See [`clcd`], [`cnlucc`] and [`igbp`].
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::landuse_scheme::{CodeClass, LandClass, Scheme};
    /// let s = Scheme::builtin("clcd").unwrap();
    /// assert_eq!(s.classify(2), CodeClass::Class(LandClass::Forest));
    /// assert!(Scheme::builtin("corine").is_none());
    /// ```
    pub fn builtin(name: &str) -> Option<Scheme> {
        match name {
            "clcd" => Some(clcd()),
            "cnlucc" => Some(cnlucc()),
            "igbp" => Some(igbp()),
            _ => None,
        }
    }

    /// The names of the built-in schemes.
    pub const BUILTIN: [&'static str; 3] = ["clcd", "cnlucc", "igbp"];

    /// The class of a code.
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::landuse_scheme::{CodeClass, LandClass, Scheme};
    /// let cnlucc = Scheme::builtin("cnlucc").unwrap();
    /// assert_eq!(cnlucc.classify(52), CodeClass::Class(LandClass::Construction));
    /// assert_eq!(cnlucc.classify(123), CodeClass::Class(LandClass::Cultivated)); // third level
    /// assert_eq!(cnlucc.classify(99), CodeClass::Excluded); // sea
    /// assert_eq!(cnlucc.classify(77), CodeClass::Unmapped);
    /// ```
    pub fn classify(&self, code: i64) -> CodeClass {
        match self.map.get(&code) {
            Some(Some(c)) => CodeClass::Class(*c),
            Some(None) => CodeClass::Excluded,
            None if self.third_level_by_prefix && (100..1000).contains(&code) => {
                match self.map.get(&(code / 10)) {
                    Some(Some(c)) if code / 10 >= 10 => CodeClass::Class(*c),
                    _ => CodeClass::Unmapped,
                }
            }
            None => CodeClass::Unmapped,
        }
    }
}

/// CLCD (Yang & Huang 2021) values 1–9 to the six classes; 0 (fill) excluded.
///
/// Snow/ice (6) and barren (7) → unused; wetland (9) → water (or wetland, see
/// [`Scheme::with_wetland_class`]); shrub (3) → forest.
///
/// # References
/// Yang, J., Huang, X. (2021). The 30 m annual land cover dataset and its dynamics in China from
/// 1990 to 2019. *Earth System Science Data* 13, 3907–3925. doi:10.5194/essd-13-3907-2021.
///
/// # Examples
/// ```
/// use pipeline::methods::landuse_scheme::{clcd, CodeClass, LandClass};
/// assert_eq!(clcd().classify(8), CodeClass::Class(LandClass::Construction));
/// ```
pub fn clcd() -> Scheme {
    use LandClass::{Construction, Cultivated, Forest, Grassland, Unused, Water};
    Scheme::from_pairs(
        "clcd",
        [
            (0, None),
            (1, Some(Cultivated)),
            (2, Some(Forest)),
            (3, Some(Forest)),
            (4, Some(Grassland)),
            (5, Some(Water)),
            (6, Some(Unused)),
            (7, Some(Unused)),
            (8, Some(Construction)),
            (9, Some(Water)),
        ],
    )
    .with_wetland_codes([9])
}

/// CNLUCC (RESDC/CAS) first-level codes 1–6, second-level codes 11–67 and third-level
/// cropland codes 111–124 (by their first two digits); 99 (sea) excluded.
///
/// Glacier/snow (44) stays water with its first-level class; marsh (64), the CNLUCC wetland,
/// stays unused with its first-level class (or wetland, see [`Scheme::with_wetland_class`]).
///
/// # References
/// Liu, J. et al. (2014). Spatiotemporal characteristics, patterns, and causes of land-use
/// changes in China since the late 1980s. *Journal of Geographical Sciences* 24(2), 195–210.
///
/// # Examples
/// ```
/// use pipeline::methods::landuse_scheme::{cnlucc, CodeClass, LandClass};
/// assert_eq!(cnlucc().classify(3), CodeClass::Class(LandClass::Grassland));
/// assert_eq!(cnlucc().classify(46), CodeClass::Class(LandClass::Water));
/// ```
pub fn cnlucc() -> Scheme {
    let mut pairs: Vec<(i64, Option<LandClass>)> = Vec::new();
    let first: [(i64, LandClass, &[i64]); 6] = [
        (1, LandClass::Cultivated, &[11, 12]),
        (2, LandClass::Forest, &[21, 22, 23, 24]),
        (3, LandClass::Grassland, &[31, 32, 33]),
        (4, LandClass::Water, &[41, 42, 43, 44, 45, 46]),
        (5, LandClass::Construction, &[51, 52, 53]),
        (6, LandClass::Unused, &[61, 62, 63, 64, 65, 66, 67]),
    ];
    for (code, class, second) in first {
        pairs.push((code, Some(class)));
        pairs.extend(second.iter().map(|&c| (c, Some(class))));
    }
    pairs.push((99, None));
    let mut scheme = Scheme::from_pairs("cnlucc", pairs).with_wetland_codes([64]);
    scheme.third_level_by_prefix = true;
    scheme
}

/// MODIS IGBP land-cover types (MCD12Q1/MCD12C1 LC_Type1) to the six classes: 0 water → water;
/// 1–8 forests, shrublands and woody savannas → forest; 9–10 savannas, grassland → grassland;
/// 11 permanent wetland → water (or wetland, see [`Scheme::with_wetland_class`]); 12 cropland and 14 cropland/natural mosaic → cultivated;
/// 13 urban → construction; 15 snow/ice and 16 barren → unused; 255 fill excluded.
///
/// # References
/// Friedl, M. A. et al. (2010). MODIS Collection 5 global land cover: Algorithm refinements
/// and characterization of new datasets. *Remote Sensing of Environment* 114(1), 168–182.
///
/// # Examples
/// ```
/// use pipeline::methods::landuse_scheme::{igbp, CodeClass, LandClass};
/// assert_eq!(igbp().classify(14), CodeClass::Class(LandClass::Cultivated));
/// assert_eq!(igbp().classify(255), CodeClass::Excluded);
/// ```
pub fn igbp() -> Scheme {
    use LandClass::{Construction, Cultivated, Forest, Grassland, Unused, Water};
    let mut pairs = vec![(0, Some(Water)), (255, None)];
    pairs.extend((1..=8).map(|c| (c, Some(Forest))));
    pairs.extend([
        (9, Some(Grassland)),
        (10, Some(Grassland)),
        (11, Some(Water)),
    ]);
    pairs.extend([
        (12, Some(Cultivated)),
        (13, Some(Construction)),
        (14, Some(Cultivated)),
    ]);
    pairs.extend([(15, Some(Unused)), (16, Some(Unused))]);
    Scheme::from_pairs("igbp", pairs).with_wetland_codes([11])
}

/// Why a user scheme table was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("line {line}: code `{code}` is not a whole number")]
    CodeInvalid { line: usize, code: String },
    #[error(
        "line {line}: class `{class}` is not one of cultivated, forest, grassland, water, construction, unused, wetland, excluded"
    )]
    ClassUnknown { line: usize, class: String },
    #[error("line {line}: code {code} is listed twice")]
    CodeDuplicate { line: usize, code: i64 },
    #[error("line {line}: expected two fields `code,class`")]
    FieldsMissing { line: usize },
}

/// Builds a scheme from `(line, code, class)` text rows of a user table; the class may also
/// be `excluded` (or `nodata`) for fill codes, or `wetland` (water unless the study keeps
/// wetland apart, see [`Scheme::with_wetland_class`]). Class names are case-insensitive.
///
/// # Units
/// Codes are the raster's integer values; classes are names.
///
/// # References
/// A user's own reclassification table (e.g. for GlobeLand30 or ESA WorldCover codes).
///
/// # Examples
/// ```
/// use pipeline::methods::landuse_scheme::{scheme_from_rows, CodeClass, LandClass};
/// // ESA WorldCover: 10 tree cover, 40 cropland, 50 built-up, 0 no data.
/// let rows = vec![
///     (2, "10".to_owned(), "forest".to_owned()),
///     (3, "40".to_owned(), "Cultivated".to_owned()),
///     (4, "50".to_owned(), "construction".to_owned()),
///     (5, "0".to_owned(), "excluded".to_owned()),
/// ];
/// let s = scheme_from_rows("worldcover.csv", &rows).unwrap();
/// assert_eq!(s.classify(40), CodeClass::Class(LandClass::Cultivated));
/// assert_eq!(s.classify(0), CodeClass::Excluded);
/// assert_eq!(s.classify(60), CodeClass::Unmapped);
/// ```
pub fn scheme_from_rows(
    name: &str,
    rows: &[(usize, String, String)],
) -> Result<Scheme, SchemeError> {
    let mut map = BTreeMap::new();
    let mut wetland_codes = Vec::new();
    for (line, code, class) in rows {
        let line = *line;
        let code_v: i64 = code.trim().parse().map_err(|_| SchemeError::CodeInvalid {
            line,
            code: code.clone(),
        })?;
        let class_v = match class.trim().to_ascii_lowercase().as_str() {
            "excluded" | "nodata" | "none" => None,
            "wetland" => {
                wetland_codes.push(code_v);
                Some(LandClass::Water)
            }
            other => Some(
                LandClass::parse(other).ok_or_else(|| SchemeError::ClassUnknown {
                    line,
                    class: class.clone(),
                })?,
            ),
        };
        if map.insert(code_v, class_v).is_some() {
            return Err(SchemeError::CodeDuplicate { line, code: code_v });
        }
    }
    Ok(Scheme::from_pairs(name, map).with_wetland_codes(wetland_codes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_follow_the_published_class_lists() {
        // CLCD classes (Yang & Huang 2021, ESSD 13: 3907–3925): 1 crop, 2 forest, 3 shrub, 4 grass, 5 water, 6 snow, 7 barren,
        // 8 impervious, 9 wetland.
        let expect = [
            "cultivated",
            "forest",
            "forest",
            "grassland",
            "water",
            "unused",
            "unused",
            "construction",
            "water",
        ];
        for (i, name) in expect.iter().enumerate() {
            assert_eq!(
                clcd().classify(i as i64 + 1),
                CodeClass::Class(LandClass::parse(name).unwrap())
            );
        }
        assert_eq!(clcd().classify(0), CodeClass::Excluded);
        assert_eq!(clcd().classify(10), CodeClass::Unmapped);
        // CNLUCC: every second-level code maps like its first digit; 111–114 and 121–124 are cropland.
        let c = cnlucc();
        for code in [11, 12, 21, 24, 31, 33, 41, 46, 51, 53, 61, 67] {
            assert_eq!(c.classify(code), c.classify(code / 10), "code {code}");
        }
        for code in [111, 114, 121, 124] {
            assert_eq!(c.classify(code), CodeClass::Class(LandClass::Cultivated));
        }
        assert_eq!(c.classify(134), CodeClass::Unmapped);
        assert_eq!(c.classify(25), CodeClass::Unmapped);
        // IGBP LC_Type1 classes (Friedl et al. 2010, Remote Sensing of Environment 114: 168–182).
        let g = igbp();
        let expect = [
            (0, "water"),
            (1, "forest"),
            (8, "forest"),
            (9, "grassland"),
            (10, "grassland"),
            (11, "water"),
            (12, "cultivated"),
            (13, "construction"),
            (14, "cultivated"),
            (15, "unused"),
            (16, "unused"),
        ];
        for (code, name) in expect {
            assert_eq!(
                g.classify(code),
                CodeClass::Class(LandClass::parse(name).unwrap()),
                "igbp {code}"
            );
        }
        assert_eq!(g.classify(17), CodeClass::Unmapped);
    }

    #[test]
    fn wetland_codes_fold_by_default_and_stay_apart_on_request() {
        let wet = CodeClass::Class(LandClass::Wetland);
        // Defaults as the published tables: CLCD 9 and IGBP 11 → water, CNLUCC 64 marsh → unused.
        assert_eq!(clcd().classify(9), CodeClass::Class(LandClass::Water));
        assert_eq!(igbp().classify(11), CodeClass::Class(LandClass::Water));
        assert_eq!(cnlucc().classify(64), CodeClass::Class(LandClass::Unused));
        assert_eq!(clcd().with_wetland_class().classify(9), wet);
        assert_eq!(igbp().with_wetland_class().classify(11), wet);
        let c = cnlucc().with_wetland_class();
        assert_eq!(c.classify(64), wet);
        // Only the wetland code moves: its neighbours keep their classes.
        assert_eq!(c.classify(63), CodeClass::Class(LandClass::Unused));
        assert_eq!(c.classify(6), CodeClass::Class(LandClass::Unused));
        assert_eq!(
            clcd().with_wetland_class().classify(5),
            CodeClass::Class(LandClass::Water)
        );
        // A user table's `wetland` rows behave the same way.
        let rows = vec![(2, "9".to_owned(), "Wetland".to_owned())];
        let s = scheme_from_rows("my.csv", &rows).unwrap();
        assert_eq!(s.classify(9), CodeClass::Class(LandClass::Water));
        assert_eq!(s.with_wetland_class().classify(9), wet);
    }

    #[test]
    fn user_rows_are_validated() {
        let rows = vec![
            (2, "7".to_owned(), "Forest".to_owned()),
            (3, "0".to_owned(), "nodata".to_owned()),
        ];
        let s = scheme_from_rows("my.csv", &rows).unwrap();
        assert_eq!(s.classify(7), CodeClass::Class(LandClass::Forest));
        assert_eq!(s.classify(0), CodeClass::Excluded);
        let bad = vec![(4, "7".to_owned(), "marsh".to_owned())];
        assert_eq!(
            scheme_from_rows("x", &bad).unwrap_err(),
            SchemeError::ClassUnknown {
                line: 4,
                class: "marsh".into()
            }
        );
        let dup = vec![
            (2, "7".to_owned(), "forest".to_owned()),
            (3, "7".to_owned(), "water".to_owned()),
        ];
        assert_eq!(
            scheme_from_rows("x", &dup).unwrap_err(),
            SchemeError::CodeDuplicate { line: 3, code: 7 }
        );
    }
}
