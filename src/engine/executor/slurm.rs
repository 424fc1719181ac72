//! The SLURM executor.
