//! What several kinds share and no kind owns: the carbon panel of the accounting kinds, the
//! grouping of rows by `by`/`year`, and unit-id helpers. Nothing here is a kind.

pub mod carbon_panel;
pub(crate) mod groups;
pub(crate) mod units;
