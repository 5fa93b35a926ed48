//! Credentials at rest: the plain data types that events and ports carry for
//! API keys and sealed secrets. The cryptography that makes and checks them
//! (Argon2id hashing, AES-SIV sealing, key wrapping) lives in `userz-security`;
//! these types only hold its output, so the domain can record them without
//! depending on any crypto crate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::OrgId;
use crate::ports::key_provider::WrappedKey;
use crate::time::Timestamp;

/// Length of the public lookup prefix of an API key (`sk_<prefix>_…`).
pub const PREFIX_LEN: usize = 12;

/// Format version written into [`SealedSecret::format`].
pub const SEALED_FORMAT_V1: u8 = 1;

/// Argon2id cost parameters, stored with each hash so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
}

impl HashParams {
    /// OWASP's Argon2id recommendation: m = 19456 KiB, t = 2, p = 1.
    pub const OWASP: HashParams = HashParams { m_cost_kib: 19_456, t_cost: 2, p_cost: 1 };
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// An `sk_` key at rest: no plaintext, only prefix, salt and Argon2id hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiKey {
    /// Public lookup prefix.
    pub prefix: String,
    /// Random salt.
    #[serde(with = "crate::encoding::b64")]
    pub salt: Vec<u8>,
    /// Argon2id(key, salt).
    #[serde(with = "crate::encoding::b64")]
    pub hash: Vec<u8>,
    /// Parameters the hash was computed with.
    pub params: HashParams,
}

/// What a sealed secret is; part of the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecretKind {
    /// An AI provider API key.
    AiProviderKey,
    /// A repository access token (GitLab project token, …).
    RepoToken,
    /// A chat bot token (Slack, Discord).
    ChatBotToken,
    /// A per-App private-mode signing secret.
    AppSigningSecret,
    /// A GitHub App private key (PEM).
    GithubAppPrivateKey,
    /// An inbound webhook signing secret.
    WebhookSecret,
    /// Anything else.
    Other,
}

impl SecretKind {
    /// The stable name bound into the associated data.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretKind::AiProviderKey => "ai_provider_key",
            SecretKind::RepoToken => "repo_token",
            SecretKind::ChatBotToken => "chat_bot_token",
            SecretKind::AppSigningSecret => "app_signing_secret",
            SecretKind::GithubAppPrivateKey => "github_app_private_key",
            SecretKind::WebhookSecret => "webhook_secret",
            SecretKind::Other => "other",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An org data key as stored: wrapped by a master key, never in plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedOrgKey {
    /// The org it belongs to (bound into the wrap's associated data).
    pub org: OrgId,
    /// Org-key version (bound into the wrap's associated data and recorded in
    /// every secret sealed with it).
    pub version: u32,
    /// The wrapped bytes and the master key id that wrapped them.
    pub wrapped: WrappedKey,
    /// When this org key was generated.
    pub created_at: Timestamp,
}

/// A secret sealed with an org's data key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Format version ([`SEALED_FORMAT_V1`]).
    pub format: u8,
    /// The org whose key sealed it.
    pub org: OrgId,
    /// What it is.
    pub kind: SecretKind,
    /// The slot it was sealed for (e.g. `"openai"`, a repo id).
    pub secret_id: String,
    /// The org-key version that sealed it.
    pub org_key_version: u32,
    /// Random nonce (an AES-SIV associated-data component).
    #[serde(with = "crate::encoding::b64")]
    pub nonce: Vec<u8>,
    /// Synthetic IV followed by the ciphertext.
    #[serde(with = "crate::encoding::b64")]
    pub ciphertext: Vec<u8>,
}
