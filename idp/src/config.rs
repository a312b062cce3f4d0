//! Configuration: read once at start-up from `IDP_*` environment variables and an optional TOML file,
//! validated into [`Config`]. Every default lives in [`defaults`]; an error names the variable and the fix.
//!
//! Precedence: environment variable > TOML file > default. The TOML file uses the variable names without
//! the `IDP_` prefix, in lower case (`bind = "0.0.0.0:8080"`); unknown keys and unknown `IDP_*` variables
//! are refused so that a typo cannot silently fall back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::domain::keys::SigningAlgorithm;

/// The one place where defaults live.
pub mod defaults {
    pub const BIND: &str = "127.0.0.1:8080";
    pub const ISSUER: &str = "http://localhost:8080";
    pub const DATABASE_URL: &str = "sqlite://data/idp.db";
    pub const KEYS_DIR: &str = "keys";
    /// RS256 signs ID tokens (every relying party supports it); ES256 signs access tokens, 20–30 times
    /// faster than RS256 on the same core (docs/performance.md).
    pub const SIGNING_ALGS: &str = "RS256,ES256";
    pub const ACCESS_TOKEN_ALG: &str = "ES256";
    pub const ACCESS_TOKEN_TTL_SECS: u64 = 10 * 60;
    pub const ID_TOKEN_TTL_SECS: u64 = 10 * 60;
    /// How long a resource server may cache the JWKS; a retired key stays published this much longer than
    /// the longest token it may have signed.
    pub const JWKS_CACHE_TTL_SECS: u64 = 10 * 60;
    pub const SESSION_IDLE_TTL_SECS: u64 = 12 * 60 * 60;
    /// Refresh tokens slide: each use gives a new one valid this long…
    pub const REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 60 * 60;
    /// …but never past this time after the original authorization (ASVS 10.4.8).
    pub const REFRESH_TOKEN_ABSOLUTE_TTL_SECS: u64 = 90 * 24 * 60 * 60;
    pub const REDIS_KEY_PREFIX: &str = "idp:";
}

/// Where the process runs. `Production` refuses the development conveniences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The database the issuer stores its state in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path` (relative paths are relative to the working directory).
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => url,
        }
    }
}

/// Validated configuration. A value of this type is known to be usable.
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Environment,
    pub bind: SocketAddr,
    /// The issuer identifier, without a trailing slash (OIDC Discovery §3: it is a prefix of every
    /// endpoint and is compared byte for byte).
    pub issuer: Url,
    pub database_url: DatabaseUrl,
    pub keys_dir: PathBuf,
    /// Algorithms that each have one active signing key.
    pub signing_algs: Vec<SigningAlgorithm>,
    /// The algorithm of access tokens (one of `signing_algs`). ID tokens use each client's registered
    /// algorithm, RS256 by default.
    pub access_token_alg: SigningAlgorithm,
    /// Whether missing signing keys may be generated at start-up (development only).
    pub generate_keys: bool,
    pub redis_url: Option<Url>,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub jwks_cache_ttl: Duration,
    pub session_idle_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_token_absolute_ttl: Duration,
    /// The `aud` of access tokens when no API is named: the issuer itself (its userinfo endpoint). It is
    /// never a client id, so an ID token cannot pass for an access token.
    pub access_token_audience: String,
    /// Peers whose `X-Forwarded-For` is believed (the load balancers); everyone else's is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Prefix of every Redis key, so that several deployments can share one Redis.
    pub redis_key_prefix: String,
}

impl Config {
    /// The longest lifetime of any token signed with a key: a retired key is published for this long plus
    /// the JWKS cache time.
    pub fn max_signed_token_ttl(&self) -> Duration {
        self.access_token_ttl.max(self.id_token_ttl)
    }

    /// How long a retired key stays in the JWKS.
    pub fn key_retention(&self) -> Duration {
        self.max_signed_token_ttl() + self.jwks_cache_ttl
    }

    /// Whether the issuer is served over TLS, which decides the cookie `Secure` flag and `__Host-` prefix.
    pub fn is_https(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// Whether answers carry `Strict-Transport-Security`: an https issuer, but not on a loopback host, where it
    /// would hold every port of the developer's machine to https for a year.
    pub fn sends_hsts(&self) -> bool {
        self.is_https() && !crate::domain::is_loopback_host(&self.issuer)
    }

    /// An absolute URL under the issuer: `endpoint("/jwks")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer_id(), path)
    }

    /// The issuer identifier as tokens and discovery carry it (`iss`): the issuer URL without a trailing
    /// slash. Borrowed, so a token check compares against it without building a string.
    pub fn issuer_id(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// Reads the configuration from the process environment and an optional TOML file.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars = prefixed_vars(std::env::vars_os())?;
        let file = match file {
            Some(path) => Some((
                path.to_path_buf(),
                std::fs::read_to_string(path).map_err(|e| ConfigError {
                    setting: "--config".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                })?,
            )),
            None => None,
        };
        Config::from_sources(&vars, file.as_ref().map(|(p, s)| (p.as_path(), s.as_str())))
    }

    /// Builds the configuration from explicit sources; [`Config::load`] passes the real ones.
    pub fn from_sources(env: &BTreeMap<String, String>, file: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
        let sources = Sources::new(env, file)?;
        let environment = match sources.get(Key::Env) {
            None => Environment::Development,
            Some(v) => match v.value.as_str() {
                "development" => Environment::Development,
                "production" => Environment::Production,
                other => return Err(v.error(format!("'{other}' is not one of development, production"))),
            },
        };
        let production = environment == Environment::Production;

        let bind = sources.parse(Key::Bind, defaults::BIND, |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| format!("'{s}' is not a socket address (expected host:port, e.g. 127.0.0.1:8080)"))
        })?;

        let issuer = sources.parse(Key::Issuer, defaults::ISSUER, |s| parse_issuer(s, production))?;

        let allow_sqlite = sources.parse(Key::AllowSqliteInProduction, "false", parse_bool)?;
        let database_url = sources.parse(Key::DatabaseUrl, defaults::DATABASE_URL, |s| {
            let url = parse_database_url(s)?;
            if production && matches!(url, DatabaseUrl::Sqlite(_)) && !allow_sqlite {
                return Err("SQLite is refused in production: use postgres://… \
                     (or set IDP_ALLOW_SQLITE_IN_PRODUCTION=true for a single node)"
                    .into());
            }
            Ok(url)
        })?;

        let keys_dir = sources.parse(Key::KeysDir, defaults::KEYS_DIR, |s| {
            if s.trim().is_empty() { Err("must not be empty".into()) } else { Ok(PathBuf::from(s)) }
        })?;

        let signing_algs = sources.parse(Key::SigningAlgs, defaults::SIGNING_ALGS, parse_algs)?;
        let access_token_alg = sources.parse(Key::AccessTokenAlg, defaults::ACCESS_TOKEN_ALG, |s| {
            let alg: SigningAlgorithm = s.parse()?;
            if signing_algs.contains(&alg) {
                Ok(alg)
            } else {
                Err(format!("{alg} is not in IDP_SIGNING_ALGS, so it has no key"))
            }
        })?;

        let generate_keys = sources.parse(Key::GenerateKeys, if production { "false" } else { "true" }, |s| {
            let generate = parse_bool(s)?;
            if generate && production {
                return Err("generating signing keys at start-up is refused in production: \
                     create them once with `idp keys rotate` and mount the keys directory"
                    .into());
            }
            Ok(generate)
        })?;

        let redis_url = match sources.get(Key::RedisUrl) {
            None => None,
            Some(v) if v.value.is_empty() => None,
            Some(v) => Some(parse_redis_url(&v.value).map_err(|m| v.error(m))?),
        };

        let secs = |key, default: u64| sources.parse(key, &default.to_string(), parse_duration);
        let access_token_ttl = secs(Key::AccessTokenTtl, defaults::ACCESS_TOKEN_TTL_SECS)?;
        let id_token_ttl = secs(Key::IdTokenTtl, defaults::ID_TOKEN_TTL_SECS)?;
        let jwks_cache_ttl = secs(Key::JwksCacheTtl, defaults::JWKS_CACHE_TTL_SECS)?;
        let session_idle_ttl = secs(Key::SessionIdleTtl, defaults::SESSION_IDLE_TTL_SECS)?;
        let refresh_token_ttl = secs(Key::RefreshTokenTtl, defaults::REFRESH_TOKEN_TTL_SECS)?;
        let refresh_token_absolute_ttl = secs(Key::RefreshTokenAbsoluteTtl, defaults::REFRESH_TOKEN_ABSOLUTE_TTL_SECS)?;
        if refresh_token_absolute_ttl < refresh_token_ttl {
            return Err(ConfigError {
                setting: Key::RefreshTokenAbsoluteTtl.env_var(),
                message: "must not be shorter than IDP_REFRESH_TOKEN_TTL".into(),
            });
        }
        let issuer_id = issuer.as_str().trim_end_matches('/').to_owned();
        let access_token_audience = sources.parse(Key::AccessTokenAudience, &issuer_id, |s| {
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                Err("must be a non-empty identifier without spaces".into())
            } else {
                Ok(s.to_owned())
            }
        })?;

        let trusted_proxies = sources.parse(Key::TrustedProxies, "", parse_networks)?;
        let redis_key_prefix = sources.parse(Key::RedisKeyPrefix, defaults::REDIS_KEY_PREFIX, |s| {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("must be a non-empty prefix without spaces, e.g. idp:".into())
            } else {
                Ok(s.to_owned())
            }
        })?;

        Ok(Config {
            env: environment,
            bind,
            issuer,
            database_url,
            keys_dir,
            signing_algs,
            access_token_alg,
            generate_keys,
            redis_url,
            access_token_ttl,
            id_token_ttl,
            jwks_cache_ttl,
            session_idle_ttl,
            refresh_token_ttl,
            refresh_token_absolute_ttl,
            access_token_audience,
            trusted_proxies,
            redis_key_prefix,
        })
    }
}

const ENV_PREFIX: &str = "IDP_";

/// Every setting, with its TOML key. The environment variable is `IDP_` + the key in upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Env,
    Bind,
    Issuer,
    DatabaseUrl,
    AllowSqliteInProduction,
    KeysDir,
    SigningAlgs,
    GenerateKeys,
    RedisUrl,
    AccessTokenTtl,
    IdTokenTtl,
    JwksCacheTtl,
    SessionIdleTtl,
    RefreshTokenTtl,
    RefreshTokenAbsoluteTtl,
    AccessTokenAudience,
    TrustedProxies,
    RedisKeyPrefix,
    AccessTokenAlg,
}

impl Key {
    const ALL: [Key; 19] = [
        Key::Env,
        Key::Bind,
        Key::Issuer,
        Key::DatabaseUrl,
        Key::AllowSqliteInProduction,
        Key::KeysDir,
        Key::SigningAlgs,
        Key::GenerateKeys,
        Key::RedisUrl,
        Key::AccessTokenTtl,
        Key::IdTokenTtl,
        Key::JwksCacheTtl,
        Key::SessionIdleTtl,
        Key::RefreshTokenTtl,
        Key::RefreshTokenAbsoluteTtl,
        Key::AccessTokenAudience,
        Key::TrustedProxies,
        Key::RedisKeyPrefix,
        Key::AccessTokenAlg,
    ];

    fn toml_key(self) -> &'static str {
        match self {
            Key::Env => "env",
            Key::Bind => "bind",
            Key::Issuer => "issuer",
            Key::DatabaseUrl => "database_url",
            Key::AllowSqliteInProduction => "allow_sqlite_in_production",
            Key::KeysDir => "keys_dir",
            Key::SigningAlgs => "signing_algs",
            Key::GenerateKeys => "generate_keys",
            Key::RedisUrl => "redis_url",
            Key::AccessTokenTtl => "access_token_ttl",
            Key::IdTokenTtl => "id_token_ttl",
            Key::JwksCacheTtl => "jwks_cache_ttl",
            Key::SessionIdleTtl => "session_idle_ttl",
            Key::RefreshTokenTtl => "refresh_token_ttl",
            Key::RefreshTokenAbsoluteTtl => "refresh_token_absolute_ttl",
            Key::AccessTokenAudience => "access_token_audience",
            Key::TrustedProxies => "trusted_proxies",
            Key::RedisKeyPrefix => "redis_key_prefix",
            Key::AccessTokenAlg => "access_token_alg",
        }
    }

    fn env_var(self) -> String {
        format!("{ENV_PREFIX}{}", self.toml_key().to_ascii_uppercase())
    }
}

/// A configuration value and where it came from, so that an error can name it.
struct Value {
    value: String,
    origin: String,
}

impl Value {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError { setting: self.origin.clone(), message: message.into() }
    }
}

struct Sources {
    values: Vec<(Key, Value)>,
}

impl Sources {
    fn new(env: &BTreeMap<String, String>, file: Option<(&Path, &str)>) -> Result<Sources, ConfigError> {
        let mut values = Vec::new();
        for name in env.keys().filter(|k| k.starts_with(ENV_PREFIX)) {
            if !Key::ALL.iter().any(|k| &k.env_var() == name) {
                return Err(ConfigError {
                    setting: name.clone(),
                    message: "is not a known setting (see the configuration table in README.md)".into(),
                });
            }
        }
        let table = match file {
            Some((path, text)) => {
                let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
                    setting: format!("--config {}", path.display()),
                    message: format!("not valid TOML: {}", e.message()),
                })?;
                for key in table.keys() {
                    if !Key::ALL.iter().any(|k| k.toml_key() == key) {
                        return Err(ConfigError {
                            setting: format!("{key} (in {})", path.display()),
                            message: "is not a known setting".into(),
                        });
                    }
                }
                Some((path, table))
            }
            None => None,
        };
        for key in Key::ALL {
            if let Some(value) = env.get(&key.env_var()) {
                values.push((key, Value { value: value.trim().to_owned(), origin: key.env_var() }));
            } else if let Some((path, table)) = &table
                && let Some(item) = table.get(key.toml_key())
            {
                let origin = format!("{} (in {})", key.toml_key(), path.display());
                let value = match item {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Array(items) => {
                        let mut parts = Vec::new();
                        for item in items {
                            match item.as_str() {
                                Some(s) => parts.push(s.to_owned()),
                                None => {
                                    return Err(ConfigError {
                                        setting: origin,
                                        message: "must be a list of strings".into(),
                                    });
                                }
                            }
                        }
                        parts.join(",")
                    }
                    _ => {
                        return Err(ConfigError {
                            setting: origin,
                            message: "must be a string, number or boolean".into(),
                        });
                    }
                };
                values.push((key, Value { value, origin }));
            }
        }
        Ok(Sources { values })
    }

    fn get(&self, key: Key) -> Option<&Value> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Parses the value of `key`, or `default` when it is not set.
    fn parse<T>(&self, key: Key, default: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        match self.get(key) {
            Some(v) => parse(&v.value).map_err(|m| v.error(m)),
            None => parse(default).map_err(|m| ConfigError { setting: key.env_var(), message: m }),
        }
    }
}

/// A configuration value that cannot be used, with the setting it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not a boolean (use true or false)")),
    }
}

/// The longest duration a setting takes: ten years. Longer ones are typos, and would overflow the times
/// computed from them.
const MAX_DURATION_SECS: u64 = 10 * 365 * 86_400;

/// The environment's `IDP_` variables. Others are not read, whatever their bytes; an `IDP_` variable that is
/// not UTF-8 stops start-up, named (`std::env::vars` would panic on any variable that is not).
fn prefixed_vars(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut prefixed = BTreeMap::new();
    for (key, value) in vars {
        let name = key.to_string_lossy();
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let not_text = || ConfigError { setting: name.to_string(), message: "is not valid UTF-8".into() };
        let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else { return Err(not_text()) };
        prefixed.insert(key.to_owned(), value.to_owned());
    }
    Ok(prefixed)
}

/// Durations are whole seconds, optionally with a unit: `90`, `90s`, `15m`, `12h`, `30d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let multiplier = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}' is not a duration (use seconds, or a number with s, m, h or d)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is not a duration (use e.g. 600, 10m or 30d)"))?;
    if n == 0 {
        return Err("must be greater than zero".into());
    }
    match n.checked_mul(multiplier) {
        Some(secs) if secs <= MAX_DURATION_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(format!("'{s}' is too long (at most 3650d)")),
    }
}

fn parse_issuer(s: &str, production: bool) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("'{s}' is not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if !production || crate::domain::is_loopback_host(&url) => {}
        "http" => {
            return Err(format!(
                "'{s}' is plain http on a non-loopback host, which is refused in production: use https://"
            ));
        }
        other => return Err(format!("scheme '{other}' is not http or https")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an issuer has no query or fragment (OpenID Connect Discovery §3)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an issuer carries no user name or password".into());
    }
    if s.ends_with('/') {
        return Err(format!("remove the trailing slash ('{}')", s.trim_end_matches('/')));
    }
    if url.path() != "/" {
        return Err("an issuer with a path is not supported: serve the issuer at the root of its host".into());
    }
    Ok(url)
}

fn parse_database_url(s: &str) -> Result<DatabaseUrl, String> {
    if let Some(rest) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
        if rest.is_empty() || rest.starts_with('?') {
            return Err("a sqlite URL needs a file path, e.g. sqlite://data/idp.db".into());
        }
        return Ok(DatabaseUrl::Sqlite(s.to_owned()));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Url::parse(s).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
        return Ok(DatabaseUrl::Postgres(s.to_owned()));
    }
    Err("must start with sqlite:// or postgres://".into())
}

/// A `redis://` URL. The text is not repeated in errors: it may hold a password.
fn parse_redis_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
    match url.scheme() {
        "redis" => Ok(url),
        "rediss" => Err("rediss:// (TLS) is not supported by this build: use redis:// on a private network".into()),
        other => Err(format!("scheme '{other}' is not redis://")),
    }
}

/// A comma-separated list of addresses or CIDR networks (`10.0.0.0/8, 192.0.2.7`).
fn parse_networks(s: &str) -> Result<Vec<ipnet::IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("'{p}' is not an IP address or CIDR network"))
        })
        .collect()
}

fn parse_algs(s: &str) -> Result<Vec<SigningAlgorithm>, String> {
    let mut algs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let alg: SigningAlgorithm = part.parse()?;
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if !algs.contains(&SigningAlgorithm::Rs256) {
        return Err("must include RS256, which every OpenID Provider supports for ID tokens (OIDC Core §15.1)".into());
    }
    Ok(algs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(&env(pairs), None)
    }

    fn refused_setting(pairs: &[(&str, &str)]) -> String {
        match load(pairs) {
            Ok(_) => String::from("<accepted>"),
            Err(e) => e.setting,
        }
    }

    #[test]
    fn defaults_describe_an_embedded_development_issuer() {
        let config = load(&[]).unwrap();
        assert_eq!(config.env, Environment::Development);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.issuer.as_str(), "http://localhost:8080/");
        assert_eq!(config.endpoint("/jwks"), "http://localhost:8080/jwks");
        assert_eq!(config.database_url, DatabaseUrl::Sqlite("sqlite://data/idp.db".into()));
        assert_eq!(config.keys_dir, PathBuf::from("keys"));
        assert!(config.generate_keys);
        assert!(config.redis_url.is_none());
        assert_eq!(config.access_token_ttl, Duration::from_secs(600));
        assert_eq!(config.access_token_audience, "http://localhost:8080", "the issuer by default");
    }

    #[test]
    fn each_malformed_value_is_refused_naming_its_variable() {
        // (variables, the setting named in the error, why it is refused)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("IDP_BIND", "localhost")], "IDP_BIND", "no port"),
            (&[("IDP_BIND", "")], "IDP_BIND", "empty"),
            (&[("IDP_ISSUER", "not a url")], "IDP_ISSUER", "not a URL"),
            (&[("IDP_ISSUER", "ftp://example.com")], "IDP_ISSUER", "not http(s)"),
            (&[("IDP_ISSUER", "https://example.com/")], "IDP_ISSUER", "trailing slash"),
            (&[("IDP_ISSUER", "https://example.com?a=b")], "IDP_ISSUER", "query"),
            (&[("IDP_ISSUER", "https://example.com#x")], "IDP_ISSUER", "fragment"),
            (&[("IDP_ISSUER", "https://example.com/idp")], "IDP_ISSUER", "a path"),
            (&[("IDP_DATABASE_URL", "mysql://db")], "IDP_DATABASE_URL", "unsupported database"),
            (&[("IDP_DATABASE_URL", "sqlite://")], "IDP_DATABASE_URL", "sqlite without a path"),
            (&[("IDP_KEYS_DIR", " ")], "IDP_KEYS_DIR", "blank path"),
            (&[("IDP_REDIS_URL", "http://cache")], "IDP_REDIS_URL", "not redis://"),
            (&[("IDP_REDIS_URL", "rediss://cache:6380")], "IDP_REDIS_URL", "TLS, which this build cannot speak"),
            (&[("IDP_ACCESS_TOKEN_TTL", "18446744073709551615")], "IDP_ACCESS_TOKEN_TTL", "overflows"),
            (&[("IDP_REFRESH_TOKEN_ABSOLUTE_TTL", "3651d")], "IDP_REFRESH_TOKEN_ABSOLUTE_TTL", "over ten years"),
            (&[("IDP_ENV", "staging")], "IDP_ENV", "unknown environment"),
            (&[("IDP_SIGNING_ALGS", "HS256")], "IDP_SIGNING_ALGS", "symmetric algorithm"),
            (&[("IDP_SIGNING_ALGS", "ES256")], "IDP_SIGNING_ALGS", "RS256 missing"),
            (&[("IDP_SIGNING_ALGS", "RS256")], "IDP_ACCESS_TOKEN_ALG", "the default ES256 has no key"),
            (&[("IDP_ACCESS_TOKEN_ALG", "EdDSA")], "IDP_ACCESS_TOKEN_ALG", "EdDSA not in the signing algorithms"),
            (&[("IDP_ACCESS_TOKEN_TTL", "10 minutes")], "IDP_ACCESS_TOKEN_TTL", "not a duration"),
            (&[("IDP_ID_TOKEN_TTL", "0")], "IDP_ID_TOKEN_TTL", "zero"),
            (&[("IDP_GENERATE_KEYS", "maybe")], "IDP_GENERATE_KEYS", "not a boolean"),
            (&[("IDP_BIDN", "127.0.0.1:1")], "IDP_BIDN", "unknown variable (typo)"),
            (&[("IDP_REFRESH_TOKEN_ABSOLUTE_TTL", "1d")], "IDP_REFRESH_TOKEN_ABSOLUTE_TTL", "shorter than sliding"),
            (&[("IDP_ACCESS_TOKEN_AUDIENCE", "a b")], "IDP_ACCESS_TOKEN_AUDIENCE", "space in audience"),
            (&[("IDP_TRUSTED_PROXIES", "10.0.0.0/33")], "IDP_TRUSTED_PROXIES", "bad prefix length"),
            (&[("IDP_TRUSTED_PROXIES", "proxy.local")], "IDP_TRUSTED_PROXIES", "a host name"),
            (&[("IDP_REDIS_KEY_PREFIX", "a b")], "IDP_REDIS_KEY_PREFIX", "space in prefix"),
        ];
        for (vars, setting, reason) in cases {
            assert_eq!(&refused_setting(vars), setting, "case: {reason}");
        }
    }

    #[test]
    fn a_redis_url_that_does_not_parse_is_refused_without_repeating_it() {
        let Err(error) = load(&[("IDP_REDIS_URL", "redis://:hunter2@[cache")]) else { panic!("accepted") };
        assert_eq!(error.setting, "IDP_REDIS_URL");
        assert!(!error.message.contains("hunter2"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn an_idp_variable_that_is_not_utf8_is_refused_by_name_and_others_are_ignored() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let not_text = || OsString::from_vec(vec![0xff, 0xfe]);
        let others = [(OsString::from("LANG_BYTES"), not_text()), (OsString::from("IDP_BIND"), "127.0.0.1:1".into())];
        let vars = prefixed_vars(others.into_iter()).unwrap();
        assert_eq!(vars.keys().collect::<Vec<_>>(), ["IDP_BIND"]);
        let idp = [(OsString::from("IDP_ISSUER"), not_text())];
        assert_eq!(prefixed_vars(idp.into_iter()).unwrap_err().setting, "IDP_ISSUER");
    }

    #[test]
    fn production_refuses_each_development_default() {
        let prod_ok = [
            ("IDP_ENV", "production"),
            ("IDP_ISSUER", "https://id.example.com"),
            ("IDP_DATABASE_URL", "postgres://idp@db/idp"),
        ];
        assert!(load(&prod_ok).is_ok());
        let with = |k: &'static str, v: &'static str| {
            let mut vars = prod_ok.to_vec();
            vars.retain(|(name, _)| *name != k);
            vars.push((k, v));
            refused_setting(&vars)
        };
        assert_eq!(with("IDP_ISSUER", "http://id.example.com"), "IDP_ISSUER", "http issuer on a public host");
        assert_eq!(with("IDP_DATABASE_URL", "sqlite://data/idp.db"), "IDP_DATABASE_URL", "sqlite");
        assert_eq!(with("IDP_GENERATE_KEYS", "true"), "IDP_GENERATE_KEYS", "key generation");
    }

    #[test]
    fn production_accepts_loopback_http_and_explicitly_allowed_sqlite() {
        let config = load(&[
            ("IDP_ENV", "production"),
            ("IDP_ISSUER", "http://127.0.0.1:8080"),
            ("IDP_DATABASE_URL", "sqlite://data/idp.db"),
            ("IDP_ALLOW_SQLITE_IN_PRODUCTION", "true"),
        ])
        .unwrap();
        assert!(!config.generate_keys, "production never generates keys by default");
    }

    #[test]
    fn trusted_proxies_accept_addresses_and_networks() {
        let config = load(&[("IDP_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,::1")]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(config.trusted_proxies[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn toml_file_is_read_and_environment_overrides_it() {
        let file =
            "bind = \"127.0.0.1:9000\"\nissuer = \"https://id.example.com\"\nsigning_algs = [\"RS256\", \"ES256\"]\n";
        let config =
            Config::from_sources(&env(&[("IDP_BIND", "127.0.0.1:9100")]), Some((Path::new("idp.toml"), file))).unwrap();
        assert_eq!(config.bind.port(), 9100, "the environment wins over the file");
        assert_eq!(config.issuer.as_str(), "https://id.example.com/");
        assert_eq!(config.signing_algs, vec![SigningAlgorithm::Rs256, SigningAlgorithm::Es256]);
        assert_eq!(config.access_token_alg, SigningAlgorithm::Es256);
    }

    #[test]
    fn toml_file_errors_name_the_key_and_the_file() {
        let err = Config::from_sources(&env(&[]), Some((Path::new("idp.toml"), "bnd = \"x\"\n"))).unwrap_err();
        assert_eq!(err.setting, "bnd (in idp.toml)");
        let err = Config::from_sources(&env(&[]), Some((Path::new("idp.toml"), "bind = \"x\"\n"))).unwrap_err();
        assert_eq!(err.setting, "bind (in idp.toml)");
        let err = Config::from_sources(&env(&[]), Some((Path::new("idp.toml"), "bind = \n"))).unwrap_err();
        assert!(err.setting.starts_with("--config"), "{err}");
    }
}
