//! Mutual TLS on every internal link. Each process holds a certificate signed by the cluster's CA
//! whose DNS names say its roles (`meta.nucleus`, `scheduler.nucleus`, `gateway.nucleus`,
//! `agent.nucleus`); a client checks that the server it dials has the role it expects, and a
//! server's [`RoleGuard`] lets each RPC through only from the roles allowed to make it.
//!
//! [`authority`] makes the CA and issues certificates (`nucleus certs`, and `nucleus dev`, which
//! keeps its own CA in its data dir).

pub mod authority;
mod dialer;
mod error;
mod guard;
mod identity;
mod live;
pub mod policy;
mod role;

pub use dialer::{Dialer, Network};
pub use error::Error;
pub use guard::{Policy, RoleGuard, RoleGuardLayer};
pub use identity::{TlsIdentity, TlsPaths};
pub use live::LiveTls;
pub use role::{Role, agent_dns_name, is_agent_name, names_agent, peer_is_agent, peer_roles};
