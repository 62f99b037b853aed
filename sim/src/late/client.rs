//! Who fetches: a recipient (any certificate version) or a gateway, through one interface.

use ekg_core::role::Fetcher;

use super::*;

pub(super) fn body_at(seed: u64, word: u128, size: usize) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_word_pos(word);
    let mut body = vec![0u8; size];
    rng.fill_bytes(&mut body);
    body
}

pub(super) fn client_org(w: &World, who: Who) -> Result<usize, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => w.user(u)?.org,
        Who::SenderGateway(o) | Who::RecipientGateway(o) => o,
    })
}

pub(super) fn cert_of(w: &World, who: Who, version: usize) -> Result<ekg_core::CertId, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => {
            w.user(u)?.versions.get(version).ok_or_else(|| SimError::Internal("version".into()))?.cert_id
        }
        Who::SenderGateway(o) | Who::RecipientGateway(o) => w.org(o)?.gateway_cert,
    })
}

/// The fetcher `who` is: a recipient (with certificate `version`) or a gateway, driven through
/// the core's one [`Fetcher`] interface.
pub(super) fn client_for(w: &World, who: Who, version: usize) -> Result<&dyn Fetcher, SimError> {
    Ok(match who {
        Who::Recipient(u) | Who::Attacker(u) => {
            &w.user(u)?.versions.get(version).ok_or_else(|| SimError::Internal("version".into()))?.recipient
        }
        Who::SenderGateway(o) | Who::RecipientGateway(o) => &w.org(o)?.gateway,
    })
}
