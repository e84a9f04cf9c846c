//! The outbox mailer. Without SMTP configured it is a log mailer: each message is written to the
//! log (target `turnpike::mail`) so signup and reset work with no mail server. Development only:
//! the log then holds verification links.

use std::time::Duration;

use tokio::sync::watch;
use turnpike_store::clock::SharedClock;
use turnpike_store::Store;

pub(crate) async fn run(store: Store, clock: SharedClock, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let pending = match store.pending_emails(50).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbox unavailable");
                continue;
            }
        };
        for m in pending {
            tracing::info!(target: "turnpike::mail", id = m.id, kind = %m.kind, to = %m.recipient, subject = %m.subject, body = %m.body, "email (log mailer)");
            if let Err(e) = store.mark_email_sent(m.id, clock.now()).await {
                tracing::warn!(error = %e, "could not mark email sent");
            }
        }
    }
}
