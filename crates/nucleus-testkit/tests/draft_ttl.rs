//! A draft workload's lifetime on paused time: the gateway (its REST router, in process) sets the
//! expiry from the one clock, a scheduler worker removes the workload once the clock passes it,
//! and a promoted workload stays. Minutes of TTL take a few seconds (the worker still renews its lease every simulated second).

use std::time::Duration;

use http::Method;
use nucleus_gateway::{GatewayConfig, Limits};
use nucleus_scheduler::SchedulerConfig;
use nucleus_testkit::Rest;
use serde_json::{Value, json};

const TOKEN: &str = "draft-ttl-admin";
const TTL: Duration = Duration::from_secs(5 * 60);

async fn call(api: &Rest, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, value) = api.call_as(Some(TOKEN), method, path, body).await;
    (status.as_u16(), value)
}

fn draft(name: &str) -> Value {
    json!({
        "name": name,
        "artifact": {"name": name, "spec": {"containerGroups": [{"containers": [{
            "imageUri": "example/whoami:1", "primary": true, "port": 8080, "entrypoint": ["/bin/true"]
        }]}]}},
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": 1}]}
    })
}

#[tokio::test(start_paused = true)]
async fn a_draft_workload_is_removed_when_its_ttl_runs_out_and_a_promoted_one_stays() {
    let meta = nucleus_testkit::Meta::start(1).await;
    let config = GatewayConfig {
        token: TOKEN.to_owned(),
        public_url: "http://gateway.test".to_owned(),
        draft_ttl: TTL,
        limits: Limits::default(),
        workers: 1,
    };
    let api = Rest::new(&meta, config);
    let (code, doomed) = call(&api, Method::POST, "/workloads", Some(draft("doomed"))).await;
    assert_eq!(code, 201, "{doomed}");
    let (_, kept) = call(&api, Method::POST, "/workloads", Some(draft("kept"))).await;
    let (doomed, kept) = (doomed["id"].as_str().unwrap().to_owned(), kept["id"].as_str().unwrap().to_owned());
    let (code, promoted) = call(&api, Method::POST, &format!("/workloads/{kept}/promote"), Some(json!({}))).await;
    assert_eq!(code, 202, "{promoted}");

    let (first_pass, _) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(nucleus_scheduler::run(
        SchedulerConfig { name: "ttl".into(), dialer: nucleus_tls::Dialer::plaintext(), autoscale: Default::default() },
        meta.client.clone(),
        async move {
            let _ = stopped.await;
        },
        first_pass,
    ));

    let started = tokio::time::Instant::now();
    tokio::time::sleep(TTL - Duration::from_secs(60)).await;
    let (code, _) = call(&api, Method::GET, &format!("/workloads/{doomed}"), None).await;
    assert_eq!(code, 200, "a minute before its expiry the draft is still there");

    nucleus_testkit::eventually("the draft to be removed", Duration::from_secs(180), || async {
        let (code, _) = call(&api, Method::GET, &format!("/workloads/{doomed}"), None).await;
        (code == 404).then_some(())
    })
    .await;
    assert!(started.elapsed() >= TTL - Duration::from_secs(60), "not before its time");
    let (code, still) = call(&api, Method::GET, &format!("/workloads/{kept}"), None).await;
    assert_eq!(code, 200, "the promoted workload does not expire: {still}");
    let _ = stop.send(());
    worker.await.expect("worker task").expect("worker ends cleanly");
}
