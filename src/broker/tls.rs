//! TLS for `rediss://`, `amqps://` and `rabbitmq-stream+tls://`: FORWARD_SSL_OPTIONS (kombu's
//! `ssl` dictionary) turned into one rustls client configuration that every broker sink and
//! every `record` input uses.
//!
//! The original handed the dictionary to kombu, which gives it to redis-py (Redis) or to
//! py-amqp and Python's `ssl` module (RabbitMQ). The keys kept here are the ones both
//! understand: `ca_certs` (PEM file of trusted CAs), `certfile` and `keyfile` (PEM client
//! certificate chain and its key, for brokers that ask for one) and `cert_reqs`. redis-py's
//! spellings (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`) are accepted too,
//! since kombu's Redis transport users write those.
//!
//! `cert_reqs` as Python's `ssl` gives it: `CERT_NONE` (0) accepts any server certificate and
//! name; `CERT_OPTIONAL` (1) and `CERT_REQUIRED` (2, the default) verify the chain against
//! `ca_certs` (else the system's trust store) and the host name of the URL. For a client the
//! two are the same thing in Python ("In client mode, CERT_OPTIONAL has the same meaning as
//! CERT_REQUIRED", ssl module documentation), so they are here. redis-py's strings `none`,
//! `optional`, `required` mean the same.
//!
//! As in kombu, a non-empty dictionary turns TLS on for `redis://` and `amqp://` URLs too
//! (kombu passes `ssl=` to the transport whatever the scheme says).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much of the server's certificate is checked (Python's `ssl.CERT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertReqs {
    /// `CERT_NONE` (0): no check at all (encryption only).
    None,
    /// `CERT_OPTIONAL` (1): for a client, the same as `CERT_REQUIRED`.
    Optional,
    /// `CERT_REQUIRED` (2): chain and host name verified.
    #[default]
    Required,
}

impl CertReqs {
    fn parse(v: &serde_json::Value) -> Result<CertReqs, String> {
        let bad = || {
            format!(
                "cert_reqs {v} is not one of CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED \
                 (or 0, 1, 2)"
            )
        };
        match v {
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(0) => Ok(CertReqs::None),
                Some(1) => Ok(CertReqs::Optional),
                Some(2) => Ok(CertReqs::Required),
                _ => Err(bad()),
            },
            serde_json::Value::String(s) => {
                // Python writes ssl.CERT_REQUIRED; JSON configs carry its name, sometimes
                // with the module in front, or redis-py's lower-case word.
                let name = s.trim().trim_start_matches("ssl.").to_ascii_uppercase();
                match name.trim_start_matches("CERT_") {
                    "NONE" | "0" => Ok(CertReqs::None),
                    "OPTIONAL" | "1" => Ok(CertReqs::Optional),
                    "REQUIRED" | "2" => Ok(CertReqs::Required),
                    _ => Err(bad()),
                }
            }
            serde_json::Value::Null => Ok(CertReqs::Required),
            _ => Err(bad()),
        }
    }

    /// The name Python's `ssl` gives it (`CERT_REQUIRED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CertReqs::None => "CERT_NONE",
            CertReqs::Optional => "CERT_OPTIONAL",
            CertReqs::Required => "CERT_REQUIRED",
        }
    }
}

/// FORWARD_SSL_OPTIONS, parsed. Holds file names only: no secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslOptions {
    /// `ca_certs`: PEM file of the CAs to trust (else the system's trust store).
    pub ca_certs: Option<PathBuf>,
    /// `certfile`: PEM client certificate chain, for brokers that ask for one.
    pub certfile: Option<PathBuf>,
    /// `keyfile`: the client certificate's private key (else read from `certfile`).
    pub keyfile: Option<PathBuf>,
    /// `cert_reqs`: how much of the server's certificate is checked.
    pub cert_reqs: CertReqs,
    /// The dictionary had at least one key (kombu then uses TLS whatever the scheme).
    pub given: bool,
}

impl SslOptions {
    /// Parses the JSON object (`{}` or empty text: no options). Unknown keys are refused, so
    /// a misspelt `ca_cert` does not silently fall back to the system roots.
    pub fn parse_json(text: &str) -> Result<SslOptions, String> {
        if text.trim().is_empty() {
            return Ok(SslOptions::default());
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("SSL options are not a JSON object ({e})"))?;
        let serde_json::Value::Object(map) = value else {
            return Err(
                "SSL options must be a JSON object, as in {\"ca_certs\": \"/ca.pem\"}".into(),
            );
        };
        let mut o = SslOptions {
            given: !map.is_empty(),
            ..SslOptions::default()
        };
        for (key, v) in &map {
            let path = || match v {
                serde_json::Value::String(s) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
                serde_json::Value::Null => Ok(None),
                _ => Err(format!("SSL option {key} must be a file name")),
            };
            match key.strip_prefix("ssl_").unwrap_or(key) {
                "ca_certs" => o.ca_certs = path()?,
                "certfile" => o.certfile = path()?,
                "keyfile" => o.keyfile = path()?,
                "cert_reqs" => o.cert_reqs = CertReqs::parse(v)?,
                _ => {
                    return Err(format!(
                        "unknown SSL option \"{key}\" (supported: ca_certs, certfile, keyfile, \
                         cert_reqs)"
                    ))
                }
            }
        }
        if o.keyfile.is_some() && o.certfile.is_none() {
            return Err("SSL option keyfile needs certfile (the client certificate)".into());
        }
        Ok(o)
    }

    /// Builds the client configuration: reads and checks the files now, so a missing or
    /// unreadable one is a start-up error, not a failure at the first reconnect.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?;
        let builder = match self.cert_reqs {
            CertReqs::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider })),
            CertReqs::Optional | CertReqs::Required => {
                builder.with_root_certificates(self.roots()?)
            }
        };
        let config = match &self.certfile {
            None => builder.with_no_client_auth(),
            Some(certfile) => {
                let chain = read_certs(certfile, "certfile")?;
                // Python's ssl reads the key from certfile when keyfile is not given.
                let keyfile = self.keyfile.as_deref().unwrap_or(certfile);
                let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
                    format!(
                        "cannot read the private key from keyfile {}: {e}",
                        keyfile.display()
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate and key do not fit: {e}"))?
            }
        };
        Ok(Arc::new(config))
    }

    /// `ca_certs` when given, else the system's trust store.
    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca_certs {
            Some(path) => {
                for cert in read_certs(path, "ca_certs")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("no trusted CA certificates: the system has none; give \
                                ca_certs in the SSL options"
                        .into());
                }
            }
        }
        Ok(roots)
    }

    /// For messages: what is checked, no file contents.
    pub fn describe(&self) -> String {
        let ca = match &self.ca_certs {
            Some(p) => p.display().to_string(),
            None => "system roots".into(),
        };
        let mut s = format!("{} (CA: {ca})", self.cert_reqs.as_str());
        if let Some(c) = &self.certfile {
            s.push_str(&format!(", client certificate {}", c.display()));
        }
        s
    }
}

/// The name the server's certificate must carry: the URL's host (an IP address is checked
/// against the certificate's IP addresses, as Python does).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("\"{host}\" is not a valid TLS server name"))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// `CERT_NONE`: any certificate, any name. The handshake signatures are still checked (they
/// prove the peer holds the key of the certificate it sent, which costs nothing to keep).
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// True when `e` (or what it wraps) is a TLS protocol or certificate failure.
pub fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kombu_and_redis_py_names() {
        let o = SslOptions::parse_json(
            r#"{"ca_certs": "/ca.pem", "certfile": "/c.pem", "keyfile": "/k.pem", "cert_reqs": 2}"#,
        )
        .unwrap();
        assert_eq!(o.ca_certs.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(o.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(o.keyfile.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(o.cert_reqs, CertReqs::Required);
        assert!(o.given);
        let o =
            SslOptions::parse_json(r#"{"ssl_cert_reqs": "none", "ssl_ca_certs": "/a"}"#).unwrap();
        assert_eq!(o.cert_reqs, CertReqs::None);
        assert_eq!(o.ca_certs.as_deref(), Some(Path::new("/a")));
    }

    #[test]
    fn cert_reqs_spellings() {
        for (text, want) in [
            ("0", CertReqs::None),
            ("1", CertReqs::Optional),
            ("2", CertReqs::Required),
            ("\"CERT_NONE\"", CertReqs::None),
            ("\"ssl.CERT_OPTIONAL\"", CertReqs::Optional),
            ("\"CERT_REQUIRED\"", CertReqs::Required),
            ("\"required\"", CertReqs::Required),
            ("null", CertReqs::Required),
        ] {
            let o = SslOptions::parse_json(&format!("{{\"cert_reqs\": {text}}}")).unwrap();
            assert_eq!(o.cert_reqs, want, "{text}");
        }
        for bad in ["3", "-1", "\"CERT_MAYBE\"", "true", "1.5"] {
            assert!(
                SslOptions::parse_json(&format!("{{\"cert_reqs\": {bad}}}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_and_bad_dictionaries() {
        assert_eq!(SslOptions::parse_json("").unwrap(), SslOptions::default());
        let o = SslOptions::parse_json("{}").unwrap();
        assert!(!o.given);
        for bad in [
            "[]",
            "{",
            r#"{"ca_cert": "/x"}"#,
            r#"{"ca_certs": 5}"#,
            r#"{"keyfile": "/k"}"#,
        ] {
            assert!(SslOptions::parse_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let o = SslOptions::parse_json(r#"{"ca_certs": "/nonexistent/ca.pem"}"#).unwrap();
        let e = o.client_config().unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let o = SslOptions::parse_json(r#"{"cert_reqs": "CERT_NONE"}"#).unwrap();
        assert!(o.client_config().is_ok());
    }

    #[test]
    fn server_names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("localhost").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("bad name!").is_err());
    }
}
