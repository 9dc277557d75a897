//! A PostgreSQL server of the tests' own, from the machine's server binaries
//! (`scripts/pg-server.sh`: `initdb` into a temporary folder, as the `postgres` user when the
//! tests run as root, `pg_ctl start` on a free loopback port with its socket in that folder,
//! stopped and removed when the process it watches ends). nextest starts one for a whole run
//! (`.config/nextest.toml`, a setup script) and hands its URL to every test process in
//! `$SMITHERS_TEST_PG_URL`; without it (`cargo test`), each test process starts its own.
//! Every test gets a schema of its own (`?schema=t_<pid>_<n>_<nanos>`).
//!
//! No server binaries is a failure that says how to get them, never a silent skip.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Starts a server (`scripts/pg-server.sh`) that lives until the process `watch` ends;
/// returns its URL.
pub fn start_server(watch: u32) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-server.sh");
    let out = Command::new(&script)
        .arg(watch.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{} did not start: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The server of this test process (or of the whole run).
pub fn server_url() -> &'static str {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var("SMITHERS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_server(std::process::id()),
    });
    match url {
        Ok(url) => url,
        Err(why) => panic!("cannot run the PostgreSQL tests: {why}"),
    }
}

/// A URL naming a schema no other test uses (the engine creates it).
pub fn fresh_url() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let base = server_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema=t_{}_{n}_{nanos}", std::process::id())
}

/// A client of the server with `search_path` set to the schema of `url`, connected as the
/// store connects (the URL's `sslmode` and certificates honoured).
pub fn client(url: &str) -> postgres::Client {
    smithers_core::store::pg_client(url).expect("connect to the test server")
}

/// A server of the caller's alone that speaks TLS (`scripts/pg-server.sh` with
/// `SMITHERS_PG_SSL=on`, or `only`: TCP clients over TLS only), living until this process
/// ends; its URL and the folder of its certificates (`ca.crt`, `other-ca.crt`,
/// `client.crt` / `client.key` for the user `certuser`).
pub struct TlsServer {
    pub url: String,
    pub port: String,
    pub tls: std::path::PathBuf,
}

impl TlsServer {
    pub fn start(ssl: &str) -> TlsServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-server.sh");
        let info = tempfile::NamedTempFile::new().expect("a temporary file");
        let out = Command::new(&script)
            .arg(std::process::id().to_string())
            .env("SMITHERS_PG_SSL", ssl)
            .env("SMITHERS_PG_INFO", info.path())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("pg-server.sh runs");
        assert!(
            out.status.success(),
            "cannot start a TLS PostgreSQL server: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let info = std::fs::read_to_string(info.path()).expect("the server's info");
        let dir = info.lines().next().expect("the server's folder");
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(port, _)| port.to_string())
            .expect("a port in the URL");
        TlsServer {
            url,
            port,
            tls: Path::new(dir).join("tls"),
        }
    }

    /// The path of one of the server's certificate files.
    pub fn file(&self, name: &str) -> String {
        self.tls.join(name).display().to_string()
    }

    /// A URL of `user@host` on this server with `params`, naming a schema of its own.
    pub fn url_for(&self, user_host: &str, params: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let sep = if params.is_empty() { "" } else { "&" };
        format!(
            "postgres://{user_host}:{}/postgres?schema=tls_{}_{n}{sep}{params}",
            self.port,
            std::process::id()
        )
    }
}

/// A client of a TLS server over its unix socket (no TLS: the server's `local` line trusts it).
pub fn socket_client(server: &TlsServer) -> postgres::Client {
    let dir = server.tls.parent().expect("the server's folder");
    postgres::Config::new()
        .host_path(dir)
        .port(server.port.parse().expect("a port"))
        .user("postgres")
        .dbname("postgres")
        .connect(postgres::NoTls)
        .expect("connect over the unix socket")
}
