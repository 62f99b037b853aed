//! The conformance runner's real-token probes (`docs/conformance.md` §2.5, issue 28): `ekg
//! conformance server --token-command` and `planted --token-command` against the reference
//! (`ekg serve --test-mode`) with access tokens a real OpenID provider made (npm
//! `oidc-provider`, `server/tests/oidc`): the reference passes every probe and every token
//! vector, each planted token bug fails its probe, and a token command that fails stops the
//! run before any case.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../server/tests/oidc/mod.rs"]
mod oidc;

use std::path::{Path, PathBuf};
use std::process::Command;

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

/// The probes, as the runner names them.
const PROBES: [&str; 6] = [
    "probe/token_entitles",
    "probe/token_replayed",
    "probe/token_not_entitled",
    "probe/token_audience",
    "probe/token_unbound",
    "probe/token_key_unknown",
];

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1")
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ekg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sh token.sh CLIENT`: a fresh token of `CLIENT` from the provider's token endpoint (curl).
fn token_command(dir: &Path, p: &oidc::Provider, client: &str) -> String {
    let script = dir.join("token.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\ncurl -sSf -d grant_type=client_credentials -d client_id=\"$1\" -d client_secret=\"secret-of-$1\" \
             '{}' | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p'\n",
            p.token_endpoint
        ),
    )
    .unwrap();
    format!("sh {} {client}", script.display())
}

/// A test-mode reference on a free loopback port, killed when dropped.
struct Reference(std::process::Child, String);

impl Reference {
    /// The reference, with `bug` planted.
    fn start(bug: Option<&str>) -> Reference {
        use std::io::BufRead;
        let mut cmd = Command::new(EKG);
        cmd.args(["serve", "--test-mode", "--listen", "127.0.0.1:0", "--vectors"]).arg(vectors());
        match bug {
            Some(b) => cmd.env("EKG_PLANTED_BUG", b),
            None => cmd.env_remove("EKG_PLANTED_BUG"),
        };
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split("listening on ").nth(1).map(|a| a.trim().to_owned()))
            .expect("the test mode says where it listens");
        std::thread::spawn(move || lines.for_each(drop));
        Reference(child, format!("http://{addr}/"))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ekg conformance ARGS --vectors fixtures/v1`.
fn runner(args: &[&str]) -> std::process::Output {
    Command::new(EKG).arg("conformance").args(args).arg("--vectors").arg(vectors()).output().unwrap()
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_reference_passes_the_real_token_probes_and_the_token_vectors() {
    let Some(p) = oidc::provider() else { return };
    let dir = fresh_dir("conformance-tokens");
    let reference = Reference::start(None);
    let jsonl = dir.join("cases.jsonl");
    let command = token_command(&dir, p, "bob-all");
    let out = runner(&[
        "server",
        "--target",
        &reference.1,
        "--only",
        "Token",
        "--no-skips",
        "--token-command",
        &command,
        "--token-claim",
        "export=itar",
        "--jsonl",
        jsonl.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let cases = records(&jsonl);
    for probe in PROBES {
        let c = cases.iter().find(|c| c["id"] == probe).unwrap_or_else(|| panic!("{probe} did not run: {stdout}"));
        assert_eq!(c["result"], "pass", "{c}");
    }
    // The 11 token vectors (gatekeeper/207 to 217) ran beside them, and the sanity cases.
    let token_vectors = cases.iter().filter(|c| c["family"] == "gatekeeper").count();
    assert_eq!(token_vectors, 11, "{stdout}");
    assert!(!stdout.contains("need --token-command"), "{stdout}");

    // The same claim required, but the provider's client does not carry it: the entitled
    // release is refused, and the runner says so (a probe can fail).
    let plain = token_command(&dir, p, "bob-plain");
    let out = runner(&[
        "server",
        "--target",
        &reference.1,
        "--only",
        "probe/token_entitles",
        "--token-command",
        &plain,
        "--token-claim",
        "export=itar",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL probe/token_entitles") && stdout.contains("entitlement_all_of_unmet"), "{stdout}");
}

#[test]
fn each_planted_token_bug_fails_its_real_token_probe() {
    let Some(p) = oidc::provider() else { return };
    let dir = fresh_dir("conformance-tokens-planted");
    let command = token_command(&dir, p, "bob-all");
    let bugs = [
        ("entitlement_unchecked", &["probe/token_entitles", "probe/token_not_entitled"][..]),
        ("token_audience_unchecked", &["probe/token_audience"][..]),
        // With the plain suite's probe of the vectors' issuer, which `probe/token_*` selects too.
        ("token_use_unrecorded", &["probe/token_replayed", "probe/token_recorded"][..]),
    ];
    for (bug, probes) in bugs {
        let planted = Reference::start(Some(bug));
        let out = runner(&[
            "server",
            "--target",
            &planted.1,
            "--only",
            "probe/token_*",
            "--token-command",
            &command,
            "--token-claim",
            "export=itar",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{bug}: {stdout}");
        for probe in probes {
            assert!(stdout.contains(&format!("FAIL {probe}:")), "{bug} does not fail {probe}: {stdout}");
        }
        let failed = stdout.lines().filter(|l| l.starts_with("FAIL ")).count();
        assert_eq!(failed, probes.len(), "{bug} fails only its probes: {stdout}");
    }
    // `ekg conformance planted` takes the same flags: the reference passes the probes, the bug
    // fails its own among the vectors it fails.
    let out = runner(&[
        "planted",
        "--bug",
        "token_use_unrecorded",
        "--token-command",
        &command,
        "--token-claim",
        "export=itar",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = stdout.lines().find(|l| l.starts_with("| `token_use_unrecorded`")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains("`probe/token_replayed`"), "{row}");
    assert!(stdout.contains(", 0 failing"), "{stdout}");
}

#[test]
fn a_token_command_that_fails_stops_the_run_before_any_case() {
    let dir = fresh_dir("conformance-tokens-fails");
    let jsonl = dir.join("cases.jsonl");
    let out = runner(&[
        "server",
        "--target",
        "http://127.0.0.1:9/",
        "--token-command",
        "exit 3",
        "--jsonl",
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token-command") && stderr.contains("token_command_failed"), "{stderr}");
    assert!(!jsonl.exists(), "no case ran");
}
