//! The authorization-code grant's read and write, run in batches ([`super::batch`]) as the refresh grant's
//! are.
//!
//! Read: the code with its user, for every request of the batch in one `SELECT`.
//!
//! Write: spending the code, and writing the grant it makes with the grant's refresh token. Each redemption
//! spends its code only if no one spent it before, and writes its grant and refresh token only if it spent
//! the code: a code presented twice, in one batch or in two, makes one grant.
//! - SQLite: one script on the writer connection, `BEGIN IMMEDIATE`, three statements for the batch (see
//!   `redemptions_sql`), `COMMIT`. The grants' and the refresh tokens' inserts each check that the code now
//!   names the row's grant, whose id is new.
//! - PostgreSQL: one statement over separated lists (see `REDEEM_POSTGRES`).
//!
//! One hand-over to SQLite's thread (or one round trip) per batch, and one commit per batch of writes, where
//! an exchange took two reads and five statements in a transaction of its own.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};

use super::StorageError;
use super::batch::{
    Batcher, Job, KeyedRead, Script, is_postgres, read_by_key, separated, spent_by_first, spent_in_order,
};
use super::grants::{CODE_USE_SELECT, CODE_USES_SELECT_POSTGRES, CodeUse, CodeUseRow};
use crate::domain::grants::Grant;

/// The authorization-code grant's two batchers.
#[derive(Debug, Clone)]
pub(super) struct CodeBatches {
    reads: Batcher<FindCodeUse>,
    redemptions: Batcher<Redeem>,
}

impl CodeBatches {
    /// The batchers, each running its batches through its pool: SQLite's writer connection, or a PostgreSQL
    /// connection of its own.
    pub(super) fn start(reads: AnyPool, redemptions: AnyPool) -> CodeBatches {
        CodeBatches { reads: Batcher::start(reads), redemptions: Batcher::start(redemptions) }
    }

    /// [`super::Grants::find_code_use`].
    pub(super) async fn find_use(&self, code_hash: &str) -> Result<Option<CodeUse>, StorageError> {
        self.reads.run(FindCodeUse { code_hash: code_hash.to_owned() }).await?
    }

    /// [`super::Grants::redeem_code`].
    pub(super) async fn redeem(
        &self,
        code_hash: &str,
        grant: &Grant,
        refresh_token: Option<(&str, i64)>,
    ) -> Result<bool, StorageError> {
        let refresh_token = refresh_token.map(|(hash, expires_at)| (hash.to_owned(), expires_at));
        self.redemptions.run(Redeem { code_hash: code_hash.to_owned(), grant: grant.clone(), refresh_token }).await
    }
}

/// Reads a code with its user.
pub(super) struct FindCodeUse {
    code_hash: String,
}

impl Job for FindCodeUse {
    /// A row that no longer converts fails its own request only.
    type Outcome = Result<Option<CodeUse>, StorageError>;
    const NAME: &'static str = "authorization-code reads";
    const MAX_BATCH: usize = 64;

    async fn run(
        connection: &mut PoolConnection<Any>,
        jobs: &[FindCodeUse],
    ) -> Result<Vec<Self::Outcome>, StorageError> {
        let hashes: Vec<&str> = jobs.iter().map(|job| job.code_hash.as_str()).collect();
        read_by_key(connection, &CODE_USE_READ, &hashes).await
    }
}

/// The code and its user, by the code's hash.
const CODE_USE_READ: KeyedRead<CodeUseRow> = KeyedRead {
    select: CODE_USE_SELECT,
    select_postgres: CODE_USES_SELECT_POSTGRES,
    column: "c.code_hash",
    key_of: |row| row.code_hash.as_str(),
};

/// A code's redemption: spend `code_hash` and write `grant`, with `refresh_token` when there is one.
pub(super) struct Redeem {
    pub(super) code_hash: String,
    pub(super) grant: Grant,
    /// The refresh token's hash and expiry.
    pub(super) refresh_token: Option<(String, i64)>,
}

impl Job for Redeem {
    /// Whether this redemption spent the code (and so wrote its grant).
    type Outcome = bool;
    const NAME: &'static str = "authorization-code redemptions";
    /// Eleven parameters each on SQLite, far under its 32,766. Each size is a script of its own, prepared and
    /// kept in the writer connection's cache of 100 statements: these 32, the rotations' 32, the two reads' 7
    /// shapes each and the connection's other statements all fit, so no batch evicts another's script.
    const MAX_BATCH: usize = 32;

    async fn run(connection: &mut PoolConnection<Any>, jobs: &[Redeem]) -> Result<Vec<bool>, StorageError> {
        if is_postgres(connection) {
            return redeem_postgres(connection, jobs).await;
        }
        let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(redemptions_sql(jobs.len())));
        for job in jobs {
            let grant = &job.grant;
            query = query
                .bind(job.code_hash.as_str())
                .bind(grant.id.as_str())
                .bind(grant.client_id.as_str())
                .bind(grant.user_id.as_str())
                .bind(grant.scope.to_string())
                .bind(grant.sid.as_str())
                .bind(grant.auth_time)
                .bind(grant.created_at)
                .bind(grant.expires_at)
                .bind(job.refresh_token.as_ref().map(|(hash, _)| hash.as_str()))
                .bind(job.refresh_token.as_ref().map_or(0, |(_, expires_at)| *expires_at));
        }
        spent_in_order(connection, query, jobs.iter().map(|job| job.code_hash.as_str())).await
    }
}

/// `BEGIN IMMEDIATE`, three statements for the whole batch of `n` redemptions, then `COMMIT`:
/// - the `UPDATE` that spends the codes still unspent, each at its first redemption's time and with its grant
///   (a `CASE` takes its first match), and returns each once;
/// - the grants' `INSERT`, and the refresh tokens', each row written only if its code now names its grant,
///   whose id is new (so only the redemption that spent the code writes).
///
/// The `k`-th redemption (from 0) takes parameters `$11k+1` to `$11k+11`: code hash, grant id, client, user,
/// scope, sid, auth time, now, grant expiry, refresh-token hash (NULL for none), refresh-token expiry. Three
/// statements rather than three per redemption: sqlx's SQLite thread sends each statement's result and each
/// row as a message of its own, each a switch to the waiting task on a busy core (see [`super::refresh`]), so
/// a batch is n + 5 messages rather than 4n + 2.
fn redemptions_sql(n: usize) -> String {
    // The VALUES rows' columns are `column1`, `column2`…; the code and the grant come first in both.
    const REDEEMED: &str =
        "EXISTS (SELECT 1 FROM authorization_codes c WHERE c.code_hash = column1 AND c.grant_id = column2)";
    let mut script = Script::new(n, 11);
    script
        .push("BEGIN IMMEDIATE; UPDATE authorization_codes SET redeemed_at = ")
        .case("code_hash", 1, 8)
        .push(", grant_id = ")
        .case("code_hash", 1, 2)
        .push(" WHERE code_hash IN (")
        .list(1)
        .push(") AND redeemed_at IS NULL RETURNING code_hash; ")
        .push(
            "INSERT INTO grants (id, client_id, user_id, scope, sid, auth_time, created_at, expires_at) \
             SELECT column2, column3, column4, column5, column6, column7, column8, column9 FROM (VALUES ",
        )
        .rows(&[1, 2, 3, 4, 5, 6, 7, 8, 9])
        .push(") WHERE ")
        .push(REDEEMED)
        .push(
            "; INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             SELECT column3, column2, column4, column5 FROM (VALUES ",
        )
        .rows(&[1, 2, 10, 8, 11])
        .push(") WHERE column3 IS NOT NULL AND ")
        .push(REDEEMED)
        .push("; COMMIT");
    script.sql
}

/// The redemptions of a batch on PostgreSQL, each list in its parameter, separated by line breaks (scopes hold
/// spaces): $1 code hashes, $2 grant ids, $3 clients, $4 users, $5 scopes, $6 sids, $7 auth times, $8 times,
/// $9 grant expiries, $10 refresh-token hashes (`-` for none), $11 their expiries. One statement, on one
/// snapshot:
/// - `first`: each code's first redemption in the batch;
/// - `unspent`: the codes still unspent, locked in the order of their hashes, so that the batches of several
///   nodes cannot deadlock;
/// - the `UPDATE` that spends them, and the inserts of the grants (and refresh tokens) of the redemptions
///   that did.
const REDEEM_POSTGRES: &str = "WITH batch AS (\
       SELECT b.code_hash, b.grant_id, b.client_id, b.user_id, b.scope, b.sid, b.auth_time::bigint AS auth_time, \
              b.now::bigint AS now, b.expires_at::bigint AS expires_at, \
              NULLIF(b.refresh_hash, '-') AS refresh_hash, b.refresh_expires_at::bigint AS refresh_expires_at, b.k \
       FROM unnest(string_to_array($1, E'\\n'), string_to_array($2, E'\\n'), string_to_array($3, E'\\n'), \
                   string_to_array($4, E'\\n'), string_to_array($5, E'\\n'), string_to_array($6, E'\\n'), \
                   string_to_array($7, E'\\n'), string_to_array($8, E'\\n'), string_to_array($9, E'\\n'), \
                   string_to_array($10, E'\\n'), string_to_array($11, E'\\n')) \
            WITH ORDINALITY AS b(code_hash, grant_id, client_id, user_id, scope, sid, auth_time, now, expires_at, \
                                 refresh_hash, refresh_expires_at, k)), \
     first AS (SELECT DISTINCT ON (code_hash) * FROM batch ORDER BY code_hash, k), \
     unspent AS MATERIALIZED (SELECT code_hash FROM authorization_codes \
       WHERE code_hash IN (SELECT code_hash FROM batch) AND redeemed_at IS NULL ORDER BY code_hash FOR UPDATE), \
     redeemed AS (UPDATE authorization_codes c SET redeemed_at = f.now, grant_id = f.grant_id FROM first f \
       WHERE c.code_hash = f.code_hash AND c.code_hash IN (SELECT code_hash FROM unspent) \
         AND c.redeemed_at IS NULL RETURNING c.code_hash, c.grant_id), \
     new_grants AS (INSERT INTO grants (id, client_id, user_id, scope, sid, auth_time, created_at, expires_at) \
       SELECT f.grant_id, f.client_id, f.user_id, f.scope, f.sid, f.auth_time, f.now, f.expires_at \
       FROM first f JOIN redeemed r ON r.grant_id = f.grant_id), \
     new_refresh_tokens AS (INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
       SELECT f.refresh_hash, f.grant_id, f.now, f.refresh_expires_at \
       FROM first f JOIN redeemed r ON r.grant_id = f.grant_id WHERE f.refresh_hash IS NOT NULL) \
     SELECT code_hash FROM redeemed";

async fn redeem_postgres(connection: &mut PoolConnection<Any>, jobs: &[Redeem]) -> Result<Vec<bool>, StorageError> {
    let grants = || jobs.iter().map(|job| &job.grant);
    let spent: Vec<(String,)> = sqlx::query_as(REDEEM_POSTGRES)
        .bind(separated(jobs.iter().map(|job| job.code_hash.as_str()), '\n')?)
        .bind(separated(grants().map(|grant| grant.id.as_str()), '\n')?)
        .bind(separated(grants().map(|grant| grant.client_id.as_str()), '\n')?)
        .bind(separated(grants().map(|grant| grant.user_id.as_str()), '\n')?)
        .bind(separated(grants().map(|grant| &grant.scope), '\n')?)
        .bind(separated(grants().map(|grant| grant.sid.as_str()), '\n')?)
        .bind(separated(grants().map(|grant| grant.auth_time), '\n')?)
        .bind(separated(grants().map(|grant| grant.created_at), '\n')?)
        .bind(separated(grants().map(|grant| grant.expires_at), '\n')?)
        .bind(separated(
            jobs.iter().map(|job| job.refresh_token.as_ref().map_or("-", |(hash, _)| hash.as_str())),
            '\n',
        )?)
        .bind(separated(
            jobs.iter().map(|job| job.refresh_token.as_ref().map_or(0, |(_, expires_at)| *expires_at)),
            '\n',
        )?)
        .fetch_all(&mut **connection)
        .await?;
    // A statement fails whole, and each code it spent comes back once.
    Ok(spent_by_first(jobs.iter().map(|job| job.code_hash.as_str()), spent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Database;
    use crate::storage::contract_tests::{code_record, contract, grant, new_user, now, postgres, sqlite};
    use crate::storage::grants::CodeRecord;

    contract!(
        a_batch_of_code_reads_finds_each_code_with_its_user,
        a_batch_of_redemptions_spends_each_code_once_and_the_first_wins,
        a_batch_of_redemptions_with_a_failing_write_writes_nothing,
        a_redemption_writes_its_grant_and_refresh_token_whole,
    );

    #[test]
    fn redemptions_sql_numbers_each_redemption_parameters_from_where_the_last_stopped() {
        let sql = redemptions_sql(2);
        assert!(sql.starts_with("BEGIN IMMEDIATE; UPDATE authorization_codes SET redeemed_at = CASE code_hash"));
        assert!(sql.contains("CASE code_hash WHEN $1 THEN $8 WHEN $12 THEN $19 END"), "{sql}");
        assert!(sql.contains("CASE code_hash WHEN $1 THEN $2 WHEN $12 THEN $13 END"), "{sql}");
        assert!(sql.contains("WHERE code_hash IN ($1, $12) AND redeemed_at IS NULL RETURNING code_hash"), "{sql}");
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9), ($12, $13, $14, $15, $16, $17, $18, $19, $20)"));
        assert!(sql.contains("($1, $2, $10, $8, $11), ($12, $13, $21, $19, $22)"), "{sql}");
        assert!(sql.ends_with("; COMMIT"), "{sql}");
        assert_eq!(sql.matches("INSERT").count(), 2);
    }

    /// Codes `c0`, `c1`… `c{n-1}`, unspent.
    async fn codes(db: &Database, n: usize) {
        for i in 0..n {
            db.grants().insert_code(&format!("c{i}"), &code_record(), 1).await.unwrap();
        }
    }

    /// Redeems `code` into grant `grant_id`, with refresh token `refresh` when given.
    fn redeem(code: &str, grant_id: &str, refresh: Option<&str>) -> Redeem {
        Redeem {
            code_hash: code.into(),
            grant: grant(grant_id),
            refresh_token: refresh.map(|hash| (hash.into(), 1000)),
        }
    }

    /// Runs `jobs` as one batch, as the batcher would, on a connection of the pool.
    async fn one_batch<J: Job>(db: &Database, jobs: &[J]) -> Result<Vec<J::Outcome>, StorageError> {
        J::run(&mut db.pool().acquire().await.unwrap(), jobs).await
    }

    async fn a_batch_of_code_reads_finds_each_code_with_its_user(db: Database) {
        let user = db.users().insert(&new_user("holder@example.com"), now()).await.unwrap();
        let grants = db.grants();
        grants.insert_code("mine", &CodeRecord { user_id: user.id.to_string(), ..code_record() }, 1).await.unwrap();
        grants.insert_code("orphan", &code_record(), 1).await.unwrap();
        grants.insert_code("spent", &CodeRecord { user_id: user.id.to_string(), ..code_record() }, 1).await.unwrap();
        assert!(grants.redeem_code("spent", &grant("g"), None).await.unwrap());
        let reads = ["mine", "orphan", "unknown", "spent", "mine"].map(|hash| FindCodeUse { code_hash: hash.into() });
        let found: Vec<Option<(bool, Option<String>)>> = one_batch(&db, &reads)
            .await
            .unwrap()
            .into_iter()
            .map(|read| read.unwrap().map(|found| (found.redeemed, found.user.map(|u| u.email.to_string()))))
            .collect();
        let holder = Some("holder@example.com".to_owned());
        // A code read twice is found for both; a code whose user is gone is found without one.
        let expected = [
            Some((false, holder.clone())),
            Some((false, None)),
            None,
            Some((true, holder.clone())),
            Some((false, holder)),
        ];
        assert_eq!(found, expected);
    }

    async fn grant_exists(db: &Database, id: &str) -> bool {
        db.grants().user_access_token_active(id, &format!("{id}.a")).await.unwrap().is_some()
    }

    async fn a_batch_of_redemptions_spends_each_code_once_and_the_first_wins(db: Database) {
        codes(&db, 2).await;
        let jobs = [
            redeem("c0", "g0", Some("rt0")),
            redeem("c1", "g1", None),
            redeem("c1", "g2", Some("rt2")),
            redeem("unknown", "g3", Some("rt3")),
        ];
        assert_eq!(one_batch(&db, &jobs).await.unwrap(), [true, true, false, false]);
        let grants = db.grants();
        assert_eq!(grants.grant_of_redeemed_code("c1").await.unwrap().as_deref(), Some("g1"), "the first wins");
        let made = [grant_exists(&db, "g0").await, grant_exists(&db, "g1").await];
        let not_made = [grant_exists(&db, "g2").await, grant_exists(&db, "g3").await];
        assert_eq!((made, not_made), ([true, true], [false, false]));
        assert_eq!(grants.find_refresh_token("rt0").await.unwrap().expect("g0's refresh token").grant.id, "g0");
        for hash in ["rt2", "rt3"] {
            assert!(grants.find_refresh_token(hash).await.unwrap().is_none(), "{hash} is not written");
        }
        let (g1_tokens,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM refresh_tokens WHERE grant_id = 'g1'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(g1_tokens, 0, "a redemption without a refresh token writes none");
    }

    /// Every field of the grant and of its refresh token is written where it belongs.
    async fn a_redemption_writes_its_grant_and_refresh_token_whole(db: Database) {
        codes(&db, 1).await;
        let made = Grant {
            client_id: "the-client".into(),
            user_id: "the-user".into(),
            sid: "the-sid".into(),
            auth_time: 7,
            created_at: 8,
            expires_at: 9_000,
            ..grant("g0")
        };
        let job = Redeem { code_hash: "c0".into(), grant: made.clone(), refresh_token: Some(("rt0".into(), 900)) };
        assert_eq!(one_batch(&db, &[job]).await.unwrap(), [true]);
        let stored = db.grants().find_refresh_token("rt0").await.unwrap().expect("the refresh token");
        assert_eq!((stored.expires_at, stored.rotated_at), (900, None));
        let written =
            |g: &Grant| (g.id.clone(), g.client_id.clone(), g.user_id.clone(), g.scope.to_string(), g.sid.clone());
        assert_eq!(written(&stored.grant), written(&made));
        let times = |g: &Grant| (g.auth_time, g.created_at, g.expires_at, g.revoked_at);
        assert_eq!(times(&stored.grant), times(&made));
        let code = db.grants().find_code_use("c0").await.unwrap().unwrap();
        assert!(code.redeemed);
        let (redeemed_at,): (i64,) =
            sqlx::query_as("SELECT redeemed_at FROM authorization_codes WHERE code_hash = 'c0'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(redeemed_at, 8, "spent at the grant's creation");
    }

    /// Two nodes' batches redeeming the same two codes in opposite orders (as
    /// `refresh::tests::postgres_batches_of_two_nodes_with_the_same_tokens_do_not_deadlock` for rotations):
    /// locking in the order of the hashes, one batch spends both codes and the other neither.
    #[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
    #[sqlx::test(migrations = false)]
    async fn postgres_batches_of_two_nodes_with_the_same_codes_do_not_deadlock(
        _: sqlx::postgres::PgPoolOptions,
        options: sqlx::postgres::PgConnectOptions,
    ) {
        use sqlx::{ConnectOptions, Connection};
        let (node_a, node_b) = (postgres(options.clone()).await, postgres(options.clone()).await);
        codes(&node_a, 2).await;
        let mut holder = options.connect().await.unwrap();
        let mut holding = holder.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM authorization_codes WHERE code_hash = 'c1' FOR UPDATE")
            .execute(&mut *holding)
            .await
            .unwrap();
        let batch = |db: Database, jobs: [Redeem; 2]| tokio::spawn(async move { one_batch(&db, &jobs).await });
        let b = batch(node_b, [redeem("c1", "b1", None), redeem("c0", "b0", None)]);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let a = batch(node_a, [redeem("c0", "a0", None), redeem("c1", "a1", None)]);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        holding.commit().await.unwrap();
        let (a, b) = (a.await.unwrap().expect("node A's batch"), b.await.unwrap().expect("node B's batch"));
        let spent = [a, b].map(|outcomes| outcomes.iter().filter(|spent| **spent).count());
        assert!(spent == [2, 0] || spent == [0, 2], "one batch spends both codes: {spent:?}");
    }

    async fn a_batch_of_redemptions_with_a_failing_write_writes_nothing(db: Database) {
        codes(&db, 2).await;
        let mut tx = db.grants().begin().await.unwrap();
        tx.insert_grant(&grant("taken")).await.unwrap();
        tx.commit().await.unwrap();
        // c1's grant would take an existing grant's id: its insert fails, and with it the whole batch.
        let outcome = one_batch(&db, &[redeem("c0", "g0", Some("rt0")), redeem("c1", "taken", None)]).await;
        assert!(outcome.is_err(), "the batch fails");
        for code in ["c0", "c1"] {
            assert!(!db.grants().find_code_use(code).await.unwrap().unwrap().redeemed, "{code} is left unspent");
        }
        assert!(!grant_exists(&db, "g0").await, "no grant written");
        assert!(db.grants().find_refresh_token("rt0").await.unwrap().is_none(), "no refresh token written");
        assert!(db.grants().redeem_code("c0", &grant("g0"), None).await.unwrap(), "writes go on");
    }
}
