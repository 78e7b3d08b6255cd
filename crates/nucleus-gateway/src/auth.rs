//! Who is calling: every route, invoke included, needs `Authorization: Bearer <token>` (or
//! `Token <token>`, as DataRobot's Python client sends). The configured token is the
//! administrator's; users' tokens are stored in meta only as SHA-256 hashes
//! (`tokens/<hash>` → the user), and a resolved token is cached for a short while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nucleus_api::UserData;
use nucleus_api::identity::{TokenRecord, User, UserGroup};
use nucleus_client::keys;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// How long a resolved user token is trusted without asking meta again.
const CACHED_FOR: Duration = Duration::from_secs(30);
/// How long a token meta does not know stays refused without asking again, so that random tokens
/// cannot turn every request into a Raft read.
const REFUSED_FOR: Duration = Duration::from_secs(5);
/// Refused tokens remembered at most; past this the oldest half is forgotten.
const MAX_REFUSED: usize = 10_000;

/// The caller of a request, put in the request's extensions by [`require_token`].
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The configured token: sees and may do everything.
    Admin,
    /// `groups`: the ids of the user groups it belongs to, as of when its token was resolved.
    User { id: String, username: String, groups: Vec<String> },
}

impl Caller {
    pub fn id(&self) -> &str {
        match self {
            Caller::Admin => "admin",
            Caller::User { id, .. } => id,
        }
    }

    /// As `creator`/`owners` show it.
    pub fn user_data(&self) -> UserData {
        match self {
            Caller::Admin => UserData { id: "admin".to_owned(), username: Some("admin".to_owned()) },
            Caller::User { id, username, .. } => UserData { id: id.clone(), username: Some(username.clone()) },
        }
    }
}

/// The SHA-256 of a token, in hex: what meta stores.
pub fn token_hash(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(token.as_bytes()) {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// A token's caller, when it was resolved, and when the token expires.
type Resolved = (Caller, Instant, Option<nucleus_api::Timestamp>);

/// Resolved user tokens, and tokens meta did not know, by hash.
#[derive(Clone, Default)]
pub struct TokenCache {
    entries: Arc<Mutex<HashMap<String, Resolved>>>,
    refused: Arc<Mutex<HashMap<String, Instant>>>,
}

impl TokenCache {
    /// What the cache knows of a token: `Some(Some(caller))` resolved, `Some(None)` refused
    /// recently, `None` not known.
    fn cached(&self, hash: &str) -> Option<Option<Caller>> {
        if let Some((caller, at, expires)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(hash)
            && at.elapsed() < CACHED_FOR
            && expires.is_none_or(|expires| nucleus_api::clock::now() < expires)
        {
            return Some(Some(caller.clone()));
        }
        self.is_refused(hash).then_some(None)
    }

    async fn resolve(&self, state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
        let hash = token_hash(token);
        if let Some(known) = self.cached(&hash) {
            return Ok(known);
        }
        // Boxed: the meta reads would otherwise size every request's future.
        let Some((caller, expires)) = Box::pin(self.look_up(state, &hash)).await? else {
            self.refuse(hash);
            return Ok(None);
        };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(hash, (caller.clone(), Instant::now(), expires));
        Ok(Some(caller))
    }

    /// The token's user and when the token expires; None for an unknown, expired or disabled one.
    async fn look_up(&self, state: &AppState, hash: &str) -> Result<Option<(Caller, Option<nucleus_api::Timestamp>)>, ApiError> {
        let Some(record) = state.meta.get_json::<TokenRecord>(&keys::token(hash)).await? else { return Ok(None) };
        if record.value.expires_at.is_some_and(|at| at <= nucleus_api::clock::now()) {
            return Ok(None);
        }
        let Some(user) = state.meta.get_json::<User>(&keys::user(&record.value.user_id)).await? else { return Ok(None) };
        if user.value.disabled {
            return Ok(None);
        }
        let groups = state
            .meta
            .list_json::<UserGroup>(keys::USER_GROUPS)
            .await?
            .into_iter()
            .filter(|g| g.value.member_ids.contains(&user.value.id))
            .map(|g| g.value.id)
            .collect();
        Ok(Some((Caller::User { id: user.value.id, username: user.value.username, groups }, record.value.expires_at)))
    }

    fn is_refused(&self, hash: &str) -> bool {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).get(hash).is_some_and(|at| at.elapsed() < REFUSED_FOR)
    }

    fn refuse(&self, hash: String) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= MAX_REFUSED {
            refused.retain(|_, at| at.elapsed() < REFUSED_FOR);
            if refused.len() >= MAX_REFUSED {
                refused.clear();
            }
        }
        refused.insert(hash, Instant::now());
    }

    /// Forgets every resolved and refused token, so that a change of group membership or a new
    /// token counts at the next call.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The caller a request's `Authorization` header names; 401 when it names none.
pub async fn caller_of(state: &AppState, headers: &http::HeaderMap) -> Result<Caller, ApiError> {
    if let Some(caller) = known_caller(state, headers)? {
        return Ok(caller);
    }
    let token = presented(headers).unwrap_or_default();
    state.tokens.resolve(state, token).await?.ok_or_else(invalid_token)
}

/// The caller, when the gateway knows it without asking meta (the administrator, or a token
/// resolved or refused a moment ago); `Ok(None)` when meta must be asked.
pub fn known_caller(state: &AppState, headers: &http::HeaderMap) -> Result<Option<Caller>, ApiError> {
    known_caller_of(state, presented(headers))
}

/// [`known_caller`], from the token in an `Authorization` header value.
pub fn known_caller_of(state: &AppState, token: Option<&str>) -> Result<Option<Caller>, ApiError> {
    match token {
        None => Err(ApiError::Unauthorized("Authentication required: send the header 'Authorization: Bearer <token>'".to_owned())),
        Some(token) if constant_time_eq(token.as_bytes(), state.config.token.as_bytes()) => Ok(Some(Caller::Admin)),
        Some(token) => match state.tokens.cached(&token_hash(token)) {
            Some(Some(caller)) => Ok(Some(caller)),
            Some(None) => Err(invalid_token()),
            None => Ok(None),
        },
    }
}

fn presented(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(token_of)
}

/// The token in an `Authorization` value: `Bearer <token>` or `Token <token>`.
pub fn token_of(authorization: &str) -> Option<&str> {
    authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("Token ")).map(str::trim)
}

fn invalid_token() -> ApiError {
    ApiError::Unauthorized(
        "Invalid API token: use the token `nucleus dev` printed (kept in <data-dir>/token) or one made with POST /api/v2/users/{id}/tokens"
            .to_owned(),
    )
}

pub async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match caller_of(&state, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refused_tokens_are_remembered_briefly_and_boundedly() {
        let cache = TokenCache::default();
        cache.refuse("h1".to_owned());
        assert!(cache.is_refused("h1"));
        assert!(!cache.is_refused("h2"));
        tokio::time::advance(REFUSED_FOR).await;
        assert!(!cache.is_refused("h1"), "asked again after a while: the token may exist by now");
        for i in 0..MAX_REFUSED + 10 {
            cache.refuse(format!("random-{i}"));
        }
        assert!(cache.refused.lock().unwrap().len() <= MAX_REFUSED, "random tokens cannot grow it without bound");
        cache.refuse("h3".to_owned());
        cache.clear();
        assert!(!cache.is_refused("h3"));
    }

    #[test]
    fn token_hashes_are_lowercase_hex_sha256() {
        assert_eq!(super::token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
