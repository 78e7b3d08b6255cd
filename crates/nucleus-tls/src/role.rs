use std::fmt;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// What a process of the cluster is, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Meta,
    Scheduler,
    Gateway,
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Meta, Role::Scheduler, Role::Gateway, Role::Agent];

    /// The DNS name a certificate of this role carries, and a client expects of such a server.
    pub fn dns_name(self) -> &'static str {
        match self {
            Role::Meta => "meta.nucleus",
            Role::Scheduler => "scheduler.nucleus",
            Role::Gateway => "gateway.nucleus",
            Role::Agent => "agent.nucleus",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Scheduler => "scheduler",
            Role::Gateway => "gateway",
            Role::Agent => "agent",
        }
    }

    /// The roles a certificate names. Its signature was checked when the connection was made.
    pub fn of_certificate(der: &CertificateDer<'_>) -> Vec<Role> {
        let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
            return Vec::new();
        };
        Role::ALL
            .into_iter()
            .filter(|role| ServerName::try_from(role.dns_name()).is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok()))
            .collect()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text || role.dns_name() == text)
            .ok_or_else(|| format!("unknown role `{text}`: one of meta, scheduler, gateway, agent"))
    }
}

/// The DNS name that binds an agent certificate to the agent it was issued for:
/// `<agent>.agent.nucleus`.
pub fn agent_dns_name(agent: &str) -> String {
    format!("{agent}.{}", Role::Agent.dns_name())
}

/// Whether an agent name can be bound into a certificate: a DNS label (letters, digits and `-`,
/// at most 63, not starting or ending with `-`).
pub fn is_agent_name(agent: &str) -> bool {
    (1..=63).contains(&agent.len())
        && agent.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !agent.starts_with('-')
        && !agent.ends_with('-')
}

/// Whether the certificate was issued for the agent named `agent`.
pub fn names_agent(der: &CertificateDer<'_>, agent: &str) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
        return false;
    };
    is_agent_name(agent)
        && ServerName::try_from(agent_dns_name(agent)).is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Whether the client of a request presented a certificate issued for the agent named `agent`.
pub fn peer_is_agent(extensions: &http::Extensions, agent: &str) -> bool {
    let Some(certs) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|info| info.peer_certs()) else {
        return false;
    };
    certs.first().is_some_and(|cert| names_agent(cert, agent))
}

/// The roles of the client of a request, from the certificate it presented: None on a plaintext
/// connection, empty when the certificate names no role.
pub fn peer_roles(extensions: &http::Extensions) -> Option<Vec<Role>> {
    let certs: Arc<Vec<CertificateDer<'static>>> = extensions.get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?;
    Some(certs.first().map(Role::of_certificate).unwrap_or_default())
}
