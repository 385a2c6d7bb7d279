//! TLS (rustls) for the servers and for the clients that call them, and the client-side
//! connection settings every heapfleet client shares.
//!
//! A server serves TLS when it has a certificate and a key (PEM files); a client speaks TLS to
//! an `https://` URL, trusting the public web roots, or only the CA in `--tls-ca` when given
//! (a private CA, or a self-signed server certificate).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use tonic::service::interceptor::InterceptedService;

use crate::auth::BearerToken;
use crate::grpc_telemetry::TraceContextInterceptor;

/// The `[tls]` table of a server's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The server's certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    pub key: Option<PathBuf>,
}

/// A server's TLS flags (each also read from a `HEAPFLEET_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", env = "HEAPFLEET_TLS_CERT")]
    pub cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", env = "HEAPFLEET_TLS_KEY")]
    pub key: Option<PathBuf>,
}

impl TlsArgs {
    /// The flags over the file's `[tls]` table.
    pub fn resolve(&self, file: TlsFile) -> TlsFile {
        TlsFile {
            cert: self.cert.clone().or(file.cert),
            key: self.key.clone().or(file.key),
        }
    }
}

impl TlsFile {
    /// Reads the certificate and key: `None` without TLS, an error naming the file that is
    /// missing or unreadable, or when only one of the two is set.
    pub fn server_config(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        match (&self.cert, &self.key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let identity =
                    Identity::from_pem(read_pem(cert, "tls.cert")?, read_pem(key, "tls.key")?);
                Ok(Some(ServerTlsConfig::new().identity(identity)))
            }
            (Some(_), None) => anyhow::bail!("tls.cert is set but tls.key is not: TLS needs both"),
            (None, Some(_)) => anyhow::bail!("tls.key is set but tls.cert is not: TLS needs both"),
        }
    }
}

fn read_pem(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))?;
    if !bytes.starts_with(b"-----BEGIN") && !String::from_utf8_lossy(&bytes).contains("-----BEGIN")
    {
        anyhow::bail!("{setting}: {} is not a PEM file", path.display());
    }
    Ok(bytes)
}

/// How a client reaches a server: its bearer token and the CA it trusts.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    /// Trust only this CA (PEM) for `https://` servers, instead of the public web roots.
    pub tls_ca: Option<PathBuf>,
}

impl ClientOptions {
    /// The endpoint for `url` (`http://` or `https://host:port`), TLS set up for `https`.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(url.to_owned()).with_context(|| {
            format!("{url:?} is not a server URL (expected http://host:port or https://host:port)")
        })?;
        if !url.starts_with("https://") {
            if self.tls_ca.is_some() {
                anyhow::bail!("--tls-ca is set but {url} is not an https:// URL");
            }
            return Ok(endpoint);
        }
        let tls = match &self.tls_ca {
            Some(ca) => ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read_pem(ca, "--tls-ca")?)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint
            .tls_config(tls)
            .with_context(|| format!("cannot set up TLS for {url}"))
    }

    /// Connects to `url`, failing with a message that names it: a channel whose every call
    /// carries the caller's trace context and the token.
    pub async fn connect(&self, endpoint: Endpoint, url: &str) -> anyhow::Result<ClientChannel> {
        let token = BearerToken::new(self.token.as_deref())?;
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to the heapfleet server at {url}"))?;
        Ok(InterceptedService::new(channel, CallMetadata { token }))
    }
}

/// A client channel of a heapfleet client (see [`ClientOptions::connect`]).
pub type ClientChannel = InterceptedService<Channel, CallMetadata>;

/// What every client call carries: the caller's trace context and the bearer token.
#[derive(Debug, Clone)]
pub struct CallMetadata {
    token: BearerToken,
}

impl tonic::service::Interceptor for CallMetadata {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let request = TraceContextInterceptor.call(request)?;
        self.token.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_server_config_needs_both_files() {
        assert!(TlsFile::default().server_config().unwrap().is_none());
        let only_cert = TlsFile {
            cert: Some("cert.pem".into()),
            key: None,
        };
        let error = only_cert.server_config().unwrap_err().to_string();
        assert!(error.contains("tls.key"), "{error}");
        let missing = TlsFile {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
        };
        let error = format!("{:#}", missing.server_config().unwrap_err());
        assert!(
            error.contains("tls.cert") && error.contains("/nonexistent/cert.pem"),
            "{error}"
        );
    }

    #[test]
    fn test_endpoint_refuses_a_ca_for_plain_http() {
        let options = ClientOptions {
            token: None,
            tls_ca: Some("ca.pem".into()),
        };
        let error = options
            .endpoint("http://127.0.0.1:1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("https"), "{error}");
        assert!(ClientOptions::default().endpoint("not a url").is_err());
    }
}
