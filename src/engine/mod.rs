//! The generic engine: study spec, plan, cache, scheduler, progress. It sees stages only through
//! the [`stage::Stage`] trait and knows nothing about what they compute.

pub mod cache;
pub mod error;
pub mod invocation;
pub mod key;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod scheduler;
pub mod spec;
pub mod stage;
pub mod suggest;
