//! TLS for PostgreSQL connections, as libpq's `sslmode` and `sslrootcert` / `sslcert` /
//! `sslkey` URL parameters say, on rustls (ring; no OpenSSL).
//!
//! The client (`tokio-postgres`) knows `sslmode=disable|prefer|require` only, and refuses the
//! other parameters; the store takes them out of the URL, hands the client the mode it knows
//! (`require` for the verify modes) and decides the certificate check itself:
//!
//! - `disable`: no TLS.
//! - `allow`: plain first; TLS when the server refuses a plain connection.
//! - `prefer` (the default, as libpq's): TLS when the server offers it, else plain; the
//!   certificate is not checked.
//! - `require`: TLS or nothing; the certificate is not checked — unless `sslrootcert` is
//!   given, when it is `verify-ca` (as libpq does).
//! - `verify-ca`: TLS, the server's certificate chain checked against the CAs of
//!   `sslrootcert`, else the Mozilla roots compiled in (`sslrootcert=system` says so too).
//! - `verify-full`: `verify-ca`, and the certificate must name the host of the URL (a DNS
//!   name, or an IP address in its subjectAltName).
//!
//! A client certificate (`sslcert` and `sslkey`, PEM) is offered to a server that asks for one.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The mode the client is handed (it knows three).
    pub(crate) fn client_mode(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable | SslMode::Allow => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

/// The TLS parameters of a URL, taken out of its query.
#[derive(Debug, Default)]
pub(crate) struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl TlsParams {
    /// Takes `pair` (`key=value`, as in the URL) when it is a TLS parameter of ours; false
    /// when it is not (it stays in the URL for the client).
    pub(crate) fn take(&mut self, pair: &str) -> bool {
        let Some((key, value)) = pair.split_once('=') else {
            return false;
        };
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            _ => return false,
        };
        *slot = Some(percent_decode(value));
        true
    }

    /// The mode and the connector for it: an unknown mode, or a file that cannot be read or
    /// holds no certificate (or key), is `DB_TLS_CONFIG` (nothing is opened).
    pub(crate) fn build(self, db: &str) -> Result<Tls> {
        let invalid = |why: String| Error::DbTlsConfig {
            db: db.to_string(),
            why,
        };
        let mode = match self.mode.as_deref() {
            None | Some("") => SslMode::Prefer,
            Some(value) => SslMode::parse(value).ok_or_else(|| {
                invalid(format!(
                    "sslmode={value} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        let root_cert = self.root_cert.filter(|p| !p.is_empty());
        // libpq: `require` with a root certificate checks the chain, as `verify-ca`.
        let mode = match (mode, &root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = match root_cert.as_deref() {
                    None | Some("system") => {
                        let mut roots = RootCertStore::empty();
                        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                        roots
                    }
                    Some(file) => root_store(Path::new(file)).map_err(invalid)?,
                };
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| invalid(format!("sslrootcert: {e}")))?;
                Arc::new(Checked {
                    webpki,
                    check_name: mode == SslMode::VerifyFull,
                })
            }
            _ => Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (
            self.cert.filter(|p| !p.is_empty()),
            self.key.filter(|p| !p.is_empty()),
        ) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates(Path::new(&cert), "sslcert").map_err(invalid)?;
                let key = PrivateKeyDer::from_pem_file(&key)
                    .map_err(|e| invalid(format!("sslkey {key}: no private key read ({e})")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("sslcert/sslkey: {e}")))?
            }
            (Some(_), None) => return Err(invalid("sslcert without sslkey".into())),
            (None, Some(_)) => return Err(invalid("sslkey without sslcert".into())),
        };
        // As libpq (PostgreSQL 17's direct TLS, `sslnegotiation=direct`, requires it).
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            mode,
            connector: MakeRustlsConnect::new(config),
        })
    }
}

/// How a store connects: the mode, and the connector its TLS sessions start from.
#[derive(Clone)]
pub(crate) struct Tls {
    pub mode: SslMode,
    pub connector: MakeRustlsConnect,
}

/// The certificates of a PEM file (at least one).
fn certificates(
    file: &Path,
    what: &str,
) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let shown = file.display();
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{what} {shown}: cannot be read ({e})"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {shown}: not a PEM file ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{what} {shown}: holds no certificate"));
    }
    Ok(certs)
}

fn root_store(file: &Path) -> std::result::Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(file, "sslrootcert")? {
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
    }
    Ok(roots)
}

/// `%XX` escapes decoded (a path in a URL's query); anything else as it is.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `require` and `prefer`: the session is encrypted, the server's certificate not checked
/// (libpq's); the handshake's signatures are.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca` and `verify-full`: the chain is checked (webpki: a trusted root, dates, key
/// usage); the name only under `verify-full` (webpki checks the chain before the name, so a
/// name error means the chain held).
#[derive(Debug)]
struct Checked {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A failed connection that is about TLS, as `DB_TLS_FAILED` with the reason; None for any
/// other failure (a server out of reach, a refused password: `DB_ERROR`, as before).
pub(crate) fn failure(e: &postgres::Error, mode: SslMode, db: &str) -> Option<Error> {
    let failed = |why: String| {
        Some(Error::DbTlsFailed {
            db: db.to_string(),
            why,
        })
    };
    if let Some(server) = e.as_db_error() {
        let message = server.message();
        return match hba_refusal(e) {
            // pg_hba.conf has only `hostssl` lines for this client.
            Some(false) => failed(format!(
                "the server accepts this connection over TLS only, and sslmode={} did not use it ({message})",
                mode.name(),
            )),
            // Only `hostnossl` lines.
            Some(true) => failed(format!(
                "the server does not accept this connection over TLS, and sslmode={} requires it ({message})",
                mode.name(),
            )),
            None => None,
        };
    }
    let mut source = std::error::Error::source(e);
    let mut saw_io = false;
    while let Some(s) = source {
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| {
                saw_io = true;
                io.get_ref()
            })
            .map_or(s, |inner| inner as &(dyn std::error::Error + 'static));
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return failed(describe(tls, mode));
        }
        source = s.source();
    }
    // The client's own TLS refusals (not a socket's failure mid-handshake, which is a lost
    // connection like any other).
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") && !saw_io {
        let why = std::error::Error::source(e).map_or(text.clone(), ToString::to_string);
        if why.contains("server does not support TLS") {
            return failed(format!(
                "the server does not support TLS, and sslmode={} requires it",
                mode.name()
            ));
        }
        return failed(why);
    }
    None
}

/// Whether the server refused the connection for want of a pg_hba.conf line that fits: Some(true)
/// when the connection was encrypted, Some(false) when it was not (its message says which:
/// "SSL encryption" / "no encryption"; "SSL on" / "SSL off" before PostgreSQL 12).
pub(crate) fn hba_refusal(e: &postgres::Error) -> Option<bool> {
    let server = e.as_db_error()?;
    let message = server.message();
    if *server.code() != postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || !message.contains("pg_hba.conf")
    {
        return None;
    }
    if message.ends_with("SSL encryption") || message.ends_with("SSL on") {
        Some(true)
    } else if message.ends_with("no encryption") || message.ends_with("SSL off") {
        Some(false)
    } else {
        None
    }
}

fn describe(e: &rustls::Error, mode: SslMode) -> String {
    use CertificateError as C;
    let roots = "the CAs of sslrootcert, or the Mozilla roots without it";
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the server's certificate is not signed by a trusted CA (sslmode={}: {roots})",
            mode.name()
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            "host name mismatch: the server's certificate does not name the URL's host (sslmode=verify-full)".to_string()
        }
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { expected, presented }) => {
            format!(
                "host name mismatch: the server's certificate is for {} but the URL's host is {expected:?} (sslmode=verify-full)",
                if presented.is_empty() {
                    "no name".to_string()
                } else {
                    presented.join(", ")
                }
            )
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the server's certificate has expired ({e})")
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            format!("the server's certificate is not valid yet ({e})")
        }
        rustls::Error::InvalidCertificate(_) => format!("the server's certificate was refused ({e})"),
        _ => format!("the TLS handshake failed ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_values_and_percent_decoding() {
        let mut p = TlsParams::default();
        assert!(p.take("sslmode=verify-full"));
        assert!(p.take("sslrootcert=%2Ftmp%2Fca%20x.pem"));
        assert!(!p.take("connect_timeout=5"));
        assert_eq!(p.root_cert.as_deref(), Some("/tmp/ca x.pem"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
        for (value, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(SslMode::parse(value), Some(mode));
            assert_eq!(mode.name(), value);
        }
    }

    #[test]
    fn an_unknown_mode_or_a_missing_file_is_refused_with_a_code() {
        let refused = |pairs: &[&str]| {
            let mut p = TlsParams::default();
            for pair in pairs {
                p.take(pair);
            }
            match p.build("postgres://u@h/db") {
                Ok(_) => panic!("{pairs:?} was accepted"),
                Err(e) => (e.code(), e.to_string()),
            }
        };
        let (code, message) = refused(&["sslmode=verify_full"]);
        assert_eq!(code, "DB_TLS_CONFIG");
        assert!(
            message.contains("sslmode=verify_full is not one of"),
            "{message}"
        );
        let (code, message) = refused(&["sslmode=verify-full", "sslrootcert=/nonexistent/ca.pem"]);
        assert_eq!(code, "DB_TLS_CONFIG");
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        let (code, _) = refused(&["sslcert=/nonexistent/c.pem"]);
        assert_eq!(code, "DB_TLS_CONFIG");
        // A known mode with no files builds.
        let mut p = TlsParams::default();
        p.take("sslmode=require");
        assert!(p.build("db").is_ok_and(|t| t.mode == SslMode::Require));
    }
}
