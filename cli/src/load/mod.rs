//! `ekg load`: drives a gatekeeper with pre-built key requests, then release requests for the
//! tickets it issued, from `--concurrency` clients for at most `--duration` seconds each, and
//! reports per operation the throughput and the p50/p99/max latency (the shape of `oha` or
//! `wrk`). Requests are signed before the clock starts, so the client's own RSA does not
//! share the measured time. `--in-process` runs the same requests through the server's
//! service without HTTP: the figure the HTTP one is compared with (`docs/performance.md`).

mod prefill;
mod report;
mod target;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ekg_core::EmailAddress;
use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors};
use ekg_core::crypto::{AwsLc, CryptoProvider};
use ekg_core::role::{PendingKeyRequest, PendingRelease, ReceivedMessage, Recipient, Sender};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use report::{Outcome, Phase};
use target::Target;

type DynError = Box<dyn std::error::Error>;

/// Most concurrent clients.
pub const MAX_CONCURRENCY: usize = 256;
/// Longest phase, seconds (requests are signed before it and must stay within the
/// gatekeeper's clock skew, 300 s by default).
pub const MAX_DURATION_SECS: u64 = 120;
/// Most requests per phase.
pub const MAX_REQUESTS: usize = 100_000;

/// What `ekg load` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gatekeeper's base URL (plain HTTP), e.g. http://127.0.0.1:8443/; or several
    /// instances' URLs, comma-separated (at most 16), called in turn.
    #[arg(long, required_unless_present = "in_process", conflicts_with = "in_process")]
    pub target: Option<String>,
    /// Instead: serve this configuration in this process, without HTTP, on a fresh temporary
    /// database (the figure the HTTP one is compared with).
    #[arg(long)]
    pub in_process: Option<PathBuf>,
    /// The PKI directory: DOMAIN/NAME.pem, DOMAIN/NAME.key, anchors.pem (an `ekg serve
    /// --demo` directory's pki/).
    #[arg(long)]
    pub pki: PathBuf,
    /// The sender, DOMAIN/NAME.
    #[arg(long, default_value = "example.com/alice")]
    pub sender: String,
    /// The recipient, DOMAIN/NAME.
    #[arg(long, default_value = "example.org/bob")]
    pub recipient: String,
    /// The gatekeeper URI its tickets name (default: --target, or the configuration's).
    #[arg(long)]
    pub uri: Option<String>,
    /// Concurrent clients (1 to 256).
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Seconds per operation, at most (1 to 120).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Requests per operation, at most (1 to 100000), all signed before the clock starts.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// With --in-process: this many keys pending in the fresh database before the run (0 to
    /// 2000000), made by the core's issuance round; the report then gives this process's
    /// memory before and during the run.
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// With --in-process: this SQLite file instead of a fresh temporary database (created if
    /// absent, kept after the run: `ekg serve` can then run on what --prefill wrote).
    #[arg(long)]
    pub database: Option<PathBuf>,
}

fn p() -> &'static dyn CryptoProvider {
    &AwsLc
}

fn credential(pki: &Path, who: &str) -> Result<(Credential, String), DynError> {
    let (domain, name) = who.split_once('/').ok_or_else(|| format!("{who}: DOMAIN/NAME"))?;
    let read = |ext: &str| -> Result<String, DynError> {
        let path = pki.join(domain).join(format!("{name}.{ext}"));
        let bytes = ekg_server::config::read_bounded(&path, who)?;
        Ok(String::from_utf8(bytes).map_err(|_| format!("{}: not PEM text", path.display()))?)
    };
    let pem = read("pem")?;
    let cut = pem.find("-----END CERTIFICATE-----").map_or(pem.len(), |i| i + 25);
    let credential = Credential::from_pem(p(), &pem[..cut], &pem[cut..], &read("key")?)
        .map_err(|e| format!("{who}: {}", e.detail()))?;
    Ok((credential, format!("{name}@{domain}")))
}

fn anchors(pki: &Path) -> Result<TrustAnchors, DynError> {
    let bytes = ekg_server::config::read_bounded(&pki.join("anchors.pem"), "anchors.pem")?;
    let pem = String::from_utf8(bytes).map_err(|_| "anchors.pem: not PEM text")?;
    Ok(TrustAnchors::from_pem(p(), &pem, PathLimits::default()).map_err(|e| e.detail().to_owned())?)
}

/// Runs `f(i)` for `0..n` on every core; the results in order.
fn on_cores<T: Send>(n: usize, f: impl Fn(usize) -> Result<T, String> + Sync) -> Result<Vec<T>, String> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(n));
    let failed: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    match f(i) {
                        Ok(v) => out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((i, v)),
                        Err(e) => {
                            *failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                            next.store(n, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(e);
    }
    let mut out = out.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// Sends `bodies` from `concurrency` clients until they run out or `budget` passes.
fn phase(
    name: &'static str,
    target: &dyn Target,
    operation: &str,
    bodies: &[Vec<u8>],
    concurrency: usize,
    budget: Duration,
) -> (Phase, Vec<Option<Vec<u8>>>) {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let answers: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(vec![None; bodies.len()]);
    let results: Mutex<Vec<(Outcome, Duration)>> = Mutex::new(Vec::with_capacity(bodies.len()));
    let elapsed = Mutex::new(Duration::ZERO);
    let started = Instant::now();
    let deadline = started + budget;
    std::thread::scope(|s| {
        let progress = report::Progress { name, done: &done, total: bodies.len(), budget };
        let finished = &finished;
        s.spawn(move || progress.run(finished));
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| {
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else { return };
                        let t = Instant::now();
                        let (outcome, answer) = target.call(operation, body);
                        let latency = t.elapsed();
                        if outcome.ok() {
                            let mut answers = answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            if let Some(slot) = answers.get_mut(i) {
                                *slot = Some(answer);
                            }
                        }
                        results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((outcome, latency));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        // The last answer's time, before the progress line's thread winds down.
        *elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = started.elapsed();
        finished.store(true, Ordering::Relaxed);
    });
    let elapsed = elapsed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut outcomes = std::collections::BTreeMap::new();
    let mut latencies = Vec::with_capacity(results.len());
    for (o, l) in &results {
        if o.ok() {
            latencies.push(*l);
        }
        *outcomes.entry(o.clone()).or_insert(0) += 1;
    }
    latencies.sort();
    let answers = answers.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    (Phase { name, sent: results.len(), outcomes, elapsed, latencies }, answers)
}

/// Raw RSA signatures per second with the sender's key on `threads` threads for `time`: the
/// primitive the gatekeeper's issuance is bound by, measured in the same run.
fn rsa_baseline(credential: &Credential, threads: usize, time: Duration) -> Result<f64, String> {
    let count = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (count, failed) = (&count, &failed);
            s.spawn(move || {
                let mut rng = ChaCha20Rng::seed_from_u64(t as u64);
                while started.elapsed() < time {
                    if credential.key().sign_pkcs1_sha256(b"ekg load baseline", &mut rng).is_err() {
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    if failed.load(Ordering::Relaxed) {
        return Err("the RSA baseline failed to sign".into());
    }
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn check_args(a: &Args) -> Result<(), DynError> {
    if !(1..=MAX_CONCURRENCY).contains(&a.concurrency) {
        return Err(format!("--concurrency: 1 to {MAX_CONCURRENCY}").into());
    }
    if !(1..=MAX_DURATION_SECS).contains(&a.duration) {
        return Err(format!("--duration: 1 to {MAX_DURATION_SECS} seconds").into());
    }
    if !(1..=MAX_REQUESTS).contains(&a.requests) {
        return Err(format!("--requests: 1 to {MAX_REQUESTS}").into());
    }
    if a.prefill > prefill::MAX_PREFILL {
        return Err(format!("--prefill: 0 to {}", prefill::MAX_PREFILL).into());
    }
    if (a.prefill > 0 || a.database.is_some()) && a.in_process.is_none() {
        return Err("--prefill and --database: only with --in-process (the run's own database)".into());
    }
    Ok(())
}

/// The in-process target: the configuration's gatekeeper on a fresh SQLite database in a
/// temporary directory (removed after).
fn in_process(
    config: &Path,
    database: PathBuf,
    fill: Option<(u64, &str, &str)>,
) -> Result<(target::InProcess, String), DynError> {
    let mut settings = ekg_server::config::load(config)?;
    settings.database = ekg_server::config::Database::Sqlite(database);
    let uri = settings.gatekeeper.uri.clone();
    let store = ekg_server::open_store(&settings.database, settings.gatekeeper.ledger_config())?;
    let gatekeeper = ekg_core::role::Gatekeeper::new(
        settings.provider,
        settings.gatekeeper,
        settings.credential,
        settings.storage_keys,
        store,
    )
    .map_err(|e| format!("{}: {}", e.code(), e.detail()))?;
    if let Some((n, sender, recipient)) = fill.filter(|(n, _, _)| *n > 0) {
        let address = |who: &str| -> Result<EmailAddress, DynError> {
            let (domain, name) = who.split_once('/').ok_or_else(|| format!("{who}: DOMAIN/NAME"))?;
            Ok(EmailAddress::parse(&format!("{name}@{domain}")).map_err(|e| e.detail().to_owned())?)
        };
        let t = Instant::now();
        // The keys are another sender's (of the same domain), so that the run's own sender
        // stays within its quota (`server.max_held_per_sender`).
        let domain = sender.split_once('/').map_or(sender, |(d, _)| d);
        let filler = address(&format!("{domain}/load-prefill"))?;
        let made = prefill::prefill(&gatekeeper, n, &filler, &address(recipient)?, ekg_server::service::wall_clock())?;
        let held = gatekeeper.clone().held_keys().map_err(|e| e.detail().to_owned())?;
        println!(
            "  prefilled {made} pending keys in {:.1} s (not measured); the store holds {held}",
            t.elapsed().as_secs_f64()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let metrics = Arc::new(ekg_server::metrics::Metrics::new());
    let service = Arc::new(
        ekg_server::service::Service::new(gatekeeper, settings.workers, metrics, settings.clock)
            .with_sender_quota(settings.max_held_per_sender),
    );
    Ok((target::InProcess { service, runtime }, uri))
}

/// Runs `ekg load`; exit 1 if any request failed or no request succeeded.
pub fn run(args: Args) -> Result<ExitCode, DynError> {
    check_args(&args)?;
    let scratch = std::env::temp_dir().join(format!("ekg-load-{}", std::process::id()));
    let result = run_in(&args, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run_in(args: &Args, scratch: &Path) -> Result<ExitCode, DynError> {
    let (target, uri, label): (Box<dyn Target>, String, String) = match (&args.target, &args.in_process) {
        (Some(url), None) => {
            let t = target::Http::new(url, args.concurrency)?;
            let first = url.split(',').next().unwrap_or_default().to_owned();
            (Box::new(t), args.uri.clone().unwrap_or(first), format!("{url} over HTTP"))
        }
        (None, Some(config)) => {
            std::fs::create_dir_all(scratch)?;
            let database = args.database.clone().unwrap_or_else(|| scratch.join("ekg.db"));
            let (t, uri) = in_process(config, database, Some((args.prefill, &args.sender, &args.recipient)))?;
            (
                Box::new(t),
                args.uri.clone().unwrap_or(uri),
                format!(
                    "in process (no HTTP), {}",
                    if args.database.is_some() { "the given database" } else { "fresh database" }
                ),
            )
        }
        _ => return Err("give --target URL or --in-process CONFIG".into()),
    };
    let anchors = anchors(&args.pki)?;
    let (sender_cred, _) = credential(&args.pki, &args.sender)?;
    let threads = args.concurrency.min(std::thread::available_parallelism().map_or(2, usize::from));
    let rsa = rsa_baseline(&sender_cred, threads, Duration::from_secs(2))?;
    let (recipient_cred, to) = credential(&args.pki, &args.recipient)?;
    let to = EmailAddress::parse(&to).map_err(|e| format!("{to}: {}", e.detail()))?;
    let sender = Sender::new(p(), sender_cred, anchors.clone(), uri).map_err(|e| e.detail().to_owned())?;
    let recipient = Recipient::new(p(), recipient_cred, anchors);
    let budget = Duration::from_secs(args.duration);
    let now = || ekg_server::service::wall_clock();
    let rng = |phase: u64, i: usize| ChaCha20Rng::seed_from_u64((phase << 40) ^ i as u64 ^ now().secs() << 20);
    println!(
        "ekg load: {label}, {} clients, at most {} requests or {} s per operation",
        args.concurrency, args.requests, args.duration
    );

    // Issuance: key requests signed beforehand.
    let t = Instant::now();
    let pending: Vec<PendingKeyRequest> = on_cores(args.requests, |i| {
        sender.request_key(std::slice::from_ref(&to), now(), &mut rng(1, i)).map_err(|e| e.detail().to_owned())
    })?;
    println!("  signed {} key requests in {:.1} s (not measured)", pending.len(), t.elapsed().as_secs_f64());
    let bodies: Vec<Vec<u8>> = pending.iter().map(|p| p.der.clone()).collect();
    let before = prefill::memory_kib();
    let peak_reset = prefill::reset_peak();
    let (issuance, grants) = phase("issuance", target.as_ref(), "key-request", &bodies, args.concurrency, budget);

    // Release: for each ticket issued, the recipient's request, signed beforehand (the
    // sender checks every grant and seals a message first: a wrong answer is an error here).
    let t = Instant::now();
    let issued: Vec<(usize, &Vec<u8>)> =
        grants.iter().enumerate().filter_map(|(i, g)| Some((i, g.as_ref()?))).collect();
    let releases: Vec<(ReceivedMessage, PendingRelease)> = on_cores(issued.len(), |k| {
        let &(i, body) = issued.get(k).ok_or("no such issuance")?;
        let pending = pending.get(i).ok_or("no such request")?;
        let (grant, ticket) = ekg_core::role::decode_issuance_response(body).map_err(|e| e.detail().to_owned())?;
        let key = sender.accept_grant(pending, &grant, &ticket, now(), &mut rng(2, i)).map_err(|e| {
            let hint = if e.code() == "wrong_gatekeeper" { " (give the gatekeeper's URI with --uri)" } else { "" };
            format!("grant {i}: {}: {}{hint}", e.code(), e.detail())
        })?;
        let sealed =
            sender.seal(&key, b"Subject: ekg load\r\n\r\n.\r\n", &mut rng(3, i)).map_err(|e| e.detail().to_owned())?;
        let msg = recipient.receive(&sealed, now()).map_err(|e| e.detail().to_owned())?;
        let request = recipient.request_release(&msg, now(), &mut rng(4, i)).map_err(|e| e.detail().to_owned())?;
        Ok((msg, request))
    })?;
    println!(
        "  checked {} grants and signed as many release requests in {:.1} s (not measured)",
        releases.len(),
        t.elapsed().as_secs_f64()
    );
    let bodies: Vec<Vec<u8>> = releases.iter().map(|(_, r)| r.der.clone()).collect();
    let (release, keys) = phase("release", target.as_ref(), "release-request", &bodies, args.concurrency, budget);
    let after = prefill::memory_kib();
    // The first release is opened: the figures are of real answers.
    if let Some((i, body)) = keys.iter().enumerate().find_map(|(i, k)| Some((i, k.as_ref()?))) {
        let (msg, request) = releases.get(i).ok_or("no such release request")?;
        recipient
            .accept_release(msg, request, body, now(), &mut rng(5, i))
            .map_err(|e| format!("release {i}: {}: {}", e.code(), e.detail()))?;
    }

    println!("{}", report::HEADER);
    println!(
        "{:<10} {:>8} {:>8} {rsa:>10.1}   (raw RSA-2048 signatures on {threads} threads, same run)",
        "rsa-sign", "", ""
    );
    for ph in [&issuance, &release] {
        println!("{}", ph.row());
    }
    if let (Some((rss, _)), Some((_, peak)), true) = (before, after, peak_reset) {
        println!(
            "memory     this process (gatekeeper, store caches and the clients' signed requests): {} MiB before the run, {} MiB peak during it",
            rss / 1024,
            peak / 1024
        );
    }
    let refusals: Vec<String> = [&issuance, &release].iter().flat_map(|ph| ph.refusals()).collect();
    for r in &refusals {
        println!("{r}");
    }
    let ok = refusals.is_empty() && issuance.ok() > 0 && release.ok() > 0;
    if !ok {
        eprintln!("ekg load: some requests failed, or none succeeded");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let base = || Args {
            target: Some("http://127.0.0.1:1/".into()),
            in_process: None,
            pki: PathBuf::from("pki"),
            sender: "example.com/alice".into(),
            recipient: "example.org/bob".into(),
            uri: None,
            concurrency: 2,
            duration: 10,
            requests: 100,
            prefill: 0,
            database: None,
        };
        assert!(check_args(&base()).is_ok());
        for bad in [
            Args { concurrency: 0, ..base() },
            Args { concurrency: MAX_CONCURRENCY + 1, ..base() },
            Args { duration: 0, ..base() },
            Args { duration: MAX_DURATION_SECS + 1, ..base() },
            Args { requests: 0, ..base() },
            Args { requests: MAX_REQUESTS + 1, ..base() },
            Args { prefill: 1, ..base() },
            Args { prefill: prefill::MAX_PREFILL + 1, in_process: Some("c".into()), target: None, ..base() },
        ] {
            assert!(check_args(&bad).is_err());
        }
        assert!(target::Http::new("https://127.0.0.1/", 1).is_err());
    }
}
