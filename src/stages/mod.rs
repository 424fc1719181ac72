//! The stage kinds: adapters from Arrow tables to the pure methods and back, one file each.
//! Each kind is one line in [`BUILTIN`].

use crate::engine::stage::{Entry, StageEntry};

pub mod autocorrelation;
pub mod cluster;
pub mod command;
pub mod compensation;
pub mod contiguity;
pub mod emission;
pub mod functional_areas;
pub mod indices;
pub mod inequality;
pub mod ingest;
pub mod landuse;
pub mod presets;
pub mod report;
pub mod schema;
pub mod shared;
pub mod sink;
pub mod sweep;
#[cfg(test)]
pub(crate) mod testing;
pub mod transition_carbon;
pub mod zoning;

/// Every built-in kind, in the order `pipeline stages` lists them: the generic kinds, then the
/// domain kinds in the order a study usually chains them.
pub const BUILTIN: &[&dyn StageEntry] = &[
    &Entry::<ingest::Ingest>::new(),
    &Entry::<command::Command>::new(),
    &Entry::<sweep::Sweep>::new(),
    &Entry::<landuse::LandUse>::new(),
    &Entry::<emission::Emission>::new(),
    &Entry::<sink::Sink>::new(),
    &Entry::<transition_carbon::TransitionCarbon>::new(),
    &Entry::<indices::Indices>::new(),
    &Entry::<inequality::Inequality>::new(),
    &Entry::<autocorrelation::Autocorrelation>::new(),
    &Entry::<contiguity::Contiguity>::new(),
    &Entry::<cluster::Cluster>::new(),
    &Entry::<zoning::Zoning>::new(),
    &Entry::<compensation::Compensation>::new(),
    &Entry::<functional_areas::FunctionalAreas>::new(),
    &Entry::<report::Report>::new(),
];

/// The readers' errors become the stage's at this boundary, so `io` and `engine` need not know
/// each other: bad file contents stay the user's to fix (exit 2), a reader's invariant ours.
impl From<crate::io::IoError> for crate::engine::stage::StageError {
    fn from(e: crate::io::IoError) -> Self {
        use crate::io::IoErrorTier;
        let mut err = match e.tier {
            IoErrorTier::Data => Self::data(e.message),
            IoErrorTier::Internal => Self::internal(e.message),
        };
        err.causes = e.causes;
        err.hint = e.hint;
        err
    }
}
#[cfg(test)]
mod tests;
