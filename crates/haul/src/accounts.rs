//! `haul account` and `haul key`: managing accounts and API keys in a data directory's database.
//!
//! These act on the database directly (SQLite allows it while the server runs), so an administrator needs
//! shell access to the server's machine, not a token.

use anyhow::bail;
use haul_store::{Store, hash_secret, key_prefix};

use crate::cli::{AccountCommand, KeyCommand, StoreArgs};
use crate::serve::DataDir;

async fn open(args: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let data = DataDir::existing(args.data.data_dir.clone())?;
    let store = data.open_store(args.database.as_deref()).await?;
    data.ensure_default_account(store.as_ref()).await?;
    Ok(store)
}

pub async fn account(store_args: StoreArgs, command: AccountCommand) -> anyhow::Result<()> {
    let store = open(&store_args).await?;
    match command {
        AccountCommand::Add { name, email } => {
            let account = store.create_account(&name, email.as_deref()).await?;
            println!("{}  {}", account.id, account.name);
        }
        AccountCommand::Ls => {
            for account in store.list_accounts().await? {
                println!("{}  {:20}  {}", account.id, account.name, account.email.unwrap_or_default());
            }
        }
    }
    Ok(())
}

pub async fn key(store_args: StoreArgs, command: KeyCommand) -> anyhow::Result<()> {
    let store = open(&store_args).await?;
    match command {
        KeyCommand::Create { account, kind } => {
            let owner = store.account_by_name(&account).await.map_err(|error| match error {
                haul_store::StoreError::NotFound(_) => {
                    anyhow::anyhow!("no account named {account:?}; `haul account ls` lists them")
                }
                other => other.into(),
            })?;
            let secret = new_secret(kind);
            store.create_key(&owner.id, kind, &hash_secret(&secret), &key_prefix(&secret)).await?;
            eprintln!("key for {} ({kind}); it is shown once, keep it now:", owner.name);
            println!("{secret}");
        }
        KeyCommand::Ls => {
            let names: std::collections::HashMap<_, _> =
                store.list_accounts().await?.into_iter().map(|account| (account.id, account.name)).collect();
            for key in store.list_keys(None).await? {
                let owner = names.get(&key.account).map_or("?", String::as_str);
                let state = if key.revoked_at.is_some() { "revoked" } else { "live" };
                println!("{}  {:18}  {:16}  {}...  {state}", key.id, key.kind, owner, key.prefix);
            }
        }
        KeyCommand::Revoke { id } => {
            if id.len() < 4 {
                bail!("give at least 4 characters of the key id (see `haul key ls`)");
            }
            let key = store.revoke_key(&id).await?;
            println!("revoked {}", key.id);
        }
    }
    Ok(())
}

pub use haul_core::account::new_secret;
