use std::io;
use std::path::PathBuf;

/// Everything setting up TLS can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the {what} {}: {source}; check --tls-ca, --tls-cert and --tls-key (`nucleus certs issue` makes them)", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}; check that the directory is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} holds no PEM {what}; give the file `nucleus certs issue` wrote", path.display())]
    NotPem { what: &'static str, path: PathBuf },
    #[error(
        "the certificate {} names none of the roles meta.nucleus, scheduler.nucleus, gateway.nucleus, agent.nucleus; \
         issue one with `nucleus certs issue --role ROLE`", path.display()
    )]
    NoRole { path: PathBuf },
    #[error("the certificate {} lacks the {role} role this process needs; issue one with `nucleus certs issue --role {role}`", path.display())]
    MissingRole { path: PathBuf, role: crate::Role },
    #[error("{} already exists; remove it first to replace the cluster CA (every certificate it signed stops working)", path.display())]
    Exists { path: PathBuf },
    #[error(
        "`{name}` cannot name an agent certificate: an agent's certificate is named after the agent (`<cluster>-<region>`, \
         a DNS label: letters, digits and `-`), which binds it to that agent's registration"
    )]
    AgentName { name: String },
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid address `{addr}`: {source}")]
    Address {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the certificate, key or CA cannot be used: {0}; issue them again with `nucleus certs`")]
    Settings(String),
}
