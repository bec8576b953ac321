//! Where each process reads stored models from: its own file system or its
//! own S3 client (credentials from its own environment, never from a plan).

use sentio_udfs::ModelSource;

use crate::config::S3Config;
use crate::object_store::build_s3_store;

/// Reads `file://` and `s3://` URLs with this process's configuration.
#[derive(Debug, Clone)]
pub struct LakeModels {
    s3: S3Config,
}

impl LakeModels {
    /// A source using `s3` for `s3://` URLs.
    pub fn new(s3: S3Config) -> Self {
        Self { s3 }
    }
}

impl ModelSource for LakeModels {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url}: {e}"))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|_| format!("bad file URL {url}"))?;
                std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
            }
            "s3" => {
                let bucket = parsed.host_str().ok_or("s3 URL without bucket")?.to_string();
                let key = parsed.path().trim_start_matches('/').to_string();
                let s3 = self.s3.clone();
                // Called from inside a query's (synchronous) function: fetch on a
                // thread of its own with a runtime of its own.
                std::thread::spawn(move || -> Result<Vec<u8>, String> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async move {
                        use object_store::ObjectStoreExt;
                        let store = build_s3_store(&bucket, &s3).map_err(|e| e.to_string())?;
                        let got = store.get(&object_store::path::Path::from(key)).await.map_err(|e| e.to_string())?;
                        got.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string())
                    })
                })
                .join()
                .map_err(|_| "model reader thread panicked".to_string())?
            }
            other => Err(format!("unsupported model URL scheme {other}")),
        }
    }
}
