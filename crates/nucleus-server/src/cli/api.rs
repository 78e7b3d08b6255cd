//! The Workload API over HTTP, for the CLI: bearer token, JSON in and out, and API errors as one
//! line that names the field and says what to do.

use anyhow::bail;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::Context;

/// How long an API call may take (invoke calls have no limit: a workload may answer slowly).
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(context: Context) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().user_agent(concat!("nucleus-cli/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Api { http, base: context.server, token: context.token })
    }

    /// `path` under `/api/v2`, or a full URL (pagination links).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") { path.to_owned() } else { format!("{}/api/v2{path}", self.base) }
    }

    /// The answer's status and body text; an error answer (4xx/5xx) is turned into an error.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, String)> {
        let url = self.url(path);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token).timeout(API_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => bail!("cannot reach {}: {err}; is the server up, and is the context's server URL right?", self.base),
        };
        let status = response.status();
        let text = response.text().await?;
        if status.is_client_error() || status.is_server_error() {
            bail!("{}", describe_error(&method, path, status, &text));
        }
        Ok((status, text))
    }

    pub async fn json<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<T> {
        let (_, text) = self.send(method, path, body).await?;
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(Method::GET, path, None).await
    }

    /// Every item of a paged list, following `next` links (at most `max_pages` pages).
    pub async fn list_all(&self, path: &str, max_pages: usize) -> anyhow::Result<Vec<Value>> {
        let mut page: Value = self.get(path).await?;
        let mut all = page["data"].as_array().cloned().unwrap_or_default();
        for _ in 1..max_pages {
            let Some(next) = page["next"].as_str().map(str::to_owned) else { break };
            page = self.get(&next).await?;
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
        }
        Ok(all)
    }

    /// A GET whose 404 means "none" rather than an error.
    pub async fn get_optional<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let response = match self.http.get(self.url(path)).bearer_auth(&self.token).timeout(API_TIMEOUT).send().await {
            Ok(response) => response,
            Err(err) => bail!("cannot reach {}: {err}; is the server up, and is the context's server URL right?", self.base),
        };
        let status = response.status();
        let text = response.text().await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(serde_json::from_str(&text)?)),
            status => bail!("{}", describe_error(&Method::GET, path, status, &text)),
        }
    }

    /// A stream of server-sent events (no time limit: it lasts as long as the server sends).
    pub async fn events(&self, path: &str) -> anyhow::Result<super::sse::EventStream> {
        let response = match self.http.get(self.url(path)).bearer_auth(&self.token).header("accept", "text/event-stream").send().await {
            Ok(response) => response,
            Err(err) => bail!("cannot reach {}: {err}; is the server up, and is the context's server URL right?", self.base),
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await?;
            bail!("{}", describe_error(&Method::GET, path, status, &text));
        }
        Ok(super::sse::EventStream::new(response))
    }

    /// A raw request to a workload's invoke URL: any status is an answer.
    pub async fn invoke(&self, method: Method, url: &str, body: Option<String>) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        match request.send().await {
            Ok(response) => Ok(response),
            Err(err) => bail!("cannot reach {url}: {err}"),
        }
    }
}

/// One line: `422 Unprocessable Entity: runtime.containerGroups.0.replicaCount: Input should be …`.
pub fn describe_error(method: &Method, path: &str, status: StatusCode, text: &str) -> String {
    let detail = serde_json::from_str::<Value>(text).ok().and_then(|body| body.get("detail").cloned());
    let message = match detail {
        Some(Value::String(message)) => message,
        Some(Value::Array(errors)) => errors
            .iter()
            .map(|error| {
                let field: Vec<String> = error["loc"]
                    .as_array()
                    .map(|loc| loc.iter().skip(1).map(|part| part.as_str().map_or_else(|| part.to_string(), str::to_owned)).collect())
                    .unwrap_or_default();
                format!("{}: {}", field.join("."), error["msg"].as_str().unwrap_or("invalid"))
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ if text.trim().is_empty() => "(no message)".to_owned(),
        _ => text.trim().chars().take(300).collect(),
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (check the token: `nucleus config set-context` or NUCLEUS_TOKEN)",
        StatusCode::FORBIDDEN => " (this token may not do that; ask the workload's owner to share it)",
        _ => "",
    };
    format!("{method} {path}: {status}: {message}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_become_one_line_naming_the_field() {
        let body = r#"{"detail":[{"loc":["body","runtime","containerGroups",0,"replicaCount"],"msg":"Input should be at most 1000","type":"less_than_equal"}]}"#;
        let line = describe_error(&Method::POST, "/workloads/", StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            line,
            "POST /workloads/: 422 Unprocessable Entity: runtime.containerGroups.0.replicaCount: Input should be at most 1000"
        );
        let line = describe_error(&Method::GET, "/workloads/x/", StatusCode::UNAUTHORIZED, r#"{"detail":"Missing token"}"#);
        assert!(line.contains("Missing token") && line.contains("NUCLEUS_TOKEN"), "{line}");
    }
}
