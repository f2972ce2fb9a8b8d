//! Notifications through an outbox: an event writes one message per enabled channel (keyed by
//! the event, so nothing is sent twice for it), and a worker delivers due messages with retries
//! and exponential back-off. Templates are minijinja. Channels: webhooks signed with
//! HMAC-SHA256 (built in), e-mail over SMTP ([`Email`], when `smtp_url` is set) and push through
//! a gateway ([`Push`], when `push_url` is set); other providers plug in behind [`Channel`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use mobility_core::TimestampMs;
use mobility_store::{OutboxMessage, Store, StoreError};
use serde_json::Value;
use sha2::Sha256;

/// Give up after this many attempts.
pub const ATTEMPTS_MAX: i64 = 8;

const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "receipt",
        "Your trip receipt",
        "Thanks for riding. Trip {{ booking_id }}: {{ total }} for {{ minutes }} min and {{ km }} km. {{ payment }}",
    ),
    (
        "reservation_expired",
        "Your reservation expired",
        "Your hold on vehicle {{ vehicle_id }} lapsed; it is free for others again.",
    ),
    (
        "kyc_result",
        "Your {{ kind | replace('_', ' ') }} check: {{ state }}",
        "{% if state == 'verified' %}You are verified.{% else %}We could not verify it: {{ reason }}{% endif %}",
    ),
];

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Text.
    pub text: String,
}

/// A delivery channel.
#[async_trait]
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// Delivers one message to `address`; `Err` says why (it will be retried).
    async fn deliver(&self, m: &OutboxMessage, address: &str, r: &Rendered) -> Result<(), String>;
}

/// Webhooks: a JSON POST with `X-Mobility-Signature: sha256=<hex HMAC of the body>`, keyed per
/// rider (the key is shown when the webhook is set).
#[derive(Debug)]
pub struct Webhook {
    http: reqwest::Client,
    secret: String,
}

impl Webhook {
    /// A webhook channel signing with keys derived from `secret`.
    #[must_use]
    pub fn new(secret: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            secret: secret.to_owned(),
        }
    }

    /// The signing key of a rider's webhook (hex).
    #[must_use]
    pub fn key_for(&self, user_id: &str) -> String {
        hex(&hmac(
            self.secret.as_bytes(),
            format!("webhook:{user_id}").as_bytes(),
        ))
    }
}

fn hmac(key: &[u8], body: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature header value for a body under a key (hex), as receivers compute it.
#[must_use]
pub fn signature(key_hex: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac(key_hex.as_bytes(), body)))
}

#[async_trait]
impl Channel for Webhook {
    async fn deliver(&self, m: &OutboxMessage, address: &str, r: &Rendered) -> Result<(), String> {
        let body = serde_json::json!({
            "event": m.event_key,
            "template": m.template,
            "subject": r.subject,
            "text": r.text,
            "data": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null),
            "created_at_ms": m.created_at.0,
        })
        .to_string();
        let sig = signature(&self.key_for(&m.user_id), body.as_bytes());
        let resp = self
            .http
            .post(address)
            .header("content-type", "application/json")
            .header("x-mobility-event", &m.event_key)
            .header("x-mobility-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot reach the webhook: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {}", resp.status()))
        }
    }
}

/// E-mail over SMTP (lettre): plain text, one message per notification.
pub struct Email {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the server's credentials: never printed.
        f.debug_struct("Email")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Email {
    /// An e-mail channel sending through `smtp_url` as `from`.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, String> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("smtp_url {}: {e}", mobility_store::redact_url(smtp_url)))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("smtp_from {from:?}: {e}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Channel for Email {
    async fn deliver(&self, m: &OutboxMessage, address: &str, r: &Rendered) -> Result<(), String> {
        use lettre::AsyncTransport;
        let to: lettre::message::Mailbox = address
            .parse()
            .map_err(|e| format!("not an e-mail address: {e}"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&r.subject)
            .message_id(Some(format!("<{}@mobility>", m.id)))
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(r.text.clone())
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("the mail server refused or was unreachable: {e}"))
    }
}

/// Push through a gateway: a JSON POST of `{"to","title","body","event"}` with a bearer token;
/// the gateway (an FCM/APNs relay, or a self-hosted one) reaches the device.
#[derive(Debug)]
pub struct Push {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Push {
    /// A push channel posting to `url`.
    #[must_use]
    pub fn new(url: &str, token: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
        }
    }
}

#[async_trait]
impl Channel for Push {
    async fn deliver(&self, m: &OutboxMessage, address: &str, r: &Rendered) -> Result<(), String> {
        let mut req = self.http.post(&self.url).json(&serde_json::json!({
            "to": address,
            "title": r.subject,
            "body": r.text,
            "event": m.event_key,
        }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach the push gateway: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the push gateway answered {}", resp.status()))
        }
    }
}

/// The notification service.
#[derive(Debug)]
pub struct Notifier {
    store: Arc<dyn Store>,
    webhook: Arc<Webhook>,
    email: Option<Arc<dyn Channel>>,
    push: Option<Arc<dyn Channel>>,
}

/// Renders a template with a payload.
pub fn render(template: &str, payload: &Value) -> Result<Rendered, String> {
    let (_, subject, text) = TEMPLATES
        .iter()
        .find(|(name, _, _)| *name == template)
        .ok_or_else(|| format!("no template {template:?}"))?;
    let env = minijinja::Environment::new();
    let ctx = minijinja::Value::from_serialize(payload);
    let r = |src: &str| env.render_str(src, ctx.clone()).map_err(|e| e.to_string());
    Ok(Rendered {
        subject: r(subject)?,
        text: r(text)?,
    })
}

impl Notifier {
    /// A notifier whose webhooks sign with keys derived from `secret`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, secret: &str) -> Self {
        Self {
            store,
            webhook: Arc::new(Webhook::new(secret)),
            email: None,
            push: None,
        }
    }

    /// With an e-mail channel.
    #[must_use]
    pub fn with_email(mut self, email: Arc<dyn Channel>) -> Self {
        self.email = Some(email);
        self
    }

    /// With a push channel.
    #[must_use]
    pub fn with_push(mut self, push: Arc<dyn Channel>) -> Self {
        self.push = Some(push);
        self
    }

    /// Whether a channel can deliver here (webhooks always; e-mail and push when configured).
    #[must_use]
    pub fn offers(&self, channel: &str) -> bool {
        match channel {
            "webhook" => true,
            "email" => self.email.is_some(),
            "push" => self.push.is_some(),
            _ => false,
        }
    }

    /// The webhook channel (for its per-rider keys).
    #[must_use]
    pub fn webhook(&self) -> &Webhook {
        &self.webhook
    }

    /// Announces an event to a rider on every channel they enabled (once per event and channel).
    pub async fn announce(
        &self,
        user_id: &str,
        event: &str,
        template: &str,
        payload: &Value,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        for pref in self.store.notification_preferences(user_id).await? {
            if !pref.enabled || pref.address.is_none() {
                continue;
            }
            let m = OutboxMessage {
                id: uuid::Uuid::now_v7().to_string(),
                event_key: format!("{event}:{}", pref.channel),
                user_id: user_id.to_owned(),
                channel: pref.channel.clone(),
                template: template.to_owned(),
                payload: payload.to_string(),
                state: "pending".into(),
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
            };
            if self.store.enqueue_notification(&m).await? {
                metrics::counter!("notifications_enqueued_total", "template" => template.to_owned())
                    .increment(1);
            }
        }
        Ok(())
    }

    /// Delivers what is due; returns how many were sent.
    pub async fn deliver_due(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let mut sent = 0;
        for m in self.store.due_notifications(now, 100).await? {
            let prefs = self.store.notification_preferences(&m.user_id).await?;
            let address = prefs
                .iter()
                .find(|p| p.channel == m.channel && p.enabled)
                .and_then(|p| p.address.clone());
            let channel: Option<&dyn Channel> = match m.channel.as_str() {
                "webhook" => Some(self.webhook.as_ref()),
                "email" => self.email.as_deref(),
                "push" => self.push.as_deref(),
                _ => None,
            };
            let outcome = match (address, channel) {
                (None, _) => Err("the rider turned this channel off".to_owned()),
                (Some(_), None) => Err(format!("no provider for the {} channel", m.channel)),
                (Some(a), Some(channel)) => match render(
                    &m.template,
                    &serde_json::from_str(&m.payload).unwrap_or(Value::Null),
                ) {
                    Ok(r) => channel.deliver(&m, &a, &r).await,
                    Err(e) => Err(e),
                },
            };
            let attempts = m.attempts + 1;
            match outcome {
                Ok(()) => {
                    self.store
                        .finish_notification(&m.id, "sent", now, None, now)
                        .await?;
                    metrics::counter!("notifications_sent_total", "channel" => m.channel.clone())
                        .increment(1);
                    sent += 1;
                }
                Err(e) if attempts >= ATTEMPTS_MAX => {
                    tracing::warn!(event = %m.event_key, error = %e, "giving up on a notification");
                    self.store
                        .finish_notification(&m.id, "failed", now, Some(&e), now)
                        .await?;
                    metrics::counter!("notifications_failed_total", "channel" => m.channel.clone())
                        .increment(1);
                }
                Err(e) => {
                    // 1 s, 2 s, 4 s… at most 10 minutes.
                    let backoff = (1_000_i64 << attempts.clamp(0, 20)).min(600_000);
                    self.store
                        .finish_notification(
                            &m.id,
                            "pending",
                            now.plus_ms(backoff / 2),
                            Some(&e),
                            now,
                        )
                        .await?;
                }
            }
        }
        Ok(sent)
    }
}

/// Whether `s` is a usable sender address (`Name <user@host>` or `user@host`).
#[must_use]
pub fn is_sender_address(s: &str) -> bool {
    s.parse::<lettre::message::Mailbox>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render() {
        let r = render(
            "receipt",
            &serde_json::json!({"booking_id": "b1", "total": "6.04 EUR", "minutes": 12, "km": 2.4, "payment": "Paid via sandbox."}),
        )
        .unwrap();
        assert_eq!(r.subject, "Your trip receipt");
        assert!(
            r.text.contains("6.04 EUR for 12 min and 2.4 km"),
            "{}",
            r.text
        );
        let r = render("kyc_result", &serde_json::json!({"kind": "driving_licence", "state": "rejected", "reason": "blurry"})).unwrap();
        assert_eq!(r.subject, "Your driving licence check: rejected");
        assert!(r.text.ends_with("blurry"));
        assert!(render("nope", &Value::Null).is_err());
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let w = Webhook::new("platform-secret");
        assert_ne!(w.key_for("u1"), w.key_for("u2"));
        assert_eq!(w.key_for("u1").len(), 64);
    }
}
