//! The simulated organisations: a CA each (rcgen), a gatekeeper with its own certificate, a
//! gateway, users with S/MIME certificates, and the federation lists that decide who trusts
//! whom.
//!
//! RSA key generation dominates setup (~50 ms a key with the `rsa` crate), so every key is
//! drawn from its own seed and the keys are made on every core; the certificates are then
//! issued in a fixed order. The world is the same on every run with the same seed.

use std::collections::BTreeMap;

use ekg_core::CertId;
use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors, provider_cert_id};
use ekg_core::ledger::MemoryStore;
use ekg_core::role::{Gatekeeper, Gateway, GatewayPrincipal, ListAgent, Recipient, Sender, SenderRule, StorageKey};
use ekg_core::{EmailAddress, ledger::Concrete};
use ekg_testpki::{EntitySpec, Issued, Org, Pki, rsa_key_from_seed};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use crate::draw::{Draw, derive_seed};
use crate::error::SimError;
use crate::metered::{Metered, Role};
use crate::scenario::Scenario;

/// One organisation.
pub struct OrgWorld {
    /// Its domain.
    pub domain: String,
    /// Its CA certificate.
    pub ca_der: Vec<u8>,
    /// Its CA's id.
    pub ca_id: CertId,
    /// Organisations whose CA it trusts (itself included), by index.
    pub trusted: Vec<usize>,
    /// Its gatekeeper's certificate and key (a crashed gatekeeper is rebuilt from it).
    pub gatekeeper: Issued,
    /// Its gatekeeper's URI.
    pub gatekeeper_uri: String,
    /// Its gateway (outbound inspection; also the one that probes inbound mail).
    pub gateway: Gateway,
    /// Its gateway's certificate id.
    pub gateway_cert: CertId,
    /// Its users, as indices into [`World::users`].
    pub users: std::ops::Range<usize>,
    /// Whether its users send.
    pub sends: bool,
}

/// One certificate generation of a user: the same credential as a sender, a recipient and
/// an early-binding decrypter.
pub struct UserVersion {
    /// As a sender.
    pub sender: Sender,
    /// As a recipient.
    pub recipient: Recipient,
    /// For early binding (decrypting an S/MIME-style envelope).
    pub credential: Credential,
    /// The certificate's id.
    pub cert_id: CertId,
}

/// One user.
pub struct User {
    /// The address.
    pub address: EmailAddress,
    /// The organisation.
    pub org: usize,
    /// Certificate generations: `[0]` at the start, `[1]` after a rotation.
    pub versions: Vec<UserVersion>,
    /// When the certificate is rotated (or lost), virtual ms (if ever).
    pub rotates_at_ms: Option<u64>,
    /// For a lost certificate: when the new one is issued (no usable key before).
    pub reissued_at_ms: Option<u64>,
}

/// A mailing list's identity: its certificate (naming the list address) and its members.
pub struct ListWorld {
    /// The list's address.
    pub address: EmailAddress,
    /// The organisation hosting it.
    pub org: usize,
    /// Its certificate and key.
    pub issued: Issued,
    /// The members, as indices into [`World::users`].
    pub members: Vec<usize>,
}

/// The whole world.
pub struct World {
    /// The metered provider every party uses.
    pub provider: &'static Metered,
    /// Organisations.
    pub orgs: Vec<OrgWorld>,
    /// Users of every organisation.
    pub users: Vec<User>,
    /// Users by address.
    pub by_address: BTreeMap<EmailAddress, usize>,
    /// Each organisation's gateway credential (early binding decrypts with it).
    pub gateway_credentials: Vec<Credential>,
    /// Keys generated.
    pub keys_generated: usize,
    /// The scenario's mailing list, if it has one.
    pub list: Option<ListWorld>,
    /// The scenario's label policy (every gatekeeper's), if it has labels.
    pub labels: Option<(ekg_core::access::policy::AttributeValue, ekg_core::access::policy::Policy)>,
}

/// The end of the fault phase, virtual ms.
pub fn fault_phase_end_ms(s: &Scenario) -> u64 {
    match s.faults.until_secs {
        Some(t) => t * 1000,
        None => (s.workload.messages as f64 / s.workload.rate_per_sec * 1000.0) as u64,
    }
}

impl World {
    /// Builds the world of `scenario` from `pki_seed`; `threads` make the keys.
    pub fn build(
        scenario: &Scenario,
        pki_seed: u64,
        provider: &'static Metered,
        threads: usize,
    ) -> Result<World, SimError> {
        let p: &'static dyn ekg_core::crypto::CryptoProvider = provider;
        let fault_end = fault_phase_end_ms(scenario).max(1);
        // Who rotates, and when: decided before the keys, so that the spares are made too.
        let mut rotation = ChaCha20Rng::seed_from_u64(derive_seed(pki_seed, "rotation"));
        let mut plan = Vec::new(); // (org, local index, rotates_at)
        for (o, spec) in scenario.orgs.iter().enumerate() {
            for u in 0..spec.users {
                let at = rotation.chance(scenario.faults.rotate_share).then(|| rotation.below(fault_end));
                plan.push((o, u, at));
            }
        }
        // Who of the others loses key and certificate, from a stream of its own (so that
        // scenarios without losses draw exactly what they did before): a new certificate
        // comes `reissue_after_secs` later.
        let mut loss = ChaCha20Rng::seed_from_u64(derive_seed(pki_seed, "certificate-loss"));
        let mut lost: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for entry in &mut plan {
            if entry.2.is_none() && loss.chance(scenario.faults.lose_share) {
                let at = loss.below(fault_end);
                entry.2 = Some(at);
                lost.insert((entry.0, entry.1), at + scenario.faults.reissue_after_secs * 1000);
            }
        }
        // Key seeds, in a fixed order: per organisation gatekeeper, gateway, then users and
        // their spares.
        let mut seeds = Vec::new();
        for (o, spec) in scenario.orgs.iter().enumerate() {
            seeds.push(derive_seed(pki_seed, &format!("key/{o}/gatekeeper")));
            seeds.push(derive_seed(pki_seed, &format!("key/{o}/gateway")));
            for u in 0..spec.users {
                seeds.push(derive_seed(pki_seed, &format!("key/{o}/user/{u}/0")));
            }
        }
        for (o, u, at) in &plan {
            if at.is_some() {
                seeds.push(derive_seed(pki_seed, &format!("key/{o}/user/{u}/1")));
            }
        }
        // The list's key comes last, so that every other key is the one it was without a list.
        if scenario.list.is_some() {
            seeds.push(derive_seed(pki_seed, "key/list"));
        }
        let mut keys = make_keys(&seeds, threads).into_iter();
        let mut next_key = || keys.next().ok_or_else(|| SimError::Internal("key pool exhausted".into()));

        // CAs (one key each, made here) and end entities.
        let mut cas = Vec::new();
        let mut pkis = Vec::new();
        for (o, spec) in scenario.orgs.iter().enumerate() {
            let mut pki = Pki::new(derive_seed(pki_seed, &format!("ca/{o}")));
            cas.push(pki.root(&spec.domain));
            pkis.push(pki);
        }
        let ca_ders: Vec<Vec<u8>> = cas.iter().map(|c| c.issued.cert_der.clone()).collect();
        let mut orgs = Vec::new();
        let mut users = Vec::new();
        let mut gatekeeper_issued = Vec::new();
        let mut gateway_issued = Vec::new();
        for (o, spec) in scenario.orgs.iter().enumerate() {
            let (ca, pki) = (cas.get(o), pkis.get_mut(o));
            let (Some(ca), Some(pki)) = (ca, pki) else { return Err(SimError::Internal("org index".into())) };
            let uri = Org::gatekeeper_uri_for(&spec.domain);
            gatekeeper_issued.push(pki.issue_with_key(
                ca,
                &EntitySpec::gatekeeper(&format!("ekg@{}", spec.domain), &uri),
                next_key()?,
            ));
            gateway_issued.push(pki.issue_with_key(
                ca,
                &EntitySpec::user(&format!("gateway@{}", spec.domain)),
                next_key()?,
            ));
            let mut first = Vec::new();
            for u in 0..spec.users {
                first.push(pki.issue_with_key(ca, &EntitySpec::user(&format!("u{u}@{}", spec.domain)), next_key()?));
            }
            users.push(first);
        }
        let mut spares: BTreeMap<(usize, usize), Issued> = BTreeMap::new();
        for (o, u, at) in &plan {
            if at.is_some() {
                let domain = &scenario.orgs.get(*o).map(|s| s.domain.clone()).unwrap_or_default();
                let (ca, pki) = (cas.get(*o), pkis.get_mut(*o));
                let (Some(ca), Some(pki)) = (ca, pki) else { return Err(SimError::Internal("org index".into())) };
                spares.insert(
                    (*o, *u),
                    pki.issue_with_key(ca, &EntitySpec::user(&format!("u{u}@{domain}")), next_key()?),
                );
            }
        }

        let mut list_issued = None;
        if let Some(l) = &scenario.list {
            let o = scenario.orgs.iter().position(|x| x.domain == l.org);
            let (ca, pki) = (o.and_then(|o| cas.get(o)), o.and_then(|o| pkis.get_mut(o)));
            let (Some(o), Some(ca), Some(pki)) = (o, ca, pki) else {
                return Err(SimError::Scenario(format!("list: unknown organisation {}", l.org)));
            };
            let address = format!("{}@{}", l.name, l.org);
            list_issued = Some((o, address.clone(), pki.issue_with_key(ca, &EntitySpec::user(&address), next_key()?)));
        }

        // Parties.
        let index: BTreeMap<&str, usize> =
            scenario.orgs.iter().enumerate().map(|(i, o)| (o.domain.as_str(), i)).collect();
        let mut all_users = Vec::new();
        let mut gateway_credentials = Vec::new();
        let mut by_address = BTreeMap::new();
        for (o, spec) in scenario.orgs.iter().enumerate() {
            let mut trusted = vec![o];
            trusted.extend(spec.trusts.iter().filter_map(|d| index.get(d.as_str()).copied()));
            trusted.sort_unstable();
            trusted.dedup();
            let anchors_der: Vec<Vec<u8>> = trusted.iter().filter_map(|t| ca_ders.get(*t).cloned()).collect();
            let anchors = || TrustAnchors::from_der(p, &anchors_der, PathLimits::default()).map_err(SimError::core);
            let uri = Org::gatekeeper_uri_for(&spec.domain);
            let start = all_users.len();
            let issued_users = users.get(o).ok_or_else(|| SimError::Internal("users".into()))?;
            for (u, issued) in issued_users.iter().enumerate() {
                let address = EmailAddress::parse(&format!("u{u}@{}", spec.domain)).map_err(SimError::core)?;
                let mut versions = vec![user_version(p, issued, anchors()?, &uri)?];
                let rotates_at_ms = plan.iter().find(|(po, pu, _)| *po == o && *pu == u).and_then(|(_, _, at)| *at);
                if let Some(spare) = spares.get(&(o, u)) {
                    versions.push(user_version(p, spare, anchors()?, &uri)?);
                }
                by_address.insert(address.clone(), all_users.len());
                let reissued_at_ms = lost.get(&(o, u)).copied();
                all_users.push(User { address, org: o, versions, rotates_at_ms, reissued_at_ms });
            }
            let gw = gateway_issued.get(o).ok_or_else(|| SimError::Internal("gateway".into()))?;
            let gateway = Gateway::new(p, credential(p, gw)?, anchors()?);
            gateway_credentials.push(credential(p, gw)?);
            orgs.push(OrgWorld {
                domain: spec.domain.clone(),
                ca_der: ca_ders.get(o).cloned().unwrap_or_default(),
                ca_id: provider_cert_id(p, ca_ders.get(o).map_or(&[][..], |c| c.as_slice())),
                trusted,
                gatekeeper: gatekeeper_issued.get(o).cloned().ok_or_else(|| SimError::Internal("gk".into()))?,
                gatekeeper_uri: uri,
                gateway,
                gateway_cert: provider_cert_id(p, &gw.cert_der),
                users: start..all_users.len(),
                sends: spec.sends,
            });
        }
        for c in &scenario.faults.compromised {
            let a = EmailAddress::parse(&c.user).map_err(SimError::core)?;
            if !by_address.contains_key(&a) {
                return Err(SimError::Scenario(format!("compromised user {} does not exist", c.user)));
            }
        }
        let list = match (&scenario.list, list_issued) {
            (Some(l), Some((org, address, issued))) => {
                let members_org = l.members_org.as_deref().unwrap_or(&l.org);
                let range = orgs
                    .iter()
                    .find(|x| x.domain == members_org)
                    .map(|x| x.users.clone())
                    .ok_or_else(|| SimError::Scenario(format!("list: unknown organisation {members_org}")))?;
                Some(ListWorld {
                    address: EmailAddress::parse(&address).map_err(SimError::core)?,
                    org,
                    issued,
                    members: range.take(l.members).collect(),
                })
            }
            _ => None,
        };
        let labels = scenario.labels.as_ref().map(crate::labels::policy).transpose()?;
        Ok(World {
            provider,
            orgs,
            users: all_users,
            by_address,
            gateway_credentials,
            keys_generated: seeds.len() + scenario.orgs.len(),
            list,
            labels,
        })
    }

    /// The list's agent (the core's [`ListAgent`]), expanding to `members` (the list's own,
    /// or with a planted outsider).
    pub fn list_agent(&self, members: &[usize]) -> Result<ListAgent, SimError> {
        let l = self.list.as_ref().ok_or_else(|| SimError::Internal("no list".into()))?;
        let p: &'static dyn ekg_core::crypto::CryptoProvider = self.provider;
        let anchors = self.anchors(l.org)?;
        let uri = self.org(l.org)?.gatekeeper_uri.clone();
        let addresses = members.iter().map(|m| self.user(*m).map(|u| u.address.clone())).collect::<Result<_, _>>()?;
        let recipient = Recipient::new(p, credential(p, &l.issued)?, anchors.clone());
        let sender = Sender::new(p, credential(p, &l.issued)?, anchors, uri).map_err(SimError::core)?;
        ListAgent::new(p, recipient, sender, addresses).map_err(SimError::core)
    }

    /// The list's credential (early binding's mail list agent decrypts with it).
    pub fn list_credential(&self) -> Result<Credential, SimError> {
        let l = self.list.as_ref().ok_or_else(|| SimError::Internal("no list".into()))?;
        credential(self.provider, &l.issued)
    }

    /// The user at `index`.
    pub fn user(&self, index: usize) -> Result<&User, SimError> {
        self.users.get(index).ok_or_else(|| SimError::Internal(format!("no user {index}")))
    }

    /// The organisation at `index`.
    pub fn org(&self, index: usize) -> Result<&OrgWorld, SimError> {
        self.orgs.get(index).ok_or_else(|| SimError::Internal(format!("no organisation {index}")))
    }

    /// Whether organisation `truster` trusts organisation `trustee`'s CA.
    pub fn trusts(&self, truster: usize, trustee: usize) -> bool {
        self.orgs.get(truster).is_some_and(|o| o.trusted.contains(&trustee))
    }

    /// The anchors of organisation `o`.
    pub fn anchors(&self, o: usize) -> Result<TrustAnchors, SimError> {
        self.anchors_limited(o, PathLimits::default())
    }

    /// The anchors of organisation `o`, paths checked against `limits`.
    fn anchors_limited(&self, o: usize, limits: PathLimits) -> Result<TrustAnchors, SimError> {
        let org = self.org(o)?;
        let ders: Vec<Vec<u8>> =
            org.trusted.iter().filter_map(|t| self.orgs.get(*t).map(|x| x.ca_der.clone())).collect();
        TrustAnchors::from_der(self.provider, &ders, limits).map_err(SimError::core)
    }

    /// A fresh gatekeeper for organisation `o` over `store` (at start and after a restart).
    pub fn gatekeeper(
        &self,
        o: usize,
        scenario: &Scenario,
        store: MemoryStore<Concrete>,
    ) -> Result<Gatekeeper<MemoryStore<Concrete>>, SimError> {
        let org = self.org(o)?;
        let p: &'static dyn ekg_core::crypto::CryptoProvider = self.provider;
        let g = &scenario.gatekeeper;
        let mut config = g.configure(org.gatekeeper_uri.clone(), self.anchors_limited(o, g.path_limits())?);
        config.senders = vec![SenderRule { domain: Some(org.domain.clone()), issuer: Some(org.ca_id) }];
        config.gateways = vec![GatewayPrincipal {
            address: EmailAddress::parse(&format!("gateway@{}", org.domain)).map_err(SimError::core)?,
            issuer: org.ca_id,
        }];
        if let Some((_, policy)) = &self.labels {
            config.attributes = policy.clone();
        }
        let mut storage = [0u8; 32];
        storage[..8].copy_from_slice(&(o as u64).to_be_bytes());
        Gatekeeper::new(p, config, credential(p, &org.gatekeeper)?, StorageKey::from_bytes(storage), store)
            .map_err(SimError::core)
    }

    /// The organisation whose gatekeeper has `uri`.
    pub fn org_by_uri(&self, uri: &str) -> Option<usize> {
        self.orgs.iter().position(|o| o.gatekeeper_uri == uri)
    }
}

fn credential(p: &'static dyn ekg_core::crypto::CryptoProvider, i: &Issued) -> Result<Credential, SimError> {
    Credential::from_der(p, &i.cert_der, &i.chain_der, &i.key_pkcs8).map_err(SimError::core)
}

fn user_version(
    p: &'static dyn ekg_core::crypto::CryptoProvider,
    issued: &Issued,
    anchors: TrustAnchors,
    uri: &str,
) -> Result<UserVersion, SimError> {
    Ok(UserVersion {
        sender: Sender::new(p, credential(p, issued)?, anchors.clone(), uri).map_err(SimError::core)?,
        recipient: Recipient::new(p, credential(p, issued)?, anchors),
        credential: credential(p, issued)?,
        cert_id: provider_cert_id(p, &issued.cert_der),
    })
}

/// Makes one RSA key per seed on `threads` threads; the result is in seed order.
fn make_keys(seeds: &[u64], threads: usize) -> Vec<Zeroizing<Vec<u8>>> {
    let threads = threads.max(1);
    let mut out: Vec<Option<Zeroizing<Vec<u8>>>> = vec![None; seeds.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    seeds
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % threads == t)
                        .map(|(i, s)| (i, rsa_key_from_seed(*s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(keys) = h.join() {
                for (i, k) in keys {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(k);
                    }
                }
            }
        }
    });
    out.into_iter().flatten().collect()
}

/// Crypto operations counted so far, per role.
pub(crate) fn ops(w: &World) -> BTreeMap<Role, crate::metered::OpCounts> {
    Role::ALL.iter().map(|r| (*r, w.provider.counts(*r))).collect()
}
