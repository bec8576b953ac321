//! A folder of the lake as an object store: the model store (`ml`) and the
//! extracts (`extracts`) keep their files under one.

use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::path::Path;

/// The lake at one root URL, with paths and URLs of the files under it.
#[derive(Debug, Clone)]
pub struct LakeFolder {
    root_url: String,
    /// The object store the folder is in (this process's, for its URL).
    pub store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl LakeFolder {
    /// The folder at `root_url` (ending in `/`), in the object store that
    /// `ctx` resolves for it.
    pub fn new(ctx: &SessionContext, root_url: &str) -> Result<Self> {
        let url = ListingTableUrl::parse(root_url)?;
        let store = ctx.runtime_env().object_store(url.object_store())?;
        Ok(Self { root_url: root_url.to_string(), store, prefix: url.prefix().clone() })
    }

    /// The object-store path of `rel`, a path relative to the root.
    pub fn path(&self, rel: &str) -> Path {
        let base = self.prefix.as_ref().trim_end_matches('/');
        if base.is_empty() { Path::from(rel) } else { Path::from(format!("{base}/{rel}")) }
    }

    /// The URL of `rel`, a path relative to the root.
    pub fn url(&self, rel: &str) -> String {
        format!("{}{rel}", self.root_url)
    }

    /// Makes sure the local folder `rel` exists (object stores need none,
    /// but DataFusion lists a missing local folder as an error).
    pub fn ensure_dir(&self, rel: &str) {
        if let Ok(url) = url::Url::parse(&self.url(rel))
            && url.scheme() == "file"
            && let Ok(p) = url.to_file_path()
        {
            let _ = std::fs::create_dir_all(p);
        }
    }
}
