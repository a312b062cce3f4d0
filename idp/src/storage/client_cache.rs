//! A short-lived cache of registered clients, so that the token endpoint does not read the database on every
//! request. Only clients that exist are cached (an unknown `client_id` cannot grow it), each for
//! [`CLIENT_CACHE_TTL`]: a client created by the CLI works at once, a deleted or changed one is seen by every
//! node within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Database, StorageError};
use crate::domain::clients::Client;

pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (Instant, Arc<Client>)>>,
}

impl ClientCache {
    /// The client, from the cache while fresh, else from the database.
    pub async fn find(&self, db: &Database, client_id: &str) -> Result<Option<Arc<Client>>, StorageError> {
        let now = Instant::now();
        if let Ok(entries) = self.entries.read()
            && let Some((loaded, client)) = entries.get(client_id)
            && now.duration_since(*loaded) < CLIENT_CACHE_TTL
        {
            return Ok(Some(client.clone()));
        }
        let Some(client) = db.clients().find(client_id).await? else {
            if let Ok(mut entries) = self.entries.write() {
                entries.remove(client_id);
            }
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (loaded, _)| now.duration_since(*loaded) < CLIENT_CACHE_TTL);
            entries.insert(client_id.to_owned(), (now, client.clone()));
        }
        Ok(Some(client))
    }
}
