//! Pure domain methods: slices and structs in, numbers out. No Arrow, no I/O. Every public
//! function documents its units and the paper it follows.

pub mod cluster_naming;
pub mod coefficients;
pub mod compensation;
pub mod contiguity;
pub mod conversion_carbon;
pub mod emission;
pub mod getis_ord;
pub mod gini;
pub mod indices;
pub mod land_counts;
pub mod land_dynamics;
pub mod landuse_scheme;
pub mod moran;
pub mod mst;
pub mod pixel_area;
pub mod pseudo_f;
pub mod rasterize;
pub mod redcap;
pub mod rng;
pub mod sink;
pub mod skater;
pub mod theil;
pub mod weights;
pub mod zonal;
pub mod zoning;

#[cfg(test)]
mod tests {
    /// `methods` is pure math: it names nothing else of the crate (engine, stages, io, tables)
    /// and reads no files, so each method can be read, tested and reused on its own.
    #[test]
    fn methods_use_nothing_else_of_the_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/methods");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "mod.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("crate::") {
                assert!(
                    text[at..].starts_with("crate::methods::"),
                    "{} names `{}`",
                    path.display(),
                    text[at..].split_whitespace().next().unwrap_or_default()
                );
            }
            for word in ["std::fs", "std::io", "arrow_", "parquet::"] {
                assert!(!text.contains(word), "{} uses `{word}`", path.display());
            }
        }
    }
}
