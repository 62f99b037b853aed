//! The results matrix's verdicts against the expected table, without the rest of `ekg`:
//! what `scripts/model-mutants.sh` runs on each planted bug (it builds `ekg-core` and
//! `ekg-model` only). Prints every cell that differs and exits 1 if any does; `--full` adds
//! the full configurations and `--deep` the deep set (reduced search, as `ekg check`).
//!
//!     cargo run --release -p ekg-model --example verdicts -- [--full] [--timeout-secs N] [--deep] [--only S] [--matrix]
//!
//! `--only S` keeps the configurations whose name contains `S`; `--matrix` also prints the
//! results matrix and every counterexample.

use ekg_model::expected::{deviations, selection};
use ekg_model::report::{Search, check_with};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let timeout = value("--timeout-secs").and_then(|s| s.parse::<u64>().ok()).map(std::time::Duration::from_secs);
    let configs = selection(flag("--full"), flag("--deep"), value("--only").map(String::as_str));
    let mut differ = 0usize;
    let mut outcomes = Vec::new();
    for config in &configs {
        let reduced = config.reduced_search();
        let outcome = check_with(config, Search { threads: 2, dfs: false, timeout, reduced });
        eprintln!("{:<48} {:>9} states {:>7.2}s", config.name, outcome.unique_states, outcome.elapsed.as_secs_f64());
        for d in deviations(&outcome) {
            println!("DIFFERS {d}");
            differ += 1;
        }
        outcomes.push(outcome);
    }
    if flag("--matrix") {
        println!("{}{}", ekg_model::report::matrix(&outcomes), ekg_model::report::traces(&outcomes));
    }
    println!("{differ} cell(s) differ from model/src/expected.rs ({} configurations)", configs.len());
    if differ == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
