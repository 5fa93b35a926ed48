//! Storing and opening an org's secrets through envelope encryption (G13).
//!
//! [`put_secret`] seals a plaintext with the org's data key (creating and
//! wrapping that key on first use) and records only the sealed form;
//! [`open_secret`] unwraps the org key and opens one slot. Plaintext lives only
//! in zeroizing buffers and is never logged.

use crate::commands::{CommandBus, CommandError, CommandMeta};
use userz_core::domain::common::Actor;
use userz_core::domain::secrets::{SecretsCommand, SecretsDecider, SecretsState};
use userz_core::error::Result;
use userz_core::ids::OrgId;
use userz_core::time::Timestamp;
use userz_security::envelope::{Envelope, SecretKind};
use userz_security::secret::SecretString;

/// Seals `plaintext` into slot (`kind`, `secret_id`) of `org`. Write-only: the
/// value can be replaced or removed, never read back through this API.
#[allow(clippy::too_many_arguments)]
pub async fn put_secret(
    bus: &CommandBus,
    envelope: &Envelope,
    org: OrgId,
    kind: SecretKind,
    secret_id: &str,
    plaintext: &[u8],
    by: Actor,
    now: Timestamp,
) -> Result<(), CommandError> {
    let stream = CommandBus::stream::<SecretsDecider>(org);
    let (state, _) = bus.load::<SecretsDecider>(&stream).await?;
    if let SecretsState::None = state {
        let (_, wrapped) = envelope.generate_org_key(org, 1, now).await.map_err(userz_core::Error::from)?;
        match bus.execute::<SecretsDecider>(&stream, CommandMeta::new(), &SecretsCommand::CreateKey { wrapped }).await {
            Ok(_) => {}
            // A concurrent first writer won: its key is the org's key.
            Err(CommandError::Rejected(r)) if r.rule() == "key_exists" => {}
            Err(e) => return Err(e),
        }
    }
    let SecretsState::Keyed(stored) = bus.load::<SecretsDecider>(&stream).await?.0 else {
        return Err(userz_core::Error::Corrupt(format!("{stream}: no org key after creating one")).into());
    };
    let key = envelope.open_org_key(&stored.key).await.map_err(userz_core::Error::from)?;
    let sealed = key.seal(kind, secret_id, plaintext).map_err(userz_core::Error::from)?;
    bus.execute::<SecretsDecider>(&stream, CommandMeta::new(), &SecretsCommand::Put { sealed, by }).await?;
    Ok(())
}

/// Opens slot (`kind`, `secret_id`) of `org`; `Ok(None)` when the org has no
/// such secret. The caller records the decryption as an audit event.
pub async fn open_secret(
    bus: &CommandBus,
    envelope: &Envelope,
    org: OrgId,
    kind: SecretKind,
    secret_id: &str,
) -> Result<Option<SecretString>> {
    let (state, _) = bus.load::<SecretsDecider>(&CommandBus::stream::<SecretsDecider>(org)).await?;
    let SecretsState::Keyed(s) = state else {
        return Ok(None);
    };
    let Some(sealed) = s.get(kind, secret_id) else {
        return Ok(None);
    };
    let key = envelope.open_org_key(&s.key).await?;
    Ok(Some(key.open_string(sealed, kind, secret_id)?))
}
