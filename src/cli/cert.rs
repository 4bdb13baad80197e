//! `mcp-auth cert ...`: a CA for client certificates and the certificates
//! it issues (local files), and revoking them (on the server).

use super::output::{print_json, show, time};
use super::{CertCommand, CliError};
use crate::ca::{ClientCertRequest, init_ca, issue_client_cert};
use crate::pb;

/// Runs a `cert` subcommand.
pub(super) async fn run(cmd: CertCommand) -> Result<u8, CliError> {
    match cmd {
        CertCommand::InitCa {
            out,
            name,
            days,
            force,
        } => {
            let info = init_ca(&out, &name, days, force).map_err(ca_err)?;
            outln!("created CA {name:?}");
            outln!(
                "certificate: {} (give this to servers as client_ca)",
                info.cert_path.display()
            );
            outln!(
                "private key: {} (mode 0600; keep it offline)",
                info.key_path.display()
            );
            outln!("sha256:      {}", info.fingerprint_sha256);
            outln!("expires:     {}", time(info.not_after.unix_timestamp()));
        }
        CertCommand::Issue {
            name,
            ca_dir,
            out,
            days,
            trust_domain,
            force,
            json,
        } => {
            if days == 0 {
                return Err(CliError::Usage("--days must be at least 1".to_owned()));
            }
            let req = ClientCertRequest::for_days(&name, &trust_domain, days);
            let issued = issue_client_cert(&ca_dir, &out, &req, force).map_err(ca_err)?;
            if json {
                print_json(&issued)?;
            } else {
                outln!("identity:    {}", issued.identity);
                outln!("serial:      {}", issued.serial);
                outln!("sha256:      {}", issued.fingerprint_sha256);
                outln!("expires:     {}", issued.not_after);
                outln!("certificate: {}", issued.cert_path.display());
                outln!("private key: {} (mode 0600)", issued.key_path.display());
            }
        }
        CertCommand::Revoke { serial, opts } => {
            let resp = opts
                .client()
                .await?
                .revoke_certificate(pb::RevokeCertificateRequest { serial })
                .await?;
            show(opts.json, &resp, |r| {
                outln!("revoked certificate {} at {}", r.serial, time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

fn ca_err(e: crate::ca::CaError) -> CliError {
    CliError::Usage(e.to_string())
}
