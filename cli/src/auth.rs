//! `sentio auth`: entries for the front end's users file (docs/deploy.md).

use std::io::BufRead;

use sentio_frontend::auth::{hash_password, new_token, token_digest};

use crate::args::{AuthCommand, RoleArg};
use crate::error::{CliError, Result};

/// Prints the users-file entry `cmd` asks for on stdout, so that
/// `>> users.toml` appends the entry alone; a new token is shown once, on
/// stderr, and never enters the file.
pub fn run(cmd: &AuthCommand) -> Result<()> {
    let entry = match cmd {
        AuthCommand::HashPassword { name, role } => {
            let password = password()?;
            format!(
                "[[user]]\nname = \"{}\"\nrole = \"{}\"\npassword = \"{}\"\n",
                checked(name)?,
                role.as_str(),
                hash_password(&password)
            )
        }
        AuthCommand::NewToken { name, role } => {
            let token = new_token();
            eprintln!("API token {name} (shown once; the users file keeps only its hash): {token}");
            format!(
                "[[token]]\nname = \"{}\"\nrole = \"{}\"\nsha256 = \"{}\"\n",
                checked(name)?,
                role.as_str(),
                token_digest(&token)
            )
        }
    };
    print!("{entry}");
    Ok(())
}

/// The password: `SENTIO_PASSWORD`, else the first line of stdin.
fn password() -> Result<String> {
    if let Ok(p) = std::env::var("SENTIO_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        return Err(CliError::Usage("no password: set SENTIO_PASSWORD or give it on stdin".into()));
    }
    Ok(p)
}

/// `name`, when it is safe to write into the file unquoted-by-hand: letters,
/// digits and `_ . @ -`.
fn checked(name: &str) -> Result<&str> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c)) {
        Ok(name)
    } else {
        Err(CliError::Usage(format!("name {name:?}: use letters, digits and _ . @ - only")))
    }
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Analyst => "analyst",
            RoleArg::Reader => "reader",
        }
    }
}
