//! The Workload API as the benchmarks call it: the bench stacks' admin token, JSON in, the status
//! and JSON (or the text, when it is not JSON) out.

use serde_json::Value;

/// The admin token every bench stack is started with.
pub const TOKEN: &str = "bench-admin-token-0123456789abcdef";

pub struct Rest {
    pub http: reqwest::Client,
    /// `http://host:port`, without `/api/v2`.
    pub base: String,
}

impl Rest {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}/api/v2{path}", self.base)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let code = response.status().as_u16();
        let text = response.text().await?;
        Ok((code, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }
}
