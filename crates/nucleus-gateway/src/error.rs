use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nucleus_api::FieldError;
use nucleus_api::validation::BodyError;

/// What a 503 answers in `Retry-After`: whatever is missing (a ready replica, a meta leader,
/// room under a limit) usually returns within a second or two.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// Every error the REST API answers with, mapped to its status code in one place.
/// Bodies are `{"detail": "..."}`, or FastAPI's list of field errors for 422 validation.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unprocessable(String),
    /// 503 with `Retry-After`: the message says what is missing and what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation(_) | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn workload_not_found(id: &str) -> ApiError {
        ApiError::NotFound(format!("Workload {id} not found"))
    }

    pub fn artifact_not_found(id: &str) -> ApiError {
        ApiError::NotFound(format!("Artifact {id} not found"))
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> ApiError {
        match err {
            BodyError::Malformed(message) => ApiError::BadRequest(message),
            BodyError::Invalid(errors) => ApiError::Validation(errors),
        }
    }
}

impl From<nucleus_client::Error> for ApiError {
    fn from(err: nucleus_client::Error) -> ApiError {
        tracing::warn!(error = %err, "metadata call failed");
        if err.is_transient() {
            ApiError::Unavailable(format!("metadata service unavailable, retry shortly: {err}"))
        } else {
            ApiError::Internal(format!("metadata service error: {err}"))
        }
    }
}

/// The body of every error answer: `{"detail": "..."}`, or FastAPI's list of field errors.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ErrorDetail {
    Message(String),
    Fields(Vec<FieldError>),
}

impl ApiError {
    fn detail(&self) -> ErrorDetail {
        match self {
            ApiError::Validation(errors) => ErrorDetail::Fields(errors.clone()),
            other => ErrorDetail::Message(other.to_string()),
        }
    }

    /// The answer's body, `{"detail": ...}`, for a server that writes its own answers.
    pub fn json_body(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { detail: self.detail() }).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = self.detail();
        let mut response = (status, Json(ErrorBody { detail })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}
