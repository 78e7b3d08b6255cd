//! Joining side of `Meta.Join`: asks the given members to add this node, following leader hints
//! and retrying with backoff until a deadline.

use std::collections::VecDeque;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient;
use tokio::time::Instant;

use crate::error::Error;
use crate::transport::Transport;
use crate::types::NodeId;
use nucleus_proto::metadata::LEADER_ADDR;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than the leader's catch-up wait, so that its answer arrives rather than our timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Who joins, where it is reached, and through which members.
pub(crate) struct JoinRequest<'a> {
    pub node_id: NodeId,
    pub advertise: &'a str,
    pub seeds: &'a [String],
}

enum Attempt {
    Joined(pb::JoinResponse),
    /// Not the leader; it named this address as the leader.
    Redirect(String),
    Failed(String),
}

/// Calls Join until one member accepts it (returning its answer: the membership and the cluster's
/// shard count) or `timeout` passes.
pub(crate) async fn join(transport: &impl Transport, request: &JoinRequest<'_>, timeout: Duration) -> Result<pb::JoinResponse, Error> {
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = "no address to join through".to_owned();
    loop {
        let mut targets: VecDeque<String> = request.seeds.iter().cloned().collect();
        let mut tried: Vec<String> = Vec::new();
        while let Some(addr) = targets.pop_front() {
            if tried.contains(&addr) || Instant::now() >= deadline {
                continue;
            }
            tried.push(addr.clone());
            match attempt(transport, &addr, request).await {
                Attempt::Joined(response) => {
                    tracing::info!(node_id = request.node_id, via = %addr, "joined the meta group");
                    return Ok(response);
                }
                Attempt::Redirect(leader) => {
                    tracing::debug!(via = %addr, %leader, "join redirected to the leader");
                    targets.push_front(leader);
                }
                Attempt::Failed(detail) => {
                    tracing::info!(via = %addr, %detail, "join attempt failed, will retry");
                    last_error = format!("{addr}: {detail}");
                }
            }
        }
        if Instant::now() + backoff >= deadline {
            return Err(Error::Join {
                seeds: request.seeds.join(", "),
                node_id: request.node_id,
                advertise: request.advertise.to_owned(),
                detail: format!("gave up after {timeout:?}; last error: {last_error}"),
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(transport: &impl Transport, addr: &str, request: &JoinRequest<'_>) -> Attempt {
    let endpoint = match transport.endpoint(addr) {
        Ok(endpoint) => endpoint.connect_timeout(CONNECT_TIMEOUT).timeout(CALL_TIMEOUT),
        Err(e) => return Attempt::Failed(format!("not a valid address: {e}")),
    };
    // Connects on the call; a connection failure comes back as a status without a leader hint.
    let channel = transport.channel(endpoint);
    let call = pb::JoinRequest { node_id: request.node_id, addr: request.advertise.to_owned() };
    match MetaClient::new(channel).join(call).await {
        Ok(response) => Attempt::Joined(response.into_inner()),
        Err(status) => {
            let hint = status
                .metadata()
                .get(LEADER_ADDR)
                .and_then(|value| value.to_str().ok())
                .filter(|leader| !leader.is_empty() && *leader != addr);
            match (status.code(), hint) {
                (tonic::Code::Unavailable, Some(leader)) => Attempt::Redirect(leader.to_owned()),
                _ => Attempt::Failed(format!("{}: {}", status.code(), status.message())),
            }
        }
    }
}
