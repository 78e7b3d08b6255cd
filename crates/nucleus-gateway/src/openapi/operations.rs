//! Every route of [`crate::router`], as OpenAPI operations: what it takes and what it answers.
//! Paths are the primary ones; the legacy aliases are added by [`super::with_aliases`].

use nucleus_api::deployment::{CreateDeploymentRequest, Deployment, UpdateDeploymentRequest};
use nucleus_api::identity::{
    CreateGroupRequest, CreateTokenRequest, CreateUserRequest, GroupMembersRequest, SharedRole, SharedRolesUpdateRequest, TokenCreated,
    TokenRecord, UpdateUserRequest, User, UserGroup,
};
use nucleus_api::otel::{AutocollectedValues, LogEntry, OtelMetric, Trace, TraceSummary};
use nucleus_api::replacement::{Replacement, StartReplacementRequest, UpdateSettingsRequest};
use nucleus_api::stats::{MetricOverTime, ProtonRequestStats, StatsOverview};
use nucleus_api::workload::{RelatedObjects, WorkloadOperationResponse, WorkloadSettings};
use nucleus_api::{
    Artifact, CreateWorkloadRequest, InputArtifact, Proton, ReplicaStatusesSnapshot, UpdateArtifactRequest, UpdateWorkloadRequest,
    Workload, WorkloadEvent, bundle::ResourceBundle,
};
use utoipa::openapi::RefOr;
use utoipa::openapi::path::HttpMethod::{Delete, Get, Patch, Post, Put};
use utoipa::openapi::schema::{ObjectBuilder, Schema};

use super::document::{Builder, Kind, QueryParam, empty, json_body, ok, operation, optional_json_body, with_query};
use crate::artifacts::CloneRequest;
use crate::repositories::Repository;
use crate::router::VersionInfo;

const fn q(name: &'static str, kind: Kind, description: &'static str) -> QueryParam {
    QueryParam { name, kind, description }
}

const PAGE: [QueryParam; 2] =
    [q("offset", Kind::Integer, "How many items to skip (default 0)"), q("limit", Kind::Integer, "Page size, 1 to 100 (default 100)")];

const STATS: [QueryParam; 5] = [
    q("protonId", Kind::String, "The proton to count (default: the workload's current one)"),
    q("startTime", Kind::String, "Start of the period, RFC 3339"),
    q("endTime", Kind::String, "End of the period, RFC 3339 (default now)"),
    q("responseTimeQuantile", Kind::Number, "Quantile of `responseTime`, 0 to 1 (default 0.5)"),
    q("slowRequestsThreshold", Kind::Integer, "Milliseconds above which a request is slow (default 2000)"),
];

/// The paging, ordering and common filters of a list, then its own filters.
fn list_query(order_by: &'static str, extra: &[QueryParam]) -> Vec<QueryParam> {
    let mut params = PAGE.to_vec();
    params.extend([
        q("orderBy", Kind::String, order_by),
        q("createdBy", Kind::String, "Only those created by this user (id or username)"),
        q("ids", Kind::StringList, "Only these ids"),
        q("tagKeys", Kind::StringList, "Only those with a tag of one of these names"),
        q("tagValues", Kind::StringList, "Only those with a tag of one of these values"),
    ]);
    params.extend_from_slice(extra);
    params
}

/// Anything: what a workload's own application answers on its invoke URL.
fn any() -> RefOr<Schema> {
    ObjectBuilder::new().into()
}

pub fn add_all(api: &mut Builder) {
    meta(api);
    artifacts(api);
    repositories(api);
    workloads(api);
    replacements(api);
    stats(api);
    deployments(api);
    identity(api);
    invoke(api);
}

fn meta(api: &mut Builder) {
    let version = api.schema::<VersionInfo>();
    api.add(
        Get,
        "/api/v2/version",
        ok(operation("getVersion", "meta", "API version (clients check the major)"), 200, "The version", version),
        &[],
    );
    let bundles = api.page::<ResourceBundle>();
    api.add(
        Get,
        "/api/v2/mlops/compute/bundles",
        ok(operation("listBundles", "meta", "The resource bundle catalogue"), 200, "Bundles", bundles),
        &[],
    );
}

fn artifacts(api: &mut Builder) {
    let artifact = api.schema::<Artifact>();
    let input = api.schema::<InputArtifact>();
    let base = "/api/v2/artifacts";
    let op = operation("createArtifact", "artifacts", "Create an artifact (a draft unless `status` says locked)")
        .request_body(json_body(input.clone()));
    api.add(Post, base, ok(op, 201, "Created", artifact.clone()), &[400, 422]);
    let page = api.page::<Artifact>();
    let query = list_query(
        "`name`, `createdAt`, `updatedAt` or `status`; `-` for descending (default `-createdAt`)",
        &[
            q("search", Kind::String, "Text in the name or description"),
            q("status", Kind::StringList, "`draft` or `locked`"),
            q("type", Kind::StringList, "Artifact types"),
            q("repositoryId", Kind::String, "Only this repository's artifacts"),
        ],
    );
    api.add(
        Get,
        base,
        ok(with_query(operation("listArtifacts", "artifacts", "List artifacts"), &query), 200, "A page of artifacts", page),
        &[422],
    );
    let one = "/api/v2/artifacts/{artifact_id}";
    api.add(Get, one, ok(operation("getArtifact", "artifacts", "Get an artifact"), 200, "The artifact", artifact.clone()), &[403, 404]);
    let op = operation("replaceArtifact", "artifacts", "Replace a draft artifact").request_body(json_body(input));
    api.add(Put, one, ok(op, 200, "The artifact", artifact.clone()), &[400, 403, 404, 409, 422]);
    let patch = api.schema::<UpdateArtifactRequest>();
    let op = operation("updateArtifact", "artifacts", "Edit a draft artifact, or lock it").request_body(json_body(patch));
    api.add(Patch, one, ok(op, 200, "The artifact", artifact.clone()), &[400, 403, 404, 409, 422]);
    api.add(
        Delete,
        one,
        empty(operation("deleteArtifact", "artifacts", "Delete an artifact no workload uses"), 204, "Deleted"),
        &[403, 404, 409],
    );
    let clone = api.schema::<CloneRequest>();
    let op =
        operation("cloneArtifact", "artifacts", "Copy an artifact into a new draft of the same repository").request_body(json_body(clone));
    api.add(Post, "/api/v2/artifacts/{artifact_id}/clone", ok(op, 200, "The new draft", artifact), &[400, 403, 404, 422]);
    shared_roles(api, "/api/v2/artifacts/{artifact_id}/sharedRoles", "Artifact");
}

fn shared_roles(api: &mut Builder, path: &str, object: &str) {
    let page = api.page::<SharedRole>();
    let get = operation(&format!("list{object}SharedRoles"), "sharing", "Who the object is shared with");
    api.add(Get, path, ok(with_query(get, &PAGE), 200, "A page of shared roles", page), &[403, 404, 422]);
    let body = api.schema::<SharedRolesUpdateRequest>();
    let patch = operation(&format!("update{object}SharedRoles"), "sharing", "Replace who the object is shared with (owner only)")
        .request_body(json_body(body));
    api.add(Patch, path, empty(patch, 204, "Updated"), &[400, 403, 404, 409, 422]);
}

fn repositories(api: &mut Builder) {
    let page = api.page::<Repository>();
    let order_by = "`name`, `createdAt` or `updatedAt`; `-` for descending (default `-createdAt`)";
    let query = list_query(order_by, &[q("search", Kind::String, "Text in the name"), q("type", Kind::StringList, "Artifact types")]);
    let op = with_query(operation("listArtifactRepositories", "artifacts", "List artifact repositories"), &query);
    api.add(Get, "/api/v2/artifactRepositories", ok(op, 200, "A page of repositories", page), &[422]);
    let repository = api.schema::<Repository>();
    let one = "/api/v2/artifactRepositories/{artifact_repository_id}";
    api.add(Get, one, ok(operation("getArtifactRepository", "artifacts", "Get a repository"), 200, "The repository", repository), &[404]);
    let op = operation("deleteArtifactRepository", "artifacts", "Delete a repository and its artifacts (none may be in use)");
    api.add(Delete, one, empty(op, 204, "Deleted"), &[403, 404, 409]);
    shared_roles(api, "/api/v2/artifactRepositories/{artifact_repository_id}/sharedRoles", "ArtifactRepository");
}

fn workloads(api: &mut Builder) {
    let workload = api.schema::<Workload>();
    let base = "/api/v2/workloads";
    let create = api.schema::<CreateWorkloadRequest>();
    let op = operation("createWorkload", "workloads", "Create and start a workload").request_body(json_body(create));
    api.add(Post, base, ok(op, 201, "Created", workload.clone()), &[400, 403, 404, 409, 422]);
    let page = api.page::<Workload>();
    let order_by = "`name`, `createdAt`, `updatedAt`, `status` or `importance`; `-` for descending (default `-createdAt`)";
    let query = list_query(
        order_by,
        &[
            q("search", Kind::String, "Text in the name or description"),
            q("status", Kind::StringList, "Workload statuses"),
            q("importance", Kind::StringList, "`low`, `moderate`, `high`, `critical`"),
            q("artifactId", Kind::String, "Only workloads running this artifact"),
            q("artifactStatus", Kind::StringList, "Only workloads whose artifact is `draft` or `locked`"),
            q("repositoryId", Kind::String, "Only workloads whose artifact is of this repository"),
            q("serviceStats", Kind::Boolean, "Add each workload's `requestStats` (last 7 days)"),
        ],
    );
    api.add(
        Get,
        base,
        ok(with_query(operation("listWorkloads", "workloads", "List workloads"), &query), 200, "A page of workloads", page),
        &[422],
    );
    let one = "/api/v2/workloads/{workload_id}";
    api.add(Get, one, ok(operation("getWorkload", "workloads", "Get a workload"), 200, "The workload", workload.clone()), &[403, 404]);
    let patch = api.schema::<UpdateWorkloadRequest>();
    let op = operation("updateWorkload", "workloads", "Rename, describe or re-prioritise a workload").request_body(json_body(patch));
    api.add(Patch, one, ok(op, 200, "The workload", workload.clone()), &[400, 403, 404, 409, 422]);
    api.add(Delete, one, empty(operation("deleteWorkload", "workloads", "Stop and delete a workload"), 204, "Deleted"), &[403, 404, 409]);
    let answer = api.schema::<WorkloadOperationResponse>();
    for (verb, id, summary) in [("start", "startWorkload", "Start a stopped workload"), ("stop", "stopWorkload", "Stop a workload")] {
        let op = ok(operation(id, "workloads", summary), 202, "Accepted", answer.clone());
        api.add(Post, &format!("{one}/{verb}"), ok(op, 200, "Already so", answer.clone()), &[403, 404, 409, 422]);
    }
    let op = operation("promoteWorkload", "workloads", "Lock a draft workload's artifact as the repository's next version");
    api.add(Post, &format!("{one}/promote"), ok(op, 202, "Promoted", workload), &[403, 404, 409, 422]);
    let page = api.page::<Replacement>();
    let op = with_query(operation("listWorkloadHistory", "workloads", "Past replacements and promotions"), &PAGE);
    api.add(Get, &format!("{one}/history"), ok(op, 200, "A page of records", page), &[403, 404, 422]);
    let page = api.page::<Proton>();
    let op = with_query(operation("listProtons", "protons", "The workload's protons"), &PAGE);
    api.add(Get, &format!("{one}/protons"), ok(op, 200, "A page of protons", page), &[403, 404, 422]);
    let proton = api.schema::<Proton>();
    let op = operation("getProton", "protons", "Get a proton");
    api.add(Get, &format!("{one}/protons/{{proton_id}}"), ok(op, 200, "The proton", proton), &[403, 404]);
    let snapshot = api.schema::<ReplicaStatusesSnapshot>();
    let op = operation("getProtonStatusDetails", "protons", "The state of each replica of a proton");
    api.add(Get, &format!("{one}/protons/{{proton_id}}/statusDetails"), ok(op, 200, "Replica states", snapshot), &[403, 404]);
    let page = api.page::<WorkloadEvent>();
    let op = with_query(operation("listWorkloadEvents", "workloads", "The story of the workload, oldest first"), &PAGE);
    api.add(Get, &format!("{one}/events"), ok(op, 200, "A page of events", page), &[403, 404, 422]);
    let related = api.schema::<RelatedObjects>();
    let op = operation("listRelatedObjects", "workloads", "The workload's artifact, repository and protons");
    api.add(Get, &format!("{one}/related"), ok(op, 200, "Related objects", related), &[403, 404]);
    shared_roles(api, "/api/v2/workloads/{workload_id}/sharedRoles", "Workload");
    let page = api.page::<LogEntry>();
    let op = with_query(operation("listWorkloadLogs", "otel", "What the workload's replicas printed, newest first"), &LOGS);
    api.add(Get, "/api/v2/otel/workload/{workload_id}/logs", ok(op, 200, "A page of log records", page), &[403, 404, 422, 503]);
    let page = api.page::<TraceSummary>();
    let window = [
        q("offset", Kind::Integer, "How many traces to skip (default 0)"),
        q("limit", Kind::Integer, "Page size, 1 to 100 (default 100)"),
        q("startTime", Kind::String, "Only traces that started at or after this time, RFC 3339"),
        q("endTime", Kind::String, "Only traces that started at or before this time, RFC 3339"),
    ];
    let op = with_query(operation("listWorkloadTraces", "otel", "The recent traces of the workload's invokes, newest first"), &window);
    api.add(Get, "/api/v2/otel/workload/{workload_id}/traces", ok(op, 200, "A page of trace summaries", page), &[403, 404, 422]);
    let trace = api.schema::<Trace>();
    let op = operation("getWorkloadTrace", "otel", "One trace's spans (durations in nanoseconds)");
    api.add(Get, "/api/v2/otel/workload/{workload_id}/traces/{trace_id}", ok(op, 200, "The trace", trace), &[403, 404]);
    let page = api.page::<OtelMetric>();
    for (path, id) in [("metrics", "listWorkloadMetrics"), ("metrics/summary", "listWorkloadMetricsSummary")] {
        let op = operation(id, "otel", "The metrics collected for every workload without instrumentation");
        api.add(Get, &format!("/api/v2/otel/workload/{{workload_id}}/{path}"), ok(op, 200, "The metrics", page.clone()), &[403, 404]);
    }
    let values = api.schema::<AutocollectedValues>();
    let period = [
        q("startTime", Kind::String, "The period's start, RFC 3339 (default: an hour before endTime)"),
        q("endTime", Kind::String, "The period's end, RFC 3339 (default now)"),
        q("searchKeys", Kind::StringList, "proton_id, with searchValues: only these protons"),
        q("searchValues", Kind::StringList, "The proton ids, parallel to searchKeys"),
    ];
    let op = with_query(operation("listWorkloadAutocollectedValues", "otel", "Each collected metric's value over a period"), &period);
    let path = "/api/v2/otel/workload/{workload_id}/metrics/autocollectedValues";
    api.add(Get, path, ok(op, 200, "The values", values), &[403, 404, 422]);
}

const LOGS: [QueryParam; 11] = [
    q("offset", Kind::Integer, "How many records to skip (default 0, at most 9000)"),
    q("limit", Kind::Integer, "Page size, 1 to 1000 (default 100)"),
    q("level", Kind::String, "Only records at least this severe: debug (default), info, warn/warning, error, critical"),
    q("startTime", Kind::String, "Only records at or after this time, RFC 3339"),
    q("endTime", Kind::String, "Only records at or before this time, RFC 3339"),
    q("includes", Kind::StringList, "Only records whose message contains every one of these (case-sensitive)"),
    q("excludes", Kind::StringList, "Only records whose message contains none of these"),
    q("traceId", Kind::String, "Only records of this trace"),
    q("spanId", Kind::String, "Only records of this span"),
    q("searchKeys", Kind::StringList, "Attributes to match, parallel to searchValues: proton_id, replica, stream"),
    q("searchValues", Kind::StringList, "The value each of searchKeys must have"),
];

fn replacements(api: &mut Builder) {
    let one = "/api/v2/workloads/{workload_id}";
    let settings = api.schema::<WorkloadSettings>();
    let op = operation("getWorkloadSettings", "replacements", "The workload's runtime");
    api.add(Get, &format!("{one}/settings"), ok(op, 200, "Settings", settings), &[403, 404]);
    let replacement = api.schema::<Replacement>();
    let body = api.schema::<UpdateSettingsRequest>();
    let op = operation("updateWorkloadSettings", "replacements", "Roll the workload onto a new runtime (same artifact)")
        .request_body(json_body(body));
    api.add(Patch, &format!("{one}/settings"), ok(op, 202, "Replacement started", replacement.clone()), &[400, 403, 404, 409, 422]);
    let path = format!("{one}/replacement");
    let body = api.schema::<StartReplacementRequest>();
    let op = operation("startReplacement", "replacements", "Roll the workload onto another artifact, with no failed request")
        .request_body(json_body(body));
    api.add(Post, &path, ok(op, 202, "Replacement started", replacement.clone()), &[400, 403, 404, 409, 422]);
    let op = operation("getReplacement", "replacements", "The replacement in progress");
    api.add(Get, &path, ok(op, 200, "The replacement", replacement.clone()), &[403, 404]);
    let op = operation("cancelReplacement", "replacements", "Cancel the replacement in progress; the old proton keeps serving");
    api.add(Delete, &path, ok(op, 202, "Cancelling", replacement), &[403, 404, 409, 422]);
}

fn stats(api: &mut Builder) {
    let overview = api.schema::<StatsOverview>();
    let op = operation("getWorkloadsStats", "stats", "Every visible workload's last 24 hours");
    api.add(Get, "/api/v2/workloads/stats", ok(op, 200, "Overview", overview), &[]);
    let path = "/api/v2/workloads/{workload_id}/stats";
    let stats = api.schema::<ProtonRequestStats>();
    let op = with_query(operation("getWorkloadStats", "stats", "Request statistics of a proton over a period"), &STATS);
    api.add(Get, path, ok(op, 200, "Statistics", stats), &[400, 403, 404, 422]);
    let op = with_query(operation("deleteWorkloadStats", "stats", "Forget request statistics (of one proton, of a period)"), &STATS[..3]);
    api.add(Delete, path, empty(op, 204, "Deleted"), &[400, 403, 404, 422]);
    let mut query = STATS.to_vec();
    query.push(q("resolution", Kind::String, "`PT1M`, `PT5M`, `PT1H`, `P1D` (default), `P7D` or `P1M`"));
    let over_time = api.schema::<MetricOverTime>();
    let op = with_query(operation("getWorkloadMetric", "stats", "One metric over time, in buckets of `resolution`"), &query);
    api.add(Get, &format!("{path}/{{metric_name}}"), ok(op, 200, "Buckets", over_time), &[400, 403, 404, 422]);
}

fn deployments(api: &mut Builder) {
    let deployment = api.schema::<Deployment>();
    let base = "/api/v2/console/deployments";
    let body = api.schema::<CreateDeploymentRequest>();
    let op = operation("createDeployment", "deployments", "Give a locked workload a deployment").request_body(json_body(body));
    api.add(Post, base, ok(op, 201, "Created", deployment.clone()), &[400, 403, 404, 409, 422]);
    let page = api.page::<Deployment>();
    let op = with_query(operation("listDeployments", "deployments", "List deployments"), &PAGE);
    api.add(Get, base, ok(op, 200, "A page of deployments", page), &[422]);
    let one = "/api/v2/console/deployments/{deployment_id}";
    api.add(
        Get,
        one,
        ok(operation("getDeployment", "deployments", "Get a deployment"), 200, "The deployment", deployment.clone()),
        &[403, 404],
    );
    let body = api.schema::<UpdateDeploymentRequest>();
    let op = operation("updateDeployment", "deployments", "Rename, describe or re-prioritise a deployment").request_body(json_body(body));
    api.add(Patch, one, ok(op, 200, "The deployment", deployment), &[400, 403, 404, 422]);
    api.add(
        Delete,
        one,
        empty(operation("deleteDeployment", "deployments", "Delete a deployment (not its workload)"), 204, "Deleted"),
        &[403, 404],
    );
    let stats = api.schema::<ProtonRequestStats>();
    let op = with_query(operation("getDeploymentStats", "deployments", "Request statistics of the deployment's workload"), &STATS);
    api.add(Get, &format!("{one}/stats"), ok(op, 200, "Statistics", stats), &[400, 403, 404, 422]);
}

fn identity(api: &mut Builder) {
    let user = api.schema::<User>();
    let body = api.schema::<CreateUserRequest>();
    let op = operation("createUser", "users", "Create a user (administrator only)").request_body(json_body(body));
    api.add(Post, "/api/v2/users", ok(op, 201, "Created", user.clone()), &[400, 403, 409, 422]);
    let page = api.page::<User>();
    let op = with_query(operation("listUsers", "users", "Users (the administrator sees all, a user itself)"), &PAGE);
    api.add(Get, "/api/v2/users", ok(op, 200, "A page of users", page), &[422]);
    let body = api.schema::<UpdateUserRequest>();
    let op = operation("updateUser", "users", "Disable or enable a user, or change its name or email (administrator only)")
        .request_body(json_body(body));
    api.add(Patch, "/api/v2/users/{user_id}", ok(op, 200, "The user", user.clone()), &[400, 403, 404, 422]);
    let op = operation("deleteUser", "users", "Delete a user and every token of theirs (administrator only)");
    api.add(Delete, "/api/v2/users/{user_id}", empty(op, 204, "Deleted"), &[403, 404, 409]);
    let token = api.schema::<TokenCreated>();
    let body = api.schema::<CreateTokenRequest>();
    let op =
        operation("createToken", "users", "A new API token for the user, optionally named and expiring; the secret is shown only here")
            .request_body(optional_json_body(body));
    api.add(Post, "/api/v2/users/{user_id}/tokens", ok(op, 201, "Created", token), &[400, 404, 422]);
    let page = api.page::<TokenRecord>();
    let op = with_query(operation("listTokens", "users", "The user's tokens, without their secrets"), &PAGE);
    api.add(Get, "/api/v2/users/{user_id}/tokens", ok(op, 200, "A page of tokens", page), &[404, 422]);
    let op = operation("deleteToken", "users", "Revoke a token: refused at once here, within 30 s on every gateway");
    api.add(Delete, "/api/v2/users/{user_id}/tokens/{token_id}", empty(op, 204, "Revoked"), &[404]);
    let group = api.schema::<UserGroup>();
    let body = api.schema::<CreateGroupRequest>();
    let op = operation("createGroup", "users", "Create a group of users to share with (administrator only)").request_body(json_body(body));
    api.add(Post, "/api/v2/groups", ok(op, 201, "Created", group.clone()), &[400, 403, 422]);
    let page = api.page::<UserGroup>();
    let op = with_query(operation("listGroups", "users", "Groups (the administrator sees all, a user those it is in)"), &PAGE);
    api.add(Get, "/api/v2/groups", ok(op, 200, "A page of groups", page), &[422]);
    let body = api.schema::<GroupMembersRequest>();
    let op = operation("addGroupMembers", "users", "Add users to a group (administrator only)").request_body(json_body(body));
    api.add(Post, "/api/v2/groups/{group_id}/users", ok(op, 200, "The group", group), &[400, 403, 404, 409, 422]);
    let op = operation("removeGroupMember", "users", "Take a user out of a group (administrator only)");
    api.add(Delete, "/api/v2/groups/{group_id}/users/{user_id}", empty(op, 204, "Removed"), &[403, 404, 409]);
}

fn invoke(api: &mut Builder) {
    for (kind, id_name) in [("workloads", "workload_id"), ("deployments", "deployment_id")] {
        let path = format!("/api/v2/endpoints/{kind}/{{{id_name}}}/{{path}}");
        for (method, verb) in [(Get, "Get"), (Post, "Post"), (Put, "Put"), (Patch, "Patch"), (Delete, "Delete")] {
            let op_id = format!("invoke{}{verb}", if kind == "workloads" { "Workload" } else { "Deployment" });
            let op = operation(&op_id, "invoke", "Forwarded to the workload's primary container, same method, path and body");
            api.add(method, &path, ok(op, 200, "Whatever the application answers", any()), &[403, 404, 502]);
        }
    }
}
