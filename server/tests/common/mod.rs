//! A server on loopback with the demo PKI, and clients that reach it over real HTTP.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors};
use ekg_core::crypto::{AwsLc, CryptoProvider};
use ekg_core::role::{Gateway, Recipient, Sender};
use ekg_core::{EmailAddress, UnixTime};
use ekg_server::demo::DemoFiles;
use ekg_server::{Running, Settings};

pub mod tokens;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn p() -> &'static dyn CryptoProvider {
    &AwsLc
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A fresh directory under the target's temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The demo's files in `dir` (gatekeeper URI on 127.0.0.1:0; the server binds any port).
pub fn demo(dir: &Path, extra_server: &str) -> DemoFiles {
    ekg_server::demo::write(dir, "127.0.0.1:0".parse().unwrap(), &[7; 32], extra_server).unwrap()
}

/// The demo's files for a gatekeeper that will listen on 127.0.0.1:`port` (its certificate
/// and tickets name that URI, so clients that follow the ticket reach it).
pub fn demo_at(dir: &Path, port: u16) -> DemoFiles {
    ekg_server::demo::write(dir, std::net::SocketAddr::from(([127, 0, 0, 1], port)), &[7; 32], "").unwrap()
}

/// The demo's settings, with short timeouts for the tests.
pub fn settings(files: &DemoFiles) -> Settings {
    let mut s = ekg_server::config::load(&files.config).expect("config");
    s.limits.header_timeout = Duration::from_secs(1);
    s.body_timeout = Duration::from_secs(1);
    s.shutdown_grace = Duration::from_secs(5);
    s
}

pub fn start(files: &DemoFiles) -> Running {
    ekg_server::start(settings(files)).expect("server")
}

pub fn url(server: &Running, path: &str) -> String {
    format!("http://{}/{}", server.addr, path.trim_start_matches('/'))
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// POSTs a CMS body; (status, content type, body).
pub fn post(server: &Running, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut r = agent().post(url(server, path)).header("Content-Type", "application/cms").send(body).expect("POST");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, r.body_mut().with_config().limit(16 << 20).read_to_vec().expect("body"))
}

pub fn get(server: &Running, path: &str) -> (u16, String) {
    let mut r = agent().get(url(server, path)).call().expect("GET");
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
}

/// The problem code of a refusal body.
pub fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["code"].as_str().unwrap_or("").to_owned()
}

pub fn credential(files: &DemoFiles, domain: &str, name: &str) -> Credential {
    let read = |ext: &str| std::fs::read_to_string(files.pki.join(domain).join(format!("{name}.{ext}"))).unwrap();
    let pem = read("pem");
    let cut = pem.find("-----END CERTIFICATE-----").map(|i| i + 25).unwrap();
    Credential::from_pem(p(), &pem[..cut], &pem[cut..], &read("key")).expect("credential")
}

pub fn anchors(files: &DemoFiles) -> TrustAnchors {
    let pem = std::fs::read_to_string(files.pki.join("anchors.pem")).unwrap();
    TrustAnchors::from_pem(p(), &pem, PathLimits::default()).unwrap()
}

pub fn sender(files: &DemoFiles, name: &str) -> Sender {
    Sender::new(p(), credential(files, "example.com", name), anchors(files), files.uri.clone()).unwrap()
}

pub fn recipient(files: &DemoFiles, domain: &str, name: &str) -> Recipient {
    Recipient::new(p(), credential(files, domain, name), anchors(files))
}

pub fn gateway(files: &DemoFiles, domain: &str) -> Gateway {
    Gateway::new(p(), credential(files, domain, "gateway"), anchors(files))
}

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// The server's time (its clock may have been moved forward).
pub fn now(server: &Running) -> UnixTime {
    server.clock.now()
}

/// alice seals a message for `to` through the server: (sealed message, plaintext).
pub fn send(server: &Running, files: &DemoFiles, to: &[&str], seed: u64) -> (Vec<u8>, Vec<u8>) {
    let alice = sender(files, "alice");
    let mut r = rng(seed);
    let to: Vec<_> = to.iter().map(|a| addr(a)).collect();
    let now = now(server);
    let pending = alice.request_key(&to, now, &mut r).unwrap();
    let (status, ct, body) = post(server, "key-request", &pending.der);
    assert_eq!((status, ct.as_str()), (200, "application/cms"), "{}", String::from_utf8_lossy(&body));
    let (grant, ticket) = ekg_core::role::decode_issuance_response(&body).expect("issuance response");
    let key = alice.accept_grant(&pending, &grant, &ticket, now, &mut r).expect("grant");
    let plaintext = format!("Subject: over HTTP {seed}\r\n\r\nhello\r\n").into_bytes();
    (alice.seal(&key, &plaintext, &mut r).unwrap(), plaintext)
}

/// `who` asks for the key of `sealed`: Ok(plaintext) or Err((status, code)).
pub fn fetch(server: &Running, who: &Recipient, sealed: &[u8], seed: u64) -> Result<Vec<u8>, (u16, String)> {
    let mut r = rng(seed);
    let now = now(server);
    let msg = who.receive(sealed, now).expect("receive");
    let pending = who.request_release(&msg, now, &mut r).unwrap();
    let (status, _, body) = post(server, "release-request", &pending.der);
    if status != 200 {
        return Err((status, code(&body)));
    }
    let key = who.accept_release(&msg, &pending, &body, now, &mut r).expect("release");
    Ok(who.open(&msg, &key).unwrap().to_vec())
}

/// `ekg serve` as a child process (the command-line tests).
pub struct ServeProcess {
    /// The process.
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for ServeProcess {
    /// A failing test does not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin serve --config CONFIG --listen 127.0.0.1:PORT` and waits (at most 30 s) until
/// `/healthz` answers. Its log (standard error) goes to `serve-PORT.log` beside the
/// configuration: a pipe nobody reads would stop the server once full.
pub fn spawn_serve(bin: &str, config: &Path, port: u16) -> ServeProcess {
    use std::process::{Command, Stdio};
    let log_path = serve_log(config, port);
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("ekg serve");
    // The guard exists before the wait, so that a server that never answers is killed too.
    let mut server = ServeProcess { child, addr: format!("127.0.0.1:{port}") };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if agent().get(format!("http://{}/healthz", server.addr)).call().is_ok_and(|r| r.status() == 200) {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let err = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("ekg serve exited with {status}: {err}");
        }
        assert!(std::time::Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where [`spawn_serve`] writes the log of the server on `port`.
pub fn serve_log(config: &Path, port: u16) -> PathBuf {
    config.with_file_name(format!("serve-{port}.log"))
}

/// Starts `bin serve --demo --dir DIR --listen 127.0.0.1:PORT` (its output in `DIR/serve.log`)
/// and waits (at most 30 s) until `/healthz` answers. The guard kills it if the test fails.
pub fn spawn_demo_serve(bin: &str, dir: &Path, port: u16) -> ServeProcess {
    use std::process::{Command, Stdio};
    let log = std::fs::File::create(dir.join("serve.log")).expect("serve.log");
    let child = Command::new(bin)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(dir)
        .stdout(Stdio::from(log.try_clone().expect("serve.log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("ekg serve --demo");
    // The guard exists before the wait, so that a server that never answers is killed too.
    let mut server = ServeProcess { child, addr: format!("127.0.0.1:{port}") };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !agent().get(format!("http://{}/healthz", server.addr)).call().is_ok_and(|r| r.status() == 200) {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            panic!("ekg serve --demo exited with {status}: {log}");
        }
        assert!(std::time::Instant::now() < deadline, "ekg serve --demo did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

impl ServeProcess {
    /// Sends SIGTERM and waits (at most 30 s) for the exit status; past that, the guard kills it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "ekg serve did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// POSTs a CMS body to `http://ADDR/PATH`: (status, body), or None if the server did not answer.
pub fn post_to(addr: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut r =
        agent().post(format!("http://{addr}/{path}")).header("Content-Type", "application/cms").send(body).ok()?;
    let status = r.status().as_u16();
    Some((status, r.body_mut().read_to_vec().ok()?))
}

/// A fresh database on the test cluster, named after the test; `None` if there is no cluster.
pub fn fresh_database(name: &str) -> Option<String> {
    let Ok(base) = std::env::var("EKG_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("EKG_REQUIRE_POSTGRES").is_none(),
            "EKG_REQUIRE_POSTGRES is set but EKG_TEST_POSTGRES is not"
        );
        eprintln!("skipped: EKG_TEST_POSTGRES is not set (scripts/test starts a PostgreSQL cluster)");
        return None;
    };
    let db = format!("ekg_{name}_{}", std::process::id());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("the test cluster");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let cut = base.rfind('/').expect("a database in the URL");
    Some(format!("{}/{db}", &base[..cut]))
}
