//! Pure domain methods: slices and structs in, numbers out. No Arrow, no I/O. Every public
//! function documents its units and the paper it follows.

pub mod coefficients;
pub mod compensation;
pub mod emission;
pub mod indices;
pub mod sink;
