//! Real objects for schemathesis to aim at: a user in a group, a running workload (artifact, repository,
//! proton) with some traffic, and a deployment of a locked one. Made through the REST API like
//! any client would, over a plain HTTP/1.0 connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct Seeded {
    user_id: String,
    group_id: String,
    workload_id: String,
    artifact_id: String,
    repository_id: String,
    proton_id: String,
    deployment_id: String,
}

impl Seeded {
    /// A schemathesis config that puts these ids into every path parameter of their name.
    pub fn config(&self) -> String {
        let pairs = [
            ("user_id", &self.user_id),
            ("group_id", &self.group_id),
            ("workload_id", &self.workload_id),
            ("artifact_id", &self.artifact_id),
            ("artifact_repository_id", &self.repository_id),
            ("proton_id", &self.proton_id),
            ("deployment_id", &self.deployment_id),
        ];
        let mut text = String::from("[parameters]\n");
        for (name, value) in pairs {
            text.push_str(&format!("\"path.{name}\" = \"{value}\"\n"));
        }
        text
    }
}

pub fn objects(base: &str, token: &str, whoami: &Path) -> anyhow::Result<Seeded> {
    let api = Api { addr: base.trim_start_matches("http://").to_owned(), token: token.to_owned() };
    let username = format!("schemathesis-{}", std::process::id());
    let user = api.call("POST", "/api/v2/users", Some(json!({ "username": username })), 201)?;
    let user_id = text(&user, "/id")?;
    let group = api.call("POST", "/api/v2/groups", Some(json!({ "name": "schemathesis" })), 201)?;
    let group_id = text(&group, "/id")?;
    api.call("POST", &format!("/api/v2/groups/{group_id}/users"), Some(json!({ "userIds": [user_id] })), 200)?;
    let container = json!({
        "imageUri": "example/whoami:1",
        "primary": true,
        "port": 8080,
        "entrypoint": [whoami.display().to_string(), "--port", "$PORT"],
        "readinessProbe": { "path": "/ready", "initialDelaySeconds": 0, "periodSeconds": 1 },
    });
    let spec = json!({ "containerGroups": [{ "containers": [container] }] });
    let workload =
        api.call("POST", "/api/v2/workloads", Some(json!({ "name": "seeded", "artifact": { "name": "whoami", "spec": spec } })), 201)?;
    let workload_id = text(&workload, "/id")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = api.call("GET", &format!("/api/v2/workloads/{workload_id}"), None, 200)?;
        if now["status"] == "running" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the seeded workload is {} after 60 s, not running", now["status"]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    for i in 0..20 {
        api.call("GET", &format!("/api/v2/endpoints/workloads/{workload_id}/hello/{i}"), None, 200)?;
    }
    let locked = api.call("POST", "/api/v2/artifacts", Some(json!({ "name": "locked", "status": "locked", "spec": spec })), 201)?;
    let artifact_id = text(&locked, "/id")?;
    let second = api.call("POST", "/api/v2/workloads", Some(json!({ "name": "deployed", "artifactId": artifact_id })), 201)?;
    let deployment =
        api.call("POST", "/api/v2/console/deployments", Some(json!({ "name": "seeded", "workloadId": text(&second, "/id")? })), 201)?;
    Ok(Seeded {
        user_id,
        group_id,
        artifact_id: text(&workload, "/artifactId")?,
        repository_id: text(&workload, "/artifact/artifactRepositoryId")?,
        proton_id: text(&workload, "/protonId")?,
        deployment_id: text(&deployment, "/id")?,
        workload_id,
    })
}

fn text(document: &Value, pointer: &str) -> anyhow::Result<String> {
    document.pointer(pointer).and_then(Value::as_str).map(str::to_owned).with_context(|| format!("no {pointer} in {document}"))
}

struct Api {
    addr: String,
    token: String,
}

impl Api {
    /// One request; fails unless the answer has status `expected`.
    fn call(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.addr).with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, payload) = answer.split_once("\r\n\r\n").with_context(|| format!("{method} {path}: no HTTP answer"))?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status != expected {
            bail!("seeding: {method} {path} answered {status}, not {expected}: {payload}");
        }
        Ok(serde_json::from_str(payload).unwrap_or(Value::Null))
    }
}
