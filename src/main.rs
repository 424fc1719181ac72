use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pipeline::cli::Cli::parse();
    match pipeline::app::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(diagnostic) => {
            eprint!("{}", diagnostic.render());
            ExitCode::from(diagnostic.tier.exit_code())
        }
    }
}
