//! The cluster's certificate authority: made once (`nucleus certs init`), then signing one
//! certificate per process (`nucleus certs issue`), whose DNS names carry its roles.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::{Error, Role, TlsPaths};

const CA_COMMON_NAME: &str = "Nucleus cluster CA";
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates of processes; `nucleus dev` issues fresh ones at every start.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Room for clocks that are a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Makes a new CA in `dir` (`ca.pem`, and `ca-key.pem` readable by its owner only). Refuses to
/// overwrite one: every certificate the old CA signed would stop working.
pub fn init(dir: &Path, now: SystemTime) -> Result<TlsPaths, Error> {
    let paths = ca_paths(dir);
    if paths.ca.exists() {
        return Err(Error::Exists { path: paths.ca });
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_owned(), source })?;
    let key = KeyPair::generate()?;
    let mut params = ca_params();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    let cert = params.self_signed(&key)?;
    write(&paths.key, &key.serialize_pem(), 0o600)?;
    write(&paths.ca, &cert.pem(), 0o644)?;
    Ok(paths)
}

/// Signs a certificate named `name` for `roles`, also valid for `hosts` (DNS names or IP
/// addresses clients dial), with the CA in `ca_dir`; writes `<name>.pem`, `<name>-key.pem` and a
/// copy of `ca.pem` into `out_dir`. With the agent role it is bound to the agent named `agent`
/// (`name` when None): that agent's registration is the only one it may write.
pub fn issue(
    ca_dir: &Path,
    name: &str,
    roles: &[Role],
    hosts: &[String],
    agent: Option<&str>,
    out_dir: &Path,
    now: SystemTime,
) -> Result<TlsPaths, Error> {
    let ca = ca_paths(ca_dir);
    let read = |what, path: &Path| std::fs::read_to_string(path).map_err(|source| Error::Read { what, path: path.to_owned(), source });
    let ca_key = KeyPair::from_pem(&read("CA key", &ca.key)?)?;
    let ca_pem = read("CA certificate", &ca.ca)?;
    let issuer = Issuer::new(ca_params(), ca_key);

    // An agent's certificate also names the agent: it may register only itself.
    let agent_name = agent.unwrap_or(name);
    let agent = roles.contains(&Role::Agent).then(|| crate::agent_dns_name(agent_name));
    if agent.is_some() && !crate::is_agent_name(agent_name) {
        return Err(Error::AgentName { name: agent_name.to_owned() });
    }
    let names: Vec<String> = roles.iter().map(|role| role.dns_name().to_owned()).chain(agent).chain(hosts.iter().cloned()).collect();
    let mut params = CertificateParams::new(names)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + LEAF_VALIDITY).into();
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    std::fs::create_dir_all(out_dir).map_err(|source| Error::Write { path: out_dir.to_owned(), source })?;
    let paths = TlsPaths::in_dir(out_dir, name);
    write(&paths.key, &key.serialize_pem(), 0o600)?;
    write(&paths.cert, &cert.pem(), 0o644)?;
    if paths.ca != ca.ca {
        write(&paths.ca, &ca_pem, 0o644)?;
    }
    Ok(paths)
}

/// What `nucleus dev` runs with: a CA of its own in `dir` (made on first start) and a fresh
/// certificate per role, valid for loopback; the agent's is issued for the agent named `agent`.
pub fn dev_bundle(dir: &Path, agent: &str, now: SystemTime) -> Result<Vec<(Role, TlsPaths)>, Error> {
    if !ca_paths(dir).ca.exists() {
        init(dir, now)?;
        tracing::info!(dir = %dir.display(), "made a certificate authority for this dev cluster");
    }
    let loopback = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    Role::ALL.into_iter().map(|role| Ok((role, issue(dir, role.name(), &[role], &loopback, Some(agent), dir, now)?))).collect()
}

/// The CA's own files: `ca.pem` and `ca-key.pem`.
pub fn ca_paths(dir: &Path) -> TlsPaths {
    TlsPaths { ca: dir.join("ca.pem"), cert: dir.join("ca.pem"), key: dir.join("ca-key.pem") }
}

/// The CA's subject and constraints; signing needs them again, so they are made the same way each time.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    let failed = |source| Error::Write { path: path.to_owned(), source };
    let _ = std::fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(failed)?;
    file.write_all(contents.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TlsIdentity;

    /// Loading does not check validity dates, so any fixed instant serves.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000)
    }

    #[test]
    fn issued_certificates_carry_their_roles_and_the_ca_is_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = now();
        init(dir.path(), now).expect("CA");
        let err = init(dir.path(), now).expect_err("a second CA");
        assert!(matches!(err, Error::Exists { .. }), "{err}");

        let out = dir.path().join("node1");
        let paths = issue(dir.path(), "node1", &[Role::Meta, Role::Agent], &["10.0.0.7".into()], None, &out, now).expect("issue");
        assert!(identity_names_agent(&paths, "node1"), "an agent certificate names its agent");
        assert!(!identity_names_agent(&paths, "node2"));
        let err = issue(dir.path(), "node1", &[Role::Agent], &[], Some("Node_1"), &out, now).expect_err("not a DNS label");
        let bound = issue(dir.path(), "agent", &[Role::Agent], &[], Some("east-1-us-east"), &out, now).expect("issue");
        assert!(identity_names_agent(&bound, "east-1-us-east") && !identity_names_agent(&bound, "agent"));
        assert!(matches!(err, Error::AgentName { .. }), "{err}");
        let identity = TlsIdentity::load(&paths).expect("loads");
        assert_eq!(identity.roles(), [Role::Meta, Role::Agent]);
        identity.require(Role::Meta, &paths).expect("has meta");
        let err = identity.require(Role::Gateway, &paths).expect_err("no gateway role");
        assert!(err.to_string().contains("nucleus certs issue --role gateway"), "{err}");
        let mode = std::fs::metadata(&paths.key).expect("key").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    fn identity_names_agent(paths: &TlsPaths, agent: &str) -> bool {
        TlsIdentity::load(paths).expect("loads").names_agent(agent)
    }

    #[test]
    fn a_certificate_without_a_role_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = now();
        init(dir.path(), now).expect("CA");
        let paths = issue(dir.path(), "nobody", &[], &["example.org".into()], None, dir.path(), now).expect("issue");
        let err = TlsIdentity::load(&paths).expect_err("no role");
        assert!(matches!(err, Error::NoRole { .. }), "{err}");
    }
}
