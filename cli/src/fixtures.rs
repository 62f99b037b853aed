//! `ekg fixtures generate|check`: the conformance vectors.

use std::io::Write;
use std::path::{Path, PathBuf};

use ekg_fixtures::FixtureError;

/// `ekg fixtures ...`.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write every vector file, schema and PEM of the PKI.
    Generate {
        /// Directory (the committed vectors live in fixtures/v1).
        #[arg(long, default_value = "fixtures/v1")]
        out: PathBuf,
    },
    /// Run the vectors; print `N passed, N failed`; exit 1 if any failed.
    Check {
        /// Directory of the vectors.
        #[arg(long, default_value = "fixtures/v1")]
        dir: PathBuf,
        /// Also write one JSON Lines record per test here.
        #[arg(long)]
        jsonl: Option<PathBuf>,
    },
}

/// Runs `ekg fixtures ACTION`; whether every vector passed (`generate`: always).
pub fn run(action: &Action) -> Result<bool, FixtureError> {
    match action {
        Action::Generate { out } => generate(out).map(|()| true),
        Action::Check { dir, jsonl } => check(dir, jsonl.as_deref()),
    }
}

/// Writes every file of `v1/` into `dir`.
pub fn generate(dir: &Path) -> Result<(), FixtureError> {
    let files = ekg_fixtures::generate()?;
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| FixtureError::Io(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| FixtureError::Io(format!("{}: {e}", path.display())))?;
    }
    println!("wrote {} files into {}", files.len(), dir.display());
    Ok(())
}

/// Runs the vectors in `dir`; prints each failure, a line per family (vector file) and
/// `N passed, N failed` last; JSON Lines to `jsonl` if given. Returns whether every test
/// passed.
pub fn check(dir: &Path, jsonl: Option<&Path>) -> Result<bool, FixtureError> {
    let outcomes = ekg_fixtures::check(dir)?;
    if let Some(path) = jsonl {
        let mut f = std::fs::File::create(path).map_err(|e| FixtureError::Io(format!("{}: {e}", path.display())))?;
        for o in &outcomes {
            writeln!(f, "{}", o.json_line()).map_err(|e| FixtureError::Io(e.to_string()))?;
        }
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    for o in &failed {
        println!("FAIL {} tcId {}: expected {}, got {}", o.file, o.tc_id, o.expected, o.got);
    }
    // Per family, in the order the files were run.
    let mut families: Vec<(&str, usize, usize)> = Vec::new();
    for o in &outcomes {
        let family = o.file.strip_suffix("_test.json").unwrap_or(&o.file);
        match families.iter_mut().find(|(f, _, _)| *f == family) {
            Some((_, passed, failed)) => *(if o.passed { passed } else { failed }) += 1,
            None => families.push((family, usize::from(o.passed), usize::from(!o.passed))),
        }
    }
    let width = families.iter().map(|(f, _, _)| f.len()).max().unwrap_or(0);
    for (family, passed, failed) in &families {
        println!("  {family:<width$} {passed:>4} passed, {failed} failed");
    }
    println!("{} passed, {} failed", outcomes.len() - failed.len(), failed.len());
    Ok(failed.is_empty())
}
