//! Organization: the tenant, with its members and their roles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::Role;
use crate::event_names;
use crate::ids::{OrgId, UserId};
use crate::sensitive::Sensitive;

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
}
event_names!(OrgEvent { OrgCreated, MemberAdded, MemberRoleChanged, MemberRemoved });

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
        }
    }

    fn evolve(state: OrgState, event: &OrgEvent) -> OrgState {
        match (state, event) {
            (OrgState::None, OrgEvent::OrgCreated { org, name, owner, owner_email }) => {
                let mut members = BTreeMap::new();
                members.insert(*owner, Member { email: owner_email.clone(), role: Role::Owner });
                OrgState::Active { org: *org, name: name.clone(), members }
            }
            (OrgState::Active { org, name, mut members }, ev) => {
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
                    OrgEvent::OrgCreated { .. } => {}
                }
                OrgState::Active { org, name, members }
            }
            (state, _) => state,
        }
    }
}

impl Aggregate for OrgDecider {
    const CATEGORY: &'static str = "org";
}
