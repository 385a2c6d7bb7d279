//! Who may call what: bearer tokens bound to a tenant and a role, checked on every call.
//!
//! Tokens come from config as SHA-256 hashes (`[[auth.tokens]]`), never in the clear: a leaked
//! config file does not leak a token. Tokens are long random strings, so a plain SHA-256 is the
//! right hash (a slow password hash protects guessable secrets, which these are not).
//!
//! With no tokens configured, authentication is off: every call acts as the server's default
//! tenant with every role, which is what the embedded, single-user shapes want. With tokens,
//! a call without a valid `authorization: Bearer <token>` is `UNAUTHENTICATED`, a call whose
//! token lacks the method's role is `PERMISSION_DENIED`, and the handlers see the caller's
//! [`Principal`] in the request extensions and scope everything to its tenant. Health checks
//! and reflection stay open: probes carry no tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tonic::Status;

/// What a token may do. Each role includes the ones before it: `Read` < `Upload` < `Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, dump listings and lookups.
    Read,
    /// `Read`, plus uploading and registering dumps (agents).
    Upload,
    /// Everything, including deleting dumps.
    Admin,
}

impl Role {
    /// The role's name in config files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Upload => "upload",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The caller of a request, as the handlers see it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Every dump, process and report the caller sees is this tenant's.
    pub tenant: String,
    /// What the caller may do.
    pub role: Role,
}

impl Principal {
    /// The caller of `request`: the [`AuthLayer`] puts one on every request it lets through.
    /// A request that did not pass through it (a handler called directly in a test) acts as
    /// `fallback_tenant` with every role, as with authentication off.
    pub fn of<T>(request: &tonic::Request<T>, fallback_tenant: &str) -> Principal {
        request
            .extensions()
            .get::<Principal>()
            .cloned()
            .unwrap_or_else(|| Principal {
                tenant: fallback_tenant.to_owned(),
                role: Role::Admin,
            })
    }
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The tenant the token acts for.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// The token's SHA-256, 64 hex digits (`heapfleet token hash` prints it).
    pub sha256: String,
}

/// The `[auth]` table of a server's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Accepted tokens; none turns authentication off.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// Returns the hex SHA-256 of `token`, as config files store it.
pub fn hash_token(token: &str) -> String {
    hex_digest(&Sha256::digest(token.as_bytes()))
}

fn hex_digest(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Checks tokens against the configured hashes.
#[derive(Clone)]
pub struct Authenticator {
    /// Token hash -> principal; empty when authentication is off.
    tokens: Arc<HashMap<String, Principal>>,
    default_tenant: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("default_tenant", &self.default_tenant)
            .finish()
    }
}

impl Authenticator {
    /// Authentication off: every call acts as `default_tenant`, with every role.
    pub fn disabled(default_tenant: impl Into<String>) -> Authenticator {
        Authenticator {
            tokens: Arc::new(HashMap::new()),
            default_tenant: default_tenant.into(),
        }
    }

    /// Checks the `[auth]` table: hashes are 64 hex digits, tenants are non-empty, and a hash
    /// appears once. No tokens means authentication is off (calls act as `default_tenant`).
    pub fn from_file(file: &AuthFile, default_tenant: &str) -> anyhow::Result<Authenticator> {
        let mut tokens = HashMap::new();
        for (position, entry) in file.tokens.iter().enumerate() {
            let number = position + 1;
            let hash = entry.sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "auth.tokens entry {number}: sha256 must be 64 hex digits \
                     (`heapfleet token hash` prints it), not {:?}",
                    entry.sha256
                );
            }
            if entry.tenant.is_empty() {
                anyhow::bail!("auth.tokens entry {number}: tenant must not be empty");
            }
            let principal = Principal {
                tenant: entry.tenant.clone(),
                role: entry.role,
            };
            if tokens.insert(hash, principal).is_some() {
                anyhow::bail!("auth.tokens entry {number}: the same token is listed twice");
            }
        }
        Ok(Authenticator {
            tokens: Arc::new(tokens),
            default_tenant: default_tenant.to_owned(),
        })
    }

    /// Whether calls need tokens.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Returns the caller of a request with these headers to `path` (`/package.Service/Method`),
    /// or the status that refuses it.
    pub fn authorize(
        &self,
        headers: &http::HeaderMap,
        path: &str,
    ) -> Result<Option<Principal>, Status> {
        let Some(required) = required_role(path) else {
            return Ok(None);
        };
        if !self.enabled() {
            return Ok(Some(Principal {
                tenant: self.default_tenant.clone(),
                role: Role::Admin,
            }));
        }
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Status::unauthenticated(
                "this server needs a token: pass --token or set HEAPFLEET_TOKEN",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be `Bearer <token>`")
            })?;
        let Some(principal) = self.tokens.get(&hash_token(token)) else {
            return Err(Status::unauthenticated(
                "the token is not valid on this server",
            ));
        };
        if principal.role < required {
            return Err(Status::permission_denied(format!(
                "{path} needs the {required} role; this token has {}",
                principal.role
            )));
        }
        Ok(Some(principal.clone()))
    }
}

/// The role a gRPC method needs; `None` for the open ones (health checks, reflection).
/// Methods not listed need `Admin`, so a new method is closed until it is placed here.
pub fn required_role(path: &str) -> Option<Role> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => None,
        "heapfleet.query.v1.QueryService" => Some(Role::Read),
        "heapfleet.ingest.v1.IngestService" => Some(match method {
            "GetDump" | "ListDumps" => Role::Read,
            "UploadDump" | "RegisterDump" => Role::Upload,
            // DeleteDump, and any method added later.
            _ => Role::Admin,
        }),
        _ => Some(Role::Admin),
    }
}

/// The tower layer that authorizes every request (see the module docs).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Authenticator,
}

impl AuthLayer {
    /// Authorizes with `authenticator`.
    pub fn new(authenticator: Authenticator) -> AuthLayer {
        AuthLayer { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S, B, ResponseBody> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
    ResponseBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self
            .authenticator
            .authorize(request.headers(), request.uri().path())
        {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::info!(path = request.uri().path(), code = ?status.code(), "call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The client side: adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct BearerToken {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        formatter
            .debug_struct("BearerToken")
            .field("set", &self.header.is_some())
            .finish()
    }
}

impl BearerToken {
    /// Sends `token` (none: sends nothing); fails if it cannot be a header value.
    pub fn new(token: Option<&str>) -> anyhow::Result<BearerToken> {
        let header = match token.map(str::trim).filter(|token| !token.is_empty()) {
            None => None,
            Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
                anyhow::anyhow!("the token holds characters a header cannot carry")
            })?),
        };
        Ok(BearerToken { header })
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let file = AuthFile {
            tokens: vec![
                TokenEntry {
                    tenant: "acme".to_owned(),
                    role: Role::Read,
                    sha256: hash_token("reader-secret"),
                },
                TokenEntry {
                    tenant: "acme".to_owned(),
                    role: Role::Upload,
                    sha256: hash_token("agent-secret").to_ascii_uppercase(),
                },
                TokenEntry {
                    tenant: "globex".to_owned(),
                    role: Role::Admin,
                    sha256: hash_token("admin-secret"),
                },
            ],
        };
        Authenticator::from_file(&file, "default").unwrap()
    }

    fn headers(token: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        headers
    }

    const LEAK_REPORT: &str = "/heapfleet.query.v1.QueryService/LeakReport";
    const UPLOAD: &str = "/heapfleet.ingest.v1.IngestService/UploadDump";
    const DELETE: &str = "/heapfleet.ingest.v1.IngestService/DeleteDump";

    #[test]
    fn test_authorize_grants_each_token_its_tenant_and_role() {
        let auth = authenticator();
        let reader = auth
            .authorize(&headers(Some("reader-secret")), LEAK_REPORT)
            .unwrap()
            .unwrap();
        assert_eq!(reader.tenant, "acme");
        assert_eq!(reader.role, Role::Read);
        let agent = auth
            .authorize(&headers(Some("agent-secret")), UPLOAD)
            .unwrap()
            .unwrap();
        assert_eq!(agent.role, Role::Upload);
        let admin = auth
            .authorize(&headers(Some("admin-secret")), DELETE)
            .unwrap()
            .unwrap();
        assert_eq!(admin.tenant, "globex");
    }

    #[test]
    fn test_authorize_refuses_missing_wrong_and_underprivileged_tokens() {
        let auth = authenticator();
        let code = |token: Option<&str>, path: &str| {
            auth.authorize(&headers(token), path).unwrap_err().code()
        };
        assert_eq!(code(None, LEAK_REPORT), tonic::Code::Unauthenticated);
        assert_eq!(
            code(Some("guess"), LEAK_REPORT),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            code(Some("reader-secret"), UPLOAD),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code(Some("agent-secret"), DELETE),
            tonic::Code::PermissionDenied
        );
        let mut basic = http::HeaderMap::new();
        basic.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            auth.authorize(&basic, LEAK_REPORT).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn test_authorize_leaves_probes_open_and_closes_unknown_methods() {
        let auth = authenticator();
        assert_eq!(
            auth.authorize(&headers(None), "/grpc.health.v1.Health/Check")
                .unwrap(),
            None
        );
        assert_eq!(
            required_role("/heapfleet.ingest.v1.IngestService/SomethingNew"),
            Some(Role::Admin)
        );
        assert_eq!(required_role("/other.Service/Call"), Some(Role::Admin));
    }

    #[test]
    fn test_disabled_auth_acts_as_the_default_tenant() {
        let auth = Authenticator::from_file(&AuthFile::default(), "solo").unwrap();
        assert!(!auth.enabled());
        let principal = auth.authorize(&headers(None), DELETE).unwrap().unwrap();
        assert_eq!(principal.tenant, "solo");
        assert_eq!(principal.role, Role::Admin);
    }

    #[test]
    fn test_from_file_rejects_bad_entries_by_number() {
        let entry = |sha256: &str, tenant: &str| TokenEntry {
            tenant: tenant.to_owned(),
            role: Role::Read,
            sha256: sha256.to_owned(),
        };
        let error = |tokens: Vec<TokenEntry>| {
            Authenticator::from_file(&AuthFile { tokens }, "d")
                .unwrap_err()
                .to_string()
        };
        let message = error(vec![entry(&hash_token("a"), "t"), entry("not-hex", "t")]);
        assert!(
            message.contains("entry 2") && message.contains("64 hex"),
            "{message}"
        );
        let message = error(vec![entry(&hash_token("a"), "")]);
        assert!(message.contains("tenant"), "{message}");
        let message = error(vec![
            entry(&hash_token("a"), "t"),
            entry(&hash_token("a"), "u"),
        ]);
        assert!(message.contains("twice"), "{message}");
    }

    #[test]
    fn test_bearer_token_never_prints_the_secret() {
        let token = BearerToken::new(Some("s3cr3t")).unwrap();
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert!(BearerToken::new(Some("bad\ntoken")).is_err());
    }
}
