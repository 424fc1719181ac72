//! The generic engine: study spec, plan, cache, scheduler, progress. It sees stages only through
//! the [`stage::Stage`] trait and knows nothing about what they compute.

pub mod stage;
pub mod suggest;
