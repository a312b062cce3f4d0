//! The clients repository. Nothing is cached: a client created or deleted by the CLI takes effect at the
//! next request, on every node.

use sqlx::AnyPool;

use super::{StorageError, conflict_on_unique, to_time};
use crate::domain::clients::{Client, ClientId, GrantType, RedirectUri};
use crate::domain::keys::SigningAlgorithm;
use crate::domain::scope::Scopes;
use crate::domain::secret::SecretHash;

pub struct Clients<'a> {
    pool: &'a AnyPool,
}

type ClientRow =
    (String, String, Option<String>, String, String, String, String, String, i64, Option<String>, Option<String>);

/// The selected columns, in the order of the row tuple.
macro_rules! client_columns {
    () => {
        "client_id, name, secret_hash, token_endpoint_auth_method, redirect_uris, \
                       post_logout_redirect_uris, grant_types, scopes, created_at, backchannel_logout_uri, \
                       id_token_signed_response_alg"
    };
}

fn uris_to_json(uris: &[RedirectUri]) -> String {
    serde_json::Value::from(uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>()).to_string()
}

fn uris_from_json(id: &str, json: &str) -> Result<Vec<RedirectUri>, StorageError> {
    let uris: Vec<String> =
        serde_json::from_str(json).map_err(|e| StorageError::Corrupt(format!("redirect URIs of client {id}: {e}")))?;
    Ok(uris.into_iter().map(RedirectUri::from_stored).collect())
}

fn from_row(row: ClientRow) -> Result<Client, StorageError> {
    let (
        id,
        name,
        secret_hash,
        auth_method,
        redirect_uris,
        post_logout,
        grant_types,
        scopes,
        created_at,
        backchannel,
        id_token_alg,
    ) = row;
    let corrupt = |what: &str, e: String| StorageError::Corrupt(format!("{what} of client {id}: {e}"));
    Ok(Client {
        name,
        secret_hash: secret_hash.map(SecretHash::from_stored),
        auth_method: auth_method.parse().map_err(|e| corrupt("auth method", e))?,
        redirect_uris: uris_from_json(&id, &redirect_uris)?,
        post_logout_redirect_uris: uris_from_json(&id, &post_logout)?,
        grant_types: grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(str::parse::<GrantType>)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("grant types", e))?,
        scopes: Scopes::parse(&scopes).map_err(|e| corrupt("scopes", e.to_string()))?,
        created_at: to_time(created_at)?,
        backchannel_logout_uri: backchannel.map(RedirectUri::from_stored),
        id_token_alg: match id_token_alg {
            None => SigningAlgorithm::Rs256,
            Some(alg) => alg.parse().map_err(|e| corrupt("ID token algorithm", e))?,
        },
        id: ClientId::from_stored(id),
    })
}

impl<'a> Clients<'a> {
    pub(super) fn new(pool: &'a AnyPool) -> Self {
        Clients { pool }
    }

    pub async fn insert(&self, client: &Client) -> Result<(), StorageError> {
        let grant_types = client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" ");
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.secret_hash.as_ref().map(SecretHash::as_str))
        .bind(client.auth_method.as_str())
        .bind(uris_to_json(&client.redirect_uris))
        .bind(uris_to_json(&client.post_logout_redirect_uris))
        .bind(grant_types)
        .bind(client.scopes.to_string())
        .bind(client.created_at.unix_timestamp())
        .bind(client.backchannel_logout_uri.as_ref().map(RedirectUri::as_str))
        // RS256, the default, is stored as NULL, as it reads back.
        .bind((client.id_token_alg != SigningAlgorithm::Rs256).then(|| client.id_token_alg.as_str()))
        .execute(self.pool)
        .await
        .map_err(conflict_on_unique("client_id"))?;
        Ok(())
    }

    pub async fn find(&self, client_id: &str) -> Result<Option<Client>, StorageError> {
        let row: Option<ClientRow> =
            sqlx::query_as(concat!("SELECT ", client_columns!(), " FROM clients WHERE client_id = $1"))
                .bind(client_id)
                .fetch_optional(self.pool)
                .await?;
        row.map(from_row).transpose()
    }

    /// Every client, oldest first.
    pub async fn list(&self) -> Result<Vec<Client>, StorageError> {
        let rows: Vec<ClientRow> =
            sqlx::query_as(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY created_at, client_id"))
                .fetch_all(self.pool)
                .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Deletes a client, revoking every grant it holds and forgetting its consents in the same transaction;
    /// returns whether it existed.
    pub async fn delete(&self, client_id: &str, now: i64) -> Result<bool, StorageError> {
        let mut tx = super::begin(self.pool).await?;
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM consents WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
