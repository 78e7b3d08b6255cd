use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Every route, invoke included, needs `Authorization: Bearer <token>` (or `Token <token>`, as
/// DataRobot's Python client sends).
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("Token ")))
        .map(str::trim);
    match presented {
        None => ApiError::Unauthorized(
            "Authentication required: send the header 'Authorization: Bearer <token>'".to_owned(),
        )
        .into_response(),
        Some(token) if constant_time_eq(token.as_bytes(), state.config.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::Unauthorized(
            "Invalid API token: use the token `nucleus dev` printed (kept in <data-dir>/token)".to_owned(),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
