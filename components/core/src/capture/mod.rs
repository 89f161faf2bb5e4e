//! What the capture endpoint decides, given a request: the route, whether the delivery is
//! genuine and well formed, and the webhook to store. The component only moves bytes.
//!
//! One job per file: `routes` (which route a request is), `query` (the admin API's query
//! strings), `paging` (the list's next-page link), `limits` (how large a request may be),
//! `intake` (a delivery checked and turned into a webhook), `hosts` (the names admin
//! requests may be sent to), `auth` (the admin host and token), `config_keys` (the
//! configuration read), `printable` (caller text as it may be echoed back) and `top_level`
//! (the JSON a delivery's event is described by).

mod auth;
mod config_keys;
mod hosts;
mod intake;
mod limits;
mod paging;
mod printable;
mod query;
mod routes;
mod top_level;

pub use auth::{MIN_ADMIN_TOKEN_CHARS, authorize_admin, authorize_demo, short_admin_token};
pub use config_keys::CONFIG_KEYS;
pub use hosts::{ALLOWED_HOSTS, AllowedHosts, check_host, default_for_listener};
pub use intake::{Intake, accept, check_content_type, intake, source};
pub use limits::{
    MAX_HEADER_BYTES, MAX_HEADERS, MAX_TOTAL_HEADER_BYTES, body_too_large, check_headers,
};
pub use paging::next_page;
pub use routes::{CONSOLE_PATH, COUNTS_PATH, DEMO_PATH, ROUTES, Route, WEBHOOKS_PATH, route};
