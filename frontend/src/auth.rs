//! Who may connect, and as what: users with passwords (argon2 hashes) and
//! API tokens (SHA-256 hashes), read from the users file.
//!
//! ```toml
//! [[user]]
//! name = "ana"
//! role = "analyst"                      # or "reader"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"   # sentio auth hash-password
//!
//! [[token]]
//! name = "dashboards"
//! role = "reader"
//! sha256 = "9f86d081…"                  # sentio auth new-token (the token itself on stderr)
//! revoked = false
//! ```
//!
//! Passwords are slow to check by design (argon2), so checks run one at a
//! time on a blocking thread: a flood of wrong passwords costs one core,
//! never the statements of signed-in clients. At most
//! [`MAX_WAITING_CHECKS`] logins wait for their check; more are refused at
//! once as busy, so a flood that varies the user name (which the per-user
//! throttle does not slow) cannot make a login wait behind thousands. Tokens are long random strings,
//! so a SHA-256 digest is enough to keep them secret and is checked in a
//! hash lookup. The file is read again whenever it changes on disk, so a
//! removed or revoked entry stops working at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// What a signed-in client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every statement: queries, `CREATE`/`DROP MODEL`, extracts, writes.
    Analyst,
    /// Queries only.
    Reader,
}

impl Role {
    /// Its name in the users file: `analyst` or `reader`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Reader => "reader",
        }
    }
}

/// A user or token that passed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's or token's name in the users file.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The stored hash it was checked against: a session ends when its
    /// entry changes (a new password, a revoked token).
    stored: String,
}

#[cfg(test)]
impl Principal {
    /// An analyst named `name`, for tests of code that records who ran what.
    pub(crate) fn for_tests(name: &str) -> Self {
        Self { name: name.to_string(), role: Role::Analyst, stored: String::new() }
    }
}

/// Why a client was refused, or the users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The users file is missing or malformed.
    #[error("users file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Wrong, unknown or missing credentials (the message never holds them).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many logins are waiting for their password check: try again.
    #[error("too many logins are being checked: try again in a moment")]
    Busy,
}

/// Most logins that wait for their password check at once; the next are
/// refused as [`AuthError::Busy`]. At tens of milliseconds per check, the
/// last in line waits about a second.
pub const MAX_WAITING_CHECKS: usize = 32;

/// Counts a login among the waiting ones while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    role: Role,
    password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: String,
    #[serde(default)]
    revoked: bool,
}

#[derive(Default, Clone)]
struct Loaded {
    modified: Option<SystemTime>,
    users: HashMap<String, UserEntry>,
    /// Live (not revoked) tokens by their digest.
    tokens: HashMap<String, TokenEntry>,
}

/// The users file, kept current.
pub struct Users {
    /// The users file; `None` for a fixed list ([`Users::one_token`]).
    path: Option<PathBuf>,
    loaded: RwLock<Arc<Loaded>>,
    password_checks: Semaphore,
    /// Logins waiting for (or in) their password check.
    waiting: AtomicUsize,
    /// The hash of a random password, checked when the user name is unknown
    /// so that a wrong name takes as long as a wrong password.
    no_user: String,
}

impl Users {
    /// Reads the users file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let users = Self::with(Some(path.to_path_buf()), Loaded::default());
        users.refresh()?;
        Ok(users)
    }

    /// One API token and nothing else, for a front end that only its own
    /// process connects to (the `sentio` command's embedded cluster).
    ///
    /// ```
    /// use sentio_frontend::auth::{Role, Users, new_token};
    /// let token = new_token();
    /// let users = Users::one_token("sentio", Role::Analyst, &token);
    /// assert_eq!(users.token(&token).unwrap().role, Role::Analyst);
    /// assert!(users.token("sentio_another").is_err());
    /// ```
    pub fn one_token(name: &str, role: Role, token: &str) -> Self {
        let digest = token_digest(token);
        let entry = TokenEntry { name: name.to_string(), role, sha256: digest.clone(), revoked: false };
        Self::with(None, Loaded { tokens: HashMap::from([(digest, entry)]), ..Loaded::default() })
    }

    fn with(path: Option<PathBuf>, loaded: Loaded) -> Self {
        Self {
            path,
            loaded: RwLock::new(Arc::new(loaded)),
            password_checks: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            no_user: hash_password(&random_text()),
        }
    }

    /// Reads the file again if it changed on disk since it was last read;
    /// says whether it did. A file that became unreadable or malformed is an
    /// error, and the entries read before stay in force.
    pub fn refresh(&self) -> Result<bool, AuthError> {
        let Some(path) = &self.path else { return Ok(false) };
        let file_error = |message: String| AuthError::File { path: path.clone(), message };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| file_error(e.to_string()))?;
        if self.current().modified == Some(modified) {
            return Ok(false);
        }
        let parsed = std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|text| parse(&text));
        // A bad edit is reported once; the entries read before stay.
        let (mut loaded, result) = match parsed {
            Ok(loaded) => (loaded, Ok(true)),
            Err(message) => (Loaded::clone(&self.current()), Err(file_error(message))),
        };
        loaded.modified = Some(modified);
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        result
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The principal an API token stands for.
    pub fn token(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = token_digest(token);
        match self.current().tokens.get(&digest) {
            Some(t) => Ok(Principal { name: t.name.clone(), role: t.role, stored: t.sha256.clone() }),
            None => Err(AuthError::Unauthenticated("unknown or revoked token".into())),
        }
    }

    /// The principal a user name and password stand for.
    pub async fn password(&self, name: &str, password: &str) -> Result<Principal, AuthError> {
        let entry = self.current().users.get(name).cloned();
        let stored = entry.as_ref().map_or_else(|| self.no_user.clone(), |u| u.password.clone());
        let password = password.to_string();
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _counted = Waiting(&self.waiting);
        if ahead >= MAX_WAITING_CHECKS {
            return Err(AuthError::Busy);
        }
        let _one_at_a_time = self.password_checks.acquire().await.expect("the semaphore is never closed");
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored)).await.unwrap_or(false);
        match entry {
            Some(u) if matches => Ok(Principal { name: u.name, role: u.role, stored: u.password }),
            _ => Err(AuthError::Unauthenticated("unknown user or wrong password".into())),
        }
    }

    /// Whether `p` still stands as it did when it was checked: its entry
    /// is in the file with the same hash and role, and not revoked.
    pub fn still_valid(&self, p: &Principal) -> bool {
        let loaded = self.current();
        let user = loaded.users.values().any(|u| u.name == p.name && u.password == p.stored && u.role == p.role);
        user || loaded.tokens.get(&p.stored).is_some_and(|t| t.name == p.name && t.role == p.role)
    }
}

fn parse(text: &str) -> Result<Loaded, String> {
    let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut loaded = Loaded::default();
    for u in file.user {
        PasswordHash::new(&u.password)
            .map_err(|e| format!("user {:?}: password is not an argon2 hash: {e}", u.name))?;
        if loaded.users.insert(u.name.clone(), u.clone()).is_some() {
            return Err(format!("user {:?} is listed twice", u.name));
        }
    }
    for mut t in file.token {
        t.sha256 = t.sha256.to_ascii_lowercase();
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("token {:?}: sha256 must be 64 hex digits", t.name));
        }
        if !t.revoked {
            loaded.tokens.insert(t.sha256.clone(), t);
        }
    }
    Ok(loaded)
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The argon2id hash of `password` for the users file.
///
/// ```
/// let hash = sentio_frontend::auth::hash_password("correct horse");
/// assert!(hash.starts_with("$argon2id$"));
/// ```
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt length");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes any password").to_string()
}

/// A new API token: `sentio_` and 43 random characters (256 bits).
pub fn new_token() -> String {
    format!("sentio_{}", random_text())
}

/// 256 random bits as URL-safe text: API tokens, session tokens, result
/// handles.
pub fn random_text() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The SHA-256 of a token, in hex, as the users file stores it.
///
/// ```
/// assert_eq!(
///     sentio_frontend::auth::token_digest("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::NamedTempFile, Users) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        let users = Users::load(f.path()).unwrap();
        (f, users)
    }

    #[tokio::test]
    async fn passwords_and_tokens_are_checked() {
        let hash = hash_password("s3cret");
        let token = new_token();
        let text = format!(
            "[[user]]\nname = \"ana\"\nrole = \"analyst\"\npassword = \"{hash}\"\n\
             [[token]]\nname = \"bi\"\nrole = \"reader\"\nsha256 = \"{}\"\n",
            token_digest(&token)
        );
        let (_f, users) = file(&text);
        let ana = users.password("ana", "s3cret").await.unwrap();
        assert_eq!((ana.name.as_str(), ana.role), ("ana", Role::Analyst));
        assert!(users.password("ana", "wrong").await.is_err());
        assert!(users.password("bob", "s3cret").await.is_err());
        let bi = users.token(&token).unwrap();
        assert_eq!((bi.name.as_str(), bi.role), ("bi", Role::Reader));
        assert!(users.token("sentio_guess").is_err());
        assert!(users.still_valid(&ana) && users.still_valid(&bi));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_logins_is_refused_as_busy_beyond_the_waiting_ones() {
        let hash = hash_password("s3cret");
        let (_f, users) = file(&format!("[[user]]\nname = \"ana\"\nrole = \"analyst\"\npassword = \"{hash}\"\n"));
        let users = Arc::new(users);
        // Wrong passwords under as many user names at once: the throttle
        // (per user) cannot slow them, the waiting line can.
        let flood: Vec<_> = (0..4 * MAX_WAITING_CHECKS)
            .map(|i| {
                let users = Arc::clone(&users);
                tokio::spawn(async move { users.password(&format!("guess{i}"), "wrong").await })
            })
            .collect();
        let mut busy = 0;
        let mut checked = 0;
        for f in flood {
            match f.await.unwrap() {
                Err(AuthError::Busy) => busy += 1,
                Err(AuthError::Unauthenticated(_)) => checked += 1,
                other => panic!("a guess got {other:?}"),
            }
        }
        assert!(checked <= MAX_WAITING_CHECKS + 1 && busy >= 2 * MAX_WAITING_CHECKS, "{checked} checked, {busy} busy");
        assert_eq!(users.waiting.load(Ordering::SeqCst), 0, "every login left the line");
        // After the flood, the right password is checked and accepted.
        assert_eq!(users.password("ana", "s3cret").await.unwrap().name, "ana");
    }

    #[test]
    fn a_revoked_token_is_refused_once_the_file_changes() {
        let token = new_token();
        let entry = |revoked: bool| {
            format!(
                "[[token]]\nname = \"ci\"\nrole = \"analyst\"\nsha256 = \"{}\"\nrevoked = {revoked}\n",
                token_digest(&token)
            )
        };
        let (f, users) = file(&entry(false));
        let ci = users.token(&token).unwrap();
        // A file system may keep whole-second times: make the change visible.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(f.path(), entry(true)).unwrap();
        assert!(users.refresh().unwrap());
        assert!(users.token(&token).is_err());
        assert!(!users.still_valid(&ci));
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let f = tempfile::NamedTempFile::new().unwrap();
        for (text, says) in [
            ("[[user]]\nname = \"a\"\nrole = \"admin\"\npassword = \"x\"\n", "admin"),
            ("[[user]]\nname = \"a\"\nrole = \"reader\"\npassword = \"plain\"\n", "not an argon2 hash"),
            ("[[token]]\nname = \"t\"\nrole = \"reader\"\nsha256 = \"abc\"\n", "64 hex digits"),
            ("[[tokens]]\n", "unknown field"),
        ] {
            std::fs::write(f.path(), text).unwrap();
            let err = Users::load(f.path()).err().expect(text).to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
