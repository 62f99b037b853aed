//! `ekg simulate`: runs shipped or custom scenarios, prints the comparison, writes the JSON
//! report, the plots and an HTML page per run (and, for several runs, a summary table and
//! page), and exits 2 on a correctness failure, 3 on a liveness failure.

use std::path::{Path, PathBuf};

use ekg_sim::{Scenario, SimError, Verdict};

use crate::progress::Progress;

/// What `ekg simulate` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shipped scenario names (the ten of fixtures/scenarios: default, mailing-list,
    /// cross-org-with-loss, gatekeeper-outage, low-certificate-availability,
    /// untrusted-org, compromised-recipient, seed-policy, compromise, labelled-itar) or
    /// TOML paths. Default: `default`.
    pub scenarios: Vec<String>,
    /// Run every shipped scenario (ten), then print and write a summary of their
    /// headlines (OUT/summary.txt, OUT/index.html).
    #[arg(long)]
    pub all: bool,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (one subdirectory per scenario).
    #[arg(long, default_value = "target/sim")]
    pub out: PathBuf,
    /// Threads for RSA key generation (the event loop is single-threaded).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn load(name: &str) -> Result<(String, Scenario), SimError> {
    if let Some(s) = ekg_sim::shipped(name) {
        return Ok((name.to_owned(), s?));
    }
    let path = Path::new(name);
    let text = read_scenario(path).map_err(|e| SimError::Scenario(format!("{name}: {e}")))?;
    Ok((name.to_owned(), Scenario::from_toml(&text)?))
}

/// Reads a scenario file of at most [`ekg_sim::scenario::MAX_SCENARIO_FILE_LEN`] bytes.
fn read_scenario(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let max = ekg_sim::scenario::MAX_SCENARIO_FILE_LEN;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    f.take(max + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(text)
}

/// Runs; returns the worst verdict.
pub fn run(args: Args) -> Result<Verdict, SimError> {
    if !(1..=64).contains(&args.threads) {
        return Err(SimError::Scenario("--threads must be 1 to 64".into()));
    }
    let names: Vec<String> = if args.all {
        ekg_sim::SHIPPED.iter().map(|(n, _)| (*n).to_owned()).collect()
    } else if args.scenarios.is_empty() {
        vec!["default".to_owned()]
    } else {
        args.scenarios.clone()
    };
    let mut worst = Verdict::Ok;
    let mut reports = Vec::new();
    let count = names.len();
    for (i, name) in names.into_iter().enumerate() {
        let (arg, mut scenario) = load(&name)?;
        if let Some(seed) = args.seed {
            scenario.seed = seed;
        }
        let seeds = ekg_sim::Seeds::from(scenario.seed);
        let command = format!("ekg simulate {arg} --seed {}", scenario.seed);
        println!("== {} ==", scenario.name);
        println!(
            "seed {} (pki {}, workload {}, network {}, late {}, early {}); reproduce with: {command}",
            seeds.seed, seeds.pki, seeds.workload, seeds.network, seeds.late, seeds.early
        );
        let label = if count > 1 { format!("[{}/{count}] {}", i + 1, scenario.name) } else { scenario.name.clone() };
        let mut bar = Progress::new(label);
        let mut progress = |phase: &str, done: u64, total: u64| bar.update(phase, done, total);
        let opts = ekg_sim::Options { threads: args.threads, progress: &mut progress, base: ekg_sim::BASE };
        let report = ekg_sim::run(&scenario, command, opts);
        bar.finish();
        let report = report?;
        print!("{}", ekg_sim::report::text(&report));
        let dir = args.out.join(&scenario.name);
        let written = ekg_sim::report::write(&report, &dir)?;
        println!("wrote {}/{{{}}}; open {}/index.html\n", dir.display(), written.join(","), dir.display());
        worst = match (worst, report.verdict) {
            (Verdict::CorrectnessFailure, _) | (_, Verdict::CorrectnessFailure) => Verdict::CorrectnessFailure,
            (Verdict::LivenessFailure, _) | (_, Verdict::LivenessFailure) => Verdict::LivenessFailure,
            _ => Verdict::Ok,
        };
        reports.push(report);
    }
    if reports.len() > 1 {
        println!("== summary: {} scenarios ==", reports.len());
        print!("{}", ekg_sim::report::headline::summary(&reports));
        ekg_sim::report::write_summary(&reports, &args.out)?;
        println!("wrote {0}/summary.txt and {0}/index.html (every scenario's headline, linked)", args.out.display());
    }
    Ok(worst)
}
