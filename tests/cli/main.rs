//! The one integration test binary: every test drives the real `pipeline` binary.

mod common;

mod cache;
mod errors;
mod run;
mod studies;
