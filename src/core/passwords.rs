//! Passwords of the built-in user accounts: the length rule, hashing with
//! Argon2id into a PHC string, and checking a password against one.
//!
//! Argon2id at OWASP's parameters (m = 19456 KiB, t = 2, p = 1; a 16-byte
//! salt from the OS random source, a 32-byte output): each hash or check
//! takes about 19 MiB and some tens of milliseconds of one core. So the
//! work runs on tokio's blocking pool, never on a runtime thread, and at
//! most [`Passwords::slots`] computations run at once (the others wait
//! their turn), so a flood of sign-ins cannot take the server's memory.
//!
//! Checking compares the computed output with the stored one in constant
//! time (the `phc` crate's `Output` equality). A check for a user who does
//! not exist runs against [`DUMMY_HASH`], which has the same parameters,
//! so it costs what a real one does.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use tokio::sync::Semaphore;

use crate::core::error::Error;
use crate::secret::Secret;

/// Shortest password, in bytes.
pub(crate) const MIN_PASSWORD_BYTES: usize = 8;
/// Longest password, in bytes.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;
/// Argon2id memory, KiB (OWASP's first recommended setting).
pub(crate) const MEMORY_KIB: u32 = 19_456;
/// Argon2id passes.
pub(crate) const PASSES: u32 = 2;
/// Argon2id lanes.
pub(crate) const LANES: u32 = 1;
/// Salt length, bytes.
const SALT_BYTES: usize = 16;

/// The hash a check of an unknown user's password runs against: Argon2id
/// with the parameters above, of 32 random bytes nobody kept. Checking
/// against it costs what checking a real user's hash costs; its result is
/// ignored.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$TUb8WlwMV1r/doIOOQS2eQ$nCwylqETeYFFuSXvEcay+wjX7HPpaJRid9PuspBKLHg";

/// Checks a new password's length: 8 to 1024 bytes.
///
/// # Errors
/// INVALID_ARGUMENT naming `field` (never repeating the password).
pub(crate) fn check_length(field: &'static str, password: &str) -> Result<(), Error> {
    let n = password.len();
    if (MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes (this one has {n})"
            ),
        ))
    }
}

fn hashing(e: impl std::fmt::Display) -> Error {
    Error::Hashing(e.to_string())
}

/// The Argon2id hasher at the parameters above.
fn argon2() -> Result<Argon2<'static>, Error> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(hashing)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh salt: blocking and costly.
fn hash_now(password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt)?;
    let hash = argon2()?
        .hash_password_with_salt(password, &salt)
        .map_err(hashing)?;
    Ok(hash.to_string())
}

/// Whether `password` is the one `phc` is the hash of: blocking and
/// costly. The parameters come from `phc` itself.
fn verify_now(password: &[u8], phc: &str) -> Result<bool, Error> {
    let parsed = PasswordHash::new(phc).map_err(|e| Error::Hashing(format!("stored hash: {e}")))?;
    match argon2()?.verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(hashing(e)),
    }
}

/// Hashing and checking passwords, a bounded number at a time, off the
/// runtime's threads.
pub(crate) struct Passwords {
    slots: Arc<Semaphore>,
}

impl Default for Passwords {
    /// As many computations at once as the machine has cores (2 to 16).
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Passwords::new(cores.clamp(2, 16))
    }
}

impl Passwords {
    /// At most `slots` hashes or checks at once.
    pub fn new(slots: usize) -> Self {
        Passwords {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _slot = self.slots.acquire().await.map_err(hashing)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Hashing(format!("hashing task: {e}")))?
    }

    /// The PHC string of `password`, with a fresh salt.
    ///
    /// # Errors
    /// The random source or the hasher failed.
    pub async fn hash(&self, password: Secret) -> Result<String, Error> {
        self.run(move || hash_now(password.expose().as_bytes()))
            .await
    }

    /// Whether `password` matches the stored `phc` string, or (with `None`)
    /// the same work against [`DUMMY_HASH`], answering `false`.
    ///
    /// # Errors
    /// The stored hash is not a PHC string this build can check.
    pub async fn verify(&self, password: Secret, phc: Option<String>) -> Result<bool, Error> {
        self.run(move || match phc {
            Some(phc) => verify_now(password.expose().as_bytes(), &phc),
            None => verify_now(password.expose().as_bytes(), DUMMY_HASH).map(|_| false),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_8_to_1024_bytes() {
        assert!(check_length("password", "1234567").is_err());
        assert!(check_length("password", "12345678").is_ok());
        assert!(check_length("password", &"x".repeat(1024)).is_ok());
        let err = check_length("password", &"x".repeat(1025)).unwrap_err();
        assert!(!err.to_string().contains("xxxxxxxx"), "{err}");
        // Bytes, not characters: four 2-byte characters are 8 bytes.
        assert!(check_length("password", "éééé").is_ok());
    }

    #[test]
    fn a_hash_is_argon2id_at_the_owasp_parameters_and_checks_only_its_password() {
        let phc = hash_now(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_now(b"correct horse", &phc).unwrap());
        assert!(!verify_now(b"correct horsf", &phc).unwrap());
        let again = hash_now(b"correct horse").unwrap();
        assert_ne!(phc, again, "a fresh salt each time");
        assert!(verify_now(b"x", "not a phc string").is_err());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_phc = hash_now(b"some password").unwrap();
        let real = PasswordHash::new(&real_phc).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(
            Params::try_from(&dummy).unwrap(),
            Params::try_from(&real).unwrap()
        );
        assert_eq!(dummy.salt.unwrap().len(), real.salt.unwrap().len());
        assert!(!verify_now(b"some password", DUMMY_HASH).unwrap());
    }

    #[tokio::test]
    async fn hashing_runs_off_the_runtime_and_unknown_users_answer_false() {
        let passwords = Passwords::new(1);
        let phc = passwords.hash(Secret::new("hunter2hunter2")).await.unwrap();
        let ok = passwords
            .verify(Secret::new("hunter2hunter2"), Some(phc.clone()))
            .await
            .unwrap();
        assert!(ok);
        let unknown = passwords
            .verify(Secret::new("hunter2hunter2"), None)
            .await
            .unwrap();
        assert!(!unknown);
    }
}
