//! Applying sqlx migrations to a SQLite file that several processes may open at once (`intake
//! serve --role poller` and `--role worker` started together): sqlx takes no lock on SQLite, so
//! two migrators can race, and the loser fails inserting a version the winner just recorded.
//! Trying again after a short pause finds the migrations applied.

use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::{MigrateError, Migrator};

/// How often a failed migration is tried again before its error is returned.
const RETRIES: u32 = 20;
/// The pause between tries.
const PAUSE: Duration = Duration::from_millis(150);

/// Runs `migrator` on `pool`, trying again while another process may be migrating the same
/// file (about 3 s in all); the last error is returned.
pub(crate) async fn migrate(migrator: &Migrator, pool: &SqlitePool) -> Result<(), MigrateError> {
    let mut tries = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(error) if tries < RETRIES => {
                tries += 1;
                tracing::debug!(%error, tries, "migrating failed; another process may be migrating");
                tokio::time::sleep(PAUSE).await;
            }
            Err(error) => return Err(error),
        }
    }
}
