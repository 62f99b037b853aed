//! Gatekeeper and client costs against the raw primitives, per provider, in one run.
//!
//! `cargo bench -p ekg-benches` (figures in docs/performance.md). Every group measures the
//! raw RSA-2048 primitives beside the protocol operations so that overhead is a ratio of two
//! numbers taken in the same run, never an absolute time.

// Benchmark setup: a failure is a broken benchmark.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors, provider_cert_id};
use ekg_core::crypto::{AwsLc, CryptoProvider, RustCrypto};
use ekg_core::ledger::{Concrete, MemoryStore, ReleasePolicy};
use ekg_core::role::{Gatekeeper, GatekeeperConfig, Recipient, Sender, SenderRule, StorageKey};
use ekg_core::{EmailAddress, UnixTime};
use ekg_testpki::{Federation, Issued};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

static RC: RustCrypto = RustCrypto;
static AWS: AwsLc = AwsLc;
const NOW: UnixTime = UnixTime(1_780_272_000);

fn providers() -> [&'static dyn CryptoProvider; 2] {
    [&RC, &AWS]
}

struct World {
    p: &'static dyn CryptoProvider,
    fed: &'static Federation,
    anchors: TrustAnchors,
}

impl World {
    fn new(p: &'static dyn CryptoProvider) -> World {
        let fed = Federation::shared();
        World { p, fed, anchors: TrustAnchors::from_der(p, &fed.anchors(), PathLimits::default()).expect("anchors") }
    }

    fn cred(&self, i: &Issued) -> Credential {
        Credential::from_der(self.p, &i.cert_der, &i.chain_der, &i.key_pkcs8).expect("credential")
    }

    fn gatekeeper(&self) -> Gatekeeper<MemoryStore<Concrete>> {
        let org = &self.fed.sender_org;
        let mut cfg = GatekeeperConfig::new(org.gatekeeper_uri(), self.anchors.clone());
        cfg.senders =
            vec![SenderRule { domain: None, issuer: Some(provider_cert_id(self.p, &org.ca.issued.cert_der)) }];
        cfg.policy = ReleasePolicy::SameCertificate;
        cfg.ledger.max_deliveries = MAX_DELIVERIES;
        cfg.ledger.retention_secs = 3600;
        Gatekeeper::new(self.p, cfg, self.cred(&org.gatekeeper), StorageKey::from_bytes([3; 32]), MemoryStore::new())
            .expect("gatekeeper")
    }

    fn sender(&self) -> Sender {
        let org = &self.fed.sender_org;
        Sender::new(self.p, self.cred(org.user("alice@example.com")), self.anchors.clone(), org.gatekeeper_uri())
            .expect("sender")
    }
}

/// The RSA and key-wrap operations an issuance and a release must make, on the same keys.
struct Inherent {
    p: &'static dyn CryptoProvider,
    gatekeeper: Box<dyn ekg_core::crypto::PrivateKey>,
    alice_spki: Vec<u8>,
    bob_spki: Vec<u8>,
    signed: Vec<u8>,
    alice_sig: Vec<u8>,
    bob_sig: Vec<u8>,
    stored: Vec<u8>,
}

impl Inherent {
    fn new(w: &World) -> Inherent {
        let p = w.p;
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let load = |i: &Issued| p.load_private_key(&i.key_pkcs8).expect("key");
        let alice = load(w.fed.sender_org.user("alice@example.com"));
        let bob = load(w.fed.recipient_org.user("bob@example.org"));
        // About the size of the signed attributes a request's signature covers.
        let signed = vec![0x31; 120];
        Inherent {
            p,
            gatekeeper: load(&w.fed.sender_org.gatekeeper),
            alice_spki: alice.public_key_spki().to_vec(),
            bob_spki: bob.public_key_spki().to_vec(),
            alice_sig: alice.sign_pkcs1_sha256(&signed, &mut rng).expect("sign"),
            bob_sig: bob.sign_pkcs1_sha256(&signed, &mut rng).expect("sign"),
            stored: p.aes256_kw_wrap(&[3; 32], &[9; 32]).expect("wrap").0.to_vec(),
            signed,
        }
    }

    fn issuance(&self, rng: &mut ChaCha20Rng) -> usize {
        self.p.verify_pkcs1_sha256(&self.alice_spki, black_box(&self.signed), &self.alice_sig).expect("verify");
        let wrapped = self.p.oaep_sha256_encrypt(&self.alice_spki, &[9; 32], rng).expect("oaep");
        wrapped.len() + self.gatekeeper.sign_pkcs1_sha256(black_box(&self.signed), rng).expect("sign").len()
    }

    fn release(&self, rng: &mut ChaCha20Rng) -> usize {
        self.p.verify_pkcs1_sha256(&self.bob_spki, black_box(&self.signed), &self.bob_sig).expect("verify");
        let key = self.p.aes256_kw_unwrap(&[3; 32], black_box(&self.stored)).expect("unwrap");
        let wrapped = self.p.oaep_sha256_encrypt(&self.bob_spki, key.expose(), rng).expect("oaep");
        wrapped.len() + self.gatekeeper.sign_pkcs1_sha256(black_box(&self.signed), rng).expect("sign").len()
    }
}

/// The configuration's ceiling on deliveries per recipient: the release benchmark moves to a
/// fresh key before it is reached.
const MAX_DELIVERIES: u32 = 100;

fn bob() -> EmailAddress {
    EmailAddress::parse("bob@example.org").expect("address")
}

fn primitives(c: &mut Criterion) {
    for p in providers() {
        let w = World::new(p);
        let key = p.load_private_key(&w.fed.sender_org.gatekeeper.key_pkcs8).expect("key");
        let spki = key.public_key_spki().to_vec();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let msg = [7u8; 200];
        let sig = key.sign_pkcs1_sha256(&msg, &mut rng).expect("sign");
        let ct = p.oaep_sha256_encrypt(&spki, &[1; 32], &mut rng).expect("oaep");
        let mut g = c.benchmark_group(format!("primitives/{}", p.name()));
        g.bench_function("rsa2048_sign", |b| {
            b.iter(|| key.sign_pkcs1_sha256(black_box(&msg), &mut rng).expect("sign"))
        });
        g.bench_function("rsa2048_verify", |b| {
            b.iter(|| p.verify_pkcs1_sha256(&spki, black_box(&msg), &sig).expect("verify"))
        });
        g.bench_function("rsa2048_oaep_wrap", |b| {
            b.iter(|| p.oaep_sha256_encrypt(&spki, black_box(&[1; 32]), &mut rng).expect("oaep"))
        });
        g.bench_function("rsa2048_oaep_unwrap", |b| {
            b.iter(|| key.oaep_sha256_decrypt(black_box(&ct), &mut rng).expect("oaep"))
        });
        let data = vec![5u8; 64 * 1024];
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("aes256_gcm_64KiB", |b| {
            b.iter(|| p.aes256_gcm_seal(&[2; 32], &[3; 12], b"", black_box(&data)).expect("gcm"))
        });
        g.finish();
    }
}

fn gatekeeper(c: &mut Criterion) {
    for p in providers() {
        let w = World::new(p);
        let sender = w.sender();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut gk = w.gatekeeper();
        let mut gk_rng = ChaCha20Rng::seed_from_u64(9);
        let mut g = c.benchmark_group(format!("gatekeeper/{}", p.name()));
        // What an issuance and a release cannot avoid, in the same group so that the ratios
        // (inherent / operation, `scripts/inherent-ratio.sh`) come from one run: an issuance
        // verifies the sender's signature, wraps the key to the sender (OAEP) and signs the
        // ticket; a release verifies the recipient's signature, unwraps the stored key (AES
        // key wrap), wraps it to the recipient and signs the release.
        let inherent = Inherent::new(&w);
        g.bench_function("issuance_inherent", |b| b.iter(|| inherent.issuance(&mut gk_rng)));
        g.bench_function("release_inherent", |b| b.iter(|| inherent.release(&mut gk_rng)));
        // Issuance: request bytes in, grant and ticket bytes out, verification included. A
        // fresh request per iteration (V14 refuses a repeat), made outside the timing.
        g.bench_function("issuance", |b| {
            b.iter_batched(
                || {
                    sender
                        .request_key(&[bob()], NOW, &mut ChaCha20Rng::seed_from_u64(rand_core::Rng::next_u64(&mut rng)))
                        .expect("request")
                        .der
                },
                |der| gk.handle_key_request(&der, NOW, &mut gk_rng).expect("issue").grant.len(),
                criterion::BatchSize::SmallInput,
            )
        });
        // Release: release request bytes in, release bytes out (same certificate: re-delivery).
        // Every MAX_DELIVERIES - 1 iterations a fresh key is issued and a fresh release request
        // made, outside the timing, so the configured delivery ceiling is never reached.
        let gk = std::cell::RefCell::new(w.gatekeeper());
        let mut r = ChaCha20Rng::seed_from_u64(3);
        let recipient = Recipient::new(p, w.cred(w.fed.recipient_org.user("bob@example.org")), w.anchors.clone());
        let fresh = |r: &mut ChaCha20Rng| {
            let pending = sender.request_key(&[bob()], NOW, r).expect("request");
            let issuance = gk.borrow_mut().handle_key_request(&pending.der, NOW, r).expect("issue");
            let key = sender.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, r).expect("grant");
            let sealed = sender.seal(&key, b"bench", r).expect("seal");
            let msg = recipient.receive(&sealed, NOW).expect("receive");
            let req = recipient.request_release(&msg, NOW, r).expect("release request");
            (key, msg, req)
        };
        let mut current = fresh(&mut r);
        let mut delivered = 0u32;
        let mut br = ChaCha20Rng::seed_from_u64(5);
        let mut rr = ChaCha20Rng::seed_from_u64(6);
        g.bench_function("release", |b| {
            b.iter_batched(
                || {
                    if delivered + 1 >= MAX_DELIVERIES {
                        current = fresh(&mut br);
                        delivered = 0;
                    }
                    delivered += 1;
                    current.2.der.clone()
                },
                |der| gk.borrow_mut().handle_release_request(black_box(&der), NOW, &mut rr).expect("release").der.len(),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();

        let (key, msg, req) = fresh(&mut r);
        let mut gk = gk.into_inner();
        let mut g = c.benchmark_group(format!("seal_open/{}", p.name()));
        for size in [1024usize, 64 * 1024, 1024 * 1024] {
            let body = vec![b'x'; size];
            let sealed = sender.seal(&key, &body, &mut r).expect("seal");
            let opened = recipient.receive(&sealed, NOW).expect("receive");
            let k = recipient
                .accept_release(
                    &msg,
                    &req,
                    &gk.handle_release_request(&req.der, NOW, &mut r).expect("release").der,
                    NOW,
                    &mut r,
                )
                .expect("key");
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("seal", size), &body, |b, body| {
                b.iter(|| sender.seal(&key, body, &mut r).expect("seal").len())
            });
            g.bench_with_input(BenchmarkId::new("open", size), &opened, |b, m| {
                b.iter(|| recipient.open(m, &k).expect("open").len())
            });
        }
        g.finish();
    }
}

/// Early binding (the sender validates each recipient's certificate and wraps the content
/// key to it) against late binding (the sender's request, the gatekeeper's issuance, the
/// sender's grant check and one seal), for N recipients and a 64 KiB message. Early binding
/// wraps to bob's certificate N times: the cost and size of a recipient info do not depend on
/// whose certificate it is. Message sizes are printed once per N.
fn binding(c: &mut Criterion) {
    use ekg_core::wire::oid;
    for p in providers() {
        let w = World::new(p);
        let sender = w.sender();
        let mut gk = w.gatekeeper();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let bob = w.cred(w.fed.recipient_org.user("bob@example.org"));
        let body = vec![b'm'; 64 * 1024];
        let mut g = c.benchmark_group(format!("binding/{}", p.name()));
        g.sample_size(10);
        for n in [1usize, 10, 100, 1000] {
            let certs: Vec<&x509_cert::Certificate> = vec![bob.certificate(); n];
            let early = |rng: &mut ChaCha20Rng| {
                for c in &certs {
                    w.anchors.validate(p, c, bob.chain(), NOW).expect("valid");
                }
                ekg_sim::smime::seal_to_all(p, &certs, oid::ID_DATA, &body, rng).expect("envelope")
            };
            let to: Vec<EmailAddress> =
                (0..n).map(|i| EmailAddress::parse(&format!("r{i}@example.org")).expect("address")).collect();
            let mut late = |rng: &mut ChaCha20Rng| {
                let pending = sender.request_key(&to, NOW, rng).expect("request");
                let issuance = gk.handle_key_request(&pending.der, NOW, rng).expect("issue");
                let key = sender.accept_grant(&pending, &issuance.grant, &issuance.ticket, NOW, rng).expect("grant");
                sender.seal(&key, &body, rng).expect("seal")
            };
            eprintln!(
                "binding/{} N={n}: early message {} bytes, late message {} bytes",
                p.name(),
                early(&mut rng).len(),
                late(&mut rng).len()
            );
            g.bench_with_input(BenchmarkId::new("early_send", n), &n, |b, _| b.iter(|| early(&mut rng).len()));
            g.bench_with_input(BenchmarkId::new("late_send", n), &n, |b, _| b.iter(|| late(&mut rng).len()));
        }
        g.finish();
    }
}

/// Issuance throughput on 1 and 2 threads on one store: each thread verifies, draws and
/// builds with the shared crypto half, and runs the core's round (read, decide, append if
/// unchanged) with its own gatekeeper on the one memory store; no lock around the decision. A batch of 32 fresh requests per iteration (made outside the timing).
fn threads(c: &mut Criterion) {
    const BATCH: usize = 32;
    for p in providers() {
        let w = World::new(p);
        let sender = w.sender();
        let gk = w.gatekeeper();
        let crypto = gk.shared_crypto();
        let mut seed = 0u64;
        // Thread RNGs must differ per iteration too: a repeated key id is refused by the
        // ledger (key_id_collision), as it should be.
        let rng_seed = std::sync::atomic::AtomicU64::new(1 << 32);
        let mut g = c.benchmark_group(format!("issuance_threads/{}", p.name()));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.sample_size(10);
        for n in [1usize, 2] {
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_batched(
                    || {
                        (0..BATCH)
                            .map(|_| {
                                seed += 1;
                                sender
                                    .request_key(&[bob()], NOW, &mut ChaCha20Rng::seed_from_u64(seed))
                                    .expect("request")
                            })
                            .collect::<Vec<_>>()
                    },
                    |requests| {
                        std::thread::scope(|s| {
                            for chunk in requests.chunks(BATCH / n) {
                                // Each thread its own gatekeeper on the one store: no lock.
                                let (crypto, mut gk) = (&crypto, gk.clone());
                                let seed = rng_seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                s.spawn(move || {
                                    let mut rng = ChaCha20Rng::seed_from_u64(seed);
                                    for r in chunk {
                                        let v = crypto.verify_key_request(&r.der, NOW).expect("verify");
                                        let committed = gk.issue(v, NOW, &mut rng).expect("issue");
                                        black_box(crypto.build_issuance(committed, &mut rng).expect("build"));
                                    }
                                });
                            }
                        });
                    },
                    criterion::BatchSize::PerIteration,
                )
            });
        }
        // The hardware's own scaling, in the same run: BATCH raw RSA-2048 signatures on 1 and
        // 2 threads.
        let key = p.load_private_key(&w.fed.sender_org.gatekeeper.key_pkcs8).expect("key");
        for n in [1usize, 2] {
            g.bench_with_input(BenchmarkId::new("raw_sign", n), &n, |b, &n| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for t in 0..n {
                            let key = &key;
                            s.spawn(move || {
                                let mut rng = ChaCha20Rng::seed_from_u64(t as u64);
                                for _ in 0..BATCH / n {
                                    black_box(key.sign_pkcs1_sha256(&[7u8; 200], &mut rng).expect("sign"));
                                }
                            });
                        }
                    })
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, primitives, gatekeeper, binding, threads);
criterion_main!(benches);
