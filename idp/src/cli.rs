//! The command line: `idp` (or `idp serve`) runs the issuer; the other commands administer it and print
//! JSON on standard output. Errors are one line on standard error with a non-zero exit status.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Config;
use crate::domain::clients::{Client, ClientRegistration};
use crate::domain::email::Email;
use crate::domain::keys::{KeyMeta, SigningAlgorithm};
use crate::domain::password::{self, Password};
use crate::domain::users::{DisplayName, NewUser, UserId};
use crate::http;
use crate::state::{AppState, redact_url};
use crate::storage::keystore::KeyStore;
use crate::storage::{Database, StorageError};

#[derive(Debug, Parser)]
#[command(name = "idp", version, about = "OAuth 2.0 / OpenID Connect identity provider")]
pub struct Cli {
    /// A TOML file with settings (environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the issuer (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys with their state (active, retired and still published, expired).
    List,
    /// Make a new key that signs from now on; the previous one stays published until its tokens expire.
    Rotate {
        /// RS256, ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        alg: SigningAlgorithm,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints {"id": …}.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (one trailing newline is removed).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id": …, "client_secret": …} (the secret is shown only now).
    Create(CreateClient),
    /// List the clients (never their secrets).
    List,
    /// Delete a client.
    Delete {
        /// The client_id. Ids made before they were kept from starting with `-` may: taken as they are.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateClient {
    #[arg(long)]
    name: String,
    /// A redirect URI, matched exactly (repeat for several).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A public client (native or single-page app): no secret, PKCE only.
    #[arg(long)]
    public: bool,
    /// authorization_code, refresh_token or client_credentials (repeat for several).
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// A scope the client may request (repeat, or give a space-separated list).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// client_secret_basic (default) or client_secret_post.
    #[arg(long, value_name = "METHOD")]
    token_endpoint_auth_method: Option<String>,
    /// Where logout tokens are sent when a session ends (OIDC Back-Channel Logout).
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// The algorithm of the client's ID tokens: RS256 (default), ES256 or EdDSA; it must be in
    /// IDP_SIGNING_ALGS.
    #[arg(long, value_name = "ALG")]
    id_token_alg: Option<String>,
}

/// Runs a command with a validated configuration.
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_database(&config).await?;
            print(&json!({"migrated": true}))
        }
        Command::Keys(command) => keys(command, &config),
        Command::User(UserCommand::Create { email, name, password_stdin: _ }) => {
            let db = open_database(&config).await?;
            create_user(&db, &email, name.as_deref(), &read_password()?).await
        }
        Command::Client(command) => {
            let db = open_database(&config).await?;
            client(command, &db, &config).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let state = AppState::build(config).await?;
    let listener =
        tokio::net::TcpListener::bind(bind).await.with_context(|| format!("IDP_BIND: cannot listen on {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, issuer = %state.config.issuer_id(), "serving");
    http::serve(listener, state, http::shutdown_signal()).await.context("server failed")
}

async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let url = redact_url(config.database_url.as_str());
    let db = Database::connect(&config.database_url).await.with_context(|| format!("database {url}"))?;
    db.migrate().await.with_context(|| format!("database {url}"))?;
    Ok(db)
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn time_string(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

fn keys(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let store = KeyStore::new(&config.keys_dir);
    let now = OffsetDateTime::now_utc();
    let retention = config.key_retention();
    let describe = |key: &KeyMeta| {
        let status = match key.retired_at {
            None => "active",
            Some(_) if key.is_published(now, retention) => "retired",
            Some(_) => "expired",
        };
        json!({
            "kid": key.kid,
            "alg": key.alg.as_str(),
            "status": status,
            "created_at": time_string(key.created_at),
            "retired_at": key.retired_at.map(time_string),
            "published_until": key.unpublish_at(retention).map(time_string),
        })
    };
    let dir = config.keys_dir.display();
    match command {
        KeysCommand::List => {
            let keys = store.list().with_context(|| format!("keys in {dir}"))?;
            print(&serde_json::Value::from(keys.iter().map(describe).collect::<Vec<_>>()))
        }
        KeysCommand::Rotate { alg } => {
            let key = store.rotate(alg, now, retention).with_context(|| format!("keys in {dir}"))?;
            print(&describe(&key))
        }
    }
}

/// Reads the password from standard input, without the one trailing newline a shell adds.
fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("--password-stdin: cannot read standard input")?;
    let password = input.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&input);
    Ok(password.to_owned())
}

async fn create_user(db: &Database, email: &str, name: Option<&str>, password: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let name = name.map(DisplayName::parse).transpose().map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let password = Password::new(password.to_owned()).map_err(|e| anyhow::anyhow!("--password-stdin: {e}"))?;
    let password_hash = password::hash(&password).await?;
    let new = NewUser { id: UserId::new(), email, name, password_hash };
    match db.users().insert(&new, OffsetDateTime::now_utc()).await {
        Ok(user) => print(&json!({"id": user.id.to_string()})),
        Err(StorageError::Conflict(_)) => bail!("--email: a user with this email already exists"),
        Err(e) => Err(e.into()),
    }
}

fn describe_client(client: &Client) -> serde_json::Value {
    json!({
        "client_id": client.id.as_str(),
        "name": client.name,
        "public": client.is_public(),
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "redirect_uris": client.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "post_logout_redirect_uris": client.post_logout_redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": client.scopes.to_string(),
        "backchannel_logout_uri": client.backchannel_logout_uri.as_ref().map(|u| u.as_str()),
        "id_token_signed_response_alg": client.id_token_alg.as_str(),
        "created_at": time_string(client.created_at.unix_timestamp()),
    })
}

async fn client(command: ClientCommand, db: &Database, config: &Config) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create(args) => {
            let registration = ClientRegistration {
                name: args.name,
                redirect_uris: args.redirect_uris,
                post_logout_redirect_uris: args.post_logout_redirect_uris,
                public: args.public,
                grant_types: args.grant_types,
                scopes: args.scopes,
                auth_method: args.token_endpoint_auth_method,
                backchannel_logout_uri: args.backchannel_logout_uri,
                id_token_alg: args.id_token_alg,
            };
            let new = registration.validate(OffsetDateTime::now_utc()).map_err(anyhow::Error::msg)?;
            new.check_id_token_alg(&config.signing_algs).map_err(anyhow::Error::msg)?;
            db.clients().insert(&new.client).await?;
            let mut out = json!({"client_id": new.client.id.as_str()});
            if let Some(secret) = &new.secret {
                out["client_secret"] = secret.expose().into();
            }
            print(&out)
        }
        ClientCommand::List => {
            let clients = db.clients().list().await?;
            print(&serde_json::Value::from(clients.iter().map(describe_client).collect::<Vec<_>>()))
        }
        ClientCommand::Delete { id } => {
            if !db.clients().delete(&id, OffsetDateTime::now_utc().unix_timestamp()).await? {
                bail!("no client with client_id {id}");
            }
            print(&json!({"deleted": id}))
        }
    }
}
