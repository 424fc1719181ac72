//! `pipeline`: reproducible regional carbon-budget studies as YAML-defined, cached DAGs of stages.

pub mod demo;
pub mod engine;
pub mod io;
pub mod methods;
pub mod report;
pub mod stages;
pub mod table;
