//! The object-store registry every Sentio process uses.
//!
//! `s3://bucket/…` URLs resolve to an S3 client built from *this process's*
//! environment (the standard `AWS_*` variables) and its [`S3Config`]; local
//! paths resolve to the local file system. Plans only ever carry URLs, never
//! credentials, so the client, the scheduler and each executor authenticate
//! on their own.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::config::S3Config;

/// Resolves `s3://` URLs lazily from the process's own configuration.
#[derive(Debug)]
pub struct SentioObjectStoreRegistry {
    s3: S3Config,
    inner: DefaultObjectStoreRegistry,
}

impl SentioObjectStoreRegistry {
    /// Creates a registry with the local file system and lazy S3 support.
    pub fn new(s3: S3Config) -> Self {
        Self { s3, inner: DefaultObjectStoreRegistry::new() }
    }
}

/// How long S3 requests are retried before the error reaches the query: an
/// S3 that goes away fails the statement with a clear error within about
/// this long instead of object_store's default three minutes.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds an S3 store for `bucket` from the environment and `cfg`.
pub fn build_s3_store(bucket: &str, cfg: &S3Config) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(
            ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(120)),
        )
        .with_retry(RetryConfig { max_retries: 4, retry_timeout: S3_RETRY_TIMEOUT, ..RetryConfig::default() });
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.with_endpoint(endpoint);
        if endpoint.starts_with("http://") && cfg.allow_http != Some(true) {
            return Err(DataFusionError::Configuration(format!(
                "S3 endpoint {endpoint} is plain HTTP: set SENTIO_S3_ALLOW_HTTP=true \
                 (or [s3] allow_http = true) to allow it"
            )));
        }
    }
    if let Some(allow) = cfg.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(region) = &cfg.region {
        builder = builder.with_region(region);
    }
    // Local S3-compatible servers rarely support virtual-hosted buckets.
    if cfg.endpoint.is_some() {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    Ok(Arc::new(builder.build().map_err(|e| DataFusionError::Configuration(format!("S3 bucket {bucket}: {e}")))?))
}

impl ObjectStoreRegistry for SentioObjectStoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" => {
                let bucket =
                    url.host_str().ok_or_else(|| DataFusionError::Configuration(format!("no bucket in {url}")))?;
                let store = build_s3_store(bucket, &self.s3)?;
                let key =
                    Url::parse(&format!("s3://{bucket}")).map_err(|e| DataFusionError::Configuration(e.to_string()))?;
                self.inner.register_store(&key, Arc::clone(&store));
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoint_needs_allow_http() {
        let cfg = S3Config {
            endpoint: Some("http://127.0.0.1:1".into()),
            allow_http: None,
            region: Some("us-east-1".into()),
        };
        let e = build_s3_store("b", &cfg).unwrap_err().to_string();
        assert!(e.contains("SENTIO_S3_ALLOW_HTTP"), "{e}");
    }

    #[test]
    fn local_paths_resolve() {
        let r = SentioObjectStoreRegistry::new(S3Config::default());
        assert!(r.get_store(&Url::parse("file:///tmp").unwrap()).is_ok());
        assert!(r.get_store(&Url::parse("gs://x/y").unwrap()).is_err());
    }
}
