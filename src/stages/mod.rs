//! The stage kinds: adapters from Arrow tables to the pure methods and back, one file each.
//! Each kind is one line in [`BUILTIN`].

use crate::engine::stage::{Entry, StageEntry};

pub mod command;
pub mod ingest;

/// Every built-in kind, in the order `pipeline stages` lists them.
pub const BUILTIN: &[&dyn StageEntry] = &[
    &Entry::<ingest::Ingest>::new(),
    &Entry::<command::Command>::new(),
];
