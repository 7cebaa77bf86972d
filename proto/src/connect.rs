//! How lorabeam's processes reach each other: the coordinator's gRPC over plain HTTP/2, TLS or
//! mTLS with a bearer token (workers and the CLI), and Redis with `rediss://` and a private CA
//! (coordinator and workers). Secrets are read from files or the environment and never logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("`{url}` is not a valid URL: {detail}")]
    InvalidUrl { url: String, detail: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: tonic::transport::Error },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("token: {0}")]
    Token(String),
    #[error("{0} is empty")]
    EmptySecret(PathBuf),
}

/// Installs rustls' process-wide crypto provider (ring); harmless when already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::Read { path: path.to_path_buf(), source })
}

/// A secret from a file (trailing whitespace trimmed) or given directly (from an environment
/// variable); the file wins.
pub fn read_secret(file: Option<&Path>, value: Option<&str>) -> Result<Option<String>, ConnectError> {
    let secret = match (file, value) {
        (Some(path), _) => Some(String::from_utf8_lossy(&read(path)?).trim().to_string()),
        (None, Some(value)) => Some(value.trim().to_string()),
        (None, None) => None,
    };
    match secret {
        Some(s) if s.is_empty() => Err(ConnectError::Token("the token is empty".into())),
        other => Ok(other),
    }
}

/// TLS settings of a gRPC client: a CA to trust (else the system's roots are not used: give
/// one), and a certificate and key for mTLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Adds `authorization: Bearer <token>` to every call; its `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "BearerToken(<redacted>)" } else { "BearerToken(none)" })
    }
}

impl BearerToken {
    pub fn new(token: Option<String>) -> Result<Self, ConnectError> {
        let value = token
            .map(|t| format!("Bearer {t}").parse::<MetadataValue<Ascii>>())
            .transpose()
            .map_err(|_| ConnectError::Token("the token must be printable ASCII".into()))?;
        Ok(Self(value.map(|mut v| {
            v.set_sensitive(true);
            v
        })))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The context of a listener that could not bind: the address and the flag that chose it, and,
/// for an address in use, that each process on a host needs its own (port 0 picks a free one).
pub fn bind_failed(flag: &str, address: std::net::SocketAddr) -> String {
    format!("binding {address} (set by {flag}; another process may hold it: give each its own address, or port 0 for a free one)")
}

/// A coordinator address as given: `host:port` without a scheme means `http://host:port`.
pub fn grpc_url(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

/// Dials a coordinator; `https://` URLs use TLS with `tls`, and `host:port` is plain HTTP/2.
/// `addresses` may list several coordinators of one deployment, comma separated: they are
/// tried in order and the first that answers is used, so a client or worker whose coordinator
/// died carries on through another at its next reconnect.
pub async fn channel(addresses: &str, tls: &ClientTls, connect_timeout: Duration) -> Result<Channel, ConnectError> {
    let mut last = None;
    for address in addresses.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match dial(address, tls, connect_timeout).await {
            Ok(channel) => return Ok(channel),
            // A bad URL or TLS setting is the caller's to fix, not a reason to try the next.
            Err(e @ (ConnectError::InvalidUrl { .. } | ConnectError::Tls(_))) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::InvalidUrl {
        url: addresses.to_string(),
        detail: "no coordinator address given".into(),
    }))
}

async fn dial(address: &str, tls: &ClientTls, connect_timeout: Duration) -> Result<Channel, ConnectError> {
    let url = grpc_url(address);
    let url = url.as_str();
    let invalid = |detail: String| ConnectError::InvalidUrl { url: url.to_string(), detail };
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        install_crypto_provider();
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => config = config.identity(Identity::from_pem(read(cert)?, read(key)?)),
            (None, None) => {}
            _ => return Err(ConnectError::Tls("--tls-cert and --tls-key go together".into())),
        }
        endpoint = endpoint.tls_config(config).map_err(|e| ConnectError::Tls(e.to_string()))?;
    } else if tls.ca.is_some() || tls.cert.is_some() {
        return Err(ConnectError::Tls(format!("TLS files were given but {url} is not https://")));
    }
    endpoint.connect().await.map_err(|source| ConnectError::Unreachable { url: url.to_string(), source })
}

/// `url` with its password read from `password_file` (trailing whitespace trimmed), so a
/// Kubernetes Secret can be mounted as a file instead of passed in the environment. The
/// password may hold any character: it is percent-encoded into the URL. A password already
/// in `url` is replaced.
pub fn redis_url_with_password(url: &str, password_file: Option<&Path>) -> Result<String, ConnectError> {
    let Some(path) = password_file else { return Ok(url.to_string()) };
    let password = String::from_utf8_lossy(&read(path)?).trim().to_string();
    if password.is_empty() {
        return Err(ConnectError::EmptySecret(path.to_path_buf()));
    }
    // Never quote the URL in these errors: it may hold a password already.
    let invalid = |detail: &str| ConnectError::InvalidUrl { url: "--redis-url".into(), detail: detail.into() };
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    parsed.set_password(Some(&percent_encode(&password))).map_err(|()| invalid("this URL cannot carry a password"))?;
    Ok(parsed.into())
}

/// Every byte but RFC 3986's unreserved characters as `%XX` (`url` leaves a `%` as it is).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Redis client; with `ca`, `rediss://` URLs trust that CA (a private one, as in-cluster).
pub fn redis_client(url: &str, ca: Option<&Path>) -> Result<redis::Client, ConnectError> {
    install_crypto_provider();
    match ca {
        Some(ca) => {
            let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(read(ca)?) };
            Ok(redis::Client::build_with_tls(url, certificates)?)
        }
        None => Ok(redis::Client::open(url)?),
    }
}

/// A Redis connection that reconnects by itself (backing off up to 2 s) and gives up on a
/// reply after `response_timeout`. Coordinator and workers connect through it alike. Until
/// Redis first answers, every failed try is logged at error with Redis's address (never its
/// password), so a process waiting on an unreachable Redis says so.
pub async fn redis_manager(
    client: &redis::Client,
    response_timeout: Duration,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let address = client.get_connection_info().addr().to_string();
    let mut failures: u32 = 0;
    loop {
        let tried = tokio::time::timeout(response_timeout, client.get_multiplexed_async_connection()).await;
        let error = match tried {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", response_timeout.as_secs()),
        };
        failures += 1;
        let delay = Duration::from_millis(250 * 2u64.pow(failures.min(5))).min(Duration::from_secs(5));
        tracing::error!(redis = %address, %error, attempt = failures, "cannot reach redis at {address}; retrying in {:.1} s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
    }
    if failures > 0 {
        tracing::info!(redis = %address, "connected to redis at {address}");
    }
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(usize::MAX)
        .set_max_delay(Duration::from_secs(2))
        .set_response_timeout(Some(response_timeout));
    redis::aio::ConnectionManager::new_with_config(client.clone(), config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_goes_into_the_redis_url_encoded() {
        let dir = std::env::temp_dir().join(format!("lorabeam-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("password");
        std::fs::write(&file, "p@ss:w/rd%\n").expect("write");
        let url = redis_url_with_password("rediss://lorabeam@redis.internal:6380/2", Some(&file)).expect("url");
        assert_eq!(url, "rediss://lorabeam:p%40ss%3Aw%2Frd%25@redis.internal:6380/2");
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).expect("redis parses it");
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd%"));
        assert_eq!(info.redis_settings().username(), Some("lorabeam"));
        let plain = redis_url_with_password("redis://:old@127.0.0.1:6379", Some(&file)).expect("url");
        assert_eq!(plain, "redis://:p%40ss%3Aw%2Frd%25@127.0.0.1:6379");
        assert_eq!(redis_url_with_password("redis://h:1", None).expect("url"), "redis://h:1");
        std::fs::write(&file, " \n").expect("write");
        let empty = redis_url_with_password("redis://h:1", Some(&file)).expect_err("empty");
        assert!(matches!(empty, ConnectError::EmptySecret(_)), "{empty}");
        std::fs::write(&file, "secret").expect("write");
        let bad = redis_url_with_password("redis//:secret-in-url@h", Some(&file)).expect_err("bad");
        assert!(matches!(bad, ConnectError::InvalidUrl { .. }), "{bad}");
        assert!(!bad.to_string().contains("secret"), "the error does not echo the URL: {bad}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
