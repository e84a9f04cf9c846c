//! The outbox mailer: delivers queued emails (verification, reset, notices) and marks them sent.
//!
//! With `smtp_url` set it sends over SMTP (lettre, rustls): `smtp://host:25` (plain, for a local
//! relay), `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtps://user:pass@host:465`.
//! Without it, it is a log mailer: each message, body included, is written to the log (target
//! `turnpike::mail`) so signup and reset work with no mail server. Development only: that log then
//! holds live verification and reset links. Nothing else ever logs a message body.

use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use turnpike_store::clock::SharedClock;
use turnpike_store::{OutboxMessage, Store};

use crate::Config;

/// Longest pause between delivery attempts while the SMTP server keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where the outbox goes.
pub(crate) enum Transport {
    /// Write each message to the log (development).
    Log,
    /// Send over SMTP.
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
}

impl Transport {
    /// The transport the configuration asks for; a bad `smtp_url` or `mail_from` names its key.
    pub(crate) fn from_config(cfg: &Config) -> anyhow::Result<Transport> {
        let Some(url) = &cfg.smtp_url else { return Ok(Transport::Log) };
        // lettre's error text may quote the URL: never put it (it can hold a password) in ours.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|_| {
                anyhow::anyhow!("key `smtp_url`: expected smtp://host[:port][?tls=required|opportunistic] or smtps://host[:port]")
            })?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from: Mailbox = cfg.mail_from.parse().context("key `mail_from`: expected an address like Turnpike <noreply@example.com>")?;
        Ok(Transport::Smtp { transport, from })
    }

    async fn deliver(&self, m: &OutboxMessage) -> Result<(), String> {
        match self {
            Transport::Log => {
                tracing::info!(target: "turnpike::mail", id = m.id, kind = %m.kind, to = %m.recipient, subject = %m.subject, body = %m.body, "email (log mailer)");
                Ok(())
            }
            Transport::Smtp { transport, from } => {
                let to: Mailbox = m.recipient.parse().map_err(|e| format!("bad recipient: {e}"))?;
                let email = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(m.subject.as_str())
                    .header(ContentType::TEXT_PLAIN)
                    .body(m.body.clone())
                    .map_err(|e| format!("cannot build message: {e}"))?;
                transport.send(email).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}

/// Deliver pending messages every half second until `stop`. A failed delivery leaves the message
/// queued and pauses the mailer (doubling up to a minute) so a down server is not hammered.
pub(crate) async fn run(store: Store, clock: SharedClock, transport: Transport, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut backoff = Duration::ZERO;
    loop {
        let pause = tokio::time::sleep(backoff);
        tokio::select! {
            _ = async { pause.await; tick.tick().await } => {}
            _ = stop.changed() => return,
        }
        let pending = match store.pending_emails(50).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbox unavailable");
                continue;
            }
        };
        backoff = Duration::ZERO;
        for m in pending {
            if let Err(e) = transport.deliver(&m).await {
                // The id and kind only: the body holds tokens.
                tracing::warn!(id = m.id, kind = %m.kind, error = %e, "email delivery failed; will retry");
                backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                break;
            }
            if let Err(e) = store.mark_email_sent(m.id, clock.now()).await {
                tracing::warn!(error = %e, "could not mark email sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A fake SMTP server: accepts one session and reports everything the client sent so far each
    /// time a message is complete (the pooled client keeps the connection open).
    async fn fake_smtp() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            let mut seen = String::new();
            w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                seen.push_str(&line);
                let reply: &[u8] = if in_data {
                    if line != ".\r\n" {
                        continue;
                    }
                    in_data = false;
                    let _ = tx.send(seen.clone());
                    b"250 queued\r\n"
                } else {
                    match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                        "EHLO" | "HELO" => b"250 fake\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 ok\r\n",
                    }
                };
                w.write_all(reply).await.unwrap();
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn smtp_delivers_the_outbox_and_marks_it_sent() {
        let (url, mut server) = fake_smtp().await;
        let cfg = Config { smtp_url: Some(url.as_str().into()), mail_from: "Turnpike <noreply@example.test>".into(), ..Config::default() };
        let transport = Transport::from_config(&cfg).unwrap();
        let db = turnpike_testkit::TestDb::sqlite().await;
        let clock: SharedClock = Arc::new(turnpike_store::clock::ManualClock::at(1_780_000_000));
        db.store
            .enqueue_email("verify_email", "ada@example.com", "Confirm your email", "Open https://x/verify-email?token=abc", 1)
            .await
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mailer = tokio::spawn(run(db.store.clone(), clock, transport, stop_rx));
        let seen = tokio::time::timeout(Duration::from_secs(20), server.recv()).await.expect("the mailer delivered").unwrap();
        for _ in 0..100 {
            if db.store.pending_emails(10).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(db.store.pending_emails(10).await.unwrap().is_empty(), "marked sent");
        let _ = stop_tx.send(true);
        mailer.await.unwrap();
        assert!(seen.contains("MAIL FROM:<noreply@example.test>"), "{seen}");
        assert!(seen.contains("RCPT TO:<ada@example.com>"), "{seen}");
        assert!(seen.contains("Subject: Confirm your email"), "{seen}");
        assert!(seen.contains("verify-email?token=abc"), "{seen}");
    }

    #[tokio::test]
    async fn bad_smtp_urls_name_the_key_and_hide_the_password() {
        let cfg = Config { smtp_url: Some("http://user:hunter2@mail.example".into()), ..Config::default() };
        let e = Transport::from_config(&cfg).err().expect("refused").to_string();
        assert!(e.contains("smtp_url") && !e.contains("hunter2"), "{e}");
        let cfg = Config { smtp_url: Some("smtp://mail.example".into()), mail_from: "not an address".into(), ..Config::default() };
        assert!(Transport::from_config(&cfg).err().expect("refused").to_string().contains("mail_from"));
        assert!(matches!(Transport::from_config(&Config::default()), Ok(Transport::Log)));
    }
}
