//! The one integration test binary: every test drives the real `pipeline` binary.

mod common;

mod cache;
mod demo;
mod errors;
mod hygiene;
mod mistakes;
mod png;
mod publish;
mod report;
mod row_order;
mod run;
mod studies;
mod wetland;
