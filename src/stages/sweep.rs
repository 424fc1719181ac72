//! `sweep`: Monte-Carlo uncertainty and sensitivity. The kind only declares itself; the engine
//! (`engine::sweep`) gives each sweep the stages it re-runs when it builds the plan.

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::engine::sweep::{self, SweepParams};

pub struct Sweep;

impl Stage for Sweep {
    const KIND: &'static str = sweep::KIND;
    const VERSION: u32 = 1;
    const DOC: &'static str = "Re-runs the stages named in `vary`, and every stage between them and those named in `collect`, for each of `draws` sampled parameter sets, in memory; the rest of the study comes from the cache. A `vary` key `<stage>.<parameter path>` sets one value inside the stage's parameters (a partial override keeps the preset's other values). Outputs: `draws` (every sampled value), per collected name `<name>` (draw, the output's key columns, value) and `<name>_summary` (numbers: mean, sd, p05, p50, p95; text: category, probability, modal_category, modal_probability), and `sensitivity` (Spearman and PRCC of each parameter with each collected name: numbers as their mean over keys, text as the number of keys off their modal category). Key columns are the shortest run of leading text, integer or boolean columns that tells the rows apart. With `--executor slurm` the draws run as batch jobs of 250 draws each (shards `draws0-249`, `draws250-499`, …; docs/cluster.md), and the run merges what they collected into the same outputs, byte for byte, as a local run.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "draws",
            ty: "integer ≥ 2",
            default: "",
            doc: "number of draws",
        },
        ParamDoc {
            name: "seed",
            ty: "integer",
            default: "",
            doc: "seed of the sampling design; a draw depends on (seed, draws, index), not on threads",
        },
        ParamDoc {
            name: "sampling",
            ty: "lhs|random",
            default: "",
            doc: "Latin hypercube (McKay, Beckman & Conover 1979) or independent draws",
        },
        ParamDoc {
            name: "vary",
            ty: "{\"<stage>.<path>\": distribution}",
            default: "",
            doc: "`{uniform: [a, b]}`, `{triangular: [min, mode, max]}`, `{normal: [mean, sd]}` or `{choice: [v1, v2, …]}`",
        },
        ParamDoc {
            name: "collect",
            ty: "{name: \"<stage>[.<output>].<column>\"}",
            default: "",
            doc: "columns to report per draw; each must be downstream of a varied stage",
        },
    ];
    type Params = SweepParams;

    fn required_example() -> serde_json::Value {
        serde_json::json!({
            "seed": 7,
            "vary": {"sink.coefficients.override.forest": {"uniform": [-0.644, -0.578]}},
            "collect": {"nce": "indices.nce_t_c"},
        })
    }

    fn ports(_: &SweepParams) -> Vec<Port> {
        Vec::new()
    }
    fn outputs(params: &SweepParams) -> Vec<OutputDecl> {
        params.outputs()
    }
    fn validate(params: &SweepParams) -> Result<(), StageError> {
        params.validate()
    }
    fn run(_: &SweepParams, _: &Inputs, _: &StageContext) -> Result<Outputs, StageError> {
        Err(sweep::unattached())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documentation_gives_the_number_of_draws_per_batch_job() {
        let phrase = format!("batch jobs of {} draws", sweep::DRAWS_PER_CHUNK);
        assert!(Sweep::DOC.contains(&phrase), "DOC lacks `{phrase}`");
    }
}
