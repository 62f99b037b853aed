//! Calling a shim (`docs/conformance.md` §3): one process per step, in a process group of its
//! own, its standard input `/dev/null`, its standard output and error in files (so that a
//! child it leaves behind cannot hold the runner), at most [`SHIM_TIMEOUT_SECS`]; then the
//! whole group is killed, so nothing it started outlives the step.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ekg_core::UnixTime;

use super::shim::{EXIT_REFUSED, EXIT_UNIMPLEMENTED};

/// Most seconds one shim call may take.
pub const SHIM_TIMEOUT_SECS: u64 = 60;
/// Most bytes of a shim command line.
pub const MAX_SHIM_LEN: usize = 4096;
/// Most bytes of a shim's standard output or error read back.
const MAX_STREAM_LEN: usize = 64 * 1024;

/// What a shim call gave.
pub enum Shim {
    /// Exit 0: the output file.
    Done(Vec<u8>),
    /// Exit 1: the code on the first line of standard output.
    Refused(String),
    /// Exit 89: the reason, if the shim gave one.
    Unimplemented(String),
}

/// A client implementation behind a shim command.
pub struct Driver<'a> {
    argv: Vec<String>,
    dir: PathBuf,
    vectors: &'a Path,
    calls: u64,
}

/// The program of a command line, if it can be run: a path that exists and is executable, or
/// a name found on `PATH`.
fn runnable(program: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return if executable(Path::new(program)) {
            Ok(())
        } else {
            Err(format!("--shim: {program}: no such executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| executable(&d.join(program))) {
        Ok(())
    } else {
        Err(format!("--shim: {program}: not found on PATH (give a path, e.g. ./target/release/ekg)"))
    }
}

fn first_line(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(bytes.get(..MAX_STREAM_LEN).unwrap_or(&bytes)).into_owned();
    text.lines().next().unwrap_or("").trim().to_owned()
}

fn all_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(..MAX_STREAM_LEN).unwrap_or(&bytes)).trim().to_owned()
}

/// Kills process group `pgid` (the shim and whatever it started).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl<'a> Driver<'a> {
    /// `shim` is a command line split on spaces (no quoting: wrap anything else in a script).
    pub fn new(shim: &str, vectors: &'a Path) -> Result<Driver<'a>, String> {
        if shim.len() > MAX_SHIM_LEN {
            return Err(format!("--shim: at most {MAX_SHIM_LEN} bytes"));
        }
        let argv: Vec<String> = shim.split_whitespace().map(str::to_owned).collect();
        let program = argv.first().ok_or("--shim: an empty command")?;
        runnable(program)?;
        let dir = std::env::temp_dir().join(format!("ekg-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Driver { argv, dir, vectors, calls: 0 })
    }

    /// Writes an input file for the next call.
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        self.calls += 1;
        let path = self.dir.join(format!("{}-{name}", self.calls));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The party flags of entity `name` of `v1/pki` at `now`.
    fn party(&self, name: &str, now: UnixTime, out: &Path) -> Vec<String> {
        let pki = self.vectors.join("pki");
        let mut a = vec!["--cert".into(), pki.join(format!("{name}.cert.pem")).display().to_string()];
        a.extend(["--key".into(), pki.join(format!("{name}.key.pem")).display().to_string()]);
        let chain = pki.join(format!("{name}.chain.pem"));
        if chain.exists() {
            a.extend(["--chain".into(), chain.display().to_string()]);
        }
        for ca in ["ca.example.com.cert.pem", "ca.example.org.cert.pem"] {
            a.extend(["--anchor".into(), pki.join(ca).display().to_string()]);
        }
        a.extend(["--now".into(), now.to_rfc3339(), "--out".into(), out.display().to_string()]);
        a
    }

    /// Runs `command` as entity `party` at `now` with `extra` flags.
    pub fn call(&mut self, command: &str, party: &str, now: UnixTime, extra: &[String]) -> Result<Shim, String> {
        self.calls += 1;
        let out = self.dir.join(format!("{}-out", self.calls));
        let (stdout_path, stderr_path) =
            (self.dir.join(format!("{}-stdout", self.calls)), self.dir.join(format!("{}-stderr", self.calls)));
        let open = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        let (program, base) = self.argv.split_first().ok_or("no shim")?;
        let mut child = Command::new(program)
            .args(base)
            .arg(command)
            .args(self.party(party, now, &out))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(open(&stdout_path)?)
            .stderr(open(&stderr_path)?)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(s);
            }
            if started.elapsed().as_secs() >= SHIM_TIMEOUT_SECS {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        // Whatever the shim started goes with it.
        kill_group(child.id());
        let Some(status) = status else {
            let _ = child.wait();
            return Err(format!("the shim took more than {SHIM_TIMEOUT_SECS} s (killed)"));
        };
        let stdout = first_line(&stdout_path);
        match status.code() {
            Some(0) => std::fs::read(&out).map(Shim::Done).map_err(|e| format!("exit 0 but no output file: {e}")),
            Some(c) if c == i32::from(EXIT_REFUSED) && stdout.is_empty() => {
                Err("exit 1 (refused) without a code on the first line of standard output".into())
            }
            Some(c) if c == i32::from(EXIT_REFUSED) => Ok(Shim::Refused(stdout)),
            Some(c) if c == i32::from(EXIT_UNIMPLEMENTED) => {
                Ok(Shim::Unimplemented(if stdout.is_empty() { format!("{command} not implemented") } else { stdout }))
            }
            Some(c) => Err(format!("the shim exited with {c}: {}", all_of(&stderr_path))),
            None => {
                Err(format!("the shim was killed by signal {}: {}", status.signal().unwrap_or(0), all_of(&stderr_path)))
            }
        }
    }
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
