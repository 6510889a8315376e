//! The same suite against a real PostgreSQL server and real SQLite files.
//!
//! PostgreSQL: `TRITON_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) must reach a server where
//! the user may create databases; each test makes its own throw-away database
//! and drops it. The tests fail, never skip, when the server is missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use triton_checkpoint::{OpenError, SqlCheckpoints};
use triton_core::checkpoint::{conformance, Checkpoint, CheckpointStore, IntentId, IntentStore};
use triton_core::source::SequenceNumber;
use triton_tests::TempDir;

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A throw-away database on the test server, dropped by `drop_db`.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("TRITON_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn sql(url: &str, statements: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL at {url} (set TRITON_TEST_POSTGRES): {e}")
        });
    let task = tokio::spawn(conn);
    client.batch_execute(statements).await.expect(statements);
    drop(client);
    let _ = task.await;
}

impl PgDb {
    async fn new() -> PgDb {
        let admin = admin_url();
        let name = unique("triton_test");
        sql(&admin, &format!("CREATE DATABASE {name}")).await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}?sslmode=disable");
        PgDb { admin, name, url }
    }

    async fn drop_db(self) {
        sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

fn seq(n: u64) -> SequenceNumber {
    conformance::sequence(n)
}

/// The intent `key` of the client "store" on stream "s".
fn intent_id(key: &str) -> IntentId<'_> {
    IntentId {
        client: "store",
        stream: "s",
        key,
    }
}

fn cp(client: &str, shard: &str, n: u64) -> Checkpoint {
    Checkpoint {
        client: client.into(),
        stream: "s".into(),
        shard: shard.into(),
        sequence: seq(n),
    }
}

async fn suite(store: Arc<SqlCheckpoints>) {
    conformance::run(store.as_ref(), "suite-").await;
    conformance::intents(store.as_ref(), "intents").await;
    conformance::replays(store.as_ref(), "replays").await;
    conformance::concurrent_saves(store.clone(), "concurrent").await;
    let err = store.save(&cp("c", &"x".repeat(256), 1)).await.unwrap_err();
    assert!(err.to_string().contains("longer than 255"), "{err}");
    // A batch naming one shard twice keeps the last value.
    store
        .save_many(&[cp("dup", "a", 1), cp("dup", "a", 2)])
        .await
        .expect("duplicate shard in one batch");
    assert_eq!(store.last("dup", "s", "a").await.unwrap(), Some(seq(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let db = PgDb::new().await;
    suite(Arc::new(SqlCheckpoints::open(&db.url).await.expect("open"))).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = TempDir::new("checkpoint");
    let url = format!("sqlite://{}", dir.join("cp.db").display());
    suite(Arc::new(SqlCheckpoints::open(&url).await.expect("open"))).await;
}

/// A trigger makes the last row of a save_many fail. The batch is larger
/// than one INSERT statement holds, so only the transaction can keep the
/// first rows at their earlier values.
async fn half_failed_save_many_changes_nothing(store: &SqlCheckpoints) {
    store.save(&cp("atomic", "a", 1)).await.expect("save");
    // Sorted by shard before saving: "a" comes first, "zz-poison" last.
    let mut batch = vec![cp("atomic", "a", 2)];
    batch.extend((0..12_000).map(|i| cp("atomic", &format!("m{i:05}"), 2)));
    batch.push(cp("atomic", "zz-poison", 3));
    let err = store
        .save_many(&batch)
        .await
        .expect_err("the trigger refuses shard 'zz-poison'");
    assert!(chain(&err).contains("poison"), "{}", chain(&err));
    assert_eq!(store.last("atomic", "s", "a").await.unwrap(), Some(seq(1)));
    assert_eq!(store.last("atomic", "s", "m00000").await.unwrap(), None);
    assert_eq!(store.last("atomic", "s", "zz-poison").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_save_many_is_all_or_nothing() {
    let db = PgDb::new().await;
    let store = SqlCheckpoints::open(&db.url).await.expect("open");
    sql(
        &db.url,
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
         BEGIN
           IF NEW.shard = 'zz-poison' THEN RAISE EXCEPTION 'poison refused'; END IF;
           RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON triton_checkpoint
           FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await;
    half_failed_save_many_changes_nothing(&store).await;
    drop(store);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_save_many_is_all_or_nothing() {
    let dir = TempDir::new("checkpoint");
    let path = dir.join("cp.db");
    let store = SqlCheckpoints::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    sqlite(
        &path,
        "CREATE TRIGGER refuse BEFORE INSERT ON triton_checkpoint WHEN NEW.shard = 'zz-poison' \
         BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
    );
    half_failed_save_many_changes_nothing(&store).await;
}

/// Runs SQL on an SQLite file through a connection of its own.
fn sqlite(path: &std::path::Path, statements: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::SqliteConnection::establish(path.to_str().expect("utf-8 path"))
        .expect("open sqlite");
    conn.batch_execute(statements).expect(statements);
}

fn fixture_db() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/go-triton/checkpoint.db")
}

const SHARD0: &str = "49590338271490256608559692540779422735150834407427833858";
const SHARD1: &str = "49590338271512557353758223161503106814194224637498097682";
const OTHER0: &str = "49590338271490256608559692538361571095921575989136588802";

/// The go-triton database: rows read as go-triton wrote them, saves update
/// them in place, other clients' rows untouched.
async fn go_triton_rows_work_unchanged(url: &str) {
    let store = SqlCheckpoints::open(url).await.expect("open");
    let stream = "user_activity_prod";
    let last = |shard: &'static str| {
        let store = &store;
        async move { store.last("store", stream, shard).await.expect("last") }
    };
    assert_eq!(
        last("shardId-000000000000").await,
        Some(SequenceNumber::new(SHARD0).unwrap())
    );
    assert_eq!(
        last("shardId-000000000001").await,
        Some(SequenceNumber::new(SHARD1).unwrap())
    );
    assert_eq!(last("shardId-000000000002").await, None);
    let list = store.list("store").await.expect("list");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s.updated == 1_795_962_400));

    let newer = Checkpoint {
        client: "store".into(),
        stream: stream.into(),
        shard: "shardId-000000000000".into(),
        sequence: SequenceNumber::new(format!("{SHARD0}1")).unwrap(),
    };
    let before = triton_core::checkpoint::unix_now();
    store.save(&newer).await.expect("save");
    let list = store.list("store").await.expect("list");
    assert_eq!(list.len(), 2, "updated in place, no new row");
    assert_eq!(list[0].checkpoint, newer);
    assert!(
        list[0].updated >= before,
        "updated not rewritten: {}",
        list[0].updated
    );
    assert_eq!(
        list[1].updated, 1_795_962_400,
        "the other shard's row untouched"
    );
    let other = store
        .last("other", stream, "shardId-000000000000")
        .await
        .unwrap();
    assert_eq!(other, Some(SequenceNumber::new(OTHER0).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_go_triton_database() {
    let dir = TempDir::new("checkpoint");
    let path = dir.join("checkpoint.db");
    std::fs::copy(fixture_db(), &path).expect("copy fixture");
    go_triton_rows_work_unchanged(&format!("sqlite://{}", path.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_go_triton_table() {
    let db = PgDb::new().await;
    // The table as go-triton created it, with its rows, before we open it.
    sql(
        &db.url,
        &format!(
            "CREATE TABLE triton_checkpoint (
               client VARCHAR(255) NOT NULL, stream VARCHAR(255) NOT NULL,
               shard VARCHAR(255) NOT NULL, seq_num VARCHAR(255) NOT NULL,
               updated INTEGER NOT NULL, PRIMARY KEY (client, stream, shard));
             INSERT INTO triton_checkpoint VALUES
               ('store', 'user_activity_prod', 'shardId-000000000000', '{SHARD0}', 1795962400),
               ('store', 'user_activity_prod', 'shardId-000000000001', '{SHARD1}', 1795962400),
               ('other', 'user_activity_prod', 'shardId-000000000000', '{OTHER0}', 1795962400);"
        ),
    )
    .await;
    go_triton_rows_work_unchanged(&db.url).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_float_updated_written_by_python_is_read() {
    let dir = TempDir::new("checkpoint");
    let path = dir.join("py.db");
    let url = format!("sqlite://{}", path.display());
    SqlCheckpoints::open(&url).await.expect("create");
    sqlite(
        &path,
        &format!(
            "INSERT INTO triton_checkpoint VALUES ('py', 's', 'shard', '{SHARD0}', 1795962400.75)"
        ),
    );
    let store = SqlCheckpoints::open_existing(&url).await.expect("open");
    let list = store.list("py").await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].updated, 1_795_962_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_absolute_and_relative_paths_are_honoured() {
    let dir = TempDir::new("checkpoint");
    let abs = dir.join("nested-abs.db");
    assert!(abs.is_absolute());
    SqlCheckpoints::open(&format!("sqlite://{}", abs.display()))
        .await
        .expect("open abs");
    assert!(abs.exists(), "sqlite:///abs/path creates the file there");

    // A relative path is relative to the working directory.
    let cwd = std::env::current_dir().expect("cwd");
    let up = "../".repeat(cwd.components().count() - 1);
    let rel = format!(
        "{up}{}/rel.db",
        dir.path().strip_prefix("/").unwrap().display()
    );
    SqlCheckpoints::open(&format!("sqlite://{rel}"))
        .await
        .expect("open rel");
    assert!(dir.join("rel.db").exists());
}

/// An error and its causes joined by ": ", as a chain printer shows it:
/// the driver's error is the source of a `CheckpointError`, not part of
/// its Display text.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_existing_changes_nothing_and_says_what_is_missing() {
    let dir = TempDir::new("checkpoint");
    let missing = dir.join("missing.db");
    let err = SqlCheckpoints::open_existing(&format!("sqlite://{}", missing.display()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!missing.exists(), "open_existing created a file");

    // A database without the table: an error naming it at the first query.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").expect("empty file");
    let store = SqlCheckpoints::open_existing(&format!("sqlite://{}", empty.display()))
        .await
        .expect("open");
    let err = store.list("store").await.unwrap_err();
    assert!(chain(&err).contains("triton_checkpoint"), "{}", chain(&err));
    assert!(!err.is_retryable());

    let db = PgDb::new().await;
    let store = SqlCheckpoints::open_existing(&db.url).await.expect("open");
    let err = store.list("store").await.unwrap_err();
    assert!(chain(&err).contains("triton_checkpoint"), "{}", chain(&err));
    drop(store);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retryable_and_the_password_stays_secret() {
    // Port 1 on loopback: nothing listens there.
    let err = SqlCheckpoints::open("postgres://triton:hunter2@127.0.0.1:1/db?sslmode=disable")
        .await
        .unwrap_err();
    let OpenError::Database(e) = &err else {
        panic!("expected a database error, got {err}")
    };
    assert!(e.is_retryable(), "{e}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("triton:***@127.0.0.1:1"), "{shown}");
    }
    // The server answers and refuses: retrying cannot help.
    let base = admin_url();
    let base = base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b);
    let err = SqlCheckpoints::open(&format!("{base}/triton_no_such_database?sslmode=disable"))
        .await
        .unwrap_err();
    let OpenError::Database(e) = &err else {
        panic!("expected a database error, got {err}")
    };
    assert!(!e.is_retryable(), "{e}");
    assert!(chain(e).contains("triton_no_such_database"), "{}", chain(e));

    let err = SqlCheckpoints::open("mysql://x/y").await.unwrap_err();
    assert!(matches!(err, OpenError::Url(_)), "{err}");
}

mod leases {
    use std::time::Duration;

    use triton_core::checkpoint::{CheckpointError, UploadIntent};
    use triton_core::lease::{Fence, Held, LeaseScope, LeaseState, LeaseStore, ShardSpec};

    use super::*;

    fn scope() -> LeaseScope {
        LeaseScope {
            client: "store".into(),
            stream: "s".into(),
        }
    }

    fn intent(key: &str) -> UploadIntent {
        UploadIntent {
            client: "store".into(),
            stream: "s".into(),
            key: key.into(),
            document: "{}".into(),
        }
    }

    /// Takeover, expiry, fencing and key ownership, on one backend.
    async fn suite(db: &SqlCheckpoints) {
        let scope = scope();
        let shards: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let specs: Vec<ShardSpec> = shards
            .iter()
            .map(|s| ShardSpec {
                shard: s.clone(),
                parents: Vec::new(),
            })
            .chain([ShardSpec {
                shard: "child".into(),
                parents: vec!["a".into()],
            }])
            .collect();
        db.add_shards(&scope, &specs).await.unwrap();
        // Adding again changes nothing.
        db.add_shards(&scope, &specs).await.unwrap();
        let long = Duration::from_secs(60);
        db.renew(&scope, "w1", &[], &[], long).await.unwrap();
        let w1 = db.acquire(&scope, "w1", &shards, 2, long).await.unwrap();
        assert_eq!(w1.len(), 2, "{w1:?}");
        assert!(w1.iter().all(|h| h.epoch == 1));
        // A held lease is not taken by another worker.
        let w2 = db.acquire(&scope, "w2", &shards, 3, long).await.unwrap();
        assert_eq!(w2.len(), 1, "{w2:?}");
        assert_eq!(w2[0].shard, "c");
        // Renewal keeps what is held at its epoch.
        let kept = db.renew(&scope, "w1", &w1, &[], long).await.unwrap();
        assert_eq!(kept, w1);

        // Fenced writes pass while the fence holds.
        let fence1 = Fence::new("w1", &w1);
        db.record_intent_fenced(&intent("k1"), None, &fence1)
            .await
            .unwrap();
        // The key of another worker's live intent is refused to others.
        let fence2 = Fence::new("w2", &w2);
        assert!(matches!(
            db.record_intent_fenced(&intent("k1"), None, &fence2).await,
            Err(CheckpointError::KeyTaken { .. })
        ));
        // Nor can it be claimed while its writer holds its leases.
        assert!(!db.claim_intent(intent_id("k1"), &fence2).await.unwrap());
        let listed = db.fenced_intents("store", "s").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.as_ref(), Some(&fence1));

        // Two workers recording one fresh key at the same moment: exactly
        // one gets it (PostgreSQL once let the second take the first's
        // intent over, so the first's archive was never finished).
        for i in 0..20 {
            let key = format!("race{i}");
            let (one, two) = (intent(&key), intent(&key));
            let (a, b) = tokio::join!(
                db.record_intent_fenced(&one, None, &fence1),
                db.record_intent_fenced(&two, None, &fence2),
            );
            let winner = match (&a, &b) {
                (Ok(()), Err(CheckpointError::KeyTaken { .. })) => &fence1,
                (Err(CheckpointError::KeyTaken { .. }), Ok(())) => &fence2,
                other => panic!("{key}: {other:?}"),
            };
            db.complete_intent_fenced(intent_id(&key), &[], winner)
                .await
                .unwrap();
        }

        // w1 stops renewing with a short lease: it expires on the
        // database's clock and w2 takes it with a new epoch.
        let short = Duration::from_millis(300);
        db.renew(&scope, "w1", &w1, &[], short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let table = db.leases(&scope).await.unwrap();
        assert!(table
            .leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some("w1"))
            .all(|l| l.expired));
        let taken = db
            .acquire(&scope, "w2", &[w1[0].shard.clone()], 1, long)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].epoch, 2, "a change of owner raises the epoch");
        // An expired lease is not renewed, even the one nobody took.
        let renewed = db.renew(&scope, "w1", &w1, &[], long).await.unwrap();
        assert!(renewed.is_empty(), "{renewed:?}");

        // The old owner's writes fail the fence, and nothing is written.
        let cp = super::cp("store", &w1[0].shard, 9);
        let refused = db
            .complete_intent_fenced(intent_id("k1"), std::slice::from_ref(&cp), &fence1)
            .await;
        assert!(
            matches!(refused, Err(CheckpointError::Fenced { .. })),
            "{refused:?}"
        );
        assert_eq!(db.last("store", "s", &w1[0].shard).await.unwrap(), None);
        assert!(matches!(
            db.save_many_fenced(std::slice::from_ref(&cp), &fence1)
                .await,
            Err(CheckpointError::Fenced { .. })
        ));
        assert!(matches!(
            db.record_intent_fenced(&intent("k2"), None, &fence1).await,
            Err(CheckpointError::Fenced { .. })
        ));
        // Its intent is now orphaned, yet its key is still not another
        // worker's to record: only a claim takes it over.
        let w2_all: Vec<_> = w2.iter().chain(&taken).cloned().collect();
        let fence2 = Fence::new("w2", &w2_all);
        assert!(matches!(
            db.record_intent_fenced(&intent("k1"), None, &fence2).await,
            Err(CheckpointError::KeyTaken { .. })
        ));
        assert!(db.claim_intent(intent_id("k1"), &fence2).await.unwrap());
        db.record_intent_fenced(&intent("k1"), None, &fence2)
            .await
            .unwrap();
        assert!(!db.claim_intent(intent_id("gone"), &fence2).await.unwrap());
        db.complete_intent_fenced(intent_id("k1"), std::slice::from_ref(&cp), &fence2)
            .await
            .unwrap();
        assert_eq!(
            db.last("store", "s", &w1[0].shard).await.unwrap(),
            Some(seq(9))
        );
        assert!(db.intents("store", "s").await.unwrap().is_empty());

        // A child is takeable once its parent ended.
        let table = db.leases(&scope).await.unwrap();
        let child = table.leases.iter().find(|l| l.shard == "child").unwrap();
        assert_eq!(child.parents, ["a"]);
        let a_owner = table.leases.iter().find(|l| l.shard == "a").unwrap();
        assert!(!child.takeable_by(&table.leases, "w2"));
        let a_held = w2_all.iter().chain(&w1).find(|h| h.shard == "a").unwrap();
        let owner = a_owner.owner.clone().unwrap();
        db.mark_ended(&scope, &owner, a_held).await.unwrap();
        db.release(&scope, &owner, std::slice::from_ref(a_held))
            .await
            .unwrap();
        let table = db.leases(&scope).await.unwrap();
        let a = table.leases.iter().find(|l| l.shard == "a").unwrap();
        assert_eq!((a.state, a.owner.as_deref()), (LeaseState::Ended, None));
        let child = table.leases.iter().find(|l| l.shard == "child").unwrap();
        assert!(child.takeable_by(&table.leases, "w2"));

        // A lease handed over is for its target alone while the handoff lasts.
        let b = table.leases.iter().find(|l| l.shard == "b").unwrap();
        let b_owner = b.owner.clone().unwrap();
        let b_held = Held {
            shard: "b".into(),
            epoch: b.epoch,
        };
        db.hand_over(&scope, &b_owner, &b_held, "w3", long)
            .await
            .unwrap();
        let table = db.leases(&scope).await.unwrap();
        let b = table.leases.iter().find(|l| l.shard == "b").unwrap();
        assert_eq!(
            (b.owner.as_deref(), b.handoff_to.as_deref()),
            (None, Some("w3"))
        );
        assert!(!b.takeable_by(&table.leases, "w2"));
        assert!(b.takeable_by(&table.leases, "w3"));
        let refused = db
            .acquire(&scope, "w2", &["b".to_owned()], 1, long)
            .await
            .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        let got = db
            .acquire(&scope, "w3", &["b".to_owned()], 1, long)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let table = db.leases(&scope).await.unwrap();
        let b = table.leases.iter().find(|l| l.shard == "b").unwrap();
        assert_eq!(
            (b.owner.as_deref(), b.handoff_to.as_deref()),
            (Some("w3"), None)
        );

        // Live workers: w1 joined with a long heartbeat earlier, then a
        // short one that ran out; w2 never sent one. Leaving removes.
        db.renew(&scope, "w3", &[], &[], long).await.unwrap();
        let workers: Vec<String> = db
            .leases(&scope)
            .await
            .unwrap()
            .workers
            .into_iter()
            .map(|w| w.worker)
            .collect();
        assert!(workers.contains(&"w3".to_owned()), "{workers:?}");
        db.leave(&scope, "w3").await.unwrap();
        let workers = db.leases(&scope).await.unwrap().workers;
        assert!(workers.iter().all(|w| w.worker != "w3"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_leases_fence_and_expire() {
        let pg = PgDb::new().await;
        let db = SqlCheckpoints::open(&pg.url).await.unwrap();
        suite(&db).await;
        drop(db);
        pg.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_leases_fence_and_expire() {
        let dir = TempDir::new("checkpoint");
        let db = SqlCheckpoints::open(&format!("sqlite://{}/l.db", dir.path().display()))
            .await
            .unwrap();
        suite(&db).await;
    }
}
