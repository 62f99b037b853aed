//! `ekg check`: the model checker's results matrix, traces, and the Explorer.

use ekg_core::ledger::ReleasePolicy;
use ekg_model::ModelConfig;
use ekg_model::report::{self, Outcome, Search};
use stateright::Model;

type DynError = Box<dyn std::error::Error>;

/// Runs the matrix (or the Explorer).
pub fn run(full: bool, only: Option<&str>, search: Search, explore: bool, addr: &str) -> Result<(), DynError> {
    let mut configs = ModelConfig::matrix();
    let fulls = [
        ModelConfig::full(ReleasePolicy::Once),
        ModelConfig::full(ReleasePolicy::SameCertificate),
        ModelConfig::full_draft(ReleasePolicy::Once),
        ModelConfig::full_draft(ReleasePolicy::SameCertificate),
    ];
    if full {
        configs.extend(fulls.iter().cloned());
    }
    if let Some(filter) = only {
        configs.retain(|c| c.name.contains(filter));
    }
    if explore {
        let config = configs.into_iter().next().ok_or("no configuration matches")?;
        println!("Explorer for {} on http://{addr}/ (Ctrl-C to stop)", config.name);
        let _ = config.into_model().checker().threads(search.threads).serve(addr);
        return Ok(());
    }
    let how = match (search.reduced, search.dfs) {
        (true, _) => "reduced parallel breadth-first",
        (false, true) => "depth-first",
        (false, false) => "breadth-first (the full configuration: reduced)",
    };
    let limit = search
        .timeout
        .map_or("exhaustive within the bounds".to_string(), |t| format!("at most {} s each", t.as_secs()));
    println!("ekg check: {} configurations, {} threads, {how}, {limit}", configs.len(), search.threads);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for config in &configs {
        // The full configuration is only feasible with the reduction (docs/model.md §7).
        let reduced = search.reduced || fulls.contains(config);
        let outcome = report::check_with(config, report::Search { reduced, ..search });
        eprintln!("  {:<48} {:>9} states {:>7.2}s", config.name, outcome.unique_states, outcome.elapsed.as_secs_f64());
        outcomes.push(outcome);
    }
    println!("\n{}", report::matrix(&outcomes));
    print!("{}", report::traces(&outcomes));
    Ok(())
}
