//! Pure domain methods: slices and structs in, numbers out. No Arrow, no I/O. Every public
//! function documents its units and the paper it follows.

pub mod landuse_scheme;
pub mod pixel_area;
pub mod rasterize;
pub mod zonal;
