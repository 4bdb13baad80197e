//! The certificate authority: creating a CA, issuing client certificates
//! for service identities and server certificates for the listeners, and
//! reading the identity back out of a presented client certificate.
//!
//! An identity is carried as the URI SAN `spiffe://<trust-domain>/<name>`
//! and as the subject CN. `mcp-auth cert init-ca`, `cert issue` and
//! `cert issue-server` (and the scripts in `certs/` that wrap them) call
//! into this module; the server calls [`parse_client_cert`] on every mTLS
//! request.
//!
//! Every certificate issued obeys two lifetime rules ([`check_lifetime`]):
//! it never outlives the CA that signs it, and it lives at most a cap of
//! days ([`DEFAULT_MAX_DAYS`] unless the caller sets another).

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::files::{FileError, write_private, write_public};
use crate::secret::SecretHash;
use crate::untrusted::Echo;

/// File name of a CA certificate in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of a CA private key in a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Default trust domain of SPIFFE ids.
pub const DEFAULT_TRUST_DOMAIN: &str = "mcp-auth.local";
/// Longest identity name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest lifetime of an issued certificate unless the caller sets
/// another cap: 398 days, the CA/Browser Forum's baseline for public TLS
/// server certificates (a year and a month to renew in).
pub const DEFAULT_MAX_DAYS: u32 = 398;
/// File name of a server certificate (with its CA chain) that
/// [`issue_server_cert`] writes.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the server private key that [`issue_server_cert`] writes.
pub const SERVER_KEY_FILE: &str = "server.key";

/// Why a CA or certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// rcgen refused the parameters.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file would be overwritten without `--force`.
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(PathBuf),
    /// The CA private key is readable by others.
    #[error(
        "{path} has mode {mode:o}: a CA key must be readable by its owner only (chmod 600 {path})"
    )]
    LooseKey {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The certificate would be valid after its CA expires.
    #[error(
        "cannot issue: the certificate would be valid until {not_after}, beyond the expiry of the CA certificate at {ca_not_after}, and no certificate may outlive its CA; {}",
        fit_advice(*.fits_days)
    )]
    OutlivesCa {
        /// The certificate's requested end of validity, RFC 3339.
        not_after: String,
        /// The CA certificate's end of validity, RFC 3339.
        ca_not_after: String,
        /// Whole days a certificate issued now may still live.
        fits_days: i64,
    },
    /// The CA certificate has expired: nothing it signs would be trusted.
    #[error(
        "cannot issue: the CA certificate expired at {ca_not_after}; create a new CA (cert init-ca) and issue from it"
    )]
    CaExpired {
        /// The CA certificate's end of validity, RFC 3339.
        ca_not_after: String,
    },
    /// The lifetime asked for is above the cap.
    #[error(
        "cannot issue: {days} days is above the cap of {max_days} days; ask for fewer --days, or raise the cap with --max-days (MCP_AUTH_CERT_MAX_DAYS)"
    )]
    AboveCap {
        /// The lifetime asked for, whole days (rounded up).
        days: i64,
        /// The cap.
        max_days: u32,
    },
}

fn fit_advice(fits_days: i64) -> String {
    if fits_days >= 1 {
        format!("ask for at most {fits_days} days (--days), or renew the CA")
    } else {
        "the CA expires in less than a day: renew it (cert init-ca) and issue from the new one"
            .to_owned()
    }
}

/// Formats a time as RFC 3339 (`2026-11-26T03:07:12Z`).
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The lifetime rules every issued certificate obeys: valid no later than
/// its CA (`ca_not_after`), and valid at most `max_days` from `now`.
///
/// # Errors
/// [`CaError::CaExpired`], [`CaError::OutlivesCa`] (naming the CA's
/// expiry) or [`CaError::AboveCap`].
pub fn check_lifetime(
    now: OffsetDateTime,
    not_after: OffsetDateTime,
    max_days: u32,
    ca_not_after: OffsetDateTime,
) -> Result<(), CaError> {
    const DAY: i64 = 86_400;
    if ca_not_after <= now {
        return Err(CaError::CaExpired {
            ca_not_after: rfc3339(ca_not_after),
        });
    }
    if not_after > ca_not_after {
        return Err(CaError::OutlivesCa {
            not_after: rfc3339(not_after),
            ca_not_after: rfc3339(ca_not_after),
            fits_days: (ca_not_after - now).whole_days(),
        });
    }
    if not_after > now + Duration::days(i64::from(max_days)) {
        let secs = (not_after - now).whole_seconds();
        return Err(CaError::AboveCap {
            days: (secs + DAY - 1) / DAY,
            max_days,
        });
    }
    Ok(())
}

/// The CA of a CA directory, ready to sign.
pub(crate) struct LoadedCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    not_after: OffsetDateTime,
}

/// Reads the CA in `ca_dir`, refusing a key readable by others.
fn load_ca(ca_dir: &Path) -> Result<LoadedCa, CaError> {
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let mode = fs::metadata(&ca_key_path)
        .map_err(io(&ca_key_path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CaError::LooseKey {
            path: ca_key_path,
            mode: mode & 0o777,
        });
    }
    let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
    let cert_pem = fs::read_to_string(&ca_cert_path).map_err(io(&ca_cert_path))?;
    ca_from_pem(cert_pem, &ca_key_pem, &ca_cert_path)
}

/// The CA of a certificate and key read from `ca_cert_path` (named in
/// errors) and its key file.
pub(crate) fn ca_from_pem(
    cert_pem: String,
    ca_key_pem: &str,
    ca_cert_path: &Path,
) -> Result<LoadedCa, CaError> {
    let der = pem_der(&cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CaError::Invalid(format!("{}: {e}", ca_cert_path.display())))?;
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| CaError::Invalid(format!("{}: {e}", ca_cert_path.display())))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, KeyPair::from_pem(ca_key_pem)?)?;
    Ok(LoadedCa {
        issuer,
        cert_pem,
        not_after,
    })
}

/// 16 random bytes, positive and without a leading zero byte, so the DER
/// form of the serial is these exact bytes.
fn random_serial() -> Result<[u8; 16], CaError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| CaError::Invalid(format!("OS random source: {e}")))?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| {
        CaError::File(FileError {
            path: path.to_owned(),
            source,
        })
    }
}

/// Checks an identity name: 1 to 63 characters of `a-z 0-9 . -`, starting
/// with a letter or digit (so it is a valid SPIFFE path segment and can
/// never look like an API key id).
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_identity_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "identity name {} must be 1 to {MAX_NAME_LEN} characters of a-z 0-9 . - starting with a letter or digit",
            Echo(name)
        ))
    }
}

/// Checks a trust domain: like a DNS name, 1 to 255 characters of
/// `a-z 0-9 . -`.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_trust_domain(td: &str) -> Result<(), String> {
    let ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "trust domain {} must be 1 to 255 characters of a-z 0-9 . -",
            Echo(td)
        ))
    }
}

/// The SPIFFE id of `name` in `trust_domain`.
pub fn spiffe_id(trust_domain: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}/{name}")
}

pub use crate::secret::hex;

/// Normalises a serial as a user or a tool may write it (`0A:1B`, `a1b`,
/// `00:c5...` with the DER sign byte): lowercase hex, whole bytes, no
/// leading zero bytes. [`parse_client_cert`] normalises the same way, so a
/// serial copied from `openssl x509 -serial` matches.
///
/// # Errors
/// The serial is empty, too long or not hex.
pub fn normalize_serial(serial: &str) -> Result<String, String> {
    let s: String = serial
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.is_empty() || s.len() > 42 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be 1 to 40 hex digits (colons allowed)".to_owned());
    }
    let mut s = if s.len() % 2 == 1 { format!("0{s}") } else { s };
    while s.len() > 2 && s.starts_with("00") {
        s.drain(..2);
    }
    Ok(s)
}

/// A serial's bytes as [`normalize_serial`] would write them.
fn serial_hex(raw: &[u8]) -> String {
    let first = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[first..])
}

/// A freshly generated CA: its PEM certificate and key pair.
pub(crate) struct NewCa {
    pub cert_pem: String,
    pub params: CertificateParams,
    pub key: KeyPair,
}

/// Generates a self-signed CA certificate named `common_name`.
///
/// # Errors
/// rcgen failed.
pub(crate) fn generate_ca(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<NewCa, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert_pem = params.self_signed(&key)?.pem();
    Ok(NewCa {
        cert_pem,
        params,
        key,
    })
}

/// What [`init_ca`] wrote.
#[derive(Debug)]
pub struct CaInfo {
    /// The CA certificate (what servers and clients trust).
    pub cert_path: PathBuf,
    /// The CA private key (mode 0600).
    pub key_path: PathBuf,
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint_sha256: String,
    /// Expiry.
    pub not_after: OffsetDateTime,
}

/// Creates a CA in `out_dir` (`ca.pem`, and `ca.key` with mode 0600).
///
/// # Errors
/// The files exist and `force` is false, or they cannot be written.
pub fn init_ca(
    out_dir: &Path,
    common_name: &str,
    days: u32,
    force: bool,
) -> Result<CaInfo, CaError> {
    if days == 0 {
        return Err(CaError::Invalid("--days must be at least 1".to_owned()));
    }
    let cert_path = out_dir.join(CA_CERT_FILE);
    let key_path = out_dir.join(CA_KEY_FILE);
    refuse_overwrite(&[&cert_path, &key_path], force)?;
    crate::files::create_private_dir(out_dir)?;
    // To the second, as the certificate holds it.
    let now = now_seconds();
    let not_after = now + Duration::days(i64::from(days));
    let ca = generate_ca(common_name, now - Duration::minutes(5), not_after)?;
    write_private(&key_path, ca.key.serialize_pem().as_bytes())?;
    write_public(&cert_path, ca.cert_pem.as_bytes())?;
    Ok(CaInfo {
        fingerprint_sha256: fingerprint(&pem_der(&ca.cert_pem)?),
        cert_path,
        key_path,
        not_after,
    })
}

fn refuse_overwrite(paths: &[&Path], force: bool) -> Result<(), CaError> {
    if !force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return Err(CaError::Exists((*p).to_owned()));
        }
    }
    Ok(())
}

/// What to put in a client certificate.
#[derive(Clone, Debug)]
pub struct ClientCertRequest {
    /// The identity name (see [`validate_identity_name`]).
    pub name: String,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Longest lifetime allowed, days from now ([`check_lifetime`]).
    pub max_days: u32,
}

/// Now, to the second.
fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

impl ClientCertRequest {
    /// A request valid from five minutes ago (clock skew) for `days` days,
    /// under the [`DEFAULT_MAX_DAYS`] cap.
    pub fn for_days(name: &str, trust_domain: &str, days: u32) -> Self {
        let now = now_seconds();
        ClientCertRequest {
            name: name.to_owned(),
            trust_domain: trust_domain.to_owned(),
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(i64::from(days)),
            max_days: DEFAULT_MAX_DAYS,
        }
    }
}

/// What [`issue_client_cert`] wrote.
#[derive(Debug, serde::Serialize)]
pub struct IssuedCert {
    /// The identity name.
    pub name: String,
    /// `spiffe://<trust-domain>/<name>`.
    pub identity: String,
    /// Serial number, lowercase hex: what `mcp-auth cert revoke` takes.
    pub serial: String,
    /// SHA-256 fingerprint of the certificate, colon-separated hex.
    pub fingerprint_sha256: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// Certificate followed by the CA certificate (PEM).
    pub cert_path: PathBuf,
    /// Private key (PEM, mode 0600).
    pub key_path: PathBuf,
}

/// Issues a client certificate signed by the CA in `ca_dir`, writing
/// `<name>.pem` (certificate, then the CA certificate) and `<name>.key`
/// (mode 0600) into `out_dir`. Never prints or returns the private key.
///
/// # Errors
/// The name or trust domain is invalid, the CA key is readable by others,
/// the lifetime breaks a rule of [`check_lifetime`], the output files
/// exist and `force` is false, or a file cannot be used.
pub fn issue_client_cert(
    ca_dir: &Path,
    out_dir: &Path,
    req: &ClientCertRequest,
    force: bool,
) -> Result<IssuedCert, CaError> {
    validate_identity_name(&req.name).map_err(CaError::Invalid)?;
    validate_trust_domain(&req.trust_domain).map_err(CaError::Invalid)?;
    if req.not_after <= req.not_before {
        return Err(CaError::Invalid(
            "the certificate would never be valid".to_owned(),
        ));
    }
    let ca = load_ca(ca_dir)?;
    check_lifetime(
        OffsetDateTime::now_utc(),
        req.not_after,
        req.max_days,
        ca.not_after,
    )?;
    let cert_path = out_dir.join(format!("{}.pem", req.name));
    let key_path = out_dir.join(format!("{}.key", req.name));
    refuse_overwrite(&[&cert_path, &key_path], force)?;

    let identity = spiffe_id(&req.trust_domain, &req.name);
    let serial = random_serial()?;

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, req.name.as_str());
    params.subject_alt_names = vec![SanType::URI(identity.as_str().try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = req.not_before;
    params.not_after = req.not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;

    crate::files::create_private_dir(out_dir)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(
        &cert_path,
        format!("{}{}", cert.pem(), ca.cert_pem).as_bytes(),
    )?;
    Ok(IssuedCert {
        name: req.name.clone(),
        identity,
        serial: hex(&serial),
        fingerprint_sha256: fingerprint(cert.der()),
        not_after: rfc3339(req.not_after),
        cert_path,
        key_path,
    })
}

/// Checks and normalises a DNS name for a server certificate: 1 to 253
/// characters, labels of 1 to 63 letters, digits and `-` (not at either
/// end of a label), separated by dots; the first label may be `*` (a
/// wildcard). Returned in lowercase.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_dns_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = lower.split('.').collect();
    let wildcard = labels.first() == Some(&"*");
    let ok = lower.len() <= 253
        && labels
            .iter()
            .skip(usize::from(wildcard))
            .all(|l| label_ok(l))
        && (!wildcard || labels.len() >= 3);
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "--dns {} is not a DNS name: labels of a-z 0-9 - separated by dots, at most 253 characters (a wildcard only as the first label of a name with two more, *.example.com)",
            Echo(name)
        ))
    }
}

/// What to put in a server certificate.
#[derive(Clone, Debug)]
pub struct ServerCertRequest {
    /// DNS names the server answers to (see [`validate_dns_name`]).
    pub dns_names: Vec<String>,
    /// IP addresses the server answers on.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Longest lifetime allowed, days from now ([`check_lifetime`]).
    pub max_days: u32,
}

impl ServerCertRequest {
    /// A request for these names, valid from five minutes ago (clock skew)
    /// for `days` days, under the [`DEFAULT_MAX_DAYS`] cap.
    pub fn for_days(dns_names: &[String], ip_addresses: &[IpAddr], days: u32) -> Self {
        let now = now_seconds();
        ServerCertRequest {
            dns_names: dns_names.to_vec(),
            ip_addresses: ip_addresses.to_vec(),
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(i64::from(days)),
            max_days: DEFAULT_MAX_DAYS,
        }
    }
}

/// What [`issue_server_cert`] wrote.
#[derive(Debug, serde::Serialize)]
pub struct IssuedServerCert {
    /// The DNS names of the certificate, lowercase.
    pub dns_names: Vec<String>,
    /// The IP addresses of the certificate.
    pub ip_addresses: Vec<IpAddr>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 fingerprint of the certificate, colon-separated hex.
    pub fingerprint_sha256: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// Certificate followed by the CA certificate (PEM): `--tls-cert`.
    pub cert_path: PathBuf,
    /// Private key (PEM, mode 0600): `--tls-key`.
    pub key_path: PathBuf,
}

/// Issues a TLS server certificate signed by the CA in `ca_dir`, writing
/// `server.pem` (certificate, then the CA certificate) and `server.key`
/// (mode 0600) into `out_dir`: what `mcp-auth serve --tls-cert --tls-key`
/// takes. The certificate names the DNS names and IP addresses of the
/// request as its subject alternative names (the first as its common
/// name), is not a CA, and is for TLS server authentication only (key
/// usage digitalSignature, extended key usage serverAuth). Never prints or
/// returns the private key.
///
/// # Errors
/// No name or an invalid one, the CA key is readable by others, the
/// lifetime breaks a rule of [`check_lifetime`], the output files exist
/// and `force` is false, or a file cannot be used.
pub fn issue_server_cert(
    ca_dir: &Path,
    out_dir: &Path,
    req: &ServerCertRequest,
    force: bool,
) -> Result<IssuedServerCert, CaError> {
    let mut dns_names = Vec::new();
    for name in &req.dns_names {
        let name = validate_dns_name(name).map_err(CaError::Invalid)?;
        if !dns_names.contains(&name) {
            dns_names.push(name);
        }
    }
    let mut ip_addresses = Vec::new();
    for ip in &req.ip_addresses {
        if !ip_addresses.contains(ip) {
            ip_addresses.push(*ip);
        }
    }
    let Some(common_name) = dns_names
        .first()
        .cloned()
        .or_else(|| ip_addresses.first().map(IpAddr::to_string))
    else {
        return Err(CaError::Invalid(
            "a server certificate needs at least one name: --dns NAME or --ip ADDRESS".to_owned(),
        ));
    };
    if req.not_after <= req.not_before {
        return Err(CaError::Invalid(
            "the certificate would never be valid".to_owned(),
        ));
    }
    let ca = load_ca(ca_dir)?;
    check_lifetime(
        OffsetDateTime::now_utc(),
        req.not_after,
        req.max_days,
        ca.not_after,
    )?;
    let cert_path = out_dir.join(SERVER_CERT_FILE);
    let key_path = out_dir.join(SERVER_KEY_FILE);
    refuse_overwrite(&[&cert_path, &key_path], force)?;

    let serial = random_serial()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let mut sans = Vec::with_capacity(dns_names.len() + ip_addresses.len());
    for name in &dns_names {
        sans.push(SanType::DnsName(name.as_str().try_into()?));
    }
    sans.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = req.not_before;
    params.not_after = req.not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;

    crate::files::create_private_dir(out_dir)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(
        &cert_path,
        format!("{}{}", cert.pem(), ca.cert_pem).as_bytes(),
    )?;
    Ok(IssuedServerCert {
        dns_names,
        ip_addresses,
        serial: hex(&serial),
        fingerprint_sha256: fingerprint(cert.der()),
        not_after: rfc3339(req.not_after),
        cert_path,
        key_path,
    })
}

pub(crate) fn pem_der(pem: &str) -> Result<Vec<u8>, CaError> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, p)| p.contents)
        .map_err(|e| CaError::Invalid(format!("bad PEM: {e}")))
}

/// SHA-256 of a DER certificate as colon-separated uppercase hex (the form
/// `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(der: &[u8]) -> String {
    SecretHash::of(der)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the server reads out of a presented client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertInfo {
    /// The identity name from the SPIFFE id.
    pub name: String,
    /// Serial number, lowercase hex.
    pub serial: String,
}

/// Reads the identity and serial out of a client certificate (DER) that
/// the TLS layer has already verified against the client CA.
///
/// # Errors
/// The certificate cannot be parsed or has no URI SAN
/// `spiffe://<trust_domain>/<name>` with a valid name.
pub fn parse_client_cert(der: &[u8], trust_domain: &str) -> Result<ClientCertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let serial = serial_hex(cert.tbs_certificate.raw_serial());
    let prefix = format!("spiffe://{trust_domain}/");
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    let name = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .find_map(|gn| match gn {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(prefix.as_str()),
            _ => None,
        })
        .ok_or_else(|| format!("the client certificate has no URI SAN {prefix}<name>"))?;
    validate_identity_name(name)?;
    Ok(ClientCertInfo {
        name: name.to_owned(),
        serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_carries_identity_and_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "test CA", 30, false).unwrap();
        let mode = fs::metadata(&ca.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            init_ca(dir.path(), "again", 30, false),
            Err(CaError::Exists(_))
        ));

        let out = dir.path().join("out");
        // A day less than the CA: 30 days from a second later would
        // outlive it (and be refused).
        let req = ClientCertRequest::for_days("billing", DEFAULT_TRUST_DOMAIN, 29);
        let issued = issue_client_cert(dir.path(), &out, &req, false).unwrap();
        assert_eq!(issued.identity, "spiffe://mcp-auth.local/billing");
        assert_eq!(issued.serial.len(), 32);
        let key_mode = fs::metadata(&issued.key_path).unwrap().permissions().mode();
        assert_eq!(key_mode & 0o777, 0o600);
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));

        let pem = fs::read_to_string(&issued.cert_path).unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "leaf then CA");
        let der = pem_der(&pem).unwrap();
        let info = parse_client_cert(&der, DEFAULT_TRUST_DOMAIN).unwrap();
        assert_eq!(info.name, "billing");
        assert_eq!(info.serial, issued.serial);
        assert_eq!(fingerprint(&der), issued.fingerprint_sha256);
        assert!(parse_client_cert(&der, "other.domain").is_err());

        // No overwrite without force; with force a new serial.
        assert!(matches!(
            issue_client_cert(dir.path(), &out, &req, false),
            Err(CaError::Exists(_))
        ));
        let again = issue_client_cert(dir.path(), &out, &req, true).unwrap();
        assert_ne!(again.serial, issued.serial);
    }

    #[test]
    fn loose_ca_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "test CA", 30, false).unwrap();
        fs::set_permissions(&ca.key_path, fs::Permissions::from_mode(0o644)).unwrap();
        let req = ClientCertRequest::for_days("billing", DEFAULT_TRUST_DOMAIN, 29);
        let err = issue_client_cert(dir.path(), dir.path(), &req, false).unwrap_err();
        assert!(
            matches!(err, CaError::LooseKey { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn lifetime_rules() {
        let now = OffsetDateTime::now_utc();
        let ca_end = now + Duration::days(10);
        assert!(check_lifetime(now, now + Duration::days(10), 398, ca_end).is_ok());
        let err = check_lifetime(now, now + Duration::days(11), 398, ca_end).unwrap_err();
        assert!(
            matches!(err, CaError::OutlivesCa { fits_days: 10, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&rfc3339(ca_end)), "{msg}");
        assert!(msg.contains("at most 10 days"), "{msg}");
        let err = check_lifetime(now, now + Duration::days(2), 398, now + Duration::hours(1))
            .unwrap_err();
        assert!(err.to_string().contains("less than a day"), "{err}");
        let err = check_lifetime(now, now + Duration::days(1), 398, now - Duration::hours(1))
            .unwrap_err();
        assert!(matches!(err, CaError::CaExpired { .. }), "{err}");

        let ca_end = now + Duration::days(3650);
        assert!(check_lifetime(now, now + Duration::days(398), 398, ca_end).is_ok());
        let err = check_lifetime(now, now + Duration::days(399), 398, ca_end).unwrap_err();
        assert!(
            matches!(
                err,
                CaError::AboveCap {
                    days: 399,
                    max_days: 398
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--max-days"), "{err}");
        assert!(check_lifetime(now, now + Duration::days(399), 400, ca_end).is_ok());
    }

    #[test]
    fn a_client_certificate_never_outlives_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "short CA", 1, false).unwrap();
        let out = dir.path().join("out");
        let req = ClientCertRequest::for_days("billing", DEFAULT_TRUST_DOMAIN, 365);
        let err = issue_client_cert(dir.path(), &out, &req, false).unwrap_err();
        assert!(matches!(err, CaError::OutlivesCa { .. }), "{err}");
        assert!(
            err.to_string().contains(&rfc3339(ca.not_after)),
            "names the CA's expiry: {err}"
        );
        assert!(!out.exists(), "nothing written");
    }

    #[test]
    fn server_certificate_names_usages_and_files() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "test CA", 30, false).unwrap();
        let out = dir.path().join("tls");
        let req = ServerCertRequest::for_days(
            &["Auth.Example.com".to_owned(), "localhost".to_owned()],
            &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            7,
        );
        let issued = issue_server_cert(dir.path(), &out, &req, false).unwrap();
        assert_eq!(issued.dns_names, ["auth.example.com", "localhost"]);
        assert_eq!(issued.cert_path, out.join(SERVER_CERT_FILE));
        let key_mode = fs::metadata(&issued.key_path).unwrap().permissions().mode();
        assert_eq!(key_mode & 0o777, 0o600);
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));

        let pem = fs::read_to_string(&issued.cert_path).unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "leaf then CA");
        let der = pem_der(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        use x509_parser::extensions::GeneralName;
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(ip) => format!("IP:{}", ip.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            ["DNS:auth.example.com", "DNS:localhost", "IP:4", "IP:16"]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(fingerprint(&der), issued.fingerprint_sha256);

        assert!(matches!(
            issue_server_cert(dir.path(), &out, &req, false),
            Err(CaError::Exists(_))
        ));
        assert!(issue_server_cert(dir.path(), &out, &req, true).is_ok());

        let none = ServerCertRequest::for_days(&[], &[], 7);
        let err = issue_server_cert(dir.path(), &out, &none, true).unwrap_err();
        assert!(err.to_string().contains("--dns"), "{err}");

        let long = ServerCertRequest::for_days(&["localhost".to_owned()], &[], 31);
        let err = issue_server_cert(dir.path(), &dir.path().join("x"), &long, false).unwrap_err();
        assert!(matches!(err, CaError::OutlivesCa { .. }), "{err}");
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            validate_dns_name("Auth.Example.COM").unwrap(),
            "auth.example.com"
        );
        assert!(validate_dns_name("localhost").is_ok());
        assert!(validate_dns_name("*.example.com").is_ok());
        assert!(validate_dns_name("a-1.b").is_ok());
        for bad in [
            "", "*", "*.com", "a.*.com", "-a.com", "a-.com", "a..b", "a b", "a_b.com", "é.com",
        ] {
            assert!(validate_dns_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_dns_name(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(validate_dns_name(&vec!["a".repeat(63); 5].join(".")).is_err());
    }

    #[test]
    fn names_and_serials() {
        assert!(validate_identity_name("billing").is_ok());
        assert!(validate_identity_name("a.b-c9").is_ok());
        assert!(validate_identity_name("key_abc").is_err());
        assert!(validate_identity_name("-x").is_err());
        assert!(validate_identity_name("Billing").is_err());
        assert!(validate_identity_name("").is_err());
        assert!(validate_identity_name(&"a".repeat(64)).is_err());
        assert_eq!(normalize_serial("0A:1b").unwrap(), "0a1b");
        assert_eq!(normalize_serial("00:C5:01").unwrap(), "c501");
        assert_eq!(normalize_serial("a1b").unwrap(), "0a1b");
        assert_eq!(normalize_serial("00").unwrap(), "00");
        assert_eq!(serial_hex(&[0, 0xc5, 1]), "c501");
        assert_eq!(serial_hex(&[0x0a, 0x1b]), normalize_serial("0a1b").unwrap());
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }
}
