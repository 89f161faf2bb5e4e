//! The signature schemes the inbox verifies, by name.

/// How a provider proves a delivery is theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    BigCommerce,
    Stripe,
    GitHub,
    Shopify,
    StandardWebhooks,
}

impl Scheme {
    pub const ALL: [Scheme; 5] = [
        Scheme::BigCommerce,
        Scheme::Stripe,
        Scheme::GitHub,
        Scheme::Shopify,
        Scheme::StandardWebhooks,
    ];

    /// The scheme's name, which is also the origin it is served on.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::BigCommerce => "bigcommerce",
            Scheme::Stripe => "stripe",
            Scheme::GitHub => "github",
            Scheme::Shopify => "shopify",
            Scheme::StandardWebhooks => "standard-webhooks",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    /// Whether a delivery can be sent again as a new event by whoever saw it once: the
    /// signature covers the body only, and neither the id header nor a timestamp is signed
    /// (GitHub's `X-GitHub-Delivery`, Shopify's `X-Shopify-Event-Id`). Stripe and Standard
    /// Webhooks sign their id and a timestamp; BigCommerce's id is the body's own `hash`.
    pub fn replayable(self) -> bool {
        matches!(self, Scheme::GitHub | Scheme::Shopify)
    }

    /// The request headers worth keeping with the webhook: never credentials.
    pub fn stored_headers(self) -> &'static [&'static str] {
        match self {
            Scheme::BigCommerce | Scheme::Stripe => &["content-type", "user-agent"],
            Scheme::GitHub => &[
                "content-type",
                "user-agent",
                "x-github-event",
                "x-github-delivery",
                "x-github-hook-id",
                "x-github-hook-installation-target-type",
                "x-github-hook-installation-target-id",
            ],
            Scheme::Shopify => &[
                "content-type",
                "user-agent",
                "x-shopify-topic",
                "x-shopify-event-id",
                "x-shopify-webhook-id",
                "x-shopify-triggered-at",
                "x-shopify-shop-domain",
                "x-shopify-api-version",
            ],
            Scheme::StandardWebhooks => &[
                "content-type",
                "user-agent",
                "webhook-id",
                "webhook-timestamp",
            ],
        }
    }
}
