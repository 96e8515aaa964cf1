//! Tenant-scoped DynamoDB keys (`docs/architecture.md` §6). Every key of tenant data starts with
//! `T#{tenant}#E#{environment}#`; tenant and environment ids are restricted to a charset without
//! `#`, so no id can be crafted to reach another tenant's keys.

use std::fmt;

use thiserror::Error;

const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    #[error("{field} must be 1 to 64 characters of letters, digits, '_' or '-'")]
    InvalidId { field: &'static str },
}

/// A DynamoDB primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// The tenant and environment that own a piece of data. Built only from an authenticated
/// identity (an API key) or a verified webhook route, never from a request body.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TenantScope {
    tenant_id: String,
    environment_id: String,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TenantScope {
    pub fn new(tenant_id: &str, environment_id: &str) -> Result<TenantScope, ScopeError> {
        if !valid_id(tenant_id) {
            return Err(ScopeError::InvalidId { field: "tenant_id" });
        }
        if !valid_id(environment_id) {
            return Err(ScopeError::InvalidId {
                field: "environment_id",
            });
        }
        Ok(TenantScope {
            tenant_id: tenant_id.to_owned(),
            environment_id: environment_id.to_owned(),
        })
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn environment_id(&self) -> &str {
        &self.environment_id
    }

    /// `T#{tenant}#E#{environment}`: the prefix of every partition key of this scope.
    pub fn prefix(&self) -> String {
        format!("T#{}#E#{}", self.tenant_id, self.environment_id)
    }

    /// The key of one item of `kind` (an upper-case constant such as `PAYMENT`) named `id`.
    /// `id` may be anything (a Razorpay id, a hash); it is the last component of the key.
    pub fn key(&self, kind: &'static str, id: &str) -> Key {
        Key {
            pk: format!("{}#{kind}#{id}", self.prefix()),
            sk: kind.to_owned(),
        }
    }
}

impl fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.environment_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_start_with_tenant_and_environment() {
        let scope = TenantScope::new("tenant_01", "live").unwrap();
        let key = scope.key("PAYMENT", "pay_123");
        assert_eq!(key.pk, "T#tenant_01#E#live#PAYMENT#pay_123");
        assert_eq!(key.sk, "PAYMENT");
    }

    #[test]
    fn ids_that_could_forge_a_key_are_refused() {
        for bad in [
            "",
            "a#b",
            "t#E#live",
            "tenant/1",
            "ténant",
            "a b",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(TenantScope::new(bad, "live").is_err(), "{bad:?}");
            assert!(TenantScope::new("t", bad).is_err(), "{bad:?}");
        }
        let err = TenantScope::new("t", "a#b").unwrap_err();
        assert!(err.to_string().starts_with("environment_id"));
    }

    proptest! {
        /// Two different scopes never produce the same key, whatever the item id.
        #[test]
        fn scopes_never_collide(
            t1 in "[A-Za-z0-9_-]{1,8}", e1 in "[A-Za-z0-9_-]{1,8}",
            t2 in "[A-Za-z0-9_-]{1,8}", e2 in "[A-Za-z0-9_-]{1,8}",
            id1 in "\\PC{0,12}", id2 in "\\PC{0,12}",
        ) {
            prop_assume!((&t1, &e1) != (&t2, &e2));
            let a = TenantScope::new(&t1, &e1).unwrap().key("PAYMENT", &id1);
            let b = TenantScope::new(&t2, &e2).unwrap().key("PAYMENT", &id2);
            prop_assert_ne!(a, b);
        }
    }
}
