//! The stage kinds: adapters from Arrow tables to the pure methods and back, one file each.
//! Each kind is one line in [`BUILTIN`].

use crate::engine::stage::{Entry, StageEntry};

pub mod presets;
pub mod shared;
#[cfg(test)]
pub(crate) mod testing;

/// Declares each kind's module and its entry in [`BUILTIN`] from one line, `module::Kind`,
/// so a new kind is its own file plus one line here.
macro_rules! kinds {
    ($($module:ident :: $kind:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every built-in kind, in the order `pipeline stages` lists them: the generic kinds,
        /// then the domain kinds in the order a study usually chains them.
        pub const BUILTIN: &[&dyn StageEntry] = &[$(&Entry::<$module::$kind>::new()),*];
    };
}

kinds! {
    ingest::Ingest,
    command::Command,
    sweep::Sweep,
    landuse::LandUse,
    emission::Emission,
    sink::Sink,
    transition_carbon::TransitionCarbon,
    indices::Indices,
    inequality::Inequality,
    autocorrelation::Autocorrelation,
    contiguity::Contiguity,
    cluster::Cluster,
    zoning::Zoning,
    compensation::Compensation,
    functional_areas::FunctionalAreas,
    report::Report,
}

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
