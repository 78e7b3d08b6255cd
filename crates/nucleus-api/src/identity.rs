//! Users, API tokens and sharing (docs/api/README.md, "Sharing"): who may see and do what with an object.

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

/// A user, created by the administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A disabled user's tokens are refused (every gateway stops accepting them within 30 s).
    #[serde(default)]
    pub disabled: bool,
}

/// `PATCH /users/{id}` (administrator only).
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// The one organization a Nucleus installation is: sharing with it (`shareRecipientType:
/// organization`, this id) gives the role to every user.
pub const ORGANIZATION_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A group of users, made by the administrator: sharing with it (`shareRecipientType: group`)
/// gives the role to each member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub member_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// `POST /groups`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroupRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// `POST /groups/{id}/users`: users to add, by id.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupMembersRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub user_ids: Vec<String>,
}

/// Who an object is shared with (`shareRecipientType`; the spec's `role` recipients are not
/// supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    User,
    Group,
    Organization,
}

impl Recipient {
    pub fn parse(name: &str) -> Option<Recipient> {
        match name.to_ascii_lowercase().as_str() {
            "user" => Some(Recipient::User),
            "group" => Some(Recipient::Group),
            "organization" => Some(Recipient::Organization),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Recipient::User => "user",
            Recipient::Group => "group",
            Recipient::Organization => "organization",
        }
    }
}

/// What meta keeps of an API token (under the hash of its secret, which is not kept) and what
/// `GET /users/{id}/tokens` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Names the token in the API (`DELETE /users/{userId}/tokens/{id}`); empty for tokens made
    /// before tokens had ids (they are listed under the first 16 characters of their hash).
    #[serde(default)]
    pub id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// After this the token is refused; none: it lasts until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /users/{id}/tokens` (the body is optional).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// When the token stops working; in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The three roles an object can be shared with; the spec's upper-case names map onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Invoke only.
    Consumer,
    /// Read and invoke.
    User,
    /// Everything: change, delete, share.
    Owner,
}

impl Role {
    /// Reads a role name in any case: `Some(None)` is `NO_ROLE` (revoke), `None` an unknown name.
    pub fn parse(name: &str) -> Option<Option<Role>> {
        match name.to_ascii_uppercase().as_str() {
            "OWNER" | "ADMIN" => Some(Some(Role::Owner)),
            "USER" | "EDITOR" | "READ_WRITE" | "DATA_SCIENTIST" | "READ_ONLY" | "OBSERVER" => Some(Some(Role::User)),
            "CONSUMER" => Some(Some(Role::Consumer)),
            "NO_ROLE" => Some(None),
            _ => None,
        }
    }

    /// The `permissions` a caller with this role has on the object.
    pub fn permissions(self) -> Vec<String> {
        let names: &[&str] = match self {
            Role::Owner => &[
                "CAN_VIEW",
                "CAN_UPDATE",
                "CAN_DELETE",
                "CAN_SHARE",
                "CAN_MAKE_PREDICTIONS",
                "CAN_SHARE_ROLE_OWNER",
                "CAN_SHARE_ROLE_READ_WRITE",
                "CAN_SHARE_ROLE_READ_ONLY",
            ],
            Role::User => &["CAN_VIEW", "CAN_MAKE_PREDICTIONS"],
            Role::Consumer => &["CAN_MAKE_PREDICTIONS"],
        };
        names.iter().map(|n| (*n).to_owned()).collect()
    }
}

/// One entry of an object's sharing list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedRole {
    /// The user's id.
    pub id: String,
    /// The user's name.
    pub name: String,
    pub role: Role,
    pub share_recipient_type: String,
}

/// One role of a `PATCH .../sharedRoles`: by `id` or by `username`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedRoleInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    pub role: String,
    pub share_recipient_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedRolesUpdateRequest {
    /// Always `updateRoles`.
    pub operation: String,
    #[schema(min_items = 1, max_items = 100)]
    pub roles: Vec<SharedRoleInput>,
}

/// `POST /users/{id}/tokens`: the secret is shown once, here; meta keeps only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    pub token: String,
    pub id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_of_every_source_map_onto_three_roles() {
        assert_eq!(Role::parse("owner"), Some(Some(Role::Owner)));
        assert_eq!(Role::parse("READ_ONLY"), Some(Some(Role::User)));
        assert_eq!(Role::parse("READ_WRITE"), Some(Some(Role::User)), "the spec maps READ_WRITE and EDITOR onto user");
        assert_eq!(Role::parse("editor"), Some(Some(Role::User)));
        assert_eq!(Role::parse("Consumer"), Some(Some(Role::Consumer)));
        assert_eq!(Role::parse("NO_ROLE"), Some(None));
        assert_eq!(Role::parse("superuser"), None);
        assert!(Role::Owner > Role::User && Role::User > Role::Consumer);
        assert!(Role::Consumer.permissions().iter().all(|p| p != "CAN_VIEW"));
    }
}
