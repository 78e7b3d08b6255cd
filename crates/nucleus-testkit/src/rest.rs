//! A gateway's REST API called in process: its axum router driven directly (no sockets on the
//! HTTP side) against a real meta node.

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use nucleus_gateway::{AppState, GatewayConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::Meta;

pub struct Rest {
    router: nucleus_gateway::Router,
}

impl Rest {
    /// The REST API of a gateway with `config`, over `meta`.
    pub fn new(meta: &Meta, config: GatewayConfig) -> Rest {
        Rest { router: nucleus_gateway::router(AppState::new(meta.client.clone(), config)) }
    }

    /// `method /api/v2{path}` with `token` (none: no Authorization header) and a JSON body; the
    /// status and the JSON answer (`null` for an empty body, a string for a body that is not JSON).
    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(format!("/api/v2{path}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                body.to_string()
            }
            None => String::new(),
        };
        let response = self.router.clone().oneshot(request.body(body).expect("request")).await.expect("the router answers");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }
}
