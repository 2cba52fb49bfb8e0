//! The HTTP server: authentication, size limits, method registration.

use super::cookie::COOKIE_USER;
use super::api::QuarryApiServer;
use super::service::RpcService;
use crate::node::NodeHandle;
use jsonrpsee::server::{HttpBody, Server, ServerHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

/// Largest request body (a 4 MB block as hex is 8 MB).
pub const MAX_REQUEST_BYTES: u32 = 16 << 20;
/// Largest response body (getblock verbosity 2 of a full block).
pub const MAX_RESPONSE_BYTES: u32 = 64 << 20;

/// Credentials the server accepts.
#[derive(Clone, Debug)]
pub struct RpcAuth {
    /// The cookie password (user `__cookie__`).
    pub cookie: String,
    /// Optional configured user and password.
    pub user: Option<(String, String)>,
}

#[derive(Clone)]
struct AuthCheck {
    accepted: Arc<Vec<String>>,
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<B> ValidateRequest<B> for AuthCheck {
    type ResponseBody = HttpBody;

    fn validate(&mut self, request: &mut http::Request<B>) -> Result<(), http::Response<HttpBody>> {
        let given =
            request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        if self.accepted.iter().any(|a| same(a.as_bytes(), given)) {
            return Ok(());
        }
        Err(http::Response::builder()
            .status(http::StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"quarry\"")
            .body(HttpBody::from(
                "401 unauthorized: authenticate with the cookie in <datadir>/.cookie (user __cookie__) \
                 or the configured --rpc-user/--rpc-password",
            ))
            .expect("static response"))
    }
}

/// Starts the server on `bind` with every method registered. `stop` is notified by the
/// `stop` method.
pub async fn start_server(
    bind: SocketAddr,
    auth: RpcAuth,
    node: NodeHandle,
    net: Option<crate::p2p::P2pHandle>,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<ServerHandle> {
    let mut accepted = vec![super::client::basic_auth(COOKIE_USER, &auth.cookie)];
    if let Some((u, p)) = &auth.user {
        accepted.push(super::client::basic_auth(u, p));
    }
    let middleware = tower::ServiceBuilder::new()
        .layer(ValidateRequestHeaderLayer::custom(AuthCheck { accepted: Arc::new(accepted) }));
    let server = Server::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(64)
        .set_http_middleware(middleware)
        .http_only()
        .build(bind)
        .await?;
    let module = RpcService { node, net, stop }.into_rpc();
    Ok(server.start(module))
}
