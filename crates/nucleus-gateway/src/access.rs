//! What a caller may do with an object: its role there (the administrator and the creator are
//! owners; others have the role the object is shared with them with, or none), checked against
//! what the request needs. An object the caller has no role on answers 404 (it cannot learn it
//! exists); one it may not do this with answers 403.

use nucleus_api::UserData;
use nucleus_api::identity::{ORGANIZATION_ID, Recipient, Role, SharedRole};

use crate::ApiError;
use crate::auth::Caller;

/// What a request does with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Invoke it (consumers and up).
    Invoke,
    /// Read its configuration, protons, events, statistics (users and up).
    Read,
    /// Change, start, stop, replace, delete or share it (owners).
    Change,
}

/// The caller's role on an object with this creator and sharing list.
pub fn role_of(caller: &Caller, creator: Option<&UserData>, shared: &[SharedRole]) -> Option<Role> {
    match caller {
        Caller::Admin => Some(Role::Owner),
        Caller::User { id, groups, .. } => {
            if creator.is_some_and(|c| c.id == *id) {
                return Some(Role::Owner);
            }
            let reaches = |s: &SharedRole| match Recipient::parse(&s.share_recipient_type) {
                Some(Recipient::User) => s.id == *id,
                Some(Recipient::Group) => groups.contains(&s.id),
                Some(Recipient::Organization) => s.id == ORGANIZATION_ID,
                None => false,
            };
            shared.iter().filter(|s| reaches(s)).map(|s| s.role).max()
        }
    }
}

/// The caller's role if it allows `need`; else 404 (no role: `hidden` says what was not found)
/// or 403.
pub fn allow(role: Option<Role>, need: Need, hidden: impl FnOnce() -> ApiError) -> Result<Role, ApiError> {
    let Some(role) = role else { return Err(hidden()) };
    let enough = match need {
        Need::Invoke => true,
        Need::Read => role >= Role::User,
        Need::Change => role == Role::Owner,
    };
    if enough {
        Ok(role)
    } else {
        let what = match need {
            Need::Invoke => "invoke",
            Need::Read => "read",
            Need::Change => "change",
        };
        Err(ApiError::Forbidden(format!(
            "Your role on this object ({}) does not allow you to {what} it; ask one of its owners to share it with you as {}",
            serde_json::to_value(role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            if need == Need::Change { "owner" } else { "user" }
        )))
    }
}

/// The `permissions` field as this caller sees it.
pub fn permissions(caller: &Caller, role: Role) -> Vec<String> {
    match caller {
        Caller::Admin => vec!["*".to_owned()],
        Caller::User { .. } => role.permissions(),
    }
}

/// Workloads named in an error, as far as the caller may see them: the ids of those it may read,
/// and how many others there are (never their ids).
pub fn visible_workloads(caller: &Caller, workloads: &[nucleus_api::Workload]) -> String {
    let (seen, hidden): (Vec<_>, Vec<_>) =
        workloads.iter().partition(|w| role_of(caller, w.creator.as_ref(), &w.shared_roles).is_some_and(|r| r >= Role::User));
    let mut names: Vec<String> = seen.iter().map(|w| w.id.clone()).collect();
    if !hidden.is_empty() {
        names.push(format!("{} you cannot see", hidden.len()));
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Caller {
        Caller::User { id: id.into(), username: id.into(), groups: vec!["ml".into()] }
    }

    #[test]
    fn creators_own_sharing_grants_and_nobody_else_sees_anything() {
        let creator = UserData { id: "alice".into(), username: None };
        let shared = [SharedRole { id: "bob".into(), name: "bob".into(), role: Role::Consumer, share_recipient_type: "user".into() }];
        assert_eq!(role_of(&Caller::Admin, None, &[]), Some(Role::Owner));
        assert_eq!(role_of(&user("alice"), Some(&creator), &shared), Some(Role::Owner));
        assert_eq!(role_of(&user("bob"), Some(&creator), &shared), Some(Role::Consumer));
        assert_eq!(role_of(&user("eve"), Some(&creator), &shared), None);
        let to_group = SharedRole { id: "ml".into(), name: "ml".into(), role: Role::User, share_recipient_type: "group".into() };
        let to_other_group = SharedRole { id: "ops".into(), name: "ops".into(), role: Role::Owner, share_recipient_type: "group".into() };
        let to_everyone = SharedRole {
            id: ORGANIZATION_ID.into(),
            name: "organization".into(),
            role: Role::Consumer,
            share_recipient_type: "organization".into(),
        };
        assert_eq!(
            role_of(&user("eve"), Some(&creator), &[to_group, to_other_group.clone()]),
            Some(Role::User),
            "eve is in ml, not in ops"
        );
        assert_eq!(role_of(&user("eve"), Some(&creator), &[to_other_group, to_everyone]), Some(Role::Consumer));
        let user_named_like_group =
            SharedRole { id: "ml".into(), name: "ml".into(), role: Role::Owner, share_recipient_type: "user".into() };
        assert_eq!(role_of(&user("eve"), Some(&creator), &[user_named_like_group]), None, "a user entry is not a group entry");

        let hidden = || ApiError::NotFound("gone".into());
        assert!(matches!(allow(None, Need::Invoke, hidden), Err(ApiError::NotFound(_))));
        assert!(allow(Some(Role::Consumer), Need::Invoke, hidden).is_ok());
        assert!(matches!(allow(Some(Role::Consumer), Need::Read, hidden), Err(ApiError::Forbidden(_))));
        assert!(allow(Some(Role::User), Need::Read, hidden).is_ok());
        assert!(matches!(allow(Some(Role::User), Need::Change, hidden), Err(ApiError::Forbidden(_))));
        assert!(allow(Some(Role::Owner), Need::Change, hidden).is_ok());
    }
}
