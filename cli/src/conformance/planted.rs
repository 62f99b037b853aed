//! `ekg conformance planted`: the server suite measured by the bugs it catches. For the
//! reference (nothing planted) and then each planted gatekeeper bug
//! (`ekg_core::role::planted::PlantedBug`), starts `ekg serve --test-mode` with `EKG_PLANTED_BUG`
//! on a free loopback port, runs every server case against it, stops it, and prints one
//! table row per bug: caught or not, and the cases that failed. The reference must pass
//! every case; every bug must fail at least one case unless [`UNOBSERVABLE`] says why no
//! black-box case can see it (and then it must fail none: the list cannot go stale).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ekg_core::role::planted::PlantedBug;
use ekg_fixtures::Pki;

use super::report::Verdict;

/// The bugs no black-box case can observe, and why.
pub const UNOBSERVABLE: &[(PlantedBug, &str)] = &[(
    PlantedBug::ListedFromTicket,
    "a ticket this gatekeeper signed lists exactly the addresses of its record, so the two sources agree on every \
     ticket V20 accepts; it shows only together with a V20 bug (`forged_ticket_served`)",
)];

/// Failing cases named per row of the table (the rest are counted).
const SHOWN: usize = 12;

/// Longest wait for a test-mode server to say where it listens.
const START_SECS: u64 = 30;

/// One bug's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The bug (`None`: the reference).
    pub bug: Option<PlantedBug>,
    /// Failing case ids.
    pub failing: Vec<String>,
    /// Cases run.
    pub cases: usize,
    /// Why the run itself failed, if it did.
    pub error: Option<String>,
}

/// A test-mode server, stopped (killed and reaped) when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(exe: &Path, vectors: &Path, bug: Option<PlantedBug>) -> Result<Server, String> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--test-mode", "--listen", "127.0.0.1:0", "--vectors"])
            .arg(vectors)
            .env_remove(crate::serve::PLANTED_BUG_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(b) = bug {
            cmd.env(crate::serve::PLANTED_BUG_ENV, b.name());
        }
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", exe.display()))?;
        let stdout = child.stdout.take().ok_or("no standard output")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                // Keep reading (and dropping) what it prints until it exits.
            }
        });
        match rx.recv_timeout(Duration::from_secs(START_SECS)) {
            Ok(addr) => Ok(Server { child, addr }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("ekg serve --test-mode did not listen within {START_SECS} s"))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs every server case against the test mode with `bug` planted.
pub fn measure(
    exe: &Path,
    vectors: &Path,
    pki: &Pki,
    bug: Option<PlantedBug>,
    tokens: Option<&super::tokens::Provider>,
) -> Outcome {
    let run = || -> Result<(usize, Vec<String>), String> {
        let server = Server::start(exe, vectors, bug)?;
        let url = format!("http://{}/", server.addr);
        let mut target = super::target::Http::new(&url, None)?;
        super::target::wait_until_listening(&url, Duration::from_secs(START_SECS))?;
        let cases = super::server_cases(pki, vectors, &mut target, &|_, _, _| true, tokens)?;
        let failing = cases.iter().filter(|c| c.verdict != Verdict::Pass).map(|c| c.id.clone()).collect();
        Ok((cases.len(), failing))
    };
    match run() {
        Ok((cases, failing)) => Outcome { bug, failing, cases, error: None },
        Err(e) => Outcome { bug, failing: Vec::new(), cases: 0, error: Some(e) },
    }
}

/// Why `bug` cannot be observed, if it cannot.
pub fn unobservable(bug: PlantedBug) -> Option<&'static str> {
    UNOBSERVABLE.iter().find(|(b, _)| *b == bug).map(|(_, why)| *why)
}

/// Whether `o` is as it must be: the reference passes everything; a bug fails a case, or
/// fails none and is listed as unobservable.
pub fn as_required(o: &Outcome) -> bool {
    if o.error.is_some() || o.cases == 0 {
        return false;
    }
    match o.bug {
        None => o.failing.is_empty(),
        Some(b) => o.failing.is_empty() == unobservable(b).is_some(),
    }
}

/// The Markdown table of `outcomes` (`docs/conformance.md` §6).
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from("| planted bug | rule | caught | cases that fail |\n|---|---|---|---|\n");
    for o in outcomes {
        let Some(bug) = o.bug else { continue };
        let (caught, cases) = match (&o.error, o.failing.is_empty(), unobservable(bug)) {
            (Some(e), _, _) => ("ERROR", e.clone()),
            (None, false, _) => {
                let shown: Vec<String> = o.failing.iter().take(SHOWN).map(|c| format!("`{c}`")).collect();
                let more = o.failing.len().saturating_sub(SHOWN);
                ("yes", if more > 0 { format!("{}, and {more} more", shown.join(", ")) } else { shown.join(", ") })
            }
            (None, true, Some(why)) => ("not observable", why.to_owned()),
            (None, true, None) => ("**MISSED**", String::new()),
        };
        out.push_str(&format!("| `{bug}`: {} | {} | {caught} | {cases} |\n", bug.description(), bug.area()));
    }
    out
}

/// The bugs named in `names` (every bug if empty).
pub fn select(names: &[String]) -> Result<Vec<PlantedBug>, String> {
    if names.is_empty() {
        return Ok(PlantedBug::ALL.to_vec());
    }
    names
        .iter()
        .flat_map(|n| n.split(','))
        .filter(|n| !n.is_empty())
        .map(|n| PlantedBug::from_name(n).ok_or_else(|| format!("--bug {n}: no such planted bug")))
        .collect()
}

/// `ekg conformance planted`: the reference, then each selected bug; the table on standard
/// output. Exit 1 if the reference fails a case or a bug is missed.
pub fn run(vectors: &Path, bugs: &[String], tokens: Option<&super::tokens::Provider>) -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("this executable: {e}"))?;
    let pki = super::load_pki(vectors)?;
    let bugs = select(bugs)?;
    let started = Instant::now();
    let mut outcomes = vec![measure(&exe, vectors, &pki, None, tokens)];
    for (i, bug) in bugs.iter().enumerate() {
        eprintln!("[{}/{}] {bug}", i + 1, bugs.len());
        outcomes.push(measure(&exe, vectors, &pki, Some(*bug), tokens));
    }
    let reference = outcomes.first().cloned().ok_or("no run")?;
    println!("{}", table(&outcomes));
    let planted: Vec<&Outcome> = outcomes.iter().filter(|o| o.bug.is_some()).collect();
    let caught = planted.iter().filter(|o| !o.failing.is_empty()).count();
    let excused = planted.iter().filter(|o| o.failing.is_empty() && o.bug.and_then(unobservable).is_some()).count();
    println!(
        "{caught} of {} planted bugs caught, {excused} not observable; the reference: {} cases, {} failing{} ({} s)",
        planted.len(),
        reference.cases,
        reference.failing.len(),
        reference.error.as_deref().map(|e| format!(", {e}")).unwrap_or_default(),
        started.elapsed().as_secs()
    );
    let wrong: Vec<&Outcome> = outcomes.iter().filter(|o| !as_required(o)).collect();
    for o in &wrong {
        match o.bug {
            _ if o.error.is_some() => println!("ERROR {:?}: {}", o.bug, o.error.as_deref().unwrap_or("")),
            None => println!("REFERENCE FAILS: {}", o.failing.join(", ")),
            Some(b) if o.failing.is_empty() => println!("MISSED {b}"),
            Some(b) => println!("NOT UNOBSERVABLE {b}: listed as unobservable, yet fails {}", o.failing.join(", ")),
        }
    }
    Ok(if wrong.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
