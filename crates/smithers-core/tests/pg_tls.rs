//! TLS to PostgreSQL (libpq's `sslmode`, `sslrootcert`, `sslcert` / `sslkey`), against real
//! servers of each test's own that speak TLS with certificates made for the test
//! (`scripts/pg-server.sh` with `SMITHERS_PG_SSL`). They run in the PostgreSQL pass
//! (`SMITHERS_TEST_STORE=postgres`, `npm run test:rust:postgres`); the SQLite pass has no
//! server to reach and passes over them.

mod common;

use common::pg::{TlsServer, socket_client};
use common::{decision_schema, descriptor, on_postgres, seq, static_task};
use serde_json::json;
use smithers_core::{DecisionRequest, Engine, NewRun};

/// Opens `url`, runs a workflow to its gate, approves it from a second engine and finishes
/// it: every connection of the engine (its own, the approver's, a change waiter's) is used.
fn drive_a_run(url: &str) {
    let mut engine = Engine::open(url).expect("the engine opens over TLS");
    let mut waiter = engine
        .change_waiter()
        .expect("a waiter")
        .expect("PostgreSQL has a waiter");
    let graph = || {
        descriptor(
            "tls",
            json!({"step": {"type": "object", "properties": {"v": {"type": "number"}},
                         "required": ["v"], "additionalProperties": false},
                   "gate": decision_schema()}),
            json!([]),
            seq(vec![
                static_task("build", "step", json!({"v": 1})),
                common::approval("ship", json!({})),
            ]),
        )
    };
    engine
        .create_run(NewRun {
            run_id: Some("r1".into()),
            ..NewRun::default()
        })
        .expect("a run");
    let step = engine.submit_graph("r1", graph()).expect("submit");
    assert_eq!(step.status, "waiting-approval");
    let mut approver = Engine::open(url).expect("a second engine");
    approver
        .approve(DecisionRequest {
            run_id: "r1".into(),
            decided_by: Some("alice".into()),
            ..DecisionRequest::default()
        })
        .expect("approved");
    assert!(waiter.wait(5_000).expect("the waiter hears"));
    engine.claim_run("r1", false).expect("claimed again");
    let step = engine.submit_graph("r1", graph()).expect("submit");
    assert_eq!(step.status, "finished");
}

/// How many of the server's sessions named `app` (the URL's `application_name`) use TLS,
/// and how many do not.
fn sessions(server: &TlsServer, app: &str) -> (i64, i64) {
    let row = socket_client(server)
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

fn schema_exists(server: &TlsServer, url: &str) -> bool {
    let schema = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("schema="))
        .expect("a schema");
    socket_client(server)
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .expect("pg_namespace")
        .is_some()
}

fn refused(url: &str) -> smithers_core::Error {
    match Engine::open(url) {
        Ok(_) => panic!("{url} was opened"),
        Err(e) => e,
    }
}

#[test]
fn require_connects_over_tls_and_drives_a_run() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    let url = server.url_for("postgres@127.0.0.1", "sslmode=require&application_name=req");
    let engine = Engine::open(&url).expect("opens");
    let _waiter = engine.change_waiter().expect("a waiter");
    let (tls, plain) = sessions(&server, "req");
    assert_eq!(
        (tls, plain),
        (2, 0),
        "the engine's and the waiter's connections use TLS"
    );
    drop(engine);
    drive_a_run(&url);
}

#[test]
fn prefer_uses_tls_when_the_server_offers_it_and_is_the_default() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    for (app, params) in [("p1", "sslmode=prefer&"), ("p2", "")] {
        let url = server.url_for(
            "postgres@127.0.0.1",
            &format!("{params}application_name={app}"),
        );
        let _engine = Engine::open(&url).expect("opens");
        assert_eq!(sessions(&server, app), (1, 0), "{params:?} uses TLS");
    }
    // disable does not.
    let url = server.url_for("postgres@127.0.0.1", "sslmode=disable&application_name=d");
    let _engine = Engine::open(url).expect("opens");
    assert_eq!(sessions(&server, "d"), (0, 1));
}

#[test]
fn verify_full_with_the_servers_ca_connects_by_name_and_by_address() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    let ca = server.file("ca.crt");
    for (host, extra) in [
        ("postgres@127.0.0.1", ""),
        ("postgres@localhost", "&hostaddr=127.0.0.1"),
    ] {
        let url = server.url_for(
            host,
            &format!("sslmode=verify-full&sslrootcert={ca}{extra}"),
        );
        drive_a_run(&url);
    }
    // verify-ca, and require with a root certificate, check the chain as well.
    for mode in ["verify-ca", "require"] {
        let url = server.url_for(
            "postgres@127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={ca}"),
        );
        Engine::open(&url).expect("opens");
    }
}

#[test]
fn an_untrusted_certificate_is_refused_with_a_code_and_nothing_is_created() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    let other = server.file("other-ca.crt");
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = server.url_for(
            "postgres:hunter2@127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={other}"),
        );
        let err = refused(&url);
        assert_eq!(err.code(), "DB_TLS_FAILED", "{mode}: {err}");
        let message = err.to_string();
        assert!(message.contains("not signed by a trusted CA"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the password is never shown: {message}"
        );
        assert!(message.contains("postgres:***@127.0.0.1"), "{message}");
        assert!(!schema_exists(&server, &url), "nothing is created");
    }
    // Without sslrootcert verify-full trusts the Mozilla roots, which did not sign it.
    let url = server.url_for("postgres@127.0.0.1", "sslmode=verify-full");
    assert_eq!(refused(&url).code(), "DB_TLS_FAILED");
    assert!(!schema_exists(&server, &url));
}

#[test]
fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    let ca = server.file("ca.crt");
    let params = |mode: &str| format!("sslmode={mode}&sslrootcert={ca}&hostaddr=127.0.0.1");
    let url = server.url_for("postgres@db.example.test", &params("verify-full"));
    let err = refused(&url);
    assert_eq!(err.code(), "DB_TLS_FAILED");
    let message = err.to_string();
    assert!(message.contains("host name mismatch"), "{message}");
    assert!(message.contains("db.example.test"), "{message}");
    assert!(!schema_exists(&server, &url));
    // verify-ca does not check the name.
    Engine::open(server.url_for("postgres@db.example.test", &params("verify-ca"))).expect("opens");
}

#[test]
fn a_server_that_accepts_tls_only_refuses_disable_with_a_clear_error() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("only");
    let url = server.url_for("postgres@127.0.0.1", "sslmode=disable");
    let err = refused(&url);
    assert_eq!(err.code(), "DB_TLS_FAILED");
    let message = err.to_string();
    assert!(message.contains("over TLS only"), "{message}");
    assert!(message.contains("sslmode=disable"), "{message}");
    assert!(!schema_exists(&server, &url));
    // prefer (the default) uses TLS and gets in; so does allow (plain refused, then TLS).
    for (app, params) in [("p", ""), ("a", "sslmode=allow&")] {
        let url = server.url_for(
            "postgres@127.0.0.1",
            &format!("{params}application_name={app}"),
        );
        let _engine = Engine::open(url).expect("opens");
        assert_eq!(sessions(&server, app), (1, 0), "{params:?}");
    }
}

#[test]
fn a_server_that_refuses_tls_is_reached_plain_under_prefer_and_refused_under_require() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("on");
    // pg_hba.conf: TCP clients without TLS only.
    let data = server
        .tls
        .parent()
        .expect("the server's folder")
        .join("data");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostnossl all all 127.0.0.1/32 trust\n",
    )
    .expect("pg_hba.conf");
    socket_client(&server)
        .batch_execute("SELECT pg_reload_conf()")
        .expect("reloaded");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // prefer tries TLS, is refused, and connects plain (libpq's prefer).
    let url = server.url_for("postgres@127.0.0.1", "application_name=nossl");
    let _engine = Engine::open(&url).expect("opens");
    assert_eq!(sessions(&server, "nossl"), (0, 1));
    let url = server.url_for("postgres@127.0.0.1", "sslmode=require");
    let err = refused(&url);
    assert_eq!(err.code(), "DB_TLS_FAILED");
    assert!(
        err.to_string()
            .contains("does not accept this connection over TLS"),
        "{err}"
    );
    assert!(!schema_exists(&server, &url));
}

#[test]
fn the_test_helpers_client_honours_sslmode() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("only");
    let url = server.url_for(
        "postgres@127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", server.file("ca.crt")),
    );
    let ssl: bool = common::pg::client(&url)
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl);
}

#[test]
fn a_client_certificate_is_presented_when_given() {
    if !on_postgres() {
        return;
    }
    let server = TlsServer::start("only");
    socket_client(&server)
        .batch_execute("CREATE ROLE certuser LOGIN SUPERUSER")
        .expect("certuser");
    let ca = server.file("ca.crt");
    // certuser gets in with its certificate only (pg_hba.conf: cert).
    let bare = server.url_for(
        "certuser@127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(refused(&bare).code(), "DB_ERROR");
    let url = format!(
        "{bare}&sslcert={}&sslkey={}",
        server.file("client.crt"),
        server.file("client.key")
    );
    drive_a_run(&url);
    // A key without its certificate is refused before anything is opened.
    let half = format!("{bare}&sslkey={}", server.file("client.key"));
    assert_eq!(refused(&half).code(), "DB_TLS_CONFIG");
}

#[test]
fn require_refuses_a_server_without_tls_and_an_unknown_mode_opens_nothing() {
    if !on_postgres() {
        return;
    }
    let plain = common::pg::fresh_url();
    let err = refused(&format!("{plain}&sslmode=require"));
    assert_eq!(err.code(), "DB_TLS_FAILED");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
    let err = refused(&format!("{plain}&sslmode=verify_full"));
    assert_eq!(err.code(), "DB_TLS_CONFIG");
    assert!(
        err.to_string()
            .contains("sslmode=verify_full is not one of"),
        "{err}"
    );
    assert!(!common::exists(std::path::Path::new(&plain)));
    // The default still connects to a server without TLS (prefer falls back to plain).
    Engine::open(&plain).expect("opens");
}
