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
