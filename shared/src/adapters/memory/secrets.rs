//! The secret store in memory: no cache to go stale, so `refresh` is `get`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::adapters::aws::secrets::SecretsError;
use crate::domain::secret::Secret;
use crate::ports::{PortFuture, SecretStore};

#[derive(Default)]
pub struct MemorySecrets {
    values: Mutex<HashMap<String, Arc<Secret<String>>>>,
}

impl MemorySecrets {
    pub fn new() -> MemorySecrets {
        MemorySecrets::default()
    }

    fn read(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values
            .get(id)
            .cloned()
            .ok_or_else(|| SecretsError::NotFound { id: id.to_owned() })
    }
}

impl SecretStore for MemorySecrets {
    fn get<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Arc<Secret<String>>, SecretsError>> {
        let found = self.read(id);
        Box::pin(async move { found })
    }

    fn refresh<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<Arc<Secret<String>>, SecretsError>> {
        self.get(id)
    }

    fn put<'a>(
        &'a self,
        id: &'a str,
        value: Secret<String>,
    ) -> PortFuture<'a, Result<(), SecretsError>> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.insert(id.to_owned(), Arc::new(value));
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<(), SecretsError>> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.remove(id);
        Box::pin(async { Ok(()) })
    }
}
