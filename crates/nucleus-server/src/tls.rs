//! TLS flags shared by every role, and how a process chooses between mutual TLS and plaintext.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use nucleus_tls::{Dialer, LiveTls, Role, TlsPaths};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signed every certificate of the cluster (`nucleus certs init`).
    #[arg(long, env = "NUCLEUS_TLS_CA", value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), naming its role (`nucleus certs issue`).
    #[arg(long, env = "NUCLEUS_TLS_CERT", value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, env = "NUCLEUS_TLS_KEY", value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// Speak plaintext on internal links even beyond loopback: anyone on the network can read and
    /// forge them. Only for a network nobody else reaches.
    #[arg(long, env = "NUCLEUS_INSECURE", conflicts_with_all = ["tls_ca", "tls_cert", "tls_key"])]
    pub insecure: bool,
}

impl TlsArgs {
    /// The certificate to serve and dial with, which must name `role` (any role when None); or
    /// None for plaintext, allowed with `--insecure` or when every address in `links` (what this
    /// process listens on and dials) is loopback.
    /// The files are read again on SIGHUP (see [`reload_on_hangup`]).
    pub fn resolve(&self, role: Option<Role>, links: &[String]) -> anyhow::Result<Option<Arc<LiveTls>>> {
        if let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            let paths = TlsPaths { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
            let tls = LiveTls::load(paths, role)?;
            reload_on_hangup(vec![tls.clone()]);
            return Ok(Some(tls));
        }
        let beyond_loopback: Vec<&String> = links.iter().filter(|addr| !is_loopback(addr)).collect();
        if self.insecure {
            tracing::warn!("--insecure: internal links are plaintext and unauthenticated; anyone on the network can read and forge them");
            return Ok(None);
        }
        anyhow::ensure!(
            beyond_loopback.is_empty(),
            "{} reach beyond this machine, so internal links need TLS: give --tls-ca, --tls-cert and --tls-key \
             (make them with `nucleus certs init` and `nucleus certs issue`), or --insecure on a network nobody else reaches",
            beyond_loopback.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
        );
        tracing::warn!("no --tls-cert: internal links are plaintext (loopback only)");
        Ok(None)
    }
}

pub fn dialer(tls: &Option<Arc<LiveTls>>) -> Dialer {
    tls.as_ref().map_or_else(Dialer::plaintext, |tls| Dialer::tls(tls.clone()))
}

/// Reads the certificates, keys and CA of `all` again at each SIGHUP: new connections (served or
/// dialed) use them, established ones keep theirs. A file that cannot be used leaves the old
/// settings in place, with an error in the log.
pub fn reload_on_hangup(all: Vec<Arc<LiveTls>>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: certificates are read at start only");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            for tls in &all {
                if let Err(err) = tls.reload() {
                    tracing::error!(cert = %tls.paths().cert.display(), error = %err, "kept the TLS settings in use: the new ones cannot be used");
                }
            }
        }
    });
}

/// Whether `addr` (`host:port`, `[v6]:port` or a bare host) names this machine.
fn is_loopback(addr: &str) -> bool {
    let addr = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `nucleus certs`: make a CA, issue certificates.
#[derive(clap::Subcommand)]
pub enum CertsCommand {
    /// Make the cluster's CA (ca.pem, ca-key.pem) in DIR.
    Init {
        #[arg(long, default_value = "./nucleus-ca")]
        dir: PathBuf,
    },
    /// Issue a certificate for a process, signed by the CA in --ca-dir.
    Issue {
        #[arg(long, default_value = "./nucleus-ca")]
        ca_dir: PathBuf,
        /// File name stem: writes NAME.pem and NAME-key.pem (and a copy of ca.pem) into --out.
        #[arg(long)]
        name: String,
        /// With the agent role: the agent the certificate is for, `<cluster>-<region>` as that agent
        /// runs with (default: --name). It may register only that agent.
        #[arg(long)]
        agent: Option<String>,
        /// Roles the process plays: meta, scheduler, gateway, agent (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        role: Vec<Role>,
        /// Host names and IP addresses others dial the process at (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        host: Vec<String>,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

pub fn certs(command: CertsCommand) -> anyhow::Result<()> {
    let now = nucleus_api::clock::now().into();
    match command {
        CertsCommand::Init { dir } => {
            let paths = nucleus_tls::authority::init(&dir, now).context("making the CA")?;
            println!("CA certificate: {}\nCA key (keep it secret): {}", paths.ca.display(), paths.key.display());
        }
        CertsCommand::Issue { ca_dir, name, role, host, agent, out } => {
            let paths = nucleus_tls::authority::issue(&ca_dir, &name, &role, &host, agent.as_deref(), &out, now)
                .context("issuing the certificate")?;
            println!("--tls-ca {} --tls-cert {} --tls-key {}", paths.ca.display(), paths.cert.display(), paths.key.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_recognised() {
        for addr in ["127.0.0.1:7001", "localhost:1", "[::1]:80", "http://127.0.0.1:9", "127.0.0.1"] {
            assert!(is_loopback(addr), "{addr}");
        }
        for addr in ["10.0.0.1:7001", "meta-1:7001", "0.0.0.0:7001", "[::]:1"] {
            assert!(!is_loopback(addr), "{addr}");
        }
    }

    #[test]
    fn plaintext_beyond_loopback_needs_insecure() {
        let args = TlsArgs::default();
        let err = args.resolve(Some(Role::Meta), &["10.1.2.3:7001".into()]).expect_err("refused");
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        assert!(args.resolve(Some(Role::Meta), &["127.0.0.1:7001".into()]).expect("loopback").is_none());
        let insecure = TlsArgs { insecure: true, ..TlsArgs::default() };
        assert!(insecure.resolve(Some(Role::Meta), &["10.1.2.3:7001".into()]).expect("insecure").is_none());
    }
}
