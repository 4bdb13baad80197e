//! TLS material for the server: PEM files given in the configuration, or a
//! development CA and server certificate generated with rcgen into
//! `<data-dir>/tls/` on first start and reused afterwards. Private key files
//! are written with mode 0600. The HTTP listener's rustls configuration is
//! made here from the same certificate ([`http_server_config`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls;

pub use crate::ca::{CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE};
use crate::files::{FileError, create_private_dir, write_private, write_public};

/// Validity of the generated development certificates.
const DEV_CERT_DAYS: i64 = 3650;

/// TLS material could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// rcgen could not make a key or certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The certificate or key cannot be used for TLS.
    #[error("server certificate: {0}")]
    Unusable(String),
}

impl From<FileError> for TlsError {
    fn from(e: FileError) -> Self {
        TlsError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A certificate chain and its private key, both PEM.
pub struct CertifiedKey {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM. Never logged.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Reads a certificate chain and key from PEM files.
///
/// # Errors
/// A file cannot be read.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    Ok(CertifiedKey {
        cert_pem: fs::read_to_string(cert).map_err(io(cert))?,
        key_pem: fs::read_to_string(key).map_err(io(key))?,
    })
}

/// The rustls configuration of the HTTP listener for `ck`: the aws-lc-rs
/// provider (as gRPC's), TLS 1.2 and 1.3, no client certificates, ALPN
/// `h2` then `http/1.1`.
///
/// # Errors
/// The PEM holds no certificate or no usable private key, or they do not
/// match.
pub fn http_server_config(ck: &CertifiedKey) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unusable = |e: &dyn std::fmt::Display| TlsError::Unusable(e.to_string());
    let certs = CertificateDer::pem_slice_iter(ck.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(&e))?;
    if certs.is_empty() {
        return Err(TlsError::Unusable(
            "no certificate in the PEM file".to_owned(),
        ));
    }
    // The key's parse error names no key material.
    let key = PrivateKeyDer::from_pem_slice(ck.key_pem.as_bytes()).map_err(|e| unusable(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| unusable(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The development server certificate in `dir`, generating a CA and a
/// certificate for `localhost`, `127.0.0.1` and `::1` if there is none.
///
/// # Errors
/// Files cannot be read or written, or generation failed.
pub fn ensure_dev_certificates(dir: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return load(&cert_path, &key_path);
    }
    create_private_dir(dir)?;
    let now = OffsetDateTime::now_utc();

    let ca = crate::ca::generate_ca(
        "mcp-auth development CA",
        now - Duration::hours(1),
        now + Duration::days(DEV_CERT_DAYS),
    )?;
    let ca_cert_pem = ca.cert_pem;
    let issuer = Issuer::new(ca.params, ca.key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - Duration::hours(1);
    server.not_after = now + Duration::days(DEV_CERT_DAYS);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write_private(
        &dir.join(CA_KEY_FILE),
        issuer.key().serialize_pem().as_bytes(),
    )?;
    write_public(&dir.join(CA_CERT_FILE), ca_cert_pem.as_bytes())?;
    write_private(&key_path, server_key.serialize_pem().as_bytes())?;
    write_public(&cert_path, server_cert.pem().as_bytes())?;
    tracing::info!(dir = %dir.display(), "generated development CA and server certificate");
    load(&cert_path, &key_path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn dev_certificates_are_generated_once_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = ensure_dev_certificates(&tls).unwrap();
        let again = ensure_dev_certificates(&tls).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem);
        for f in [CA_KEY_FILE, SERVER_KEY_FILE] {
            let mode = fs::metadata(tls.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = fs::metadata(&tls).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(!format!("{first:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn the_http_config_is_made_from_the_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ck = ensure_dev_certificates(&dir.path().join("tls")).unwrap();
        let config = http_server_config(&ck).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        let broken = CertifiedKey {
            cert_pem: ck.cert_pem.clone(),
            key_pem: "not a key".to_owned(),
        };
        let err = http_server_config(&broken).unwrap_err().to_string();
        assert!(!err.contains("PRIVATE"), "{err}");
        let none = CertifiedKey {
            cert_pem: String::new(),
            key_pem: ck.key_pem.clone(),
        };
        assert!(http_server_config(&none).is_err());
    }
}
