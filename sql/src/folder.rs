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

    /// The local path of `rel` when the folder is on this machine's disk.
    fn local_path(&self, rel: &str) -> Option<std::path::PathBuf> {
        let url = url::Url::parse(&self.url(rel)).ok()?;
        if url.scheme() == "file" { url.to_file_path().ok() } else { None }
    }

    /// Removes the local folder `rel` once its files are gone (an object
    /// store has no folders, but a local one keeps the empty directories).
    pub fn remove_empty_dirs(&self, rel: &str) {
        if let Some(p) = self.local_path(rel) {
            remove_empty_tree(&p);
        }
    }

    /// Makes sure the local folder `rel` exists (object stores need none,
    /// but DataFusion lists a missing local folder as an error).
    pub fn ensure_dir(&self, rel: &str) {
        if let Some(p) = self.local_path(rel) {
            let _ = std::fs::create_dir_all(p);
        }
    }
}

/// Removes `dir` and the directories under it, bottom up, as long as they
/// are empty: a file someone else put there meanwhile stays.
fn remove_empty_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_directories_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new();
        let folder = LakeFolder::new(&ctx, &format!("file://{}/", root.path().display())).unwrap();
        std::fs::create_dir_all(root.path().join("a/b/c")).unwrap();
        std::fs::create_dir_all(root.path().join("a/d")).unwrap();
        std::fs::write(root.path().join("a/d/kept.parquet"), b"x").unwrap();
        folder.remove_empty_dirs("a/");
        assert!(!root.path().join("a/b").exists());
        assert!(root.path().join("a/d/kept.parquet").exists());
        folder.remove_empty_dirs("x/");
    }
}
