//! The interactive `sentio sql` prompt: history, multi-line statements (a
//! statement runs once a line ends with `;`), `\q` to quit. Ctrl-C during a
//! statement cancels it and returns to the prompt.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::{CliError, Result};
use crate::runner::Runner;
use crate::script::split_statements;

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".sentio_history"))
}

/// Whether `buffer` holds at least one complete statement.
fn is_complete(buffer: &str) -> bool {
    buffer.trim_end().ends_with(';') && split_statements(buffer).is_ok()
}

/// Runs the prompt until `\q`, `quit`, `exit` or end of input.
pub async fn run(runner: &Runner) -> Result<()> {
    let mut rl = DefaultEditor::new().map_err(|e| std::io::Error::other(e.to_string()))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    eprintln!("Sentio SQL. End statements with ';'. \\q quits, \\d lists tables.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sentio> " } else { "     -> " };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() {
                    match trimmed {
                        "" => continue,
                        "\\q" | "quit" | "exit" | "quit;" | "exit;" => break,
                        "\\d" => {
                            let _ = rl.add_history_entry(trimmed);
                            buffer = "SHOW TABLES;".into();
                        }
                        _ => buffer.push_str(&line),
                    }
                } else {
                    buffer.push('\n');
                    buffer.push_str(&line);
                }
                if !is_complete(&buffer) {
                    continue;
                }
                let _ = rl.add_history_entry(buffer.as_str());
                let src = std::mem::take(&mut buffer);
                let mut out = std::io::stdout();
                match runner.run_script("<prompt>", &src, &mut out).await {
                    Ok(_) => {}
                    // SIGTERM and SIGHUP ask the program to end; Ctrl-C only the statement.
                    Err(e @ CliError::Interrupted { signal, .. }) if signal.ends_the_program() => {
                        save_history(&mut rl, history.as_deref());
                        return Err(e);
                    }
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    save_history(&mut rl, history.as_deref());
    Ok(())
}

fn save_history(rl: &mut DefaultEditor, path: Option<&std::path::Path>) {
    if let Some(h) = path {
        let _ = rl.save_history(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness() {
        assert!(!is_complete("SELECT 1"));
        assert!(is_complete("SELECT 1;"));
        assert!(!is_complete("SELECT ';"));
        assert!(is_complete("SELECT\n 1 -- x\n;"));
    }
}
