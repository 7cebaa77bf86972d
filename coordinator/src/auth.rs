//! Bearer tokens with two roles: clients may submit, watch, fetch and cancel (JobService);
//! workers may report results (WorkerService). Health and reflection stay open.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Status};

/// Who a service is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Worker,
}

/// The two tokens; none means authentication is off. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Option<Arc<(Vec<u8>, Vec<u8>)>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tokens.is_some() { "Tokens(<redacted>)" } else { "Tokens(off)" })
    }
}

/// Compares in time that depends only on the longer length, not on where bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl Tokens {
    /// Both tokens or neither: a half-configured coordinator would leave one role open.
    pub fn new(client: Option<String>, worker: Option<String>) -> Result<Self, String> {
        match (client, worker) {
            (None, None) => Ok(Self::default()),
            (Some(c), Some(w)) if c == w => Err("the client and worker tokens must differ".into()),
            (Some(c), Some(w)) => Ok(Self { tokens: Some(Arc::new((c.into_bytes(), w.into_bytes()))) }),
            _ => Err("give both a client and a worker token, or neither".into()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// UNAUTHENTICATED without a valid token, PERMISSION_DENIED with the other role's.
    pub fn check<T>(&self, role: Role, request: &Request<T>) -> Result<(), Status> {
        let Some(tokens) = &self.tokens else { return Ok(()) };
        let fail = |status: Status, kind: &str| {
            crate::metrics::METRICS.errors.with_label_values(&[kind]).inc();
            Err(status)
        };
        let Some(header) = request.metadata().get("authorization") else {
            return fail(Status::unauthenticated("missing `authorization: Bearer <token>`"), "unauthenticated");
        };
        let Some(presented) = header.as_bytes().strip_prefix(b"Bearer ") else {
            return fail(
                Status::unauthenticated("the authorization header is not `Bearer <token>`"),
                "unauthenticated",
            );
        };
        let (client, worker) = (&tokens.0, &tokens.1);
        let (mine, theirs) = match role {
            Role::Client => (client, worker),
            Role::Worker => (worker, client),
        };
        // Both comparisons always run, so timing does not tell which one matched.
        let is_mine = constant_time_eq(presented, mine);
        let is_theirs = constant_time_eq(presented, theirs);
        match (is_mine, is_theirs) {
            (true, _) => Ok(()),
            (false, true) => {
                let what = if role == Role::Client {
                    "a worker token cannot call JobService"
                } else {
                    "a client token cannot call WorkerService"
                };
                fail(Status::permission_denied(what), "permission_denied")
            }
            (false, false) => fail(Status::unauthenticated("invalid token"), "unauthenticated"),
        }
    }

    /// An interceptor admitting `role` only.
    pub fn interceptor(&self, role: Role) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
        let tokens = self.clone();
        move |request: Request<()>| {
            tokens.check(role, &request)?;
            Ok(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = header {
            request.metadata_mut().insert("authorization", value.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn roles_are_kept_apart() {
        let tokens = Tokens::new(Some("c-secret".into()), Some("w-secret".into())).expect("valid");
        assert!(tokens.check(Role::Client, &request(Some("Bearer c-secret"))).is_ok());
        assert!(tokens.check(Role::Worker, &request(Some("Bearer w-secret"))).is_ok());
        let code = |role, header| tokens.check(role, &request(header)).err().map(|s| s.code());
        assert_eq!(code(Role::Client, Some("Bearer w-secret")), Some(tonic::Code::PermissionDenied));
        assert_eq!(code(Role::Worker, Some("Bearer c-secret")), Some(tonic::Code::PermissionDenied));
        assert_eq!(code(Role::Client, Some("Bearer nope")), Some(tonic::Code::Unauthenticated));
        assert_eq!(code(Role::Client, Some("Basic c-secret")), Some(tonic::Code::Unauthenticated));
        assert_eq!(code(Role::Client, None), Some(tonic::Code::Unauthenticated));
        assert!(!format!("{tokens:?}").contains("secret"));
    }

    #[test]
    fn half_configured_or_equal_tokens_are_refused() {
        assert!(Tokens::new(Some("a".into()), None).is_err());
        assert!(Tokens::new(Some("a".into()), Some("a".into())).is_err());
        assert!(!Tokens::new(None, None).expect("off").enabled());
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }
}
