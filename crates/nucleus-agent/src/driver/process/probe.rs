//! One probe attempt: an HTTP GET (or, without a readiness probe, a TCP connect).

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::Error;
use crate::driver::{ProbeScheme, ProbeSpec};

/// How long a TCP readiness check waits for the connection.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A probe aimed at one replica.
pub(crate) struct HttpProbe {
    /// "startup", "readiness" or "liveness", for messages.
    pub kind: &'static str,
    pub spec: ProbeSpec,
    url: String,
}

impl HttpProbe {
    /// Probes aimed at the container's declared port (or at port 0) go to the port the driver
    /// chose; every probe goes to the host the replica listens on.
    pub(crate) fn new(kind: &'static str, spec: &ProbeSpec, declared_port: u32, replica: SocketAddr) -> HttpProbe {
        let port = if spec.port == 0 || spec.port == declared_port { u32::from(replica.port()) } else { spec.port };
        let scheme = match spec.scheme {
            ProbeScheme::Http => "http",
            ProbeScheme::Https => "https",
        };
        // The spec's host was checked to name the replica itself at launch.
        let host = match replica.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let url = format!("{scheme}://{host}:{port}{}", spec.path);
        HttpProbe { kind, spec: spec.clone(), url }
    }

    /// Ok for an answer with status 200..=399; otherwise why not.
    pub(crate) async fn check(&self, client: &reqwest::Client) -> Result<(), Error> {
        if self.spec.scheme == ProbeScheme::Https {
            return Err(Error::HttpsProbe { url: self.url.clone() });
        }
        let mut request = client.get(&self.url).timeout(self.spec.timeout);
        for (name, value) in &self.spec.http_headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if (200..400).contains(&response.status().as_u16()) => Ok(()),
            Ok(response) => Err(Error::ProbeStatus { url: self.url.clone(), status: response.status().as_u16() }),
            Err(err) => Err(Error::ProbeUnreachable { url: self.url.clone(), detail: error_chain(&err) }),
        }
    }
}

/// Whether something accepts TCP connections on `address`.
pub(crate) async fn tcp_listening(address: SocketAddr) -> bool {
    matches!(tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(address)).await, Ok(Ok(_)))
}

/// reqwest's own message is terse ("error sending request"); the cause is in its sources.
fn error_chain(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
