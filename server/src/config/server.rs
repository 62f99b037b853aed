//! `[server]`: the network service's section of the configuration, with its defaults.

use std::path::PathBuf;

use serde::Deserialize;

/// `[server]`: the network service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM PKCS#8 key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a private (not loopback) address, behind a TLS-terminating proxy.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// `sqlite:PATH` (or a plain path), `postgres://...` (several instances), or `memory`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Requests worked on at once, each on a thread of its own: verification, the round over
    /// the store, response building (0: [`WORKERS_PER_CORE`] per core). A worker waits for
    /// its group's commit (an fsync) without using its core, and a group holds at most one
    /// append per worker: one per core would cap every group at the number of cores.
    #[serde(default)]
    pub workers: usize,
    /// Seconds from a request head's first byte to its end (and for a TLS handshake).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may wait for a request (before its first, between keep-alive
    /// requests) before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds to write a response's bytes (a client that does not read loses the connection).
    #[serde(default = "default_write_timeout")]
    pub write_timeout_secs: u64,
    /// Seconds to read a request's body.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Most concurrent connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most concurrent connections from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Most requests on one connection (then it is closed after the answer).
    #[serde(default = "default_max_requests_per_connection")]
    pub max_requests_per_connection: u32,
    /// Seconds in-flight requests get to finish at shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// Seconds a protocol request may take once its body is read (a client's own
    /// `Ekg-Timeout` header may shorten it): past it, nothing is recorded and the answer is 503
    /// `deadline_exceeded`.
    #[serde(default = "default_request_deadline")]
    pub request_deadline_secs: u64,
    /// Most keys held (pending or retained) for one sender's requests; past it a key request
    /// is `429 sender_quota_exceeded` (0: no quota).
    #[serde(default = "default_max_held_per_sender")]
    pub max_held_per_sender: u64,
    /// The store's identity file (`docs/server.md`, "Store identity"); default: the storage
    /// key's path with the extension `store-identity`.
    #[serde(default)]
    pub store_identity: Option<PathBuf>,
    /// Seconds between two advances of the store's generation while the server runs.
    #[serde(default = "default_store_generation")]
    pub store_generation_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
            database: default_database(),
            workers: 0,
            header_timeout_secs: default_header_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            write_timeout_secs: default_write_timeout(),
            body_timeout_secs: default_body_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            max_requests_per_connection: default_max_requests_per_connection(),
            shutdown_grace_secs: default_grace(),
            request_deadline_secs: default_request_deadline(),
            max_held_per_sender: default_max_held_per_sender(),
            store_identity: None,
            store_generation_secs: default_store_generation(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_store_generation() -> u64 {
    10
}
fn default_database() -> String {
    "sqlite:ekg.db".into()
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    15
}
fn default_write_timeout() -> u64 {
    10
}
fn default_max_connections_per_client() -> usize {
    64
}
fn default_max_requests_per_connection() -> u32 {
    1000
}
fn default_body_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    1024
}
fn default_grace() -> u64 {
    30
}
/// Workers per core unless `server.workers` is set (`docs/performance.md`, "Memory and group
/// commit": with one per core, 8 clients on 2 cores got 1,005 issuances/s on disk; with four,
/// 1,980).
pub const WORKERS_PER_CORE: usize = 4;

/// A protocol request's deadline unless configured (`server.request_deadline_secs`).
pub const DEFAULT_REQUEST_DEADLINE_SECS: u64 = 10;
/// Most keys held for one sender unless configured (`server.max_held_per_sender`). With
/// `max_recipients` listed addresses at most per key, it also bounds the addresses held.
pub const DEFAULT_MAX_HELD_PER_SENDER: u64 = 100_000;
/// The largest `server.max_held_per_sender`.
pub const MAX_HELD_PER_SENDER: u64 = 100_000_000;
fn default_max_held_per_sender() -> u64 {
    DEFAULT_MAX_HELD_PER_SENDER
}
fn default_request_deadline() -> u64 {
    DEFAULT_REQUEST_DEADLINE_SECS
}
