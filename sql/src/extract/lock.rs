//! The commit lock of one extract: statements that change an extract's
//! manifest do it one at a time.
//!
//! A refresh works for minutes before its commit, a single PUT of the
//! manifest. Two refreshes of one extract at once would both commit — the
//! last writer wins and the first's part is lost, or the first deletes parts
//! the second's manifest lists. So the commit step (read the manifest again,
//! check that it is the one the refresh started from, PUT, remove the files
//! no manifest lists) runs under a lock: a file `extracts/_locks/<name>`
//! created only if absent (S3's `If-None-Match`, a local folder's
//! no-clobber link), removed after. A lock left by a process that died
//! while it held it is taken over once it is [`STALE_AFTER`] old.

use std::time::Duration;

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::ExtractError;
use crate::folder::LakeFolder;
use crate::ids::{now_micros, unique_name};

/// Age after which a lock is taken to be left by a process that died: the
/// commit step it guards takes seconds (a GET, a LIST, a PUT and the
/// clean-up's batched deletes).
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// How long a statement waits between two looks at a held lock.
const POLL: Duration = Duration::from_millis(100);

/// A held commit lock; [`Self::release`] gives it back.
#[derive(Debug)]
pub struct CommitLock {
    folder: LakeFolder,
    rel: String,
    holder: String,
}

impl CommitLock {
    /// Waits until this statement holds the commit lock of extract `name`.
    pub async fn acquire(folder: &LakeFolder, name: &str) -> Result<Self, ExtractError> {
        let rel = format!("{}/_locks/{name}", super::SCHEMA);
        folder.ensure_dir(&format!("{}/_locks/", super::SCHEMA));
        let holder = format!("{} {}", now_micros(), unique_name());
        let path = folder.path(&rel);
        let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
        loop {
            match folder.store.put_opts(&path, PutPayload::from(holder.clone().into_bytes()), create()).await {
                Ok(_) => return Ok(Self { folder: folder.clone(), rel, holder }),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Err(ExtractError::Data(
                        name.to_string(),
                        "the lake's object store cannot create a file only if it is absent, which extracts need \
                         to commit safely"
                            .into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            if held_since(folder, &rel).await?.is_some_and(|since| now_micros() - since > stale_micros()) {
                // Left by a process that died holding it.
                log::warn!("taking over the stale commit lock of extracts.{name}");
                match folder.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Gives the lock back (only if it is still this statement's: a lock
    /// taken over as stale is someone else's now).
    pub async fn release(self) -> Result<(), ExtractError> {
        let path = self.folder.path(&self.rel);
        let still_mine = match self.folder.store.get(&path).await {
            Ok(g) => g.bytes().await? == self.holder.as_bytes(),
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if still_mine {
            match self.folder.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn stale_micros() -> i64 {
    STALE_AFTER.as_micros() as i64
}

/// When the holder of lock `rel` took it (microseconds), if the lock is
/// there.
async fn held_since(folder: &LakeFolder, rel: &str) -> Result<Option<i64>, ExtractError> {
    match folder.store.get(&folder.path(rel)).await {
        Ok(g) => {
            let written = g.meta.last_modified.timestamp_micros();
            let bytes = g.bytes().await?;
            // The holder's own clock; the store's for a lock not of this
            // format.
            let text = String::from_utf8_lossy(&bytes);
            Ok(Some(text.split(' ').next().and_then(|t| t.parse().ok()).unwrap_or(written)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
