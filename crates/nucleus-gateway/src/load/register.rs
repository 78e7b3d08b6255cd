//! The gateway's registration in meta, so that schedulers find its internal service.

use nucleus_client::{GatewayRecord, MetaClient, Txn, keys};

/// Writes `gateways/<name>` now and every [`GatewayRecord::HEARTBEAT`], until the task is dropped.
pub async fn register(meta: MetaClient, name: String, address: String) {
    let mut tick = tokio::time::interval(GatewayRecord::HEARTBEAT);
    loop {
        tick.tick().await;
        let record = GatewayRecord { name: name.clone(), address: address.clone(), heartbeat_at: nucleus_api::clock::now().to_rfc3339() };
        let written = match Txn::new().put_json(&keys::gateway(&name), &record) {
            Ok(txn) => meta.write(txn).await.map(|_| ()),
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            tracing::warn!(gateway = name, error = %err, "cannot register the gateway in meta; autoscaling does not see its load until it can");
        }
    }
}
