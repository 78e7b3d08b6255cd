use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::{Error, Role};

/// Where a process's CA certificate, own certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsPaths {
    /// `ca.pem`, `<name>.pem` and `<name>-key.pem` in `dir`, as [`crate::authority`] writes them.
    pub fn in_dir(dir: &Path, name: &str) -> TlsPaths {
        TlsPaths { ca: dir.join("ca.pem"), cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}-key.pem")) }
    }
}

/// A process's TLS material, loaded: it serves with its certificate, accepts only clients with a
/// certificate of the same CA, and dials servers of the same CA with its certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    roles: Vec<Role>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsIdentity").field("roles", &self.roles).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads the three files; fails when one is missing, is not PEM, or the certificate names no role.
    pub fn load(paths: &TlsPaths) -> Result<TlsIdentity, Error> {
        let read = |what, path: &Path| std::fs::read_to_string(path).map_err(|source| Error::Read { what, path: path.to_owned(), source });
        let ca_pem = read("CA certificate", &paths.ca)?;
        let cert_pem = read("certificate", &paths.cert)?;
        let key_pem = read("private key", &paths.key)?;
        let first_cert = |pem: &str, path: &Path| {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| Error::NotPem { what: "certificate", path: path.to_owned() })
        };
        first_cert(&ca_pem, &paths.ca)?;
        let roles = Role::of_certificate(&first_cert(&cert_pem, &paths.cert)?);
        if roles.is_empty() {
            return Err(Error::NoRole { path: paths.cert.clone() });
        }
        if rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_err() {
            return Err(Error::NotPem { what: "private key", path: paths.key.clone() });
        }
        Ok(TlsIdentity { ca_pem, cert_pem, key_pem, roles })
    }

    /// Fails unless the certificate names `role`: a process must not run a role it cannot prove.
    pub fn require(&self, role: Role, paths: &TlsPaths) -> Result<(), Error> {
        if self.roles.contains(&role) { Ok(()) } else { Err(Error::MissingRole { path: paths.cert.clone(), role }) }
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// Whether the certificate was issued for the agent named `agent` (an agent certificate may
    /// register only that agent).
    pub fn names_agent(&self, agent: &str) -> bool {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .is_some_and(|cert| crate::names_agent(&cert, agent))
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }
}
