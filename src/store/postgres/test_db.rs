//! A database of one test's own on a PostgreSQL server, for the store's
//! conformance tests and the server's integration tests: created on the
//! server `MCP_AUTH_TEST_POSTGRES` names (default this project's
//! machines', trust auth), dropped when it goes out of scope, also when
//! the test fails, so tests run in parallel and leave nothing behind.
//! Test support, not part of the supported API.

/// The server used when `MCP_AUTH_TEST_POSTGRES` names none.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server's admin URL: `MCP_AUTH_TEST_POSTGRES`, or the default.
pub fn admin_url() -> String {
    std::env::var("MCP_AUTH_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A connection to `url`.
///
/// # Errors
/// A message saying which server cannot be reached and how to start this
/// machine's.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Ok(client)
        }
        Err(e) => Err(format!(
            "\n\nthe PostgreSQL tests need a PostgreSQL server at {url} \
             (MCP_AUTH_TEST_POSTGRES overrides it), and cannot reach it: {e}\n\
             start this machine's with:\n    \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             (sudo when not root; check with `pg_isready -h 127.0.0.1`)\n\n"
        )),
    }
}

/// A database of its own for one test; dropped with it.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `mcp_auth_test_<16 random hex>` on the admin server.
    ///
    /// # Errors
    /// The server cannot be reached, or refuses.
    pub async fn create() -> Result<Self, String> {
        let admin_url = admin_url();
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let name = format!("mcp_auth_test_{}", crate::secret::hex(&bytes));
        connect(&admin_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create {name}: {e}"))?;
        let mut url =
            url::Url::parse(&admin_url).map_err(|e| format!("MCP_AUTH_TEST_POSTGRES: {e}"))?;
        url.set_path(&name);
        Ok(TestDatabase {
            admin: admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Dropped on a failing test too; its own runtime, as the test's
        // may be gone. FORCE ends the pool's connections.
        let admin_url = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                connect(&admin_url)
                    .await?
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
