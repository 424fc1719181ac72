//! The one integration test binary: every test drives the real `pipeline` binary, except the
//! malformed-input corpus, which calls each format's reader directly.

mod common;

mod cache;
mod corpus;
mod demo;
mod errors;
mod hygiene;
mod mistakes;
mod national;
mod png;
mod publish;
mod report;
mod row_order;
mod run;
mod slurm;
mod studies;
mod sweep;
mod wetland;
