//! Steady load through both gateways, as users would put it on a cluster: REST writes (artifacts
//! created, workloads patched, workloads created and deleted) and invokes of running workloads.
//! Every request's outcome is logged with its time, and every acknowledged write is remembered so
//! that it can be read back after the drill. Like a load balancer in front of two gateways, a
//! request that cannot reach one gateway (or gets 502/503/504 from it) is sent once to the other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Write,
    Invoke,
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Since the load started.
    pub at: Duration,
    pub kind: Kind,
    pub ok: bool,
    /// How long it took (retry on the other gateway included).
    pub took: Duration,
}

/// The writes the cluster acknowledged.
#[derive(Debug, Default)]
pub struct Acked {
    pub artifacts: Vec<String>,
    /// Workloads created and not deleted since.
    pub workloads: Vec<String>,
    /// Workload → (the last acknowledged description number, the highest attempted).
    pub descriptions: BTreeMap<String, (u64, u64)>,
}

#[derive(Clone)]
pub struct Target {
    pub gateways: Vec<String>,
    pub token: String,
    pub http: reqwest::Client,
}

impl Target {
    pub fn new(gateways: Vec<String>, token: String) -> anyhow::Result<Target> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Target { gateways, token, http })
    }

    /// One request: to gateway `first`, and once to the next gateway if that one is unreachable
    /// or answers 502/503/504.
    pub async fn call(&self, first: usize, method: Method, path: &str, body: Option<&Value>) -> (Option<StatusCode>, Value) {
        let mut last = (None, Value::Null);
        for attempt in 0..self.gateways.len().min(2) {
            let base = &self.gateways[(first + attempt) % self.gateways.len()];
            let mut request = self.http.request(method.clone(), format!("{base}{path}")).bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let value = response.json::<Value>().await.unwrap_or(Value::Null);
                    if !matches!(status.as_u16(), 502..=504) {
                        return (Some(status), value);
                    }
                    last = (Some(status), value);
                }
                Err(err) => last = (None, json!(err.to_string())),
            }
        }
        last
    }
}

pub struct Load {
    started: Instant,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    pub acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A small artifact running the example workload.
pub fn whoami_artifact(name: &str, whoami: &str) -> Value {
    json!({
        "name": name,
        "spec": {"containerGroups": [{"name": "default", "containers": [{
            "name": "web", "imageUri": "example/whoami:1", "primary": true, "port": 8080,
            "entrypoint": [whoami, "--port", "$PORT"],
            "readinessProbe": {"path": "/ready", "port": 8080, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30}
        }]}]}
    })
}

pub fn workload(name: &str, whoami: &str, replicas: u32) -> Value {
    json!({
        "name": name,
        "artifact": whoami_artifact(name, whoami),
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": replicas}]}
    })
}

impl Load {
    /// Starts the writers and invokers against `serving` (running workloads). Without `whoami`
    /// (observing someone else's cluster) the writers only create artifacts, and touch none of
    /// the workloads.
    pub fn start(target: &Target, serving: &[String], whoami: Option<&str>) -> Load {
        let load =
            Load { started: Instant::now(), outcomes: Arc::default(), acked: Arc::default(), stop: Arc::default(), tasks: Vec::new() };
        let mut tasks = Vec::new();
        // Artifacts created as fast as one client goes.
        tasks.push(load.spawn(target, move |target, log, acked, n| async move {
            let body = whoami_artifact(&format!("chaos-{n}"), "/bin/true");
            let (status, answer) = target.call(n as usize, Method::POST, "/artifacts", Some(&body)).await;
            let ok = status == Some(StatusCode::CREATED);
            if let (true, Some(id)) = (ok, answer["id"].as_str()) {
                acked.lock().unwrap_or_else(|p| p.into_inner()).artifacts.push(id.to_owned());
            }
            log(Kind::Write, ok);
            Duration::from_millis(20)
        }));
        let Some(whoami) = whoami else {
            Self::invokers(&load, target, serving, &mut tasks);
            return Load { tasks, ..load };
        };
        // The serving workloads' descriptions, rewritten in turn.
        let serving_ids: Vec<String> = serving.to_vec();
        tasks.push(load.spawn(target, move |target, log, acked, n| {
            let id = serving_ids[n as usize % serving_ids.len()].clone();
            async move {
                {
                    let mut acked = acked.lock().unwrap_or_else(|p| p.into_inner());
                    let entry = acked.descriptions.entry(id.clone()).or_default();
                    entry.1 = entry.1.max(n);
                }
                let body = json!({"description": format!("d-{n}")});
                let (status, _) = target.call(n as usize, Method::PATCH, &format!("/workloads/{id}"), Some(&body)).await;
                let ok = status == Some(StatusCode::OK);
                if ok {
                    let mut acked = acked.lock().unwrap_or_else(|p| p.into_inner());
                    let entry = acked.descriptions.entry(id).or_default();
                    entry.0 = entry.0.max(n);
                }
                log(Kind::Write, ok);
                Duration::from_millis(50)
            }
        }));
        // A workload created, then deleted on the next round (each runs a replica meanwhile).
        let whoami = whoami.to_owned();
        let previous: Arc<Mutex<Option<String>>> = Arc::default();
        tasks.push(load.spawn(target, move |target, log, acked, n| {
            let (whoami, previous) = (whoami.clone(), previous.clone());
            async move {
                let last = previous.lock().unwrap_or_else(|p| p.into_inner()).take();
                match last {
                    Some(id) => {
                        let (status, _) = target.call(n as usize, Method::DELETE, &format!("/workloads/{id}"), None).await;
                        let ok =
                            matches!(status, Some(StatusCode::NO_CONTENT | StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NOT_FOUND));
                        if ok {
                            acked.lock().unwrap_or_else(|p| p.into_inner()).workloads.retain(|w| *w != id);
                        } else {
                            *previous.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
                        }
                        log(Kind::Write, ok);
                    }
                    None => {
                        let body = workload(&format!("chaos-w{n}"), &whoami, 1);
                        let (status, answer) = target.call(n as usize, Method::POST, "/workloads", Some(&body)).await;
                        let ok = status == Some(StatusCode::CREATED);
                        if let (true, Some(id)) = (ok, answer["id"].as_str()) {
                            acked.lock().unwrap_or_else(|p| p.into_inner()).workloads.push(id.to_owned());
                            *previous.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_owned());
                        }
                        log(Kind::Write, ok);
                    }
                }
                Duration::from_millis(1500)
            }
        }));
        Self::invokers(&load, target, serving, &mut tasks);
        Load { tasks, ..load }
    }

    /// Four callers invoking the `serving` workloads in turn.
    fn invokers(load: &Load, target: &Target, serving: &[String], tasks: &mut Vec<JoinHandle<()>>) {
        let counter = Arc::new(AtomicU64::new(0));
        for caller in 0..4 {
            let ids: Vec<String> = serving.to_vec();
            let counter = counter.clone();
            tasks.push(load.spawn(target, move |target, log, _, _| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let id = ids[(n as usize + caller) % ids.len()].clone();
                async move {
                    let (status, _) = target.call(n as usize, Method::GET, &format!("/endpoints/workloads/{id}/chaos"), None).await;
                    log(Kind::Invoke, status == Some(StatusCode::OK));
                    Duration::from_millis(10)
                }
            }));
        }
    }

    /// A task that runs `round` until the load stops; `round` gets the round number and answers
    /// how long to pause.
    fn spawn<F, Fut>(&self, target: &Target, round: F) -> JoinHandle<()>
    where
        F: Fn(Target, Box<dyn Fn(Kind, bool) + Send + Sync>, Arc<Mutex<Acked>>, u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Duration> + Send + 'static,
    {
        let (target, outcomes, acked, stop, started) =
            (target.clone(), self.outcomes.clone(), self.acked.clone(), self.stop.clone(), self.started);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let outcomes = outcomes.clone();
                let began = Instant::now();
                let log: Box<dyn Fn(Kind, bool) + Send + Sync> = Box::new(move |kind, ok| {
                    let outcome = Outcome { at: started.elapsed(), kind, ok, took: began.elapsed() };
                    outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(outcome);
                });
                let pause = round(target.clone(), log, acked.clone(), n).await;
                n += 1;
                tokio::time::sleep(pause).await;
            }
        })
    }

    /// Time since the load started: drills mark their fault and heal with it.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every task and hands over the outcomes.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn outcomes_since(&self, since: Duration) -> Vec<Outcome> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|o| o.at >= since).copied().collect()
    }
}
