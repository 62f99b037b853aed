//! Where `ekg load` sends its requests: a gatekeeper over HTTP, or the same service in this
//! process without HTTP (the figure the HTTP one is compared with).

use std::sync::Arc;
use std::time::Duration;

use ekg_server::service::Service;

use super::report::Outcome;

/// A gatekeeper that answers key and release requests.
pub trait Target: Sync {
    /// POSTs `der` to the operation's endpoint (`key-request` or `release-request`).
    fn call(&self, operation: &str, der: &[u8]) -> (Outcome, Vec<u8>);
}

/// A gatekeeper over HTTP (plain HTTP: `ekg load` runs beside the server), or several
/// instances of one, called in turn.
pub struct Http {
    bases: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    agent: ureq::Agent,
}

/// Most instances one `--target` names.
pub const MAX_TARGETS: usize = 16;

impl Http {
    /// The gatekeeper whose base URL is `urls` (`http://HOST:PORT/PATH/`), or the instances
    /// whose base URLs it lists, comma-separated.
    pub fn new(urls: &str, concurrency: usize) -> Result<Http, String> {
        let mut bases = Vec::new();
        for url in urls.split(',') {
            let Some(rest) = url.strip_prefix("http://") else {
                return Err(format!(
                    "--target {url}: an http:// URL (ekg load speaks plain HTTP to a server beside it)"
                ));
            };
            if rest.is_empty() {
                return Err(format!("--target {url}: no host"));
            }
            bases.push(if url.ends_with('/') { url.to_owned() } else { format!("{url}/") });
        }
        if bases.len() > MAX_TARGETS {
            return Err(format!("--target: at most {MAX_TARGETS} URLs"));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .max_idle_connections(concurrency)
            .max_idle_connections_per_host(concurrency)
            .build()
            .into();
        Ok(Http { bases, next: std::sync::atomic::AtomicUsize::new(0), agent })
    }
}

impl Target for Http {
    fn call(&self, operation: &str, der: &[u8]) -> (Outcome, Vec<u8>) {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.bases.len();
        let base = self.bases.get(i).map_or("", String::as_str);
        let sent = self.agent.post(format!("{base}{operation}")).header("Content-Type", "application/cms").send(der);
        let mut r = match sent {
            Ok(r) => r,
            Err(e) => return (Outcome { status: 0, code: format!("transport: {e}") }, Vec::new()),
        };
        let status = r.status().as_u16();
        let body = match r.body_mut().with_config().limit(1 << 20).read_to_vec() {
            Ok(b) => b,
            Err(e) => return (Outcome { status: 0, code: format!("transport: {e}") }, Vec::new()),
        };
        let code = if status == 200 {
            String::new()
        } else {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("code")?.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        (Outcome { status, code }, body)
    }
}

/// The server's service in this process: the same verification pool, serial ledger and
/// SQLite commit as `ekg serve`, without HTTP.
pub struct InProcess {
    /// The service.
    pub service: Arc<Service>,
    /// Its runtime (its blocking pool runs the work).
    pub runtime: tokio::runtime::Runtime,
}

impl Target for InProcess {
    fn call(&self, operation: &str, der: &[u8]) -> (Outcome, Vec<u8>) {
        let now = ekg_server::service::wall_clock();
        let der = der.to_vec();
        let result = self.runtime.block_on(async {
            match operation {
                "key-request" => self.service.key_request(der, now, None).await,
                _ => self.service.release_request(der, now, None).await.map(Ok),
            }
        });
        match result {
            Ok(Ok(body)) => (Outcome { status: 200, code: String::new() }, body),
            Ok(Err(_)) => {
                let code = ekg_server::binding::http_codes::SENDER_QUOTA_EXCEEDED.to_owned();
                (Outcome { status: 429, code }, Vec::new())
            }
            Err(e) => {
                let status = ekg_server::binding::status(e.rejection());
                (Outcome { status, code: e.code().to_owned() }, Vec::new())
            }
        }
    }
}
