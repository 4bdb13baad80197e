//! The online check: `VerifyToken` with this MCP server's resource as the
//! audience and its caller's address, and the mapping of its answer to a
//! verdict. An inactive token is refused with its reason; a throttled
//! caller is [`VerifyError::RateLimited`]; anything else that is not an
//! answer (mcp-auth down, slow, refusing the MCP server's own credential,
//! or saying something unexpected) is [`VerifyError::Unavailable`]: fail
//! closed.

use std::net::IpAddr;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::cache::CachedVerdict;
use super::channel::Connection;
use crate::claims::{TokenKind, Verified, application_scopes};
use crate::error::{Rejection, VerifyError};
use crate::pb;

/// Retry delay when a RESOURCE_EXHAUSTED answer names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest part of mcp-auth's error message kept in an `Unavailable`.
const MAX_MESSAGE: usize = 200;

/// Asks mcp-auth about `credential`, within the connection's deadline.
///
/// # Errors
/// The call's status (DEADLINE_EXCEEDED if the deadline passed first).
pub(crate) async fn verify_token(
    conn: &Connection,
    credential: &str,
    audience: &str,
    client_address: Option<IpAddr>,
) -> Result<pb::VerifyTokenResponse, Status> {
    let req = conn.request(pb::VerifyTokenRequest {
        token: credential.to_owned(),
        audience: audience.to_owned(),
        required_scopes: Vec::new(),
        client_address: client_address.map(|a| a.to_string()).unwrap_or_default(),
    });
    let mut client = conn.client();
    match tokio::time::timeout(conn.timeout, client.verify_token(req)).await {
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {:?}",
            conn.timeout
        ))),
    }
}

/// What the verifier expects of an active answer.
pub(crate) struct Expected<'a> {
    /// This MCP server's resource URL.
    pub audience: &'a str,
    /// mcp-auth's issuer URL.
    pub issuer: &'a str,
    /// What the credential looked like.
    pub presented: TokenKind,
}

/// The reason of an inactive answer, as the SDK's.
pub(crate) fn rejection(reason: pb::TokenReason) -> Rejection {
    use pb::TokenReason as R;
    match reason {
        R::Expired => Rejection::Expired,
        R::Revoked => Rejection::Revoked,
        R::BadSignature => Rejection::BadSignature,
        R::Malformed => Rejection::Malformed,
        R::WrongAudience => Rejection::WrongAudience,
        R::InsufficientScope => Rejection::InsufficientScope,
        R::NotYetValid => Rejection::NotYetValid,
        R::UnknownKey => Rejection::UnknownKey,
        R::WrongIssuer => Rejection::WrongIssuer,
        R::UnknownApiKey => Rejection::UnknownApiKey,
        R::RotatedOut => Rejection::RotatedOut,
        // Inactive without a reason we know (a newer server): still a
        // refusal, of a credential we cannot place.
        R::Unspecified => Rejection::Malformed,
    }
}

/// The verdict of an answer on `credential`.
///
/// # Errors
/// [`VerifyError::Rejected`] for an inactive credential, or an active
/// access token for another audience or issuer;
/// [`VerifyError::Unavailable`] for an active answer without claims.
pub(crate) fn verdict(
    resp: pb::VerifyTokenResponse,
    expected: &Expected<'_>,
    credential: &str,
) -> Result<CachedVerdict, VerifyError> {
    if !resp.active {
        let reason = pb::TokenReason::try_from(resp.reason).unwrap_or(pb::TokenReason::Unspecified);
        return Err(VerifyError::Rejected(rejection(reason)));
    }
    let kind = match pb::TokenKind::try_from(resp.token_kind) {
        Ok(pb::TokenKind::ApiKey) => TokenKind::ApiKey,
        Ok(pb::TokenKind::AccessToken) => TokenKind::AccessToken,
        _ => expected.presented,
    };
    let Some(c) = resp.claims else {
        return Err(VerifyError::Unavailable(
            "mcp-auth answered active without claims".to_owned(),
        ));
    };
    let scopes = application_scopes(c.scopes.iter().map(String::as_str));
    if kind == TokenKind::ApiKey {
        let subject = if c.subject.is_empty() {
            c.client_id.clone()
        } else {
            c.subject
        };
        let client_id = if c.client_id.is_empty() {
            subject.clone()
        } else {
            c.client_id
        };
        return Ok(CachedVerdict {
            verified: Verified {
                kind,
                subject,
                client_id,
                scopes,
                audience: String::new(),
                issuer: String::new(),
                session_id: String::new(),
                token_id: String::new(),
                expires_at: c.expires_at.max(0),
            },
            issued_at: 0,
        });
    }
    // mcp-auth checked the audience it was given; a token for another
    // resource or from another issuer is refused here all the same.
    if c.audience != expected.audience {
        return Err(VerifyError::Rejected(Rejection::WrongAudience));
    }
    if c.issuer != expected.issuer {
        return Err(VerifyError::Rejected(Rejection::WrongIssuer));
    }
    // The answer has no `jti`: read it from the token mcp-auth vouched for.
    let token_id = mcp_auth_token::vouched_claims(credential)
        .ok()
        .filter(|v| v.session_id() == c.session_id)
        .map(|v| v.jti)
        .unwrap_or_default();
    Ok(CachedVerdict {
        verified: Verified {
            kind,
            subject: c.subject,
            client_id: c.client_id,
            scopes,
            audience: c.audience,
            issuer: c.issuer,
            session_id: c.session_id,
            token_id,
            expires_at: c.expires_at,
        },
        issued_at: c.issued_at,
    })
}

/// Why a call did not give an answer, and whether mcp-auth refused the
/// MCP server's own credential.
pub(crate) struct CallFailure {
    /// What the verifier's caller gets.
    pub error: VerifyError,
    /// UNAUTHENTICATED or PERMISSION_DENIED: the MCP server's API key (or
    /// certificate) is wrong, revoked or lacks `tokens:verify`.
    pub own_credential: bool,
}

/// The verdict for a failed call.
pub(crate) fn failure(status: &Status) -> CallFailure {
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default();
    match status.code() {
        Code::ResourceExhausted => CallFailure {
            error: VerifyError::RateLimited {
                retry_after: status
                    .get_details_retry_info()
                    .and_then(|r| r.retry_delay)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_RETRY_AFTER),
            },
            own_credential: false,
        },
        code @ (Code::Unauthenticated | Code::PermissionDenied) => CallFailure {
            error: VerifyError::Unavailable(format!(
                "mcp-auth refused this MCP server's own credential ({code:?} {reason}): check its API key or client certificate, and that it holds scope tokens:verify"
            )),
            own_credential: true,
        },
        code => {
            let mut message = status.message().to_owned();
            if message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
            }
            CallFailure {
                error: VerifyError::Unavailable(format!(
                    "mcp-auth did not answer ({code:?} {reason}): {message}"
                )),
                own_credential: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const AUD: &str = "https://mcp.example/mcp";
    const ISS: &str = "https://auth.example";

    fn expected(presented: TokenKind) -> Expected<'static> {
        Expected {
            audience: AUD,
            issuer: ISS,
            presented,
        }
    }

    fn active(kind: pb::TokenKind, claims: pb::TokenClaims) -> pb::VerifyTokenResponse {
        pb::VerifyTokenResponse {
            active: true,
            reason: 0,
            claims: Some(claims),
            token_kind: kind.into(),
        }
    }

    fn token_claims() -> pb::TokenClaims {
        pb::TokenClaims {
            subject: "alice".into(),
            scopes: vec!["tools:read".into(), "admin".into()],
            audience: AUD.into(),
            session_id: "ses_1".into(),
            client_id: "key_1".into(),
            issued_at: 100,
            expires_at: 700,
            issuer: ISS.into(),
        }
    }

    #[test]
    fn every_reason_maps_and_inactive_is_refused() {
        use pb::TokenReason as R;
        let pairs = [
            (R::Expired, Rejection::Expired),
            (R::Revoked, Rejection::Revoked),
            (R::BadSignature, Rejection::BadSignature),
            (R::Malformed, Rejection::Malformed),
            (R::WrongAudience, Rejection::WrongAudience),
            (R::InsufficientScope, Rejection::InsufficientScope),
            (R::NotYetValid, Rejection::NotYetValid),
            (R::UnknownKey, Rejection::UnknownKey),
            (R::WrongIssuer, Rejection::WrongIssuer),
            (R::UnknownApiKey, Rejection::UnknownApiKey),
            (R::RotatedOut, Rejection::RotatedOut),
            (R::Unspecified, Rejection::Malformed),
        ];
        for (reason, want) in pairs {
            let resp = pb::VerifyTokenResponse {
                active: false,
                reason: reason.into(),
                claims: None,
                token_kind: pb::TokenKind::ApiKey.into(),
            };
            assert_eq!(
                verdict(resp, &expected(TokenKind::ApiKey), "mcp_sk_x"),
                Err(VerifyError::Rejected(want))
            );
        }
        // A reason from a newer server.
        let resp = pb::VerifyTokenResponse {
            active: false,
            reason: 99,
            claims: None,
            token_kind: 0,
        };
        assert_eq!(
            verdict(resp, &expected(TokenKind::AccessToken), "x"),
            Err(VerifyError::Rejected(Rejection::Malformed))
        );
    }

    #[test]
    fn active_tokens_and_keys() {
        let v = verdict(
            active(pb::TokenKind::AccessToken, token_claims()),
            &expected(TokenKind::AccessToken),
            "not.a.jwt",
        )
        .unwrap();
        assert_eq!(v.verified.kind, TokenKind::AccessToken);
        assert_eq!(v.verified.scopes, ["tools:read"]);
        assert_eq!(v.verified.session_id, "ses_1");
        assert_eq!(v.verified.token_id, "");
        assert_eq!(v.issued_at, 100);

        let mut other = token_claims();
        other.audience = "https://mcp.example/other".into();
        assert_eq!(
            verdict(
                active(pb::TokenKind::AccessToken, other),
                &expected(TokenKind::AccessToken),
                "x"
            ),
            Err(VerifyError::Rejected(Rejection::WrongAudience))
        );
        let mut other = token_claims();
        other.issuer = "https://evil.example".into();
        assert_eq!(
            verdict(
                active(pb::TokenKind::Unspecified, other),
                &expected(TokenKind::AccessToken),
                "x"
            ),
            Err(VerifyError::Rejected(Rejection::WrongIssuer))
        );

        let key = pb::TokenClaims {
            subject: String::new(),
            scopes: vec!["tools:read".into(), "tokens:verify".into()],
            audience: String::new(),
            session_id: String::new(),
            client_id: "key_9".into(),
            issued_at: 5,
            expires_at: 0,
            issuer: ISS.into(),
        };
        let v = verdict(
            active(pb::TokenKind::ApiKey, key),
            &expected(TokenKind::ApiKey),
            "mcp_sk_x",
        )
        .unwrap();
        assert_eq!(v.verified.kind, TokenKind::ApiKey);
        assert_eq!(v.verified.subject, "key_9");
        assert_eq!(v.verified.client_id, "key_9");
        assert_eq!(v.verified.scopes, ["tools:read"]);
        assert_eq!(v.verified.issuer, "");
        assert_eq!(v.verified.expires_at, 0);

        let mut empty = active(pb::TokenKind::ApiKey, token_claims());
        empty.claims = None;
        assert!(matches!(
            verdict(empty, &expected(TokenKind::ApiKey), "mcp_sk_x"),
            Err(VerifyError::Unavailable(_))
        ));
    }

    #[test]
    fn statuses_fail_closed_except_a_throttle() {
        use tonic_types::{ErrorDetails, StatusExt};
        let throttled = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
        );
        assert_eq!(
            failure(&throttled).error,
            VerifyError::RateLimited {
                retry_after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            failure(&Status::resource_exhausted("no detail")).error,
            VerifyError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        for status in [
            Status::unauthenticated("bad key"),
            Status::permission_denied("no scope"),
        ] {
            let f = failure(&status);
            assert!(f.own_credential);
            assert!(matches!(f.error, VerifyError::Unavailable(m) if m.contains("own credential")));
        }
        for status in [
            Status::unavailable("down"),
            Status::deadline_exceeded("slow"),
            Status::internal("oops"),
            Status::invalid_argument("what"),
            Status::unknown("x".repeat(1000)),
        ] {
            let f = failure(&status);
            assert!(!f.own_credential);
            let VerifyError::Unavailable(m) = f.error else {
                panic!("{status:?}")
            };
            assert!(m.len() < 300, "{m}");
        }
    }
}
