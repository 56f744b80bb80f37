//! `linkwright keys create|list|revoke`: admin API keys.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use linkwright_core::keys::{self, Scope};

use crate::{ConfigArg, DataDirArg, open_store};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it once (it cannot be shown again).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// `read` or `write` (repeatable; write implies read). Default: read and write.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// List keys (ids, names, scopes; never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke a key by its id.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// The key's id (from `keys list`).
        id: String,
    },
}

pub(crate) fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.to_string())
}

pub(crate) fn keys_command(command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create {
            config,
            data,
            name,
            scopes,
        } => {
            let (_, store) = open_store(&config, &data)?;
            let scopes = if scopes.is_empty() {
                vec![Scope::Read, Scope::Write]
            } else {
                scopes
            };
            let (key, secret) = keys::create_key(&*store, &name, &scopes)?;
            eprintln!(
                "created key {} ({}) with scopes {}; store it now, it is not shown again:",
                key.id,
                key.name,
                scopes_text(&key.scopes, ", ")
            );
            println!("{secret}");
        }
        KeysCommand::List { config, data } => {
            let (_, store) = open_store(&config, &data)?;
            for key in keys::list_keys(&*store)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    key.id,
                    key.name,
                    scopes_text(&key.scopes, ","),
                    if key.revoked { "revoked" } else { "active" }
                );
            }
        }
        KeysCommand::Revoke { config, data, id } => {
            let (_, store) = open_store(&config, &data)?;
            keys::revoke_key(&*store, &id)?;
            println!("{id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `read, write`.
fn scopes_text(scopes: &[Scope], separator: &str) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}
