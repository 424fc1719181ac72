//! The stage kinds: adapters from Arrow tables to the pure methods and back, one file each.
//! Each kind is one line in [`BUILTIN`].

#[allow(unused_imports)]
use crate::engine::stage::{Entry, StageEntry};

pub mod carbon_panel;
pub mod compensation;
pub mod emission;
pub mod functional_areas;
pub mod indices;
pub mod sink;

/// Every built-in kind, in the order `pipeline stages` lists them.
pub const BUILTIN: &[&dyn StageEntry] = &[
    &Entry::<emission::Emission>::new(),
    &Entry::<sink::Sink>::new(),
    &Entry::<indices::Indices>::new(),
    &Entry::<compensation::Compensation>::new(),
    &Entry::<functional_areas::FunctionalAreas>::new(),
];
