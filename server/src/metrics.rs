//! Prometheus metrics (`GET /metrics`, OpenMetrics text): requests by endpoint and status,
//! issuances, releases by kind, refusals by code, latency histograms, keys held.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's endpoint and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `key_request`, `release_request`, `healthz`, `metrics`, `other`.
    pub endpoint: String,
    /// HTTP status.
    pub status: u16,
}

/// An endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `key_request` or `release_request`.
    pub endpoint: String,
}

/// A release's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `first`, `redelivery`, `gateway`.
    pub kind: String,
}

/// A refusal's code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The stable code.
    pub code: String,
}

/// A CRL's issuer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    /// The issuer's name (RFC 4514).
    pub issuer: String,
}

/// Every metric, and the registry that prints them.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Keys issued.
    pub issuances: Counter,
    /// Keys released.
    pub releases: Family<KindLabels, Counter>,
    /// Requests refused.
    pub refusals: Family<CodeLabels, Counter>,
    /// Seconds from the request's body read to its answer.
    pub latency: Family<EndpointLabels, Histogram>,
    /// Keys pending or retained.
    pub keys_held: Gauge,
    /// Statements sent to a shared (PostgreSQL) store, `BEGIN` and `COMMIT` included.
    pub store_round_trips: Counter,
    /// Decisions read again because another instance changed the key first.
    pub store_races_lost: Counter,
    /// Connections refused over a cap, by code (`connection_limit`, `client_connection_limit`).
    pub connections_refused: Family<CodeLabels, Counter>,
    /// Seconds until the gatekeeper's certificate expires (negative once expired).
    pub gatekeeper_certificate_expiry: Gauge,
    /// Seconds until each CRL in force stops being current (negative once stale).
    pub crl_next_update: Family<IssuerLabels, Gauge>,
}

impl core::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ekg");
        let requests = Family::<RequestLabels, Counter>::default();
        let issuances = Counter::default();
        let releases = Family::<KindLabels, Counter>::default();
        let refusals = Family::<CodeLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            // 100 us to about 6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        let keys_held = Gauge::default();
        let store_round_trips = Counter::default();
        let store_races_lost = Counter::default();
        let connections_refused = Family::<CodeLabels, Counter>::default();
        let gatekeeper_certificate_expiry = Gauge::default();
        let crl_next_update = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "gatekeeper_certificate_expiry_seconds",
            "Seconds until the gatekeeper's certificate expires (renew a ticket lifetime before)",
            gatekeeper_certificate_expiry.clone(),
        );
        registry.register(
            "crl_next_update_seconds",
            "Seconds until a configured CRL stops being current, by issuer (then every certificate it covers is refused)",
            crl_next_update.clone(),
        );
        registry.register("requests", "Requests answered, by endpoint and HTTP status", requests.clone());
        registry.register("issuances", "Keys issued", issuances.clone());
        registry.register("releases", "Keys released, by kind (first, redelivery, gateway)", releases.clone());
        registry.register("refusals", "Requests refused, by rejection code", refusals.clone());
        registry.register("request_duration_seconds", "Time to answer a request, by endpoint", latency.clone());
        registry.register("keys_held", "Keys the gatekeeper holds (pending or retained)", keys_held.clone());
        registry.register(
            "store_round_trips",
            "Statements sent to a shared (PostgreSQL) store, BEGIN and COMMIT included",
            store_round_trips.clone(),
        );
        registry.register(
            "store_races_lost",
            "Decisions read and made again because another instance changed the key first",
            store_races_lost.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused over a connection cap, by code",
            connections_refused.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            issuances,
            releases,
            refusals,
            latency,
            keys_held,
            store_round_trips,
            store_races_lost,
            connections_refused,
            gatekeeper_certificate_expiry,
            crl_next_update,
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }

    /// Counts one answered request.
    pub fn answered(&self, endpoint: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { endpoint: endpoint.to_owned(), status }).inc();
    }
}
