//! Simulated clients: random create / put / CAS / delete / read operations on a few keys through
//! the real gRPC API, following leader hints, every operation recorded in the shared [`History`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient;
use nucleus_proto::metadata::LEADER_ADDR as LEADER_ADDR_METADATA;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use super::cluster::host_addr;
use super::net::TurmoilTransport;
use crate::{History, Input, Output};

/// One attempt's deadline (also sent as the gRPC timeout).
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a client keeps retrying one operation before giving up on it.
const OP_DEADLINE: Duration = Duration::from_secs(3);
const RETRY_PAUSE: Duration = Duration::from_millis(50);

pub type SharedHistory = Rc<RefCell<History>>;

pub fn key(i: usize) -> String {
    format!("sim/k{i}")
}

fn group_of(key: &str) -> u64 {
    let index = key.rsplit('k').next().and_then(|i| i.parse().ok()).expect("a key made by `key`");
    super::cluster::group_of_key(index)
}

/// Simulated now, in microseconds since the simulation started.
pub fn now() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

/// A connection to each meta node, and which one is believed to lead each group.
pub struct Conn {
    nodes: Vec<String>,
    channels: HashMap<String, MetaClient<Channel>>,
    start: usize,
    current: HashMap<u64, usize>,
}

enum Attempt<T> {
    Done(T),
    /// The node answered that it is not the leader (maybe naming it).
    Redirect(Option<String>),
    /// No answer, or an error after which the request may have been applied.
    Failed,
}

impl Conn {
    pub fn new(nodes: u64, start: usize) -> Conn {
        let nodes: Vec<String> = (1..=nodes).map(host_addr).collect();
        let start = start % nodes.len();
        Conn { nodes, channels: HashMap::new(), start, current: HashMap::new() }
    }

    fn client(&mut self, addr: &str) -> MetaClient<Channel> {
        self.channels
            .entry(addr.to_owned())
            .or_insert_with(|| {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .expect("valid address")
                    .connect_timeout(CALL_TIMEOUT)
                    // Turmoil drops bytes for good across a partition: pings find the dead
                    // connection so the channel reconnects (real TCP would retransmit).
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(1))
                    .keep_alive_while_idle(true);
                MetaClient::new(TurmoilTransport.channel_for(endpoint))
            })
            .clone()
    }

    fn follow(&mut self, group: u64, hint: Option<String>) {
        let current = self.current.entry(group).or_insert(self.start);
        match hint.and_then(|addr| self.nodes.iter().position(|n| *n == addr)) {
            Some(i) => *current = i,
            None => *current = (*current + 1) % self.nodes.len(),
        }
    }

    /// Calls `f` on the believed leader of `group` until it answers or `deadline` passes.
    /// `None`: gave up.
    async fn call<T, F, Fut>(&mut self, group: u64, deadline: Duration, mut f: F) -> (Option<T>, bool)
    where
        F: FnMut(MetaClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let until = tokio::time::Instant::now() + deadline;
        // Whether some attempt may have reached a node and been acted upon.
        let mut ambiguous = false;
        while tokio::time::Instant::now() < until {
            let addr = self.nodes[*self.current.get(&group).unwrap_or(&self.start)].clone();
            let client = self.client(&addr);
            let attempt = match tokio::time::timeout(CALL_TIMEOUT, f(client)).await {
                Ok(Ok(answer)) => Attempt::Done(answer),
                Ok(Err(status)) => classify(&status),
                Err(_) => Attempt::Failed,
            };
            match attempt {
                Attempt::Done(answer) => return (Some(answer), ambiguous),
                Attempt::Redirect(hint) => {
                    // openraft also answers ForwardToLeader for an entry it proposed and then
                    // truncated, which a later leader may still commit: not a definite refusal.
                    ambiguous = true;
                    self.follow(group, hint);
                }
                Attempt::Failed => {
                    ambiguous = true;
                    self.follow(group, None);
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        (None, ambiguous)
    }
}

impl TurmoilTransport {
    fn channel_for(self, endpoint: Endpoint) -> Channel {
        nucleus_meta::Transport::channel(&self, endpoint)
    }
}

fn classify<T>(status: &tonic::Status) -> Attempt<T> {
    if status.code() == tonic::Code::Unavailable && status.message().starts_with("not the meta leader") {
        let hint = status.metadata().get(LEADER_ADDR_METADATA).and_then(|v| v.to_str().ok()).map(str::to_owned);
        return Attempt::Redirect(hint);
    }
    Attempt::Failed
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn parse(kv: &pb::KeyValue) -> (u64, u64) {
    let value = std::str::from_utf8(&kv.value).ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (value, kv.mod_revision)
}

/// A linearizable read of `key`: (value, mod_revision) or `None` if absent.
pub async fn get(conn: &mut Conn, key: &str, deadline: Duration) -> Option<Option<(u64, u64)>> {
    let group_id = group_of(key);
    let (answer, _) = conn
        .call(group_id, deadline, |mut client| {
            let key = key.to_owned();
            async move { client.get(with_timeout(pb::GetRequest { key, group_id })).await }
        })
        .await;
    answer.map(|response| response.into_inner().kv.as_ref().map(parse))
}

/// Reads `key` and records it; returns what was read.
pub async fn recorded_read(
    conn: &mut Conn,
    history: &SharedHistory,
    client: u64,
    key: &str,
    deadline: Duration,
) -> Option<Option<(u64, u64)>> {
    let call = now();
    let read = get(conn, key, deadline).await;
    if let Some(read) = read {
        let mut history = history.borrow_mut();
        let id = history.invoke(client, key, Input::Read, call);
        history.complete(id, Output::Read(read.map(|(v, _)| v)), now()).expect("valid read");
    }
    // A read without an answer changed nothing: it is left out of the history.
    read
}

/// One client: random operations on `keys` keys until `stop` is set.
pub async fn run(client: u64, seed: u64, keys: usize, nodes: u64, stop: Rc<Cell<bool>>, history: SharedHistory) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(seed ^ (client.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut conn = Conn::new(nodes, client as usize);
    // What this client last read of each key: (value, mod_revision), for its CAS operations.
    let mut seen: HashMap<String, Option<(u64, u64)>> = HashMap::new();
    let mut counter = 0u64;
    while !stop.get() {
        let key = key(rng.random_range(0..keys));
        let roll = rng.random_range(0..100);
        if roll < 30 || (roll < 50 && !seen.contains_key(&key)) {
            if let Some(read) = recorded_read(&mut conn, &history, client, &key, OP_DEADLINE).await {
                seen.insert(key, read);
            }
        } else {
            counter += 1;
            let value = client * 1_000_000 + counter;
            let request_id = format!("c{client}-{counter}");
            let put = pb::Op { op: Some(pb::op::Op::Put(pb::Put { key: key.clone(), value: value.to_string().into_bytes() })) };
            let (input, conditions, op) = match roll {
                50..65 => (Input::Put(value), vec![], put),
                65..75 => (Input::Create(value), vec![pb::Condition { key: key.clone(), mod_revision: 0 }], put),
                75..90 => {
                    let last = seen.get(&key).copied().flatten();
                    let condition = pb::Condition { key: key.clone(), mod_revision: last.map_or(0, |(_, rev)| rev) };
                    (Input::Cas { expected: last.map(|(v, _)| v), new: value }, vec![condition], put)
                }
                _ => (Input::Delete, vec![], pb::Op { op: Some(pb::op::Op::Delete(pb::Delete { key: key.clone() })) }),
            };
            let group_id = group_of(&key);
            let request = pb::WriteRequest { request_id, conditions, ops: vec![op], group_id };
            let call = now();
            let (answer, ambiguous) = conn
                .call(group_id, OP_DEADLINE, |mut c| {
                    let request = request.clone();
                    async move { c.write(with_timeout(request)).await }
                })
                .await;
            let mut history = history.borrow_mut();
            match answer {
                Some(response) => {
                    let output = if response.into_inner().succeeded { Output::Ok } else { Output::Conflict };
                    let id = history.invoke(client, &key, input, call);
                    history.complete(id, output, now()).expect("valid write");
                }
                // Every attempt was refused before anything was proposed: it never happened.
                None if !ambiguous => {}
                None => {
                    let id = history.invoke(client, &key, input, call);
                    history.unknown(id).expect("pending write");
                }
            }
            // Our own write makes what we read stale.
            seen.remove(&key);
        }
    }
    Ok(())
}
