use serde_json::json;

use super::*;
use crate::workload::CreateWorkloadRequest;

fn whoami_artifact() -> serde_json::Value {
    json!({
        "name": "whoami",
        "spec": {"containerGroups": [{"containers": [
            {"imageUri": "whoami:1", "primary": true, "port": 8080, "entrypoint": ["whoami"]}
        ]}]}
    })
}

fn create(body: serde_json::Value) -> Result<Vec<FieldError>, BodyError> {
    let req: CreateWorkloadRequest = parse_body(body.to_string().as_bytes())?;
    Ok(create_workload(&req))
}

fn locs(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(|e| serde_json::to_string(&e.loc).unwrap()).collect()
}

#[test]
fn a_good_request_passes() {
    assert_eq!(create(json!({"name": "w", "artifact": whoami_artifact()})), Ok(vec![]));
}

#[test]
fn malformed_json_is_not_a_validation_error() {
    assert!(matches!(parse_body::<CreateWorkloadRequest>(b"{\"name\": "), Err(BodyError::Malformed(_))));
    assert!(matches!(parse_body::<CreateWorkloadRequest>(br#"{"name": "w", "artifactId": "a"} trailing"#), Err(BodyError::Malformed(_))));
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let mut artifact = whoami_artifact();
    artifact["spec"]["containerGroups"][0]["containers"][0]["bogus"] = json!(1);
    let Err(BodyError::Invalid(errors)) = create(json!({"name": "w", "artifact": artifact})) else {
        panic!("expected a 422");
    };
    assert_eq!(locs(&errors), vec![r#"["body","artifact","spec","containerGroups",0,"containers",0,"bogus"]"#]);
    assert_eq!(errors[0].kind, "extra_forbidden");
}

#[test]
fn missing_and_mistyped_fields() {
    let Err(BodyError::Invalid(errors)) = create(json!({"artifactId": "x"})) else {
        panic!("expected a 422");
    };
    assert_eq!(locs(&errors), vec![r#"["body","name"]"#]);
    assert_eq!(errors[0].kind, "missing");
    let Err(BodyError::Invalid(errors)) = create(json!({"name": 5, "artifactId": "x"})) else {
        panic!("expected a 422");
    };
    assert_eq!(locs(&errors), vec![r#"["body","name"]"#]);
}

#[test]
fn both_or_neither_artifact() {
    let both = create(json!({"name": "w", "artifact": whoami_artifact(), "artifactId": "a"})).unwrap();
    assert_eq!(locs(&both), vec![r#"["body"]"#]);
    let neither = create(json!({"name": "w"})).unwrap();
    assert_eq!(locs(&neither), vec![r#"["body"]"#]);
}

#[test]
fn name_length_and_port_range() {
    let mut artifact = whoami_artifact();
    artifact["spec"]["containerGroups"][0]["containers"][0]["port"] = json!(80);
    let errors = create(json!({"name": "x".repeat(5001), "artifact": artifact})).unwrap();
    assert_eq!(locs(&errors), vec![r#"["body","name"]"#, r#"["body","artifact","spec","containerGroups",0,"containers",0,"port"]"#]);
    let errors = create(json!({"name": "", "artifactId": "a"})).unwrap();
    assert_eq!(errors[0].kind, "string_too_short");
}

#[test]
fn runtime_must_fit_the_artifact() {
    let body = json!({"name": "w", "artifact": whoami_artifact(), "runtime": {"containerGroups": [
        {"name": "nope", "replicaCount": 2}
    ]}});
    assert_eq!(locs(&create(body).unwrap()), vec![r#"["body","runtime","containerGroups",0,"name"]"#]);
    let body = json!({"name": "w", "artifact": whoami_artifact(), "runtime": {"containerGroups": [
        {"replicaCount": 2, "autoscaling": {"enabled": true, "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}]}}
    ]}});
    assert_eq!(locs(&create(body).unwrap()), vec![r#"["body","runtime","containerGroups",0,"replicaCount"]"#]);
}

fn with_autoscaling(autoscaling: serde_json::Value) -> Result<Vec<FieldError>, BodyError> {
    create(json!({"name": "w", "artifact": whoami_artifact(), "runtime": {"containerGroups": [{"autoscaling": autoscaling}]}}))
}

#[test]
fn both_autoscaling_shapes_of_the_tutorial_pass() {
    let legacy =
        json!({"enabled": true, "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 10, "minCount": 2, "maxCount": 10}]});
    assert_eq!(with_autoscaling(legacy), Ok(vec![]));
    let newest = json!({"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 3,
        "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}, {"scalingMetric": "vllm:num_requests_waiting", "target": 4}]});
    assert_eq!(with_autoscaling(newest), Ok(vec![]));
    let custom = json!({"minReplicaCount": 1, "maxReplicaCount": 3,
        "policies": [{"scalingMetric": "queue_depth", "target": 5, "metricsPath": "/stats"}]});
    assert_eq!(with_autoscaling(custom), Ok(vec![]));
}

#[test]
fn bad_autoscaling_is_refused_naming_the_field() {
    let at = r#"["body","runtime","containerGroups",0,"autoscaling","#;
    let cases = [
        (json!({"policies": [{"scalingMetric": "httpRequestConcurency", "target": 1}]}), r#""policies",0,"scalingMetric"]"#),
        (json!({"policies": [{"scalingMetric": "httpRequestsInFlight", "target": -1}]}), r#""policies",0,"target"]"#),
        (
            json!({"minReplicaCount": 3, "maxReplicaCount": 2, "policies": [{"scalingMetric": "httpRequestsInFlight", "target": 1}]}),
            r#""minReplicaCount"]"#,
        ),
        (json!({"maxReplicaCount": 0, "policies": [{"scalingMetric": "httpRequestsInFlight", "target": 1}]}), r#""maxReplicaCount"]"#),
        (
            json!({"policies": [{"scalingMetric": "httpRequestsInFlight", "target": 1, "minCount": 4, "maxCount": 2}]}),
            r#""policies",0,"minCount"]"#,
        ),
        (json!({"maxReplicaCount": 2, "policies": [{"scalingMetric": "cpuAverageUtilization", "target": 70}]}), r#""minReplicaCount"]"#),
        (json!({"maxReplicaCount": 2, "policies": [{"scalingMetric": "vllm:x", "target": 7}]}), r#""minReplicaCount"]"#),
        (json!({"enabled": true, "policies": []}), r#""policies"]"#),
        (
            json!({"minReplicaCount": 1, "policies": [{"scalingMetric": "m", "target": 1, "metricsPath": "metrics"}]}),
            r#""policies",0,"metricsPath"]"#,
        ),
    ];
    for (autoscaling, field) in cases {
        let errors = with_autoscaling(autoscaling.clone()).unwrap();
        assert_eq!(locs(&errors), vec![format!("{at}{field}")], "{autoscaling}");
    }
    assert!(matches!(with_autoscaling(json!(true)), Err(BodyError::Invalid(_))));
}

#[test]
fn probes_are_checked() {
    let mut artifact = whoami_artifact();
    artifact["spec"]["containerGroups"][0]["containers"][0]["readinessProbe"] = json!({"path": "/ready", "port": 70000, "scheme": "FTP"});
    let errors = create(json!({"name": "w", "artifact": artifact})).unwrap();
    let prefix = r#"["body","artifact","spec","containerGroups",0,"containers",0,"readinessProbe","#;
    assert_eq!(locs(&errors), vec![format!("{prefix}\"port\"]"), format!("{prefix}\"scheme\"]")]);
}

#[test]
fn a_probe_may_only_check_the_replica_itself() {
    for (host, refused) in [("169.254.169.254", true), ("meta.internal", true), ("localhost", false), ("127.0.0.1", false)] {
        let mut artifact = whoami_artifact();
        artifact["spec"]["containerGroups"][0]["containers"][0]["livenessProbe"] = json!({"path": "/healthz", "host": host});
        let errors = create(json!({"name": "w", "artifact": artifact})).unwrap();
        let prefix = r#"["body","artifact","spec","containerGroups",0,"containers",0,"livenessProbe","#;
        let expected = if refused { vec![format!("{prefix}\"host\"]")] } else { vec![] };
        assert_eq!(locs(&errors), expected, "host {host}");
    }
}

#[test]
fn a_pvc_size_and_a_generated_dockerfile_are_checked_against_the_schema() {
    let mut artifact = whoami_artifact();
    artifact["spec"]["storage"] = json!({"mode": "nimCache", "pvcSize": ""});
    artifact["spec"]["containerGroups"][0]["containers"][0]["imageBuildConfig"] = json!({"dockerfile": {"source": "generated", "entrypoint": [], "executionEnvironmentId": "e", "executionEnvironmentVersionId": "v"}});
    let errors = create(json!({"name": "w", "artifact": artifact})).unwrap();
    assert_eq!(
        locs(&errors),
        [
            r#"["body","artifact","spec","storage","pvcSize"]"#,
            r#"["body","artifact","spec","containerGroups",0,"containers",0,"imageBuildConfig","dockerfile","entrypoint"]"#
        ]
    );
    for good in ["150Gi", "1.5Ti", "512Mi"] {
        assert!(is_pvc_size(good), "{good}");
    }
    for bad in ["", "Gi", "150", "150gi", "1.Gi", ".5Gi", "-1Gi", "150 Gi"] {
        assert!(!is_pvc_size(bad), "{bad}");
    }
}
