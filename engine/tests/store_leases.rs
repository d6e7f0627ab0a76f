//! Leases: one holder at a time, renewed by its holder, taken over once expired, released only by
//! its holder, and exactly one winner among racing takers.

mod store_support;

use std::time::Duration;

use store_support::fresh_store;

const LONG: Duration = Duration::from_secs(60);

on_every_backend! {
    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
        let t = fresh_store().await;
        let s = &t.store;
        assert!(s.acquire_lease("poll:t:a", "p1", LONG).await.expect("take"));
        assert!(s.acquire_lease("poll:t:a", "p1", LONG).await.expect("renew"), "its holder renews");
        assert!(!s.acquire_lease("poll:t:a", "p2", LONG).await.expect("refused"), "held by p1");
        assert!(s.acquire_lease("poll:t:b", "p2", LONG).await.expect("other name"));

        // Only the holder's release counts.
        s.release_lease("poll:t:a", "p2").await.expect("foreign release");
        assert!(!s.acquire_lease("poll:t:a", "p2", LONG).await.expect("still p1's"));
        s.release_lease("poll:t:a", "p1").await.expect("release");
        assert!(s.acquire_lease("poll:t:a", "p2", LONG).await.expect("free again"));
        assert!(!s.acquire_lease("poll:t:a", "p1", LONG).await.expect("now p2's"));
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_a_renewed_one_is_not() {
        let t = fresh_store().await;
        let s = &t.store;
        let short = Duration::from_millis(400);
        assert!(s.acquire_lease("poll:t:a", "dead", short).await.expect("take"));
        assert!(s.acquire_lease("poll:t:b", "alive", short).await.expect("take"));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(s.acquire_lease("poll:t:b", "alive", short).await.expect("renew"));
        }
        // 800 ms later: "dead" stopped renewing, "alive" did not.
        assert!(s.acquire_lease("poll:t:a", "heir", LONG).await.expect("take over"));
        assert!(!s.acquire_lease("poll:t:b", "heir", LONG).await.expect("renewed lease"));
        assert!(!s.acquire_lease("poll:t:a", "dead", LONG).await.expect("the old holder lost it"));
    }

    #[tokio::test]
    async fn of_twenty_racing_takers_exactly_one_wins() {
        let t = fresh_store().await;
        let takers = (0..20).map(|i| {
            let store = t.store.clone();
            tokio::spawn(async move {
                store.acquire_lease("poll:t:race", &format!("p{i}"), LONG).await.expect("take")
            })
        });
        let mut winners = 0;
        for taker in takers {
            winners += usize::from(taker.await.expect("join"));
        }
        assert_eq!(winners, 1);
    }
}
