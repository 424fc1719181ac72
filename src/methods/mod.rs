//! Pure domain methods: slices and structs in, numbers out. No Arrow, no I/O. Every public
//! function documents its units and the paper it follows.

pub mod contiguity;
pub mod mst;
pub mod pseudo_f;
pub mod redcap;
pub mod skater;
pub mod zoning;
