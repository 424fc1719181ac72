//! The one integration test binary: every test drives the real `pipeline` binary.

mod common;

mod cache;
mod demo;
mod errors;
mod png;
mod report;
mod run;
mod studies;
mod sweep;
