//! The Redis backend: a string key per session (`PXAT` expiry) and a sorted set per user (score: expiry),
//! changed together by Lua scripts so that the index never disagrees with the sessions. See the crate docs
//! for the key layout.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tower_sessions::session::{Id, Record};

use crate::{Error, from_unix_ms, parse_id, user_of};

/// Shared script prologue: `decoded(json)` is a stored session value as a table, or nil; `owner(json)` its
/// `user`, or nil.
const OWNER: &str = r"
local function decoded(value)
  local ok, stored = pcall(cjson.decode, value)
  if ok and type(stored) == 'table' then return stored end
  return nil
end
local function owner(value)
  local stored = decoded(value)
  if stored and type(stored.user) == 'string' then return stored.user end
  return nil
end
";

/// Create or save. KEYS: session key, [the new user's index]. ARGV: index key prefix, id, value, user
/// ('' = anonymous), expires_at ms, now ms, '1' = create. Returns 0 when create met an existing id. A save
/// of a session that is gone (deleted, revoked or expired since it was loaded) writes nothing.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER}
local id, user, expires_at, now = ARGV[2], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local expired = expires_at <= now
if ARGV[7] == '1' then
  if expired then return 1 end
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
else
  local old = redis.call('GET', KEYS[1])
  local stored = old and decoded(old)
  local ended = stored and tonumber(stored.expires_at) and tonumber(stored.expires_at) <= now
  if not old or ended then return 1 end
  local previous = stored and type(stored.user) == 'string' and stored.user or nil
  if previous and previous ~= user then redis.call('ZREM', ARGV[1] .. previous, id) end
end
if expired then
  redis.call('DEL', KEYS[1])
  if user ~= '' then redis.call('ZREM', KEYS[2], id) end
  return 1
end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[5])
if user ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], id)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
  local latest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[2], latest[2])
end
return 1"
    ))
});

/// Delete. KEYS: session key. ARGV: index key prefix, id.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER}
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
local user = owner(old)
if user then redis.call('ZREM', ARGV[1] .. user, ARGV[2]) end
return redis.call('DEL', KEYS[1])"
    ))
});

/// Revoke one. KEYS: session key, the user's index. ARGV: id, user. Returns 1 when it deleted the session.
/// The id leaves the user's index either way: it is either revoked now or not the user's session.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER}
redis.call('ZREM', KEYS[2], ARGV[1])
local old = redis.call('GET', KEYS[1])
if old and owner(old) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0"
    ))
});

/// Revoke all. KEYS: the user's index. ARGV: session key prefix, user, except id ('' = none), now ms.
/// Returns the deleted ids, earliest expiry first.
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
local deleted = {{}}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[3] then
    local key = ARGV[1] .. id
    local old = redis.call('GET', key)
    if old and owner(old) == ARGV[2] then
      redis.call('DEL', key)
      deleted[#deleted + 1] = id
    end
    redis.call('ZREM', KEYS[1], id)
  end
end
return deleted"
    ))
});

/// List. KEYS: the user's index. ARGV: session key prefix, now ms. Trims the index (expired members, and
/// members whose session is gone) and returns id, value, id, value, … earliest expiry first.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local value = redis.call('GET', ARGV[1] .. id)
  if value then
    out[#out + 1] = id
    out[#out + 1] = value
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out",
    )
});

/// A session as stored under its key (written from borrowed parts, read back owned).
#[derive(Serialize)]
struct StoredRef<'a> {
    user: Option<&'a str>,
    data: &'a HashMap<String, serde_json::Value>,
    expires_at: i64,
}

#[derive(Deserialize)]
struct Stored {
    user: Option<String>,
    data: HashMap<String, serde_json::Value>,
    expires_at: i64,
}

#[derive(Clone)]
pub(crate) struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
}

/// Leaves the connection (its address may name a password) out of debug output.
impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn redis_err(context: &'static str) -> impl FnOnce(redis::RedisError) -> Error {
    move |source| Error::Redis { context, source }
}

impl RedisStore {
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(redis_err("parsing the Redis URL"))?;
        let connection = ConnectionManager::new(client).await.map_err(redis_err("connecting"))?;
        Ok(RedisStore { connection, prefix: prefix.into() })
    }

    fn session_prefix(&self) -> String {
        format!("{}session:", self.prefix)
    }

    fn index_prefix(&self) -> String {
        format!("{}user:", self.prefix)
    }

    fn session_key(&self, id: &Id) -> String {
        format!("{}session:{id}", self.prefix)
    }

    fn index_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// Create (`create`: only if the id is free) or save; see [`WRITE`]. Returns false only when `create`
    /// met an existing id.
    pub(crate) async fn write(&self, record: &Record, now: i64, create: bool) -> Result<bool, Error> {
        let user = user_of(&record.data);
        let expires_at = crate::unix_ms(record.expiry_date);
        let value = serde_json::to_string(&StoredRef { user, data: &record.data, expires_at })
            .map_err(|source| Error::Encoding { context: "writing session data", source })?;
        let mut invocation = WRITE.key(self.session_key(&record.id));
        if let Some(user) = user {
            invocation.key(self.index_key(user));
        }
        invocation
            .arg(self.index_prefix())
            .arg(record.id.to_string())
            .arg(value)
            .arg(user.unwrap_or_default())
            .arg(expires_at)
            .arg(now)
            .arg(if create { "1" } else { "0" });
        let written: i64 =
            invocation.invoke_async(&mut self.connection.clone()).await.map_err(redis_err("storing a session"))?;
        Ok(written == 1)
    }

    pub(crate) async fn load(&self, id: &Id, now: i64) -> Result<Option<Record>, Error> {
        let value: Option<String> =
            self.connection.clone().get(self.session_key(id)).await.map_err(redis_err("loading a session"))?;
        let Some(value) = value else { return Ok(None) };
        let stored = decode(&value)?;
        // The server expires the key by its clock; this node's clock may be a little ahead.
        if stored.expires_at <= now {
            return Ok(None);
        }
        Ok(Some(Record { id: *id, data: stored.data, expiry_date: from_unix_ms(stored.expires_at)? }))
    }

    pub(crate) async fn delete(&self, id: &Id) -> Result<(), Error> {
        let _: i64 = DELETE
            .key(self.session_key(id))
            .arg(self.index_prefix())
            .arg(id.to_string())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_err("deleting a session"))?;
        Ok(())
    }

    pub(crate) async fn list(&self, user: &str, now: i64) -> Result<Vec<Record>, Error> {
        let pairs: Vec<String> = LIST
            .key(self.index_key(user))
            .arg(self.session_prefix())
            .arg(now)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_err("listing a user's sessions"))?;
        let mut records = Vec::with_capacity(pairs.len() / 2);
        for pair in pairs.chunks_exact(2) {
            let [id, value] = pair else { continue };
            let stored = decode(value)?;
            // The index and the session are written together, so this only skips a session that expired
            // between the server's clock and ours.
            if stored.user.as_deref() == Some(user) && stored.expires_at > now {
                records.push(Record {
                    id: parse_id(id)?,
                    data: stored.data,
                    expiry_date: from_unix_ms(stored.expires_at)?,
                });
            }
        }
        Ok(records)
    }

    pub(crate) async fn revoke(&self, user: &str, id: &Id) -> Result<bool, Error> {
        let deleted: i64 = REVOKE
            .key(self.session_key(id))
            .key(self.index_key(user))
            .arg(id.to_string())
            .arg(user)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_err("revoking a session"))?;
        Ok(deleted == 1)
    }

    pub(crate) async fn revoke_all(&self, user: &str, except: Option<&Id>, now: i64) -> Result<Vec<Id>, Error> {
        let ids: Vec<String> = REVOKE_ALL
            .key(self.index_key(user))
            .arg(self.session_prefix())
            .arg(user)
            .arg(except.map(Id::to_string).unwrap_or_default())
            .arg(now)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_err("revoking a user's sessions"))?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// Trims the expired members of every index under the prefix (the session keys expire by themselves).
    pub(crate) async fn delete_expired(&self, now: i64) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}*", escape_glob(&self.index_prefix()));
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(256)
                .arg("TYPE")
                .arg("zset")
                .query_async(&mut connection)
                .await
                .map_err(redis_err("scanning the user indexes"))?;
            for key in keys {
                let trimmed: u64 =
                    connection.zrembyscore(key, "-inf", now).await.map_err(redis_err("trimming a user index"))?;
                removed += trimmed;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        let _: String =
            redis::cmd("PING").query_async(&mut self.connection.clone()).await.map_err(redis_err("ping"))?;
        Ok(())
    }

    pub(crate) async fn index_len(&self, user: &str) -> Result<usize, Error> {
        self.connection.clone().zcard(self.index_key(user)).await.map_err(redis_err("counting a user index"))
    }
}

fn decode(value: &str) -> Result<Stored, Error> {
    serde_json::from_str(value).map_err(|source| Error::Encoding { context: "reading session data", source })
}

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn glob_characters_of_the_prefix_are_escaped() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f:"), r"a\*b\?c\[d\]e\\f:");
    }
}
