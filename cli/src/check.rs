//! `ekg check`: the model checker's results matrix, traces, and the Explorer. The run fails
//! (exit 1) when any cell differs from the expected table (`model/src/expected.rs`).

use std::net::SocketAddr;

use ekg_model::expected::{deviations, selection};
use ekg_model::report::{self, Outcome, Search};

type DynError = Box<dyn std::error::Error>;

/// Longest time limit per configuration: a day.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;
/// Most checker threads.
pub const MAX_THREADS: usize = 256;

/// What `ekg check` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also check the full configuration (3 recipients, both gateways, attacker, lossy
    /// duplicating network, one crash) under both policies, the gatekeeper as ekg-core
    /// implements it (`+v14`; about 30 s).
    #[arg(long)]
    pub full: bool,
    /// Also check the deep set: the full configuration with the draft's key issuance
    /// (minutes and several GiB; docs/model.md §7 has the figures).
    #[arg(long)]
    pub deep: bool,
    /// Only configurations whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Checker threads (1 to 256).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Serve stateright's Explorer for the first selected configuration instead.
    #[arg(long)]
    pub explore: bool,
    /// Explorer address (a loopback IP and port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Depth-first search (memory: fingerprints only) instead of breadth-first.
    #[arg(long)]
    pub dfs: bool,
    /// The reduced search for every configuration: parallel breadth-first, deduplicating
    /// on a representative (symmetry and write-only facts; docs/model.md §7); it does not
    /// evaluate `eventually`. The full configuration always uses it.
    #[arg(long)]
    pub reduced: bool,
    /// Stop each configuration after this many seconds (1 to 86400; marked TRUNCATED, and
    /// the run then fails: a cut search proves nothing).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
}

/// Runs the matrix (or the Explorer). `Ok(false)`: some cell differs from the table.
pub fn run(args: &Args) -> Result<bool, DynError> {
    let (full, deep, only) = (args.full, args.deep, args.only.as_deref());
    let timeout = args.timeout_secs.map(std::time::Duration::from_secs);
    let search = Search { threads: args.threads, dfs: args.dfs, timeout, reduced: args.reduced };
    let explore = args.explore.then_some(args.addr);
    if !(1..=MAX_THREADS).contains(&search.threads) {
        return Err(format!("--threads must be 1 to {MAX_THREADS}").into());
    }
    if search.timeout.is_some_and(|t| t.as_secs() == 0 || t.as_secs() > MAX_TIMEOUT_SECS) {
        return Err(format!("--timeout-secs must be 1 to {MAX_TIMEOUT_SECS}").into());
    }
    let configs = selection(full, deep, only);
    if let Some(filter) = only
        && configs.is_empty()
    {
        return Err(
            format!("--only {filter:?} matches no configuration (without --full or --deep: the matrix only)").into()
        );
    }
    if let Some(addr) = explore {
        if !addr.ip().is_loopback() {
            return Err(format!("--addr {addr}: the Explorer serves on a loopback address only").into());
        }
        let config = configs.into_iter().next().ok_or("no configuration matches")?;
        println!("Explorer for {} on http://{addr}/ (Ctrl-C to stop)", config.name);
        ekg_model::explore(config, search.threads, addr);
        return Ok(true);
    }
    let how = match (search.reduced, search.dfs) {
        (true, _) => "reduced parallel breadth-first",
        (false, true) => "depth-first",
        (false, false) => "breadth-first (duplicating with a crash: reduced)",
    };
    let limit = search
        .timeout
        .map_or("exhaustive within the bounds".to_string(), |t| format!("at most {} s each", t.as_secs()));
    println!("ekg check: {} configurations, {} threads, {limit};", configs.len(), search.threads);
    println!("  search: {how}");
    let mut outcomes: Vec<Outcome> = Vec::new();
    for config in &configs {
        // A duplicating network with a crash (the full configuration, the deep set, two
        // matrix rows) is only feasible with the reduction (docs/model.md §7).
        let reduced = search.reduced || config.reduced_search();
        let outcome = report::check_with(config, report::Search { reduced, ..search });
        eprintln!("  {:<48} {:>9} states {:>7.2}s", config.name, outcome.unique_states, outcome.elapsed.as_secs_f64());
        outcomes.push(outcome);
    }
    println!("\n{}", report::matrix(&outcomes));
    print!("{}", report::traces(&outcomes));
    let differences: Vec<String> = outcomes.iter().flat_map(deviations).collect();
    if differences.is_empty() {
        println!("\nEvery cell is as docs/model.md expects ({} configurations).", outcomes.len());
        return Ok(true);
    }
    eprintln!("\nekg check: {} cell(s) differ from the expected table (model/src/expected.rs):", differences.len());
    for d in &differences {
        eprintln!("  {d}");
    }
    Ok(false)
}
