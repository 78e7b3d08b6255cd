//! The `nucleus` CLI against `nucleus dev`, as a user runs it: a context saved (0600) and used,
//! `workload create --wait` showing progress until running (plain lines when piped, a live
//! spinner under a pseudo-terminal), get/list in each output format, invoke, logs (and `logs -f`), events, an API
//! error shown as one line naming the field, stop, delete, and shell completion.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{Stack, TOKEN, temp_dir, whoami};

const NUCLEUS: &str = env!("CARGO_BIN_EXE_nucleus");

/// `nucleus ARGS` with the config file in `dir` and no NUCLEUS_URL/NUCLEUS_TOKEN: the context
/// decides where it goes.
fn nucleus(dir: &Path, args: &[&str]) -> Output {
    Command::new(NUCLEUS)
        .args(args)
        .env("NUCLEUS_CONFIG", dir.join("config.yaml"))
        .env_remove("NUCLEUS_URL")
        .env_remove("NUCLEUS_TOKEN")
        .env("RUST_LOG", "warn")
        .output()
        .expect("nucleus runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = nucleus(dir, args);
    assert!(
        output.status.success(),
        "nucleus {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn spec(name: &str, replicas: i64) -> String {
    format!(
        "name: {name}\n\
         artifact:\n  name: {name}\n  spec:\n    containerGroups:\n      - name: default\n        containers:\n\
         \x20         - name: web\n            imageUri: example/whoami:1\n            primary: true\n            port: 8080\n\
         \x20           entrypoint: [\"{}\", \"--port\", \"$PORT\"]\n\
         \x20           readinessProbe: {{path: /ready, port: 8080, periodSeconds: 1}}\n\
         runtime:\n  containerGroups:\n    - name: default\n      replicaCount: {replicas}\n",
        whoami()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_a_workload_life_cycle() {
    let dir = temp_dir();
    let mut stack = Stack::start(dir.path()).await;
    let home = dir.path().join("cli");
    std::fs::create_dir_all(&home).expect("dir");

    // No context yet: the error says how to make one.
    let lost = nucleus(&home, &["workload", "list"]);
    assert!(!lost.status.success());
    assert!(String::from_utf8_lossy(&lost.stderr).contains("nucleus config set-context"), "{lost:?}");

    ok(&home, &["config", "set-context", "local", "--server", &stack.base, "--token", TOKEN]);
    let mode = std::fs::metadata(home.join("config.yaml")).expect("config file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds tokens");
    let contexts = ok(&home, &["config", "get-contexts"]);
    assert!(contexts.lines().any(|l| l.starts_with('*') && l.contains("local") && l.contains(&stack.base)), "{contexts}");
    assert_eq!(ok(&home, &["config", "current-context"]).trim(), "local");

    // create --wait, piped: a plain line per change, then where it runs.
    std::fs::write(home.join("web.yaml"), spec("cli-web", 1)).expect("spec");
    let created = nucleus(&home, &["workload", "create", "-f", &home.join("web.yaml").to_string_lossy(), "--wait"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&created.stdout), String::from_utf8_lossy(&created.stderr));
    assert!(created.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("replicas 1/1 ready"), "progress names the ready replicas: {stderr}");
    let id = stdout.split_whitespace().nth(1).expect("workload id").to_owned();
    assert!(stdout.contains(&format!("workload {id} is running at http")), "{stdout}");

    let json: Value = serde_json::from_str(&ok(&home, &["workload", "get", &id, "-o", "json"])).expect("json");
    assert_eq!((json["id"].as_str(), json["status"].as_str()), (Some(id.as_str()), Some("running")));
    let yaml = ok(&home, &["workload", "get", &id, "-o", "yaml"]);
    assert!(yaml.contains(&format!("id: {id}")), "{yaml}");
    let table = ok(&home, &["workload", "list"]);
    assert!(
        table.starts_with("ID") && table.lines().any(|l| l.starts_with(&id) && l.contains("cli-web") && l.contains("running")),
        "{table}"
    );
    let wide = ok(&home, &["workload", "list", "-o", "wide"]);
    assert!(wide.contains("ENDPOINT") && wide.contains(&format!("/endpoints/workloads/{id}")), "{wide}");

    let answer = ok(&home, &["invoke", &id, "hello/cli"]);
    assert!(answer.contains("/hello/cli"), "{answer}");
    let logs = ok(&home, &["workload", "logs", &id, "--grep", "whoami listening"]);
    assert!(logs.contains("INFO") && logs.contains("whoami listening on"), "{logs}");
    let events = ok(&home, &["workload", "events", &id]);
    assert!(events.lines().count() >= 2, "{events}");

    // An API error is one line naming the field; nothing is created.
    std::fs::write(home.join("bad.yaml"), spec("cli-bad", -1)).expect("spec");
    let bad = nucleus(&home, &["workload", "create", "-f", &home.join("bad.yaml").to_string_lossy()]);
    let complaint = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(complaint.contains("422") && complaint.contains("replicaCount"), "{complaint}");
    assert_eq!(complaint.trim().lines().count(), 1, "{complaint}");
    assert!(!ok(&home, &["workload", "list"]).contains("cli-bad"));

    // Under a terminal the wait is a live spinner (redrawn in place), finished with a check mark.
    std::fs::write(home.join("tty.yaml"), spec("cli-tty", 1)).expect("spec");
    let line = format!(
        "NUCLEUS_CONFIG={} {NUCLEUS} workload create -f {} --wait",
        home.join("config.yaml").display(),
        home.join("tty.yaml").display()
    );
    let tty = Command::new("script").args(["-qec", &line, "/dev/null"]).env_remove("NUCLEUS_URL").output().expect("script runs");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(shown.contains('\r') || shown.contains("\u{1b}["), "redrawn in place: {shown:?}");
    assert!(shown.contains("✓ workload") && shown.contains("running"), "{shown:?}");

    // `logs -f` prints lines as they come, and ends (status 0) when the workload is deleted.
    let mut follow = Command::new(NUCLEUS)
        .args(["workload", "logs", "-f", &id, "--grep", "cli-follow"])
        .env("NUCLEUS_CONFIG", home.join("config.yaml"))
        .env_remove("NUCLEUS_URL")
        .env_remove("NUCLEUS_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nucleus runs");
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(&home, &["invoke", &id, "cli-follow-9"]);

    ok(&home, &["workload", "stop", &id, "--wait"]);
    assert_eq!(serde_json::from_str::<Value>(&ok(&home, &["workload", "get", &id, "-o", "json"])).expect("json")["status"], "stopped");
    ok(&home, &["workload", "delete", &id]);
    let waited = std::time::Instant::now();
    while follow.try_wait().expect("wait").is_none() {
        if waited.elapsed() > std::time::Duration::from_secs(10) {
            let _ = follow.kill();
            panic!("logs -f did not end within 10 s of the delete");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let followed = follow.wait_with_output().expect("output");
    let (printed, said) = (String::from_utf8_lossy(&followed.stdout), String::from_utf8_lossy(&followed.stderr));
    assert!(followed.status.success(), "{printed}\n{said}");
    assert!(printed.contains("/cli-follow-9") && printed.lines().count() == 1, "{printed}");
    assert!(said.contains("was deleted"), "{said}");
    let gone = nucleus(&home, &["workload", "get", &id]);
    assert!(!gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("404"), "{gone:?}");

    let completion = ok(&home, &["completion", "bash"]);
    assert!(completion.contains("_nucleus") && completion.contains("workload"), "a bash completion script");
    stack.stop();
}
