//! The gateway's links to node agents (mutual TLS as a gateway: agents let gateways read logs and
//! nothing else), one lazily dialled client per agent address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nucleus_client::{AgentClient, AgentRecord, MetaClient, keys};
use nucleus_tls::Dialer;

use crate::ApiError;

#[derive(Clone)]
pub struct AgentLinks {
    dialer: Dialer,
    clients: Arc<Mutex<HashMap<String, AgentClient>>>,
}

impl AgentLinks {
    pub fn new(dialer: Dialer) -> AgentLinks {
        AgentLinks { dialer, clients: Arc::default() }
    }

    /// The agent named `name`, at the address it registered in meta.
    pub(crate) async fn client(&self, meta: &MetaClient, name: &str) -> Result<AgentClient, ApiError> {
        let record = meta.get_json::<AgentRecord>(&keys::agent(name)).await?.ok_or_else(|| {
            ApiError::Unavailable(format!("agent {name} is not registered: the logs of its replicas cannot be read until it is back"))
        })?;
        let address = record.value.address;
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&address) {
            return Ok(client.clone());
        }
        let client = AgentClient::new(&address, &self.dialer)
            .map_err(|err| ApiError::Internal(format!("agent {name} registered an unusable address {address}: {err}")))?;
        clients.insert(address, client.clone());
        Ok(client)
    }
}
