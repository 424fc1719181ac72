//! Regenerates the committed demonstration data under `pipelines/data/` and prints the
//! provincial totals and class shares: `cargo run --example demo_data`.
//! (The `pipeline demo-data` subcommand does the same once wired.)

use std::path::Path;

use pipeline::demo::{Config, Study, generate_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/data");
    for study in [Study::Henan, Study::YellowRiver] {
        let generated = generate_with(&data, &Config::full(study))?;
        print!("{}", generated.summary);
        for f in &generated.files {
            println!("  {} ({} bytes)", f.display(), std::fs::metadata(f)?.len());
        }
    }
    Ok(())
}
