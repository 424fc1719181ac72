//! The stage kinds: adapters from Arrow tables to the pure methods and back, one file each.
//! Each kind is one line in [`BUILTIN`].

#[allow(unused_imports)]
use crate::engine::stage::{Entry, StageEntry};

pub mod report;

/// Every built-in kind, in the order `pipeline stages` lists them.
pub const BUILTIN: &[&dyn StageEntry] = &[
    &Entry::<report::Report>::new(),
];
