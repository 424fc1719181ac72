//! `pipeline`: reproducible regional carbon-budget studies as YAML-defined, cached DAGs of stages.
//!
//! Layout: `engine` (generic: spec, plan, cache, scheduler, progress), `stages` (one file per
//! stage kind), `methods` (pure domain math), `io` (file formats), `table` (column access for
//! stages), `cli` and `app` (the command line).

pub mod app;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod io;
pub mod methods;
pub mod report;
pub mod stages;
pub mod suggest;
pub mod table;
