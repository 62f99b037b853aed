//! `ekg check`: the model checker's results matrix, traces, and the Explorer.

use ekg_core::ledger::ReleasePolicy;
use ekg_model::ModelConfig;
use ekg_model::report::{self, Outcome};
use stateright::Model;

type DynError = Box<dyn std::error::Error>;

/// Runs the matrix (or the Explorer).
pub fn run(full: bool, only: Option<&str>, threads: usize, explore: bool, addr: &str) -> Result<(), DynError> {
    let mut configs = ModelConfig::matrix();
    if full {
        configs.extend([ModelConfig::full(ReleasePolicy::Once), ModelConfig::full(ReleasePolicy::SameCertificate)]);
    }
    if let Some(filter) = only {
        configs.retain(|c| c.name.contains(filter));
    }
    if explore {
        let config = configs.into_iter().next().ok_or("no configuration matches")?;
        println!("Explorer for {} on http://{addr}/ (Ctrl-C to stop)", config.name);
        let _ = config.into_model().checker().threads(threads).serve(addr);
        return Ok(());
    }
    println!(
        "ekg check: {} configurations, {threads} threads, breadth-first, exhaustive within the bounds",
        configs.len()
    );
    let mut outcomes: Vec<Outcome> = Vec::new();
    for config in &configs {
        let outcome = report::check(config, threads);
        eprintln!("  {:<48} {:>9} states {:>7.2}s", config.name, outcome.unique_states, outcome.elapsed.as_secs_f64());
        outcomes.push(outcome);
    }
    println!("\n{}", report::matrix(&outcomes));
    print!("{}", report::traces(&outcomes));
    Ok(())
}
