//! The leases this process holds in the state store ([`Store::acquire_lease`]): which process of a
//! cluster polls a source, runs the alert monitor, or (on a RabbitMQ queue, which may deliver a
//! job twice) imports a claimed file. A holder that dies stops renewing; its lease expires and
//! another process takes over.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// The name of the lease on polling a source.
pub(super) fn poll_lease(tenant: &str, source_id: &str) -> String {
    format!("poll:{tenant}:{source_id}")
}

/// The name of the lease on importing a claimed file.
pub(super) fn import_lease(tenant: &str, claim_id: &str) -> String {
    format!("import:{tenant}:{claim_id}")
}

/// The name of the lease on running the alert monitor (digests, SLA windows).
pub(super) fn alert_monitor_lease(tenant: &str) -> String {
    format!("alert-monitor:{tenant}")
}

/// The name of the lease on registering the configured sources and templates (so processes
/// starting together do not each create them).
pub(super) fn registration_lease(tenant: &str) -> String {
    format!("register:{tenant}")
}

/// A lease held for as long as a piece of work runs, renewed in the background every third of
/// its time to live and released by [`HeldLease::release`].
pub(super) struct HeldLease {
    store: Store,
    name: String,
    holder: String,
    stop: CancellationToken,
    renewer: Option<JoinHandle<()>>,
}

impl HeldLease {
    /// Takes the lease `name` for `holder`; `None` while another holder has it.
    pub(super) async fn take(
        store: &Store,
        name: String,
        holder: String,
        ttl: Duration,
    ) -> Result<Option<HeldLease>, StoreError> {
        if !store.acquire_lease(&name, &holder, ttl).await? {
            return Ok(None);
        }
        let stop = CancellationToken::new();
        let renewer =
            tokio::spawn(renew(store.clone(), name.clone(), holder.clone(), ttl, stop.clone()));
        Ok(Some(HeldLease { store: store.clone(), name, holder, stop, renewer: Some(renewer) }))
    }

    /// Takes the lease `name`, waiting while another holder has it, for at most `patience`.
    pub(super) async fn wait_for(
        store: &Store,
        name: String,
        holder: String,
        ttl: Duration,
        patience: Duration,
    ) -> Result<Option<HeldLease>, StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(lease) = Self::take(store, name.clone(), holder.clone(), ttl).await? {
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops renewing and gives the lease up.
    pub(super) async fn release(mut self) {
        self.stop.cancel();
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
        if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = %self.name, error = %e, "cannot release a lease; it expires on its own");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Dropped without `release` (a task cancelled): stop renewing, let it expire.
        self.stop.cancel();
    }
}

async fn renew(store: Store, name: String, holder: String, ttl: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        match store.acquire_lease(&name, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(lease = %name, "a lease was lost (not renewed in time); another process may take the work over");
            }
            Err(e) => tracing::warn!(lease = %name, error = %e, "cannot renew a lease"),
        }
    }
}
