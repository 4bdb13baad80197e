//! What a caller may do: every authorization decision of the service, as
//! functions from the caller and the records involved to a verdict. The
//! operations call these and nothing else decides.

use crate::core::error::{Error, Reason};
use crate::core::principal::{ADMIN, Principal, RESERVED_SCOPES, SESSIONS_REVOKE};
use crate::store::{ApiKeyRecord, IdentityRecord, OAuthClientRecord, SessionFilter, SessionRecord};
use crate::untrusted::Echo;

/// Succeeds if the caller holds `scope`.
///
/// # Errors
/// PERMISSION_DENIED naming the missing scope.
pub(crate) fn require(caller: &Principal, scope: &str) -> Result<(), Error> {
    if caller.has(scope) {
        Ok(())
    } else {
        Err(Error::PermissionDenied {
            scope: scope.to_owned(),
            message: format!("this call needs scope {scope}, which the credential lacks"),
        })
    }
}

/// Succeeds if the caller holds every scope in `scopes`: to grant them to
/// a key or an identity, or to put them in a token. A delegated admin can
/// never mint something stronger than itself.
///
/// # Errors
/// PERMISSION_DENIED naming the first missing scope.
pub(crate) fn may_grant<'a>(
    caller: &Principal,
    scopes: impl IntoIterator<Item = &'a String>,
) -> Result<(), Error> {
    match scopes.into_iter().find(|s| !caller.has(s)) {
        None => Ok(()),
        Some(scope) => Err(Error::PermissionDenied {
            scope: scope.clone(),
            message: format!(
                "cannot grant scope {}: the credential does not hold it",
                Echo(scope)
            ),
        }),
    }
}

/// Revoking, rotating or updating an API key needs every scope it holds,
/// so a delegated `keys:admin` key can never disarm a stronger key.
///
/// # Errors
/// PERMISSION_DENIED naming the first missing scope.
pub(crate) fn may_manage_key(caller: &Principal, target: &ApiKeyRecord) -> Result<(), Error> {
    may_grant(caller, &target.scopes)
}

/// Changing, rotating or deleting an OAuth client needs every scope it may
/// put in tokens, so a delegated `clients:admin` key can never take over a
/// client stronger than itself.
///
/// # Errors
/// PERMISSION_DENIED naming the first missing scope.
pub(crate) fn may_manage_client(
    caller: &Principal,
    target: &OAuthClientRecord,
) -> Result<(), Error> {
    may_grant(caller, &target.allowed_scopes)
}

/// Changing or deleting an identity grant needs every scope it holds.
///
/// # Errors
/// PERMISSION_DENIED naming the first missing scope.
pub(crate) fn may_manage_identity(
    caller: &Principal,
    existing: Option<&IdentityRecord>,
) -> Result<(), Error> {
    match existing {
        Some(grant) => may_grant(caller, &grant.scopes),
        None => Ok(()),
    }
}

/// Service scopes never travel inside tokens.
///
/// # Errors
/// INVALID_ARGUMENT naming `field` and the service scope.
pub(crate) fn token_scopes_allowed(field: &'static str, scopes: &[String]) -> Result<(), Error> {
    match scopes
        .iter()
        .find(|sc| RESERVED_SCOPES.contains(&sc.as_str()))
    {
        Some(reserved) => Err(Error::invalid(
            field,
            format!("{reserved} is a service scope and cannot be put in a token"),
        )),
        None => Ok(()),
    }
}

/// A session's creator may revoke it; anyone else needs `sessions:revoke`.
///
/// # Errors
/// PERMISSION_DENIED naming `sessions:revoke`.
pub(crate) fn may_revoke_session(caller: &Principal, session: &SessionRecord) -> Result<(), Error> {
    if *session.client_id == *caller.id {
        Ok(())
    } else {
        require(caller, SESSIONS_REVOKE)
    }
}

/// Whether a caller may see one session: an admin any, everyone else
/// the sessions it created (as in [`session_listing`]).
pub(crate) fn may_see_session(caller: &Principal, session: &SessionRecord) -> bool {
    caller.has(ADMIN) || *caller.id == *session.client_id
}

/// Which of a subject's sessions a caller with `sessions:revoke` revokes
/// by subject: all of them for an admin, else those it created.
pub(crate) fn revokes_by_subject(caller: &Principal, session_client_id: &str) -> bool {
    caller.has(ADMIN) || *caller.id == *session_client_id
}

/// The listing a caller may see: an admin any (as filtered), everyone
/// else only the sessions it created.
///
/// # Errors
/// PERMISSION_DENIED when a non-admin asks for another creator's sessions.
pub(crate) fn session_listing(
    caller: &Principal,
    mut filter: SessionFilter,
) -> Result<SessionFilter, Error> {
    if !caller.has(ADMIN) {
        match &filter.client_id {
            Some(other) if **other != *caller.id => require(caller, ADMIN)?,
            _ => filter.client_id = Some(caller.id.to_string()),
        }
    }
    Ok(filter)
}

/// A refresh that also presents a credential must come from the session's
/// creator.
///
/// # Errors
/// PERMISSION_DENIED (`NOT_SESSION_CREATOR`).
pub(crate) fn may_refresh(creator: Option<&str>, session: &SessionRecord) -> Result<(), Error> {
    match creator {
        Some(id) if id != session.client_id => Err(Error::refused(
            Reason::NotSessionCreator,
            "a caller that sends a credential with a refresh token must be the session's creator",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::principal::{KEYS_ADMIN, TOKENS_VERIFY};

    fn principal(id: &str, scopes: &[&str]) -> Principal {
        Principal {
            id: id.into(),
            kind: crate::core::principal::CallerKind::ApiKey,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            rate_limit: None,
        }
    }

    fn session(client: &str) -> SessionRecord {
        crate::store::SessionRecord {
            session_id: "ses_1".into(),
            subject: "u".into(),
            client_id: client.into(),
            scopes: vec![],
            audience: "a".into(),
            created_at: 0,
            expires_at: 0,
            revoked_at: None,
            session_expires_at: 0,
            last_refreshed_at: 0,
            token_ttl: 0,
            oauth: false,
            resources: Vec::new(),
            refresh_tokens: vec![],
        }
    }

    #[test]
    fn admin_implies_every_scope() {
        let admin = principal("key_1", &["admin"]);
        assert!(require(&admin, KEYS_ADMIN).is_ok());
        assert!(require(&admin, crate::core::principal::CLIENTS_ADMIN).is_ok());
        assert!(require(&admin, crate::core::principal::USERS_ADMIN).is_ok());
        assert!(require(&admin, crate::core::principal::OAUTH_LOGIN).is_ok());
        let clients = principal("key_2", &["clients:admin"]);
        assert!(require(&clients, crate::core::principal::USERS_ADMIN).is_err());
        assert!(require(&clients, crate::core::principal::OAUTH_LOGIN).is_err());
        assert!(require(&admin, "tools:read").is_ok());
        assert!(require(&admin, crate::core::principal::STATUS_READ).is_ok());
        assert!(require(&admin, crate::core::principal::STORE_BACKUP).is_ok());
        // Reading the status is not reading the store: a status key cannot
        // take a backup, which holds the private signing keys.
        let status = principal("key_3", &["status:read"]);
        assert!(require(&status, crate::core::principal::STATUS_READ).is_ok());
        assert!(require(&status, crate::core::principal::STORE_BACKUP).is_err());
    }

    #[test]
    fn missing_scope_is_named() {
        let p = principal("key_1", &["sessions:create"]);
        match require(&p, TOKENS_VERIFY) {
            Err(Error::PermissionDenied { scope, message }) => {
                assert_eq!(scope, "tokens:verify");
                assert!(message.contains("tokens:verify"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn grants_never_exceed_the_granter() {
        let delegate = principal("key_d", &["keys:admin", "tools:read"]);
        let want = vec!["tools:read".to_owned(), "tools:write".to_owned()];
        match may_grant(&delegate, &want) {
            Err(Error::PermissionDenied { scope, .. }) => assert_eq!(scope, "tools:write"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(may_grant(&delegate, &want[..1]).is_ok());
        let stronger = IdentityRecord {
            name: "n".into(),
            scopes: vec!["admin".into()],
            disabled: false,
            created_at: 0,
            updated_at: 0,
            rate_limit: None,
        };
        assert!(may_manage_identity(&delegate, Some(&stronger)).is_err());
        assert!(may_manage_identity(&delegate, None).is_ok());
    }

    #[test]
    fn service_scopes_stay_out_of_tokens() {
        let err =
            token_scopes_allowed("scopes", &["tools:read".into(), "admin".into()]).unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidField);
        assert!(token_scopes_allowed("scopes", &["clients:admin".into()]).is_err());
        assert!(token_scopes_allowed("scopes", &["users:admin".into()]).is_err());
        assert!(token_scopes_allowed("scopes", &["oauth:login".into()]).is_err());
        assert!(token_scopes_allowed("scopes", &["status:read".into()]).is_err());
        assert!(token_scopes_allowed("scopes", &["store:backup".into()]).is_err());
        assert!(token_scopes_allowed("scopes", &["tools:read".into()]).is_ok());
    }

    #[test]
    fn owner_or_scope_for_sessions() {
        let owner = principal("key_a", &["sessions:create"]);
        let other = principal("key_b", &["sessions:create"]);
        let revoker = principal("key_c", &["sessions:revoke"]);
        let s = session("key_a");
        assert!(may_revoke_session(&owner, &s).is_ok());
        assert!(may_revoke_session(&other, &s).is_err());
        assert!(may_revoke_session(&revoker, &s).is_ok());
        assert!(revokes_by_subject(&owner, "key_a"));
        assert!(!revokes_by_subject(&revoker, "key_a"));
        assert!(revokes_by_subject(&principal("key_z", &["admin"]), "key_a"));
        assert!(may_refresh(None, &s).is_ok());
        assert!(may_refresh(Some(&owner.id), &s).is_ok());
        assert_eq!(
            may_refresh(Some(&other.id), &s).unwrap_err().reason(),
            Reason::NotSessionCreator
        );
    }

    #[test]
    fn non_admins_list_only_their_own_sessions() {
        let p = principal("key_a", &["sessions:create"]);
        let f = session_listing(&p, SessionFilter::default()).unwrap();
        assert_eq!(f.client_id.as_deref(), Some("key_a"));
        let foreign = SessionFilter {
            client_id: Some("key_b".into()),
            subject: None,
        };
        assert!(session_listing(&p, foreign.clone()).is_err());
        let admin = principal("key_z", &["admin"]);
        let f = session_listing(&admin, foreign).unwrap();
        assert_eq!(f.client_id.as_deref(), Some("key_b"));
        assert!(
            session_listing(&admin, SessionFilter::default())
                .unwrap()
                .client_id
                .is_none()
        );
    }
}
