//! A throw-away PostgreSQL database for the benchmarks, on the server at
//! `TRITON_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`).

pub struct TempDatabase {
    admin: String,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl TempDatabase {
    /// Creates `<prefix>_<pid>`.
    pub fn create(rt: &tokio::runtime::Runtime, prefix: &str) -> TempDatabase {
        let admin = std::env::var("TRITON_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("{prefix}_{}", std::process::id());
        rt.block_on(sql(&admin, &format!("CREATE DATABASE {name}")));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}?sslmode=disable");
        TempDatabase { admin, name, url }
    }

    /// Drops it (close every store of it first).
    pub fn drop_db(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(sql(
            &self.admin,
            &format!("DROP DATABASE {} WITH (FORCE)", self.name),
        ));
    }
}

async fn sql(url: &str, statement: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    let task = tokio::spawn(conn);
    client.batch_execute(statement).await.expect(statement);
    drop(client);
    let _ = task.await;
}
