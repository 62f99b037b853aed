//! `ekg simulate`: runs shipped or custom scenarios, prints the comparison, writes the JSON
//! report and SVG plots, and exits 2 on a correctness failure, 3 on a liveness failure.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ekg_sim::{Scenario, SimError, Verdict};

/// What to run.
pub struct Args {
    pub scenarios: Vec<String>,
    pub all: bool,
    pub seed: Option<u64>,
    pub out: PathBuf,
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
    for name in names {
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
        let tty = std::io::stderr().is_terminal();
        let mut last = Instant::now();
        let mut progress = |phase: &str, done: u64, total: u64| {
            if tty && (last.elapsed().as_millis() > 200 || done == total) {
                last = Instant::now();
                let width = 30usize;
                let filled = if total == 0 { width } else { (done as usize * width) / total as usize };
                eprint!(
                    "\r{phase:>6} [{}{}] {done}/{total}   ",
                    "#".repeat(filled),
                    " ".repeat(width - filled.min(width))
                );
                let _ = std::io::stderr().flush();
            }
        };
        let opts = ekg_sim::Options { threads: args.threads, progress: &mut progress, base: ekg_sim::BASE };
        let report = ekg_sim::run(&scenario, command, opts)?;
        if tty {
            eprint!("\r{:60}\r", "");
        }
        print!("{}", ekg_sim::report::text(&report));
        let dir = args.out.join(&scenario.name);
        ekg_sim::report::write(&report, &dir)?;
        println!("wrote {}/{{report.json,report.txt,comparison.svg,keys_held.svg}}\n", dir.display());
        worst = match (worst, report.verdict) {
            (Verdict::CorrectnessFailure, _) | (_, Verdict::CorrectnessFailure) => Verdict::CorrectnessFailure,
            (Verdict::LivenessFailure, _) | (_, Verdict::LivenessFailure) => Verdict::LivenessFailure,
            _ => Verdict::Ok,
        };
    }
    Ok(worst)
}
