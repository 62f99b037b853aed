//! A real OpenID provider for the token tests: npm `oidc-provider` 9.x run by
//! `scripts/oidc/provider.mjs` on 127.0.0.1, started once per test binary, stopped when the
//! binary exits (it exits when its standard input closes).
//!
//! Where: `EKG_OIDC_DIR` (a directory holding `provider.mjs` and its `node_modules`, as
//! `scripts/test` makes it), else `scripts/oidc` after `npm ci` there. Without node or the
//! package, [`provider`] is `None` and the tests say they are skipped; with
//! `EKG_REQUIRE_OIDC=1` (CI), that is a failure.
//!
//! The provider signs with keys the test gives ([`KEY1`], then [`Provider::rotate`]), so a
//! test can also sign tokens it cannot get from the provider (expired, not yet valid) with a
//! key the provider's JWK Set publishes.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The audience every client's tokens are issued for by default (the gatekeeper's
/// `audience` in the tests' `[[token_issuer]]`).
pub const AUDIENCE: &str = "https://gatekeeper.example.com/ekg";

/// A key: its `kid` and the seed of the test RSA key (`ekg_testpki::rsa_key_from_seed`).
pub type Key = (&'static str, u64);
/// The key the provider signs with at start.
pub const KEY1: Key = ("k1", 2801);
/// The key it rotates to.
pub const KEY2: Key = ("k2", 2802);
/// A key it never publishes.
pub const UNPUBLISHED: Key = ("k9", 2809);

/// The provider's clients (client credentials; `sub` is the client id) and their extra
/// claims: the facts the gatekeeper's `[[mapping]]`s test.
pub const CLIENTS: &[(&str, &str)] = &[
    ("bob-all", r#"{"export": ["itar", "ear"], "project": ["apollo"], "level": ["secret"]}"#),
    ("bob-itar-only", r#"{"export": ["itar"], "project": ["apollo"], "level": ["secret"]}"#),
    ("bob-other-project", r#"{"export": ["itar", "ear"], "project": ["mercury"], "level": ["secret"]}"#),
    ("bob-confidential", r#"{"export": ["itar", "ear"], "project": ["apollo"], "level": ["confidential"]}"#),
    ("bob-plain", r#"{}"#),
    ("dave-all", r#"{"export": ["itar", "ear"], "project": ["apollo"], "level": ["secret"]}"#),
];

/// The client secret of `client` (test-only).
pub fn secret(client: &str) -> String {
    format!("secret-of-{client}")
}

/// A running provider.
pub struct Provider {
    /// Its issuer URL, `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its JWK Set.
    pub jwks_uri: String,
    admin: String,
    child: Mutex<Child>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The PKCS#8 PEM of key `seed`.
pub fn pem(seed: u64) -> String {
    let der = ekg_testpki::rsa_key_from_seed(seed);
    der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der).unwrap()
}

fn keys_json(keys: &[Key]) -> serde_json::Value {
    keys.iter().map(|(kid, seed)| serde_json::json!({"kid": kid, "pem": pem(*seed)})).collect()
}

/// Why there is no provider, or its directory.
fn directory() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("EKG_OIDC_DIR") {
        Some(d) => PathBuf::from(d),
        None => root().join("scripts/oidc"),
    };
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        return Err(format!(
            "no oidc-provider in {} (run `npm ci` in scripts/oidc, or scripts/test)",
            dir.join("node_modules").display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not on the PATH".into()),
    }
    // scripts/test copies provider.mjs beside the cached node_modules; the checkout's is the
    // one under test.
    let script = root().join("scripts/oidc/provider.mjs");
    if dir != root().join("scripts/oidc") {
        std::fs::copy(&script, dir.join("provider.mjs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(dir)
}

fn start() -> Result<Provider, String> {
    let dir = directory()?;
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oidc-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let clients: Vec<serde_json::Value> = CLIENTS
        .iter()
        .map(|(id, claims)| {
            serde_json::json!({"client_id": id, "client_secret": secret(id), "auth": "client_secret_post",
                "claims": serde_json::from_str::<serde_json::Value>(claims).unwrap()})
        })
        .collect();
    let config = serde_json::json!({"port": 0, "audience": AUDIENCE, "keys": keys_json(&[KEY1]), "clients": clients});
    let config_path = work.join("provider.json");
    std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(work.join("provider.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .arg(&config_path)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("node: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(100) {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v.get("issuer").is_some()
            {
                let _ = tx.send(v);
                break;
            }
        }
    });
    let Ok(v) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let log = std::fs::read_to_string(work.join("provider.log")).unwrap_or_default();
        return Err(format!("the provider did not start: {log}"));
    };
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Ok(Provider {
        issuer: field("issuer"),
        token_endpoint: field("token_endpoint"),
        jwks_uri: field("jwks_uri"),
        admin: field("admin"),
        child: Mutex::new(child),
    })
}

/// The provider of this test binary, started on first use; `None` (the caller skips) when
/// node or the package is missing and `EKG_REQUIRE_OIDC` is not `1`.
pub fn provider() -> Option<&'static Provider> {
    static P: OnceLock<Result<Provider, String>> = OnceLock::new();
    match P.get_or_init(start) {
        Ok(p) => Some(p),
        Err(why) if std::env::var("EKG_REQUIRE_OIDC").is_ok_and(|v| v == "1") => {
            panic!("EKG_REQUIRE_OIDC=1 and no OpenID provider: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no OpenID provider ({why}); set EKG_REQUIRE_OIDC=1 to make this a failure");
            None
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into()
}

impl Provider {
    /// An access token for `client` (client credentials), for `resource` (its `aud`) or
    /// the default [`AUDIENCE`].
    pub fn token(&self, client: &str, resource: Option<&str>) -> String {
        let secret = secret(client);
        let mut form = vec![("grant_type", "client_credentials"), ("client_id", client), ("client_secret", &secret)];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let mut answer = agent().post(&self.token_endpoint).send_form(form).expect("token endpoint");
        let body = answer.body_mut().read_to_string().expect("token answer");
        assert_eq!(answer.status().as_u16(), 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["access_token"].as_str().expect("access_token").to_owned()
    }

    /// From now on the provider publishes `keys` and signs with the first.
    pub fn rotate(&self, keys: &[Key]) {
        let answer = agent().post(format!("{}/keys", self.admin)).send(keys_json(keys).to_string()).expect("admin");
        assert_eq!(answer.status().as_u16(), 204);
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
