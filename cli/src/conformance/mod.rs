//! `ekg conformance`: the black-box conformance runner (`docs/conformance.md`).
//!
//! - `server --target URL`: the gatekeeper and flow vectors against a running gatekeeper over
//!   the HTTP binding, its state loaded through the test-only management endpoint; a sanity
//!   case first and last.
//! - `client --shim CMD`: a client implementation through its shim: what it produces is
//!   consumed by the reference, what the reference produces is consumed by it.
//! - `shim`: the reference client behind the shim protocol.
//!
//! Reports: JSON Lines, JUnit XML, Markdown; an expected-failures file; `--only` and
//! `--exclude` by family, flag or case id. Exit 1 on any unexpected result.

mod client;
mod driver;
pub mod planted;
pub mod report;
pub mod shim;
mod target;
mod tokens;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ekg_fixtures::{FixtureError, Pki};
use serde_json::Value;

use report::{Case, Verdict};

/// Longest wait for a target to listen, seconds.
pub const MAX_WAIT_SECS: u64 = 600;

/// The runner's version, pinned to the vectors it runs (`fixtures/README.md`).
pub const SUITE_VERSION: &str = concat!("ekg-conformance ", env!("CARGO_PKG_VERSION"), " for vectors v1");

/// What every mode takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// The vectors directory (`fixtures/v1`).
    #[arg(long, default_value = "fixtures/v1")]
    pub vectors: PathBuf,
    /// Run only cases matching this family, flag or case id (repeat; `family/*` matches a
    /// family's ids).
    #[arg(long)]
    pub only: Vec<String>,
    /// Leave out cases matching this family, flag or case id (repeat).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Expected failures: a JSON object {"case id": "reason"}.
    #[arg(long)]
    pub expected_failures: Option<PathBuf>,
    /// Treat a skipped case as a failure (the reference runs everything).
    #[arg(long)]
    pub no_skips: bool,
    /// JSON Lines report, one record per case.
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// JUnit XML report.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Markdown summary (by family and flag, every unexpected result and skip).
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// The modes.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Test a running gatekeeper over HTTP (its management endpoint loads each case's state).
    Server {
        #[command(flatten)]
        common: Common,
        /// The base URL of its protocol endpoints: {target}key-request, {target}release-request
        /// (a final / is added if missing).
        #[arg(long)]
        target: String,
        /// Its management endpoint (default: {scheme}://{host:port}/ekg-test/v1/).
        #[arg(long)]
        manage: Option<String>,
        /// Wait at most this long for the target to accept connections before the first case
        /// (0 to 600 s): a server started just before the runner may not listen yet.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
        #[command(flatten)]
        tokens: tokens::TokenFlags,
    },
    /// Test a client implementation through its shim (docs/conformance.md §3).
    Client {
        #[command(flatten)]
        common: Common,
        /// The shim command line (split on spaces), e.g. "./target/release/ekg conformance shim".
        #[arg(long)]
        shim: String,
    },
    /// The server suite against `ekg serve --test-mode` with each planted gatekeeper bug
    /// (`EKG_PLANTED_BUG`), after the reference: prints the table of bugs caught
    /// (docs/conformance.md §6). Exit 1 if the reference fails or a bug is missed.
    Planted {
        /// The vectors directory (`fixtures/v1`).
        #[arg(long, default_value = "fixtures/v1")]
        vectors: PathBuf,
        /// Only these bugs (repeat, or comma-separated; default: every one).
        #[arg(long)]
        bug: Vec<String>,
        #[command(flatten)]
        tokens: tokens::TokenFlags,
    },
    /// The reference client behind the shim protocol.
    Shim {
        #[command(subcommand)]
        command: shim::Command,
    },
}

/// Runs `ekg conformance`.
pub fn run(action: Action) -> Result<ExitCode, String> {
    match action {
        Action::Shim { command } => Ok(shim::run(&command)),
        Action::Planted { vectors, bug, tokens } => planted::run(&vectors, &bug, tokens.provider()?.as_ref()),
        Action::Server { common, target, manage, wait_secs, tokens } => {
            if wait_secs > MAX_WAIT_SECS {
                return Err(format!("--wait-secs {wait_secs}: at most {MAX_WAIT_SECS}"));
            }
            let provider = tokens.provider()?;
            let mut t = target::Http::new(&target, manage.as_deref())?;
            // Not there in time: the first sanity case says so (and the run stops there).
            if let Err(e) = target::wait_until_listening(&target, std::time::Duration::from_secs(wait_secs)) {
                eprintln!("ekg conformance: {e}");
            }
            let pki = load_pki(&common.vectors)?;
            let sel = Selection::of(&common);
            let selected = |id: &str, fam: &str, flags: &[String]| sel.keeps(id, fam, flags);
            let cases = server_cases(&pki, &common.vectors, &mut t, &selected, provider.as_ref())?;
            if provider.is_none() {
                println!(
                    "NOTE the {} real-token probes (probe/token_*) need --token-command: not run",
                    ekg_fixtures::conformance::TOKEN_PROBES.len()
                );
            }
            finish(&common, &format!("{SUITE_VERSION}: gatekeeper at {target}"), cases)
        }
        Action::Client { common, shim } => {
            let pki = load_pki(&common.vectors)?;
            let sel = Selection::of(&common);
            let keep = |id: &str, fam: &str, flags: &[String]| sel.keeps(id, fam, flags);
            let mut driver = driver::Driver::new(&shim, &common.vectors)?;
            let mut cases = client::run(&pki, &mut driver, &keep);
            let doc = read_doc(&common.vectors, "client_test.json")?;
            cases.extend(client::run_vectors(&doc, &mut driver, &keep));
            finish(&common, &format!("{SUITE_VERSION}: client shim {shim}"), cases)
        }
    }
}

fn load_pki(dir: &Path) -> Result<Pki, String> {
    Pki::load(dir)
        .map_err(|e| format!("{}: {e} (--vectors names the fixtures/v1 directory of a checkout)", dir.display()))
}

/// A vector file, which must be of the version this suite is pinned to.
fn read_doc(dir: &Path, name: &str) -> Result<Value, String> {
    let text = ekg_fixtures::read_bounded(&dir.join(name), ekg_fixtures::MAX_FILE_LEN).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    let version = doc.get("vectorsVersion").and_then(Value::as_str).unwrap_or("none");
    if version != ekg_fixtures::VERSION {
        return Err(format!("{name}: vectors {version}, but this runner is {SUITE_VERSION}"));
    }
    Ok(doc)
}

/// `--only` and `--exclude`.
struct Selection {
    only: Vec<String>,
    exclude: Vec<String>,
}

impl Selection {
    fn of(c: &Common) -> Selection {
        Selection { only: c.only.clone(), exclude: c.exclude.clone() }
    }

    fn matches(term: &str, id: &str, family: &str, flags: &[String]) -> bool {
        term == id
            || term == family
            || flags.iter().any(|f| f == term)
            || term.strip_suffix('*').is_some_and(|prefix| id.starts_with(prefix))
    }

    fn keeps(&self, id: &str, family: &str, flags: &[String]) -> bool {
        (self.only.is_empty() || self.only.iter().any(|t| Self::matches(t, id, family, flags)))
            && !self.exclude.iter().any(|t| Self::matches(t, id, family, flags))
    }
}

/// A vector's flags.
fn flags_of(test: &Value) -> Vec<String> {
    test.get("flags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

type Runner = fn(&mut dyn ekg_fixtures::target::Target, &Pki, &Value, &Value) -> Result<(bool, String), FixtureError>;

fn vector_case(family: &str, file: &str, test: &Value, result: Result<(bool, String), FixtureError>) -> Case {
    let tc_id = test.get("tcId").and_then(Value::as_u64).unwrap_or(0);
    let flags = flags_of(test);
    let (verdict, got, reason) = match result {
        Ok((true, got)) => (Verdict::Pass, got, String::new()),
        Ok((false, got)) => (Verdict::Fail, got, String::new()),
        Err(FixtureError::Unsupported(why)) => (Verdict::Skip, "not run".into(), why),
        Err(e) => (Verdict::Fail, format!("runner error: {e}"), String::new()),
    };
    Case {
        id: format!("{family}/{tc_id}"),
        file: file.into(),
        tc_id,
        family: family.into(),
        flags,
        expected: ekg_fixtures::expected_of(test),
        got,
        verdict,
        reason,
        comment: test.get("comment").and_then(Value::as_str).unwrap_or("").to_owned(),
    }
}

fn sanity(pki: &Pki, target: &mut dyn ekg_fixtures::target::Target, id: &str) -> Case {
    let r = ekg_fixtures::gatekeeper::sanity_on(target, pki);
    let mut c = vector_case("sanity", "", &Value::Null, r);
    c.id = id.into();
    c.expected = "valid".into();
    c.comment = "the default configuration answers alice's key request for bob".into();
    c
}

/// The server-mode cases: sanity, every selected gatekeeper and flow vector, sanity again.
/// A failed first sanity case stops the run (the server is not there to test).
fn server_cases(
    pki: &Pki,
    dir: &Path,
    target: &mut dyn ekg_fixtures::target::Target,
    selected: &dyn Fn(&str, &str, &[String]) -> bool,
    tokens: Option<&tokens::Provider>,
) -> Result<Vec<Case>, String> {
    let mut cases = vec![sanity(pki, target, "sanity/first")];
    if cases.first().is_some_and(|c| c.verdict != Verdict::Pass) {
        return Ok(cases);
    }
    for (file, family, run) in [
        ("gatekeeper_test.json", "gatekeeper", ekg_fixtures::gatekeeper::check_on as Runner),
        ("flow_test.json", "flow", ekg_fixtures::flow::check_on),
    ] {
        let doc = read_doc(dir, file)?;
        for (group, test) in ekg_fixtures::tests_of(&doc) {
            let id = format!("{family}/{}", test.get("tcId").and_then(Value::as_u64).unwrap_or(0));
            let flags = flags_of(test);
            if selected(&id, family, &flags) {
                cases.push(vector_case(family, file, test, run(target, pki, group, test)));
            }
        }
    }
    for probe in ekg_fixtures::conformance::PROBES {
        let id = format!("probe/{}", probe.name);
        if selected(&id, "probe", &[]) {
            let mut c = vector_case("probe", "", &Value::Null, (probe.run)(target, pki));
            c.id = id;
            c.expected = "pass".into();
            c.comment = probe.comment.into();
            cases.push(c);
        }
    }
    if let Some(provider) = tokens {
        provider.with_source(|source| {
            let flags = vec!["Token".to_owned()];
            for probe in ekg_fixtures::conformance::TOKEN_PROBES {
                let id = format!("probe/{}", probe.name);
                if selected(&id, "probe", &flags) {
                    // The provider's tokens are issued on the wall clock: each probe runs on it.
                    source.now = crate::client::now();
                    let mut c = vector_case("probe", "", &Value::Null, (probe.run)(target, pki, source));
                    c.id = id;
                    c.flags.clone_from(&flags);
                    c.expected = "pass".into();
                    c.comment = probe.comment.into();
                    cases.push(c);
                }
            }
        });
    }
    if cases.len() == 1 {
        return Err("no vector was selected: nothing would be tested but the sanity case".into());
    }
    cases.push(sanity(pki, target, "sanity/last"));
    Ok(cases)
}

/// Applies expectations, writes the reports, prints the summary and what went wrong.
fn finish(common: &Common, title: &str, mut cases: Vec<Case>) -> Result<ExitCode, String> {
    let declared: BTreeMap<String, String> =
        common.expected_failures.as_deref().map(report::expectations).transpose()?.unwrap_or_default();
    if cases.is_empty() {
        return Err("no case was selected: nothing was tested".into());
    }
    report::apply_expectations(&mut cases, &declared);
    // A declared id that names no case of this run: a typo, or a case that no longer exists.
    // Without a selection every case ran, so the file is stale: that fails the run.
    let unmatched: Vec<&String> = declared.keys().filter(|id| !cases.iter().any(|c| &c.id == *id)).collect();
    let stale = !unmatched.is_empty() && common.only.is_empty() && common.exclude.is_empty();
    for id in &unmatched {
        println!(
            "{} {id}: declared in --expected-failures, but no such case ran",
            if stale { "UNKNOWN" } else { "NOTE" }
        );
    }
    if common.no_skips {
        for c in cases.iter_mut().filter(|c| c.verdict == Verdict::Skip) {
            c.verdict = Verdict::Fail;
            c.got = format!("skipped ({}) under --no-skips", c.reason);
        }
    }
    report::write(&cases, title, common.jsonl.as_deref(), common.junit.as_deref(), common.summary.as_deref())?;
    for c in cases.iter().filter(|c| c.verdict.unexpected()) {
        match c.verdict {
            Verdict::UnexpectedPass => println!("UNEXPECTED PASS {} (declared: {})", c.id, c.reason),
            _ => println!("FAIL {}: expected {}, got {} ({})", c.id, c.expected, c.got, c.comment),
        }
    }
    for c in cases.iter().filter(|c| c.verdict == Verdict::Skip) {
        println!("SKIP {}: {}", c.id, c.reason);
    }
    println!("{title}");
    println!("{}", report::summary(&cases));
    Ok(if stale || cases.iter().any(|c| c.verdict.unexpected()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
