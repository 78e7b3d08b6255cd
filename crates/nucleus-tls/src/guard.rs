use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::{Role, peer_roles};

/// The roles that may make an RPC, by its path (`/package.Service/Method`).
pub type Policy = fn(&str) -> &'static [Role];

/// Wraps a gRPC server so that each call is let through only from a client whose certificate
/// names a role the [`Policy`] allows for it; others get `PERMISSION_DENIED` naming both.
#[derive(Debug, Clone, Copy)]
pub struct RoleGuardLayer {
    policy: Policy,
    enforce: bool,
}

impl RoleGuardLayer {
    /// With `enforce` false (a server started `--insecure`, without TLS) every call passes.
    pub fn new(policy: Policy, enforce: bool) -> RoleGuardLayer {
        RoleGuardLayer { policy, enforce }
    }
}

impl<S> Layer<S> for RoleGuardLayer {
    type Service = RoleGuard<S>;

    fn layer(&self, inner: S) -> RoleGuard<S> {
        RoleGuard { inner, policy: self.policy, enforce: self.enforce }
    }
}

#[derive(Debug, Clone)]
pub struct RoleGuard<S> {
    inner: S,
    policy: Policy,
    enforce: bool,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for RoleGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.refusal(&request) {
            None => Box::pin(self.inner.call(request)),
            Some(status) => {
                tracing::warn!(rpc = request.uri().path(), reason = status.message(), "refused an internal call");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

impl<S> RoleGuard<S> {
    fn refusal<B>(&self, request: &http::Request<B>) -> Option<tonic::Status> {
        if !self.enforce {
            return None;
        }
        let rpc = request.uri().path();
        let allowed = (self.policy)(rpc);
        let Some(roles) = peer_roles(request.extensions()) else {
            return Some(tonic::Status::unauthenticated(format!("{rpc} needs a client certificate of the cluster CA")));
        };
        if roles.iter().any(|role| allowed.contains(role)) {
            return None;
        }
        let names = |roles: &[Role]| roles.iter().map(|r| r.dns_name()).collect::<Vec<_>>().join(", ");
        Some(tonic::Status::permission_denied(format!(
            "{rpc} is for {} only; the caller's certificate names {}",
            names(allowed),
            if roles.is_empty() { "no role".to_owned() } else { names(&roles) }
        )))
    }
}
