//! The black-box conformance runner (`docs/conformance.md`), end to end:
//! - the reference gatekeeper (`ekg serve --test-mode`, in this process) passes server mode,
//!   every case, nothing skipped; the reference shim passes client mode;
//! - a gatekeeper with a planted fault (the reference behind a proxy that releases twice, or
//!   that widens every recipient list, or that cannot inject) fails exactly the cases that
//!   the fault touches, by id, and `--expected-failures` turns them into a pass;
//! - a shim with a planted fault (certificates in path order, no ticket digest) fails the
//!   production cases it should;
//! - the Python shim written from `docs/` alone passes every client case, nothing skipped, and a
//!   sample of its planted client bugs (`EKG_SHIM_BUG`) each fail the cases that catch them.
//!
//! Loopback only; every server and proxy stops with the test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const EKG: &str = env!("CARGO_BIN_EXE_ekg");

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1")
}

fn reference() -> ekg_server::Running {
    ekg_server::testmode::start(ekg_server::testmode::TestSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        pki: ekg_fixtures::Pki::load(&vectors()).unwrap(),
        provider: &ekg_core::crypto::AwsLc,
        workers: 2,
        body_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// Runs `ekg conformance ARGS --jsonl FILE`: the exit code and the records.
fn conformance(args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
    let dir = std::env::temp_dir().join(format!("ekg-conf-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("cases.jsonl");
    let mut cmd = std::process::Command::new(EKG);
    cmd.arg("conformance").args(args).arg("--vectors").arg(vectors()).arg("--jsonl").arg(&jsonl);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let records =
        std::fs::read_to_string(&jsonl).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), records, stdout)
}

/// `docs/conformance.md`'s words on one line (a reflowed paragraph says the same).
fn conformance_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/conformance.md");
    std::fs::read_to_string(path).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The number right after `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> usize {
    let at =
        text.find(prefix).unwrap_or_else(|| panic!("docs/conformance.md no longer says {prefix:?}")) + prefix.len();
    text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

/// The number right before `suffix` in `text`.
fn number_before(text: &str, suffix: &str) -> usize {
    let at = text.find(suffix).unwrap_or_else(|| panic!("docs/conformance.md no longer says {suffix:?}"));
    let digits: String = text[..at].chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn ids(records: &[Value], result: &str) -> BTreeSet<String> {
    records.iter().filter(|r| r["result"] == result).map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

fn vector_ids(file: &str, family: &str, keep: impl Fn(&Value, &Value) -> bool) -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(vectors().join(file)).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for g in doc["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            if keep(g, t) {
                out.insert(format!("{family}/{}", t["tcId"]));
            }
        }
    }
    out
}

#[test]
fn the_reference_gatekeeper_passes_every_server_case() {
    let server = reference();
    let target = format!("http://{}/", server.addr);
    let (code, records, out) = conformance(&["server", "--target", &target, "--no-skips"], &[]);
    assert_eq!(code, 0, "{out}");
    let gk = vector_ids("gatekeeper_test.json", "gatekeeper", |_, _| true);
    let flow = vector_ids("flow_test.json", "flow", |_, _| true);
    let probes = ekg_fixtures::conformance::PROBES.len();
    assert_eq!(records.len(), gk.len() + flow.len() + probes + 2, "{out}");
    assert_eq!(ids(&records, "pass").len(), records.len());
    // docs/conformance.md §5 counts the cases of this run.
    let doc = conformance_doc();
    let run = "against `ekg serve --test-mode`, ";
    assert_eq!(number_after(&doc, run), records.len(), "docs/conformance.md");
    // The breakdown, in the same sentence.
    let doc = &doc[doc.find(run).unwrap()..];
    assert_eq!(number_before(doc, " gatekeeper, "), gk.len(), "docs/conformance.md");
    assert_eq!(number_before(doc, " flow, "), flow.len(), "docs/conformance.md");
    assert_eq!(number_before(doc, " probe, "), probes, "docs/conformance.md");
    assert_eq!(
        number_before(doc, " sanity)"),
        ids(&records, "pass").iter().filter(|i| i.starts_with("sanity/")).count()
    );
    assert_eq!(records.first().unwrap()["id"], "sanity/first");
    assert_eq!(records.last().unwrap()["id"], "sanity/last");

    // --only and --exclude by family, flag and id.
    let (code, records, _) =
        conformance(&["server", "--target", &target, "--only", "Replay", "--exclude", "flow/1"], &[]);
    assert_eq!(code, 0);
    let replay = vector_ids("gatekeeper_test.json", "gatekeeper", |_, t| t["flags"].to_string().contains("\"Replay\""))
        .into_iter()
        .chain(vector_ids("flow_test.json", "flow", |_, t| t["flags"].to_string().contains("\"Replay\"")))
        .filter(|id| id != "flow/1")
        .collect::<BTreeSet<_>>();
    let got: BTreeSet<String> = ids(&records, "pass").into_iter().filter(|i| !i.starts_with("sanity/")).collect();
    assert_eq!(got, replay);
    assert!(!replay.is_empty());
    server.stop().unwrap();
}

#[test]
fn a_dead_server_fails_the_first_sanity_case_and_nothing_else_runs() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let (code, records, _) = conformance(&["server", "--wait-secs", "1", "--target", &format!("http://{addr}/")], &[]);
    assert_eq!(code, 1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], "sanity/first");
    assert_eq!(records[0]["result"], "fail");
}

/// A planted fault in front of the reference gatekeeper.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forgets stored releases and serves a release again where it must refuse.
    ReleasesTwice,
    /// Takes every address of its own organisation for a gateway: releases to unlisted
    /// colleagues of the sender (alice and carol are added to the configured gateways).
    GatewayByDomain,
    /// Cannot inject local conditions (answers 422 `unsupported`).
    NoInjection,
}

struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn proxy(upstream: SocketAddr, fault: Fault) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let last_release: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let thread = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        while !s.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => serve_one(stream, upstream, fault, &agent, &last_release),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Proxy { addr, stop, thread: Some(thread) }
}

/// One connection (the runner sends one request per connection here: `Connection: close`).
fn serve_one(
    stream: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    agent: &ureq::Agent,
    last: &Mutex<Option<Vec<u8>>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let (mut len, mut content_type) = (0usize, String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "content-type" => v.trim().clone_into(&mut content_type),
            _ => {}
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    let mut answer: Option<(u16, String, Vec<u8>)> = None;
    if fault == Fault::NoInjection && path == "/ekg-test/v1/store" {
        let p = json!({"type": "urn:ekg:problem:unsupported", "title": "Unsupported", "status": 422, "code": "unsupported", "detail": "no failing store"});
        answer = Some((422, "application/problem+json".into(), p.to_string().into_bytes()));
    }
    if path == "/ekg-test/v1/state" {
        *last.lock().unwrap() = None;
        let mut state: Value = serde_json::from_slice(&body).unwrap();
        match fault {
            Fault::ReleasesTwice => {
                if let Some(records) = state["store"].as_array_mut() {
                    records.retain(|r| r["type"] != "released");
                }
            }
            Fault::GatewayByDomain => {
                if let Some(g) = state["config"]["gateways"].as_array_mut() {
                    g.extend([json!("alice@example.com"), json!("carol@example.com")]);
                }
            }
            Fault::NoInjection => {
                if state.get("inject").is_some() {
                    let p = json!({"type": "urn:ekg:problem:unsupported", "title": "Unsupported", "status": 422, "code": "unsupported", "detail": "this gatekeeper has no injection hooks"});
                    answer = Some((422, "application/problem+json".into(), p.to_string().into_bytes()));
                }
            }
        }
        body = state.to_string().into_bytes();
    }
    let (status, ct, mut out) = answer.unwrap_or_else(|| {
        let url = format!("http://{upstream}{path}");
        let r = if method == "POST" {
            agent.post(&url).header("Content-Type", &content_type).send(&body[..])
        } else {
            agent.get(&url).call()
        };
        match r {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                (status, ct, r.body_mut().read_to_vec().unwrap_or_default())
            }
            Err(e) => (502, "text/plain".into(), format!("proxy: {e}").into_bytes()),
        }
    });
    let mut status = status;
    let mut ct = ct;
    if fault == Fault::ReleasesTwice && path == "/release-request" {
        if status == 200 {
            *last.lock().unwrap() = Some(out.clone());
        } else if status == 409
            && String::from_utf8_lossy(&out).contains("already_released")
            && let Some(previous) = last.lock().unwrap().clone()
        {
            (status, ct, out) = (200, "application/cms".into(), previous);
        }
    }
    let mut w = stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    );
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(&out);
    let _ = w.flush();
}

#[test]
fn planted_gatekeeper_faults_fail_the_right_cases_by_id() {
    let server = reference();
    let expected = |code: &str| {
        let c = code.to_owned();
        move |_: &Value, t: &Value| t["code"] == json!(c) && t["store"].to_string().contains("\"released\"")
    };

    // Releases twice: every vector whose refusal rests on a stored release, and the flows
    // that ask again after a release.
    let p = proxy(server.addr, Fault::ReleasesTwice);
    let (code, records, out) = conformance(&["server", "--target", &format!("http://{}/", p.addr)], &[]);
    assert_eq!(code, 1, "{out}");
    let failed = ids(&records, "fail");
    let mut want = vector_ids("gatekeeper_test.json", "gatekeeper", expected("already_released"));
    want.extend(vector_ids("gatekeeper_test.json", "gatekeeper", expected("released_to_other_certificate")));
    want.extend(vector_ids("gatekeeper_test.json", "gatekeeper", expected("redelivery_limit")));
    // A retained key (every address released) destroyed at the end of its retention.
    want.extend(vector_ids("gatekeeper_test.json", "gatekeeper", expected("key_destroyed")));
    want.extend(vector_ids("flow_test.json", "flow", |_, t| t["steps"].to_string().contains("already_released")));
    // The list probe asks again after the list's release (docs/conformance.md §2.4).
    want.insert("probe/list_expansion".to_owned());
    assert!(!want.is_empty());
    assert_eq!(failed, want, "{out}");
    assert!(ids(&records, "pass").contains("sanity/last"));

    // The same run with those failures declared: exit 0, and a declared case that passes is
    // reported as unexpected.
    let dir = std::env::temp_dir().join(format!("ekg-conf-xfail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let declared: serde_json::Map<String, Value> =
        want.iter().map(|id| (id.clone(), json!("releases twice (planted)"))).collect();
    let file = dir.join("expected.json");
    std::fs::write(&file, Value::Object(declared.clone()).to_string()).unwrap();
    let (code, records, out) = conformance(
        &["server", "--target", &format!("http://{}/", p.addr), "--expected-failures", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(ids(&records, "expected_fail"), want);
    drop(p);
    let (code, records, _) = conformance(
        &["server", "--target", &format!("http://{}/", server.addr), "--expected-failures", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "the fault is gone: the declared failures pass unexpectedly");
    assert_eq!(ids(&records, "unexpected_pass"), want);
    // A declared id that names no case is a stale file: the run fails (unless a selection
    // explains it).
    std::fs::write(&file, json!({"gatekeeper/9999": "gone"}).to_string()).unwrap();
    let target = format!("http://{}/", server.addr);
    let (code, _, out) =
        conformance(&["server", "--target", &target, "--expected-failures", file.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("UNKNOWN gatekeeper/9999"), "{out}");
    let (code, _, out) = conformance(
        &["server", "--target", &target, "--only", "flow", "--expected-failures", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOTE gatekeeper/9999"), "{out}");
    // A selection of no vector tests nothing: an error, not a pass.
    let (code, _, out) = conformance(&["server", "--target", &target, "--only", "nosuch"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no vector was selected"), "{out}");

    // Takes colleagues for gateways: the cases where alice or carol (of the sender's
    // organisation, not listed) must be refused `recipient_not_listed` are served instead.
    let p = proxy(server.addr, Fault::GatewayByDomain);
    let (code, records, out) = conformance(&["server", "--target", &format!("http://{}/", p.addr)], &[]);
    assert_eq!(code, 1, "{out}");
    let failed = ids(&records, "fail");
    let not_listed = vector_ids("gatekeeper_test.json", "gatekeeper", |_, t| t["code"] == "recipient_not_listed");
    let not_listed_flows =
        vector_ids("flow_test.json", "flow", |_, t| t["steps"].to_string().contains("recipient_not_listed"));
    assert!(failed.iter().any(|id| id.starts_with("gatekeeper/")) && failed.iter().any(|id| id.starts_with("flow/")));
    for id in &failed {
        assert!(not_listed.contains(id) || not_listed_flows.contains(id), "{id} failed: {out}");
    }
    drop(p);

    // Cannot inject: the LocalInjection cases are skipped with the reason; exit 0, unless
    // --no-skips.
    let p = proxy(server.addr, Fault::NoInjection);
    let target = format!("http://{}/", p.addr);
    let (code, records, out) = conformance(&["server", "--target", &target], &[]);
    assert_eq!(code, 0, "{out}");
    let skipped = ids(&records, "skip");
    let mut want = vector_ids("gatekeeper_test.json", "gatekeeper", |_, t| t.get("inject").is_some());
    let store_flows = vector_ids("flow_test.json", "flow", |_, t| t["steps"].to_string().contains("storeFails"));
    assert!(!store_flows.is_empty());
    want.extend(store_flows.iter().cloned());
    assert_eq!(skipped, want);
    for r in records.iter().filter(|r| r["result"] == "skip") {
        let why =
            if r["family"] == "flow" { "store: no failing store" } else { "this gatekeeper has no injection hooks" };
        assert_eq!(r["reason"], why, "{r}");
    }
    let (code, _, _) = conformance(&["server", "--target", &target, "--no-skips"], &[]);
    assert_eq!(code, 1);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
    server.stop().unwrap();
}

fn our_shim() -> String {
    format!("{EKG} conformance shim")
}

#[test]
fn the_reference_shim_passes_client_mode_and_planted_shim_faults_fail() {
    let shim = our_shim();
    let (code, records, out) = conformance(&["client", "--shim", &shim, "--no-skips"], &[]);
    assert_eq!(code, 0, "{out}");
    let client = vector_ids("client_test.json", "client", |_, _| true);
    assert_eq!(records.len(), 8 + client.len());
    assert_eq!(ids(&records, "pass").len(), records.len());
    // docs/conformance.md §5 counts the cases of this run (the Python shim runs the same).
    let doc = conformance_doc();
    assert_eq!(number_after(&doc, "client mode with our shim, "), records.len(), "docs/conformance.md");
    assert_eq!(number_after(&doc, "with the Python shim, "), records.len(), "docs/conformance.md");

    let (code, records, out) = conformance(&["client", "--shim", &shim], &[("EKG_SHIM_FAULT", "path_order")]);
    assert_eq!(code, 1, "{out}");
    let failed = ids(&records, "fail");
    // One intermediate happens to sort in path order; two do not.
    assert_eq!(failed, BTreeSet::from(["produce/key_request_two_intermediates".to_owned()]), "{out}");
    let r = records.iter().find(|r| r["id"] == "produce/key_request_two_intermediates").unwrap();
    assert!(r["got"].as_str().unwrap().ends_with("ber_not_der"), "{r}");

    let (code, records, out) = conformance(&["client", "--shim", &shim], &[("EKG_SHIM_FAULT", "no_ticket_digest")]);
    assert_eq!(code, 1, "{out}");
    let failed = ids(&records, "fail");
    // Every case where the shim seals: the production case, and the valid grant vectors.
    let mut want = BTreeSet::from(["produce/seal".to_owned()]);
    want.extend(vector_ids("client_test.json", "client", |g, t| g["check"] == "grant" && t["result"] == "valid"));
    assert_eq!(failed, want, "{out}");
    assert!(
        records
            .iter()
            .filter(|r| r["result"] == "fail")
            .all(|r| r["got"].as_str().unwrap().contains("profile_violation"))
    );
}

#[test]
fn a_shim_is_bounded_and_its_children_do_not_outlive_a_step() {
    let dir = std::env::temp_dir().join(format!("ekg-conf-shims-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    // Exits 89 at once but leaves a child holding its output: the step must not wait for it.
    let lingering = write("lingering.sh", "sleep 30 &\necho not here\nexit 89");
    let started = std::time::Instant::now();
    let (code, records, out) = conformance(&["client", "--shim", &lingering, "--only", "produce/key_request"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(records[0]["result"], "skip");
    assert_eq!(records[0]["reason"], "not here");
    // Refused without a code, an odd exit code: failures that say what happened.
    let silent = write("silent.sh", "exit 1");
    let (_, records, _) = conformance(&["client", "--shim", &silent, "--only", "produce/key_request"], &[]);
    assert!(records[0]["got"].as_str().unwrap().contains("without a code"), "{}", records[0]);
    let three = write("three.sh", "echo broken >&2\nexit 3");
    let (_, records, _) = conformance(&["client", "--shim", &three, "--only", "produce/key_request"], &[]);
    assert!(records[0]["got"].as_str().unwrap().contains("exited with 3: broken"), "{}", records[0]);
    // A shim that cannot run is one error, not a failure per case.
    let (code, records, out) = conformance(&["client", "--shim", "/nonexistent/shim"], &[]);
    assert_eq!(code, 1);
    assert!(records.is_empty() && out.contains("no such executable file"), "{out}");
    // Our shim refuses a fault it does not know.
    let (code, records, _) = conformance(
        &["client", "--shim", &our_shim(), "--only", "produce/key_request"],
        &[("EKG_SHIM_FAULT", "bogus")],
    );
    assert_eq!(code, 1);
    assert!(records[0]["got"].as_str().unwrap().contains("EKG_SHIM_FAULT=bogus"), "{}", records[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_python_shim_passes_every_client_case_and_its_planted_bugs_fail() {
    if !std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(std::env::var_os("EKG_REQUIRE_PYTHON").is_none(), "python3 with cryptography is required");
        eprintln!("SKIP: python3 with the cryptography package is not installed");
        return;
    }
    let shim = format!(
        "python3 {}",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/shims/python/ekg_shim.py").display()
    );
    // A second client, written from docs/ alone: every case, nothing skipped.
    let (code, records, out) = conformance(&["client", "--shim", &shim, "--no-skips"], &[]);
    assert_eq!(code, 0, "{out}");
    let client = vector_ids("client_test.json", "client", |_, _| true);
    assert_eq!(records.len(), 8 + client.len(), "{out}");
    assert_eq!(ids(&records, "pass").len(), records.len(), "{out}");

    // A sample of its planted bugs (scripts/shim-bugs.sh runs them all), one per client check,
    // each on the vectors that could catch it: exactly those the bug touches fail.
    let flagged =
        |t: &Value, any: &[&str]| t["flags"].as_array().unwrap().iter().any(|f| any.contains(&f.as_str().unwrap()));
    let sample: [(&str, BTreeSet<String>, BTreeSet<String>); 4] = [
        (
            // C1: a ticket from another gatekeeper, an expired gatekeeper, a signer without the
            // gatekeeper usage; the release signed by another gatekeeper is C2's and still fails.
            "skip_c1",
            vector_ids("client_test.json", "client", |_, t| flagged(t, &["OtherGatekeeper", "Expired"])),
            vector_ids("client_test.json", "client", |g, t| {
                g["check"] != "release" && flagged(t, &["OtherGatekeeper", "Expired"])
            }),
        ),
        (
            // C4: the envelope's recipient info and algorithms; a content type that is not
            // SignedData and AES-128 are refused after C4 and still fail.
            "skip_c4",
            vector_ids("client_test.json", "client", |g, t| {
                g["check"] == "release" && flagged(t, &["Profile", "NotForUs"])
            }),
            vector_ids("client_test.json", "client", |g, t| {
                let skipped = ["profile_violation", "not_for_this_recipient", "unsupported_version"];
                g["check"] == "release"
                    && (skipped.contains(&t["code"].as_str().unwrap_or(""))
                        || t["comment"].as_str().unwrap().starts_with("OAEP parameters"))
            }),
        ),
        (
            // C6: the recipient's address compared with the list, local part exact.
            "local_part_case_insensitive",
            vector_ids("client_test.json", "client", |_, t| flagged(t, &["NotListed"])),
            vector_ids("client_test.json", "client", |_, t| flagged(t, &["NotListed"]) && flagged(t, &["AddressCase"])),
        ),
        (
            // C3: the release's key id (its request digest is still compared).
            "release_for_other_key",
            vector_ids("client_test.json", "client", |g, t| {
                g["check"] == "release" && flagged(t, &["ResponseMismatch"])
            }),
            vector_ids("client_test.json", "client", |g, t| {
                let comment = t["comment"].as_str().unwrap();
                g["check"] == "release"
                    && (comment.contains("key id of another message") || comment.contains("naming another key id"))
            }),
        ),
    ];
    for (bug, selection, want) in sample {
        assert!(!want.is_empty() && want.len() < selection.len(), "{bug}: {want:?} of {selection:?}");
        let mut args = vec!["client", "--shim", &shim];
        for id in &selection {
            args.extend(["--only", id]);
        }
        let (code, records, out) = conformance(&args, &[("EKG_SHIM_BUG", bug)]);
        assert_eq!(code, 1, "{bug}: {out}");
        assert_eq!(records.len(), selection.len(), "{bug}: {out}");
        assert_eq!(ids(&records, "fail"), want, "{bug}: {out}");
    }
    // An unknown bug is a usage error (exit 2), not a refusal.
    let (code, records, _) =
        conformance(&["client", "--shim", &shim, "--only", "produce/key_request"], &[("EKG_SHIM_BUG", "bogus")]);
    assert_eq!(code, 1);
    assert!(records[0]["got"].as_str().unwrap().contains("exited with 2"), "{}", records[0]);
}
