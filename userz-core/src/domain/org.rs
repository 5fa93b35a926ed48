//! Organization: the tenant, with its members and their roles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::credentials::{StoredApiKey, PREFIX_LEN};
use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::{Actor, Role};
use crate::event_names;
use crate::ids::{AppId, OrgId, UserId};
use crate::sensitive::Sensitive;
use crate::time::Timestamp;

/// Commands on an organization. `actor` is the member acting.
#[derive(Debug, Clone, PartialEq)]
pub enum OrgCommand {
    /// Creates the org with its first owner.
    Create {
        /// Id.
        org: OrgId,
        /// Display name (1–100 chars).
        name: String,
        /// First owner.
        owner: UserId,
        /// Owner's e-mail.
        owner_email: Sensitive<String>,
    },
    /// Adds a member.
    AddMember {
        /// Acting member.
        actor: UserId,
        /// New member.
        user: UserId,
        /// E-mail.
        email: Sensitive<String>,
        /// Role.
        role: Role,
    },
    /// Changes a member's role.
    ChangeRole {
        /// Acting member.
        actor: UserId,
        /// Member.
        user: UserId,
        /// New role.
        role: Role,
    },
    /// Removes a member.
    RemoveMember {
        /// Acting member.
        actor: UserId,
        /// Member.
        user: UserId,
    },
    /// Records a new org API key (`sk_…`) by its stored form only (G14).
    /// `actor: None` is the operator (admin CLI, first-start bootstrap).
    IssueApiKey {
        /// Acting member, or `None` for the operator.
        actor: Option<UserId>,
        /// Label shown in listings (1–100 chars).
        name: String,
        /// Prefix, salt and Argon2id hash; never the plaintext.
        stored: StoredApiKey,
        /// When.
        at: Timestamp,
    },
    /// Revokes an API key by prefix (idempotent).
    RevokeApiKey {
        /// Acting member, or `None` for the operator.
        actor: Option<UserId>,
        /// The key's prefix.
        prefix: String,
        /// When.
        at: Timestamp,
    },
    /// Records that a private-mode user token was minted (G19 audit).
    RecordTokenMinted {
        /// The App the token is for.
        app: AppId,
        /// Who minted it (an API key).
        by: Actor,
        /// Token expiry.
        expires_at: Timestamp,
    },
    /// Records a refused credential whose org is known (G19 audit).
    RecordAuthFailure {
        /// The API error code answered (`invalid_user_token`, `origin_not_allowed`, …).
        code: String,
        /// The rule that tripped (e.g. `expired`, `bad_signature`).
        reason: String,
        /// The App involved, if any.
        app: Option<AppId>,
        /// The credential's public part (key prefix, `pub_` key); never a secret.
        credential: Option<String>,
    },
    /// Records that an org secret was opened outside a run (G19 audit).
    RecordSecretOpened {
        /// Secret kind (stable name).
        kind: String,
        /// Slot id.
        secret_id: String,
        /// Why it was opened.
        purpose: String,
    },
}

/// Events of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrgEvent {
    /// Created.
    OrgCreated {
        /// Id.
        org: OrgId,
        /// Name.
        name: String,
        /// First owner.
        owner: UserId,
        /// Owner e-mail.
        owner_email: Sensitive<String>,
    },
    /// Member added.
    MemberAdded {
        /// Member.
        user: UserId,
        /// E-mail.
        email: Sensitive<String>,
        /// Role.
        role: Role,
    },
    /// Role changed.
    MemberRoleChanged {
        /// Member.
        user: UserId,
        /// New role.
        role: Role,
    },
    /// Member removed.
    MemberRemoved {
        /// Member.
        user: UserId,
    },
    /// An API key was issued (an audit event; holds only the stored form).
    ApiKeyIssued {
        /// Label.
        name: String,
        /// Prefix, salt, hash.
        stored: StoredApiKey,
        /// Who.
        by: Actor,
        /// When.
        at: Timestamp,
    },
    /// An API key was revoked (an audit event).
    ApiKeyRevoked {
        /// Prefix.
        prefix: String,
        /// Who.
        by: Actor,
        /// When.
        at: Timestamp,
    },
    /// A private-mode user token was minted (an audit event).
    UserTokenMinted {
        /// App.
        app: AppId,
        /// Who.
        by: Actor,
        /// Expiry.
        expires_at: Timestamp,
    },
    /// A credential was refused (an audit event).
    AuthFailed {
        /// API error code.
        code: String,
        /// Rule that tripped.
        reason: String,
        /// App, if any.
        app: Option<AppId>,
        /// Public part of the credential.
        credential: Option<String>,
    },
    /// An org secret was opened outside a run (an audit event).
    SecretOpened {
        /// Kind.
        kind: String,
        /// Slot.
        secret_id: String,
        /// Why.
        purpose: String,
    },
}
event_names!(OrgEvent {
    OrgCreated,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    ApiKeyIssued,
    ApiKeyRevoked,
    UserTokenMinted,
    AuthFailed,
    SecretOpened,
});

/// An org API key as the org records it (no plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgApiKey {
    /// Label.
    pub name: String,
    /// Prefix, salt, hash.
    pub stored: StoredApiKey,
    /// Issued at.
    pub issued_at: Timestamp,
    /// Revoked at, once revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// E-mail.
    pub email: Sensitive<String>,
    /// Role.
    pub role: Role,
}

/// State of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum OrgState {
    /// Not created.
    #[default]
    None,
    /// Exists.
    Active {
        /// Id.
        org: OrgId,
        /// Name.
        name: String,
        /// Members by id.
        members: BTreeMap<UserId, Member>,
        /// API keys by prefix (revoked ones stay, marked).
        #[serde(default)]
        api_keys: BTreeMap<String, OrgApiKey>,
    },
}

impl OrgState {
    /// A member's role, if a member.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        match self {
            OrgState::Active { members, .. } => members.get(&user).map(|m| m.role),
            OrgState::None => None,
        }
    }

    /// The org's API keys by prefix.
    pub fn api_keys(&self) -> Option<&BTreeMap<String, OrgApiKey>> {
        match self {
            OrgState::Active { api_keys, .. } => Some(api_keys),
            OrgState::None => None,
        }
    }

    fn owners(&self) -> usize {
        match self {
            OrgState::Active { members, .. } => members.values().filter(|m| m.role == Role::Owner).count(),
            OrgState::None => 0,
        }
    }
}

/// The organization decider.
#[derive(Debug, Clone, Copy)]
pub struct OrgDecider;

/// `actor: None` (the operator) may administer; a member needs an admin role.
fn require_admin_or_operator(
    state: &OrgState,
    actor: Option<UserId>,
    command: &'static str,
) -> Result<Actor, Rejection> {
    match actor {
        None => Ok(Actor::System),
        Some(user) => require_admin(state, user, command).map(|_| Actor::User { user }),
    }
}

fn require_admin(state: &OrgState, actor: UserId, command: &'static str) -> Result<Role, Rejection> {
    match state.role_of(actor) {
        Some(role) if role.can_administer() => Ok(role),
        Some(role) => Err(Rejection::NotPermitted { role: role.to_string(), command }),
        None => Err(Rejection::NotPermitted { role: "none".into(), command }),
    }
}

impl Decider for OrgDecider {
    type Command = OrgCommand;
    type Event = OrgEvent;
    type State = OrgState;

    fn initial_state() -> OrgState {
        OrgState::None
    }

    fn decide(command: &OrgCommand, state: &OrgState) -> Result<Vec<OrgEvent>, Rejection> {
        if let (OrgCommand::Create { .. }, OrgState::Active { .. }) = (command, state) {
            return Err(Rejection::AlreadyExists { entity: "organization" });
        }
        if !matches!(command, OrgCommand::Create { .. }) && matches!(state, OrgState::None) {
            return Err(Rejection::NotFound { entity: "organization" });
        }
        match command {
            OrgCommand::Create { org, name, owner, owner_email } => {
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(Rejection::input("name", "1-100 characters"));
                }
                Ok(vec![OrgEvent::OrgCreated {
                    org: *org,
                    name: name.to_string(),
                    owner: *owner,
                    owner_email: owner_email.clone(),
                }])
            }
            OrgCommand::AddMember { actor, user, email, role } => {
                let actor_role = require_admin(state, *actor, "add_member")?;
                if state.role_of(*user).is_some() {
                    return Err(Rejection::AlreadyExists { entity: "member" });
                }
                if *role == Role::Owner && actor_role != Role::Owner {
                    return Err(Rejection::NotPermitted { role: actor_role.to_string(), command: "grant_owner" });
                }
                Ok(vec![OrgEvent::MemberAdded { user: *user, email: email.clone(), role: *role }])
            }
            OrgCommand::ChangeRole { actor, user, role } => {
                let actor_role = require_admin(state, *actor, "change_role")?;
                let current = state.role_of(*user).ok_or(Rejection::NotFound { entity: "member" })?;
                if (current == Role::Owner || *role == Role::Owner) && actor_role != Role::Owner {
                    return Err(Rejection::NotPermitted { role: actor_role.to_string(), command: "change_owner" });
                }
                if current == Role::Owner && *role != Role::Owner && state.owners() == 1 {
                    return Err(Rejection::Invariant {
                        rule: "last_owner",
                        message: "an organization keeps at least one owner".into(),
                    });
                }
                if current == *role {
                    return Ok(vec![]);
                }
                Ok(vec![OrgEvent::MemberRoleChanged { user: *user, role: *role }])
            }
            OrgCommand::RemoveMember { actor, user } => {
                let actor_role = require_admin(state, *actor, "remove_member")?;
                let current = state.role_of(*user).ok_or(Rejection::NotFound { entity: "member" })?;
                if current == Role::Owner && actor_role != Role::Owner {
                    return Err(Rejection::NotPermitted { role: actor_role.to_string(), command: "remove_owner" });
                }
                if current == Role::Owner && state.owners() == 1 {
                    return Err(Rejection::Invariant {
                        rule: "last_owner",
                        message: "an organization keeps at least one owner".into(),
                    });
                }
                Ok(vec![OrgEvent::MemberRemoved { user: *user }])
            }
            OrgCommand::IssueApiKey { actor, name, stored, at } => {
                let by = require_admin_or_operator(state, *actor, "issue_api_key")?;
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(Rejection::input("name", "1-100 characters"));
                }
                if stored.prefix.len() != PREFIX_LEN || stored.hash.is_empty() || stored.salt.is_empty() {
                    return Err(Rejection::input("stored", "a stored key needs a prefix, a salt and a hash"));
                }
                if state.api_keys().is_some_and(|k| k.contains_key(&stored.prefix)) {
                    return Err(Rejection::AlreadyExists { entity: "api key" });
                }
                Ok(vec![OrgEvent::ApiKeyIssued { name: name.to_string(), stored: stored.clone(), by, at: *at }])
            }
            OrgCommand::RevokeApiKey { actor, prefix, at } => {
                let by = require_admin_or_operator(state, *actor, "revoke_api_key")?;
                match state.api_keys().and_then(|k| k.get(prefix)) {
                    None => Err(Rejection::NotFound { entity: "api key" }),
                    Some(k) if k.revoked_at.is_some() => Ok(vec![]),
                    Some(_) => Ok(vec![OrgEvent::ApiKeyRevoked { prefix: prefix.clone(), by, at: *at }]),
                }
            }
            OrgCommand::RecordTokenMinted { app, by, expires_at } => {
                Ok(vec![OrgEvent::UserTokenMinted { app: *app, by: by.clone(), expires_at: *expires_at }])
            }
            OrgCommand::RecordAuthFailure { code, reason, app, credential } => Ok(vec![OrgEvent::AuthFailed {
                code: code.clone(),
                reason: reason.clone(),
                app: *app,
                credential: credential.clone(),
            }]),
            OrgCommand::RecordSecretOpened { kind, secret_id, purpose } => Ok(vec![OrgEvent::SecretOpened {
                kind: kind.clone(),
                secret_id: secret_id.clone(),
                purpose: purpose.clone(),
            }]),
        }
    }

    fn evolve(state: OrgState, event: &OrgEvent) -> OrgState {
        match (state, event) {
            (OrgState::None, OrgEvent::OrgCreated { org, name, owner, owner_email }) => {
                let mut members = BTreeMap::new();
                members.insert(*owner, Member { email: owner_email.clone(), role: Role::Owner });
                OrgState::Active { org: *org, name: name.clone(), members, api_keys: BTreeMap::new() }
            }
            (OrgState::Active { org, name, mut members, mut api_keys }, ev) => {
                match ev {
                    OrgEvent::MemberAdded { user, email, role } => {
                        members.insert(*user, Member { email: email.clone(), role: *role });
                    }
                    OrgEvent::MemberRoleChanged { user, role } => {
                        if let Some(m) = members.get_mut(user) {
                            m.role = *role;
                        }
                    }
                    OrgEvent::MemberRemoved { user } => {
                        members.remove(user);
                    }
                    OrgEvent::ApiKeyIssued { name, stored, at, .. } => {
                        api_keys.insert(
                            stored.prefix.clone(),
                            OrgApiKey { name: name.clone(), stored: stored.clone(), issued_at: *at, revoked_at: None },
                        );
                    }
                    OrgEvent::ApiKeyRevoked { prefix, at, .. } => {
                        if let Some(k) = api_keys.get_mut(prefix) {
                            k.revoked_at = Some(*at);
                        }
                    }
                    OrgEvent::OrgCreated { .. }
                    | OrgEvent::UserTokenMinted { .. }
                    | OrgEvent::AuthFailed { .. }
                    | OrgEvent::SecretOpened { .. } => {}
                }
                OrgState::Active { org, name, members, api_keys }
            }
            (state, _) => state,
        }
    }
}

impl Aggregate for OrgDecider {
    const CATEGORY: &'static str = "org";
}
