//! `mcp-auth cert ...`: a CA, the client and server certificates it
//! issues (local files), and revoking client certificates (on the server).

use super::output::time;
use super::{CertCommand, CliError, GlobalOpts, Output};
use crate::ca::{
    ClientCertRequest, ServerCertRequest, init_ca, issue_client_cert, issue_server_cert,
};
use crate::pb;

/// Runs a `cert` subcommand.
pub(super) async fn run(cmd: CertCommand, opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    match cmd {
        CertCommand::InitCa {
            out: dir,
            name,
            days,
            force,
        } => {
            let info = init_ca(&dir, &name, days, force).map_err(ca_err)?;
            #[derive(serde::Serialize)]
            struct Created {
                name: String,
                cert_path: std::path::PathBuf,
                key_path: std::path::PathBuf,
                fingerprint_sha256: String,
                expires_at: i64,
            }
            let created = Created {
                name,
                cert_path: info.cert_path,
                key_path: info.key_path,
                fingerprint_sha256: info.fingerprint_sha256,
                expires_at: info.not_after.unix_timestamp(),
            };
            out.print(&created, |c| {
                outln!("created CA {:?}", c.name);
                outln!(
                    "certificate: {} (give this to servers as client_ca)",
                    c.cert_path.display()
                );
                outln!(
                    "private key: {} (mode 0600; keep it offline)",
                    c.key_path.display()
                );
                outln!("sha256:      {}", c.fingerprint_sha256);
                outln!("expires:     {}", time(c.expires_at));
            })?;
        }
        CertCommand::Issue {
            name,
            ca_dir,
            out: dir,
            days,
            max_days,
            trust_domain,
            force,
        } => {
            if days == 0 {
                return Err(CliError::Usage("--days must be at least 1".to_owned()));
            }
            let mut req = ClientCertRequest::for_days(&name, &trust_domain, days);
            req.max_days = max_days;
            let issued = issue_client_cert(&ca_dir, &dir, &req, force).map_err(ca_err)?;
            out.print(&issued, |issued| {
                outln!("identity:    {}", issued.identity);
                outln!("serial:      {}", issued.serial);
                outln!("sha256:      {}", issued.fingerprint_sha256);
                outln!("expires:     {}", issued.not_after);
                outln!("certificate: {}", issued.cert_path.display());
                outln!("private key: {} (mode 0600)", issued.key_path.display());
            })?;
        }
        CertCommand::IssueServer {
            ca_dir,
            out: dir,
            dns,
            ip,
            days,
            max_days,
            force,
        } => {
            if days == 0 {
                return Err(CliError::Usage("--days must be at least 1".to_owned()));
            }
            if dns.is_empty() && ip.is_empty() {
                return Err(CliError::Usage(
                    "name the server: --dns NAME or --ip ADDRESS (each repeatable)".to_owned(),
                ));
            }
            let mut req = ServerCertRequest::for_days(&dns, &ip, days);
            req.max_days = max_days;
            let issued = issue_server_cert(&ca_dir, &dir, &req, force).map_err(ca_err)?;
            out.print(&issued, |issued| {
                let names: Vec<String> = issued
                    .dns_names
                    .iter()
                    .map(|n| format!("DNS:{n}"))
                    .chain(issued.ip_addresses.iter().map(|ip| format!("IP:{ip}")))
                    .collect();
                outln!("names:       {}", names.join(", "));
                outln!("serial:      {}", issued.serial);
                outln!("sha256:      {}", issued.fingerprint_sha256);
                outln!("expires:     {}", issued.not_after);
                outln!(
                    "certificate: {} (serve --tls-cert)",
                    issued.cert_path.display()
                );
                outln!(
                    "private key: {} (mode 0600; serve --tls-key)",
                    issued.key_path.display()
                );
            })?;
        }
        CertCommand::Revoke { serial } => {
            let resp = opts
                .client()
                .await?
                .revoke_certificate(pb::RevokeCertificateRequest { serial })
                .await?;
            out.print(&resp, |r| {
                outln!("revoked certificate {} at {}", r.serial, time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

fn ca_err(e: crate::ca::CaError) -> CliError {
    CliError::Usage(e.to_string())
}
