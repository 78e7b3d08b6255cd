use std::path::Path;

use nucleus_meta::{MetaConfig, MetaNode};
use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient;
use tonic::transport::Channel;

pub type Client = MetaClient<Channel>;

pub async fn start(data_dir: &Path) -> MetaNode {
    let config = MetaConfig::new(1, data_dir, "127.0.0.1:0".parse().expect("addr"));
    MetaNode::start(config).await.expect("start meta node")
}

pub async fn client(node: &MetaNode) -> Client {
    MetaClient::connect(format!("http://{}", node.addr())).await.expect("connect")
}

pub fn put(key: &str, value: &str) -> pb::Op {
    pb::Op { op: Some(pb::op::Op::Put(pb::Put { key: key.into(), value: value.as_bytes().to_vec() })) }
}

pub fn delete(key: &str) -> pb::Op {
    pb::Op { op: Some(pb::op::Op::Delete(pb::Delete { key: key.into() })) }
}

pub fn delete_prefix(prefix: &str) -> pb::Op {
    pb::Op { op: Some(pb::op::Op::DeletePrefix(prefix.into())) }
}

pub fn cond(key: &str, mod_revision: u64) -> pb::Condition {
    pb::Condition { key: key.into(), mod_revision }
}

pub async fn write(client: &mut Client, request_id: &str, conditions: Vec<pb::Condition>, ops: Vec<pb::Op>) -> pb::WriteResponse {
    client.write(pb::WriteRequest { request_id: request_id.into(), conditions, ops, group_id: 0 }).await.expect("write").into_inner()
}

pub async fn get(client: &mut Client, key: &str) -> pb::GetResponse {
    client.get(pb::GetRequest { key: key.into(), group_id: 0 }).await.expect("get").into_inner()
}

/// (key, value) pairs under `prefix`, and the revision of the read.
pub async fn list(client: &mut Client, prefix: &str) -> (Vec<(String, String)>, u64) {
    let resp = client.list(pb::ListRequest { prefix: prefix.into(), group_id: 0, ..Default::default() }).await.expect("list").into_inner();
    let kvs = resp.kvs.into_iter().map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned())).collect();
    (kvs, resp.revision)
}

pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
