//! The PostgreSQL store's tables (`_smithers_*`), its migrations, and how a URL is opened.
//!
//! The database string is a libpq URL (`postgres://user:password@host:port/db`, or
//! `postgresql://…`; a unix socket with `?host=/path/to/dir`) with one more parameter,
//! `schema=<name>`: the schema that holds the engine's tables and the output tables (`public`
//! when not given). The engine creates the schema and its tables when it opens a database
//! for writing, and migrates them in one transaction under the schema's lock. libpq's TLS
//! parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) are the store's (`tls.rs`).

use postgres::{Client, Config};

use crate::error::{Error, Result};
use crate::ident::{identifier_problem, quote};
use crate::logs::STORE;
use crate::store::OpenOptions;

use super::super::SCHEMA_VERSION;
use super::col;

/// The schema's write lock: every write transaction (and a migration) takes it first. The
/// first key is `SMTH`; the second the schema's name, hashed.
pub(super) const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(1397576776, hashtext($1::text))";

/// The schema at version 7 (the SQLite store's `SCHEMA` and `V2`..`V7`, in PostgreSQL's
/// types: INTEGER → BIGINT; identifiers compare bytewise (`COLLATE "C"`) as SQLite's do).
const V7: &str = r#"
CREATE TABLE IF NOT EXISTS _smithers_meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _smithers_changes (id INTEGER PRIMARY KEY, commits BIGINT NOT NULL);
INSERT INTO _smithers_changes (id, commits) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS _smithers_runs (
  run_id TEXT COLLATE "C" PRIMARY KEY,
  workflow_name TEXT NOT NULL,
  workflow_path TEXT,
  status TEXT NOT NULL,
  input_json TEXT NOT NULL DEFAULT 'null',
  error_json TEXT,
  owner TEXT,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT,
  started_by TEXT,
  parent_run_id TEXT COLLATE "C",
  parent_node_id TEXT COLLATE "C",
  parent_iteration BIGINT,
  lease_expires_at_ms BIGINT,
  resume_error_json TEXT,
  resume_error_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_status ON _smithers_runs (status, created_at_ms);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_created ON _smithers_runs (created_at_ms);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_parent ON _smithers_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS _smithers_runs_by_owner ON _smithers_runs (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS _smithers_nodes (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  output_table TEXT COLLATE "C" NOT NULL,
  loop_id TEXT COLLATE "C",
  label TEXT,
  ordinal BIGINT NOT NULL DEFAULT 0,
  attempts BIGINT NOT NULL DEFAULT 0,
  skip_reason TEXT,
  error_json TEXT,
  updated_at_ms BIGINT NOT NULL,
  sub_run_id TEXT COLLATE "C",
  PRIMARY KEY (run_id, node_id, iteration)
);
CREATE TABLE IF NOT EXISTS _smithers_attempts (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  attempt BIGINT NOT NULL,
  state TEXT NOT NULL,
  started_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT,
  owner TEXT,
  error_json TEXT,
  exit_code BIGINT,
  stdout_path TEXT,
  stderr_path TEXT,
  prompt TEXT,
  response_text TEXT,
  usage_json TEXT,
  agent_json TEXT,
  PRIMARY KEY (run_id, node_id, iteration, attempt)
);
CREATE TABLE IF NOT EXISTS _smithers_approvals (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  status TEXT NOT NULL,
  mode TEXT NOT NULL,
  on_deny TEXT NOT NULL,
  output_table TEXT COLLATE "C" NOT NULL,
  requested_at_ms BIGINT NOT NULL,
  decided_at_ms BIGINT,
  note TEXT,
  decided_by TEXT,
  request_json TEXT NOT NULL,
  decision_json TEXT,
  kind TEXT NOT NULL DEFAULT 'gate',
  round BIGINT NOT NULL DEFAULT 1,
  inputs_json TEXT,
  pushback_json TEXT,
  reason TEXT,
  PRIMARY KEY (run_id, node_id, iteration)
);
CREATE INDEX IF NOT EXISTS _smithers_approvals_pending
  ON _smithers_approvals (requested_at_ms) WHERE status = 'requested';
CREATE INDEX IF NOT EXISTS _smithers_approvals_by_status ON _smithers_approvals (status, requested_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_approval_history (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  round BIGINT NOT NULL,
  status TEXT NOT NULL,
  requested_at_ms BIGINT NOT NULL,
  decided_at_ms BIGINT NOT NULL,
  decided_by TEXT,
  note TEXT,
  inputs_json TEXT,
  output_json TEXT,
  stdout_path TEXT,
  PRIMARY KEY (run_id, node_id, iteration, round)
);
CREATE TABLE IF NOT EXISTS _smithers_loops (
  run_id TEXT COLLATE "C" NOT NULL,
  loop_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL DEFAULT 0,
  done BOOLEAN NOT NULL DEFAULT false,
  PRIMARY KEY (run_id, loop_id)
);
CREATE TABLE IF NOT EXISTS _smithers_events (
  run_id TEXT COLLATE "C" NOT NULL,
  seq BIGINT NOT NULL,
  timestamp_ms BIGINT NOT NULL,
  type TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  feed_id BIGINT,
  PRIMARY KEY (run_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS _smithers_events_feed ON _smithers_events (feed_id);
CREATE TABLE IF NOT EXISTS _smithers_schemas (
  table_key TEXT COLLATE "C" PRIMARY KEY,
  table_name TEXT COLLATE "C" NOT NULL,
  schema_json TEXT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  version BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS _smithers_schema_versions (
  table_key TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  table_name TEXT COLLATE "C" NOT NULL,
  schema_json TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  PRIMARY KEY (table_key, version)
);
CREATE TABLE IF NOT EXISTS _smithers_run_schemas (
  run_id TEXT COLLATE "C" NOT NULL,
  table_key TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (run_id, table_key)
);
CREATE TABLE IF NOT EXISTS _smithers_deliveries (
  delivery_id TEXT COLLATE "C" PRIMARY KEY,
  target TEXT COLLATE "C" NOT NULL,
  url TEXT NOT NULL,
  event_type TEXT NOT NULL,
  feed_id BIGINT,
  run_id TEXT COLLATE "C",
  node_id TEXT COLLATE "C",
  iteration BIGINT,
  body TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at_ms BIGINT NOT NULL,
  claimed_by TEXT,
  claim_expires_at_ms BIGINT,
  last_status_code BIGINT,
  last_error TEXT,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  delivered_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS _smithers_deliveries_due
  ON _smithers_deliveries (next_attempt_at_ms) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS _smithers_deliveries_by_created ON _smithers_deliveries (created_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_link_uses (
  link_id TEXT COLLATE "C" PRIMARY KEY,
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  action TEXT NOT NULL,
  approver TEXT NOT NULL,
  used_at_ms BIGINT NOT NULL,
  outcome_json TEXT
);
"#;

/// Schema v8: durable timers (`timers.rs`), as SQLite's v8.
const V8: &str = r#"
CREATE TABLE IF NOT EXISTS _smithers_timers (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  kind TEXT NOT NULL,
  round BIGINT NOT NULL,
  due_at_ms BIGINT NOT NULL,
  status TEXT NOT NULL,
  spec_json TEXT,
  created_at_ms BIGINT NOT NULL,
  fired_at_ms BIGINT,
  fired_by TEXT,
  outcome TEXT,
  PRIMARY KEY (run_id, node_id, iteration, kind, round)
);
CREATE INDEX IF NOT EXISTS _smithers_timers_due
  ON _smithers_timers (due_at_ms) WHERE status = 'scheduled';
"#;

/// Schema v10: the approvals listing's index, as SQLite's v10 (`store::approval_listing`).
const V10: &str = r#"
CREATE INDEX IF NOT EXISTS _smithers_approvals_listing
  ON _smithers_approvals (status, requested_at_ms, run_id, node_id, iteration);
DROP INDEX IF EXISTS _smithers_approvals_by_status;
"#;

/// Schema v9: the decision log (a hash chain, `audit.rs`) and the votes of quorum gates, as
/// SQLite's v9. A PostgreSQL schema gets them empty: every schema at v7 was made by
/// development builds of this store and none held decisions to start the chain with.
const V9: &str = r#"
CREATE TABLE IF NOT EXISTS _smithers_audit_log (
  seq BIGINT PRIMARY KEY,
  kind TEXT NOT NULL,
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C",
  iteration BIGINT,
  actor TEXT,
  at_ms BIGINT NOT NULL,
  data_json TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  entry_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _smithers_audit_log_by_run ON _smithers_audit_log (run_id, seq);
CREATE TABLE IF NOT EXISTS _smithers_votes (
  run_id TEXT COLLATE "C" NOT NULL,
  node_id TEXT COLLATE "C" NOT NULL,
  iteration BIGINT NOT NULL,
  requested_at_ms BIGINT NOT NULL,
  voter TEXT NOT NULL,
  verdict TEXT NOT NULL,
  veto BOOLEAN NOT NULL DEFAULT false,
  note TEXT,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (run_id, node_id, iteration, requested_at_ms, voter)
);
"#;

/// Whether a database string names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    // A password given as a parameter is hidden.
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |e| i + e);
        out.replace_range(i + "password=".len()..end, "***");
    }
    let Some((scheme, rest)) = out.split_once("://") else {
        return out;
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // And one in the user info.
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => out.clone(),
    }
}

/// Where the store connects: the server's configuration, how TLS is used, and the schema its
/// tables live in.
pub(crate) struct Target {
    config: Config,
    tls: super::tls::Tls,
    pub schema: String,
    /// The URL without its password.
    pub display: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let shown = redact(url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = None;
        let mut tls = super::tls::TlsParams::default();
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.strip_prefix("schema=") {
                Some(name) => schema = Some(name.to_string()),
                None if tls.take(pair) => {}
                None => kept.push(pair),
            }
        }
        let tls = tls.build(&shown)?;
        let schema = schema.unwrap_or_else(|| "public".into());
        if let Some(why) = identifier_problem(&schema) {
            return Err(Error::InvalidIdentifier {
                what: "PostgreSQL schema",
                name: schema,
                why,
            });
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            tracing::debug!(target: STORE, db = %shown, error = %e, "database URL refused");
            Error::DbNotFound {
                path: shown.clone(),
                why: "it is not a PostgreSQL URL the client understands",
            }
        })?;
        if config.get_application_name().is_none() {
            config.application_name("smithers");
        }
        // libpq uses no TLS over a unix socket, whatever the mode says.
        let sockets_only = config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, postgres::config::Host::Tcp(_)))
            && config.get_hostaddrs().is_empty();
        config.ssl_mode(if sockets_only {
            postgres::config::SslMode::Disable
        } else {
            tls.mode.client_mode()
        });
        Ok(Target {
            config,
            tls,
            schema,
            display: shown,
        })
    }

    /// A connection whose `search_path` is the schema (TLS as the URL says).
    pub(crate) fn connect(&self) -> Result<Client> {
        let mode = self.tls.mode;
        let failed = |e: postgres::Error| {
            super::tls::failure(&e, mode, &self.display).unwrap_or_else(|| e.into())
        };
        let again = |ssl: postgres::config::SslMode| {
            let mut config = self.config.clone();
            config.ssl_mode(ssl);
            config.connect(self.tls.connector.clone()).map_err(failed)
        };
        let mut client = match self.config.connect(self.tls.connector.clone()) {
            // libpq's `allow`: plain first, TLS when the server refuses that.
            Err(e)
                if mode == super::tls::SslMode::Allow
                    && super::tls::hba_refusal(&e) == Some(false) =>
            {
                again(postgres::config::SslMode::Require)?
            }
            // libpq's `prefer`: TLS first, plain when the server refuses that.
            Err(e)
                if mode == super::tls::SslMode::Prefer
                    && super::tls::hba_refusal(&e) == Some(true) =>
            {
                again(postgres::config::SslMode::Disable)?
            }
            other => other.map_err(failed)?,
        };
        // A transaction of the engine never waits for anything but the database (no JS runs
        // inside one), so a session idle in a transaction for a minute belongs to a process
        // that froze or was cut off mid-transaction: the server ends it and its row locks
        // go with it, and the runs it held can be adopted once their leases expire.
        client.batch_execute(&format!(
            "SET search_path TO {}; SET idle_in_transaction_session_timeout = '60s'",
            quote(&self.schema)
        ))?;
        Ok(client)
    }
}

/// A client of the server `url` names, connected as the store connects (TLS as the URL says),
/// its `search_path` the URL's schema: for tests and tools that read the tables as they are.
#[doc(hidden)]
pub fn pg_client(url: &str) -> Result<Client> {
    Target::parse(url)?.connect()
}

/// The schema version recorded in the schema; None when it has no smithers tables.
fn schema_version(client: &mut Client) -> Result<Option<i64>> {
    let has_meta = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = '_smithers_meta'",
            &[],
        )?
        .is_some();
    if !has_meta {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
            &[],
        )?
        .map(|r| col::<String>(&r, 0))
        .transpose()?
        .and_then(|v| v.parse().ok()))
}

/// Whether the schema holds no table at all (or does not exist).
fn is_empty(client: &mut Client) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() LIMIT 1",
            &[],
        )?
        .is_none())
}

pub(super) fn open(url: &str, options: OpenOptions) -> Result<(Client, Target)> {
    let target = Target::parse(url)?;
    let mut client = target.connect()?;
    let path = || target.display.clone();
    let found = schema_version(&mut client)?;
    if let Some(found) = found
        && found > SCHEMA_VERSION
    {
        return Err(Error::SchemaTooNew {
            path: path(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found.is_none() && (options.must_exist || options.read_only) {
        return Err(Error::DbNotFound {
            path: path(),
            why: if is_empty(&mut client)? {
                "its schema holds no smithers tables"
            } else {
                "it is not a smithers database"
            },
        });
    }
    if options.read_only {
        return match found {
            Some(SCHEMA_VERSION) => {
                client.batch_execute("SET default_transaction_read_only = on")?;
                Ok((client, target))
            }
            Some(found) => Err(Error::SchemaOutdated {
                path: path(),
                found,
                supported: SCHEMA_VERSION,
            }),
            None => Err(Error::DbNotFound {
                path: path(),
                why: "it is not a smithers database",
            }),
        };
    }
    if found != Some(SCHEMA_VERSION) {
        migrate(&mut client, &target)?;
    }
    Ok((client, target))
}

fn migrate(client: &mut Client, target: &Target) -> Result<()> {
    // Several processes may open a schema at once: take its lock, then look again.
    let mut tx = client.transaction()?;
    tx.execute(WRITE_LOCK, &[&target.schema])?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote(&target.schema)
    ))?;
    let current = {
        let has_meta = tx
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = '_smithers_meta'",
                &[&target.schema],
            )?
            .is_some();
        if has_meta {
            tx.query_opt(
                "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
                &[],
            )?
            .map(|r| col::<String>(&r, 0))
            .transpose()?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
        } else {
            0
        }
    };
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: target.display.clone(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current < 7 {
        tx.batch_execute(V7)?;
    }
    if current < 8 {
        tx.batch_execute(V8)?;
    }
    if current < 9 {
        tx.batch_execute(V9)?;
    }
    if current < 10 {
        tx.batch_execute(V10)?;
    }
    tx.execute(
        "INSERT INTO _smithers_meta (key, value) VALUES ('schema_version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    if current == 0 {
        tracing::info!(target: STORE, db = %target.display, schema = %target.schema, version = SCHEMA_VERSION, "database created");
    } else {
        tracing::info!(
            target: STORE,
            db = %target.display,
            schema = %target.schema,
            from = current,
            to = SCHEMA_VERSION,
            "database migrated"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://alice:s3cret@db:5432/app?schema=wf"),
            "postgres://alice:***@db:5432/app?schema=wf"
        );
        assert_eq!(
            redact("postgresql://db/app?user=a&password=x&schema=s"),
            "postgresql://db/app?user=a&password=***&schema=s"
        );
        assert_eq!(redact("postgres://alice@db/app"), "postgres://alice@db/app");
    }

    #[test]
    fn a_schema_name_is_an_identifier() {
        let err = Target::parse("postgres://db/app?schema=a;drop").err();
        assert_eq!(err.map(|e| e.code()), Some("INVALID_IDENTIFIER"));
        let t = Target::parse("postgres://u@db/app?connect_timeout=5&schema=wf_1").unwrap();
        assert_eq!(t.schema, "wf_1");
    }
}
