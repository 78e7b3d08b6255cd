use axum::http::{Method, StatusCode};
use nucleus_gateway::{DEFAULT_DRAFT_TTL, GatewayConfig, Limits};
use nucleus_testkit::{Meta, Rest};
use serde_json::{Value, json};

pub const TOKEN: &str = "in-process-admin-token";

/// The REST API of one gateway over a fresh single-node meta.
pub struct Api {
    rest: Rest,
    _meta: Meta,
}

impl Api {
    pub async fn start() -> Api {
        let meta = Meta::start(4).await;
        let config = GatewayConfig {
            token: TOKEN.to_owned(),
            public_url: "https://api.example.test".to_owned(),
            draft_ttl: DEFAULT_DRAFT_TTL,
            limits: Limits::default(),
            workers: 1,
        };
        Api { rest: Rest::new(&meta, config), _meta: meta }
    }

    /// `method /api/v2{path}` as the administrator.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.rest.call_as(token, method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a user and a token for it; (user id, token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let (code, made) = self.post("/users", json!({"username": name})).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let id = made["id"].as_str().expect("user id").to_owned();
        let (code, token) = self.post(&format!("/users/{id}/tokens"), json!({})).await;
        assert_eq!(code, StatusCode::CREATED, "{token}");
        (id, token["token"].as_str().expect("token").to_owned())
    }

    /// Creates a workload on an inline draft artifact; the created document.
    pub async fn workload(&self, name: &str) -> Value {
        let (code, created) = self.post("/workloads", workload(name, artifact(name))).await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        created
    }
}

pub fn artifact(name: &str) -> Value {
    json!({
        "name": name,
        "spec": {"containerGroups": [{"containers": [{
            "imageUri": "example/whoami:1", "primary": true, "port": 8080,
            "entrypoint": ["/bin/true"]
        }]}]}
    })
}

pub fn workload(name: &str, artifact: Value) -> Value {
    json!({"name": name, "artifact": artifact, "runtime": {"containerGroups": [{"name": "default", "replicaCount": 1}]}})
}

/// The `loc` of each field error in a 422 body.
pub fn locs(body: &Value) -> Vec<Value> {
    body["detail"].as_array().unwrap_or_else(|| panic!("a list of field errors: {body}")).iter().map(|e| e["loc"].clone()).collect()
}
