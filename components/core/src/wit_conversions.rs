//! Conversions between the core's types and the Rust types a binding generator makes of
//! `webhooks:inbox/types`. Components (wit-bindgen) and hosts (wasmtime's `bindgen!`) get
//! different types with the same fields, so the conversions are written once, here, and
//! expanded against each side's bindings.

/// Defines `<type>_to_wit` and `<type>_from_wit` for the webhook, state, status, filter,
/// list query, page, counts and details (and `view_to_summary`, `view_from_summary`) in
/// the calling module, for the bindings module named by the path (e.g.
/// `wit_conversions!(bindings::webhooks::inbox::types)`).
#[macro_export]
macro_rules! wit_conversions {
    ($($wit:ident)::+) => {
        #[allow(dead_code)]
        pub(crate) fn webhook_to_wit(webhook: $crate::Webhook) -> $($wit)::+::Webhook {
            $($wit)::+::Webhook {
                id: webhook.id,
                origin: webhook.origin,
                event_type: webhook.event_type,
                provider_timestamp: webhook.provider_timestamp,
                received_at: webhook.received_at,
                idempotency_key: webhook.idempotency_key,
                headers: webhook.headers,
                payload: webhook.payload,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn webhook_from_wit(webhook: $($wit)::+::Webhook) -> $crate::Webhook {
            $crate::Webhook {
                id: webhook.id,
                origin: webhook.origin,
                event_type: webhook.event_type,
                provider_timestamp: webhook.provider_timestamp,
                received_at: webhook.received_at,
                idempotency_key: webhook.idempotency_key,
                headers: webhook.headers,
                payload: webhook.payload,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn state_to_wit(state: $crate::State) -> $($wit)::+::State {
            match state {
                $crate::State::Received => $($wit)::+::State::Received,
                $crate::State::Processing => $($wit)::+::State::Processing,
                $crate::State::Completed => $($wit)::+::State::Completed,
                $crate::State::Failed => $($wit)::+::State::Failed,
                $crate::State::OperatorRequired => $($wit)::+::State::OperatorRequired,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn state_from_wit(state: $($wit)::+::State) -> $crate::State {
            match state {
                $($wit)::+::State::Received => $crate::State::Received,
                $($wit)::+::State::Processing => $crate::State::Processing,
                $($wit)::+::State::Completed => $crate::State::Completed,
                $($wit)::+::State::Failed => $crate::State::Failed,
                $($wit)::+::State::OperatorRequired => $crate::State::OperatorRequired,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn status_to_wit(status: &$crate::Status) -> $($wit)::+::Status {
            $($wit)::+::Status {
                state: state_to_wit(status.state),
                retries: status.attempts,
                updated_at: status.updated_at,
                next_attempt_at: status.next_attempt_at,
                last_error: status.last_error.clone(),
            }
        }

        #[allow(dead_code)]
        pub(crate) fn view_to_summary(view: $crate::model::StatusView) -> $($wit)::+::Summary {
            $($wit)::+::Summary {
                id: view.id,
                origin: view.origin,
                event_type: view.event_type,
                received_at: view.received_at,
                status: $($wit)::+::Status {
                    state: state_to_wit(view.status),
                    retries: view.attempts,
                    updated_at: view.updated_at,
                    next_attempt_at: view.next_attempt_at,
                    last_error: view.last_error,
                },
            }
        }

        #[allow(dead_code)]
        pub(crate) fn view_from_summary(summary: $($wit)::+::Summary) -> $crate::model::StatusView {
            $crate::model::StatusView {
                id: summary.id,
                origin: summary.origin,
                event_type: summary.event_type,
                status: state_from_wit(summary.status.state),
                attempts: summary.status.retries,
                last_error: summary.status.last_error,
                received_at: summary.received_at,
                updated_at: summary.status.updated_at,
                next_attempt_at: summary.status.next_attempt_at,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn filter_to_wit(filter: $crate::listing::Filter) -> $($wit)::+::Filter {
            $($wit)::+::Filter {
                origin: filter.origin,
                event_type: filter.event_type,
                search: filter.search,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn filter_from_wit(filter: $($wit)::+::Filter) -> $crate::listing::Filter {
            $crate::listing::Filter {
                origin: filter.origin,
                event_type: filter.event_type,
                search: filter.search,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn cursor_to_wit(cursor: $crate::listing::Cursor) -> $($wit)::+::Cursor {
            $($wit)::+::Cursor {
                received_at: cursor.received_at,
                id: cursor.id,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn cursor_from_wit(cursor: $($wit)::+::Cursor) -> $crate::listing::Cursor {
            $crate::listing::Cursor {
                received_at: cursor.received_at,
                id: cursor.id,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn query_to_wit(query: $crate::listing::Query) -> $($wit)::+::ListQuery {
            $($wit)::+::ListQuery {
                filter: filter_to_wit(query.filter),
                state: query.state.map(state_to_wit),
                after: query.after.map(cursor_to_wit),
                limit: query.limit,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn query_from_wit(query: $($wit)::+::ListQuery) -> $crate::listing::Query {
            $crate::listing::Query {
                filter: filter_from_wit(query.filter),
                state: query.state.map(state_from_wit),
                after: query.after.map(cursor_from_wit),
                limit: query.limit,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn page_to_wit(page: $crate::listing::Page) -> $($wit)::+::Page {
            $($wit)::+::Page {
                webhooks: page.webhooks.into_iter().map(view_to_summary).collect(),
                next: page.next.map(cursor_to_wit),
            }
        }

        #[allow(dead_code)]
        pub(crate) fn page_from_wit(page: $($wit)::+::Page) -> $crate::listing::Page {
            $crate::listing::Page {
                webhooks: page.webhooks.into_iter().map(view_from_summary).collect(),
                next: page.next.map(cursor_from_wit),
            }
        }

        #[allow(dead_code)]
        pub(crate) fn counts_to_wit(counts: $crate::listing::Counts) -> Vec<$($wit)::+::Count> {
            counts
                .0
                .into_iter()
                .map(|(state, webhooks)| $($wit)::+::Count {
                    state: state_to_wit(state),
                    webhooks,
                })
                .collect()
        }

        #[allow(dead_code)]
        pub(crate) fn counts_from_wit(counts: Vec<$($wit)::+::Count>) -> $crate::listing::Counts {
            let mut all = $crate::listing::Counts::zero();
            for count in counts {
                all.0.insert(state_from_wit(count.state), count.webhooks);
            }
            all
        }

        #[allow(dead_code)]
        pub(crate) fn details_to_wit(details: $crate::model::Details) -> $($wit)::+::Details {
            $($wit)::+::Details {
                summary: view_to_summary(details.view),
                idempotency_key: details.idempotency_key,
                provider_timestamp: details.provider_timestamp,
                headers: details.headers,
                attempts: details
                    .attempts
                    .into_iter()
                    .map(|a| $($wit)::+::Attempt {
                        number: a.number,
                        started_at: a.started_at,
                        ended_at: a.ended_at,
                        state: state_to_wit(a.state),
                        error: a.error,
                    })
                    .collect(),
                dead_letters: details
                    .dead_letters
                    .into_iter()
                    .map(|d| $($wit)::+::DeadLetter {
                        at: d.at,
                        attempts: d.attempts,
                        reason: d.reason,
                    })
                    .collect(),
            }
        }

        #[allow(dead_code)]
        pub(crate) fn details_from_wit(details: $($wit)::+::Details) -> $crate::model::Details {
            $crate::model::Details {
                view: view_from_summary(details.summary),
                idempotency_key: details.idempotency_key,
                provider_timestamp: details.provider_timestamp,
                headers: details.headers,
                attempts: details
                    .attempts
                    .into_iter()
                    .map(|a| $crate::model::Attempt {
                        number: a.number,
                        started_at: a.started_at,
                        ended_at: a.ended_at,
                        state: state_from_wit(a.state),
                        error: a.error,
                    })
                    .collect(),
                dead_letters: details
                    .dead_letters
                    .into_iter()
                    .map(|d| $crate::model::DeadLetter {
                        at: d.at,
                        attempts: d.attempts,
                        reason: d.reason,
                    })
                    .collect(),
            }
        }
    };
}

/// Defines `store_error_to_wit` in the calling module: the core's [`StoreError`] as the
/// `store-error` of `webhooks:inbox/store`, for the bindings module named by the path
/// (`store_error_conversion!(bindings::exports::webhooks::inbox::store)` in a store
/// component, the imported interface in a host). The contract has no `corrupt`: stored
/// data that cannot be read makes the store unavailable to its caller.
///
/// [`StoreError`]: crate::store::StoreError
#[macro_export]
macro_rules! store_error_conversion {
    ($($wit:ident)::+) => {
        pub(crate) fn store_error_to_wit(error: $crate::store::StoreError) -> $($wit)::+::StoreError {
            use $crate::store::StoreError;
            match error {
                StoreError::TooLarge(detail) => $($wit)::+::StoreError::TooLarge(detail),
                StoreError::NotFound(_) => $($wit)::+::StoreError::NotFound,
                StoreError::Conflict(detail) => $($wit)::+::StoreError::Conflict(detail),
                other @ (StoreError::Unavailable(_) | StoreError::Corrupt(_)) => {
                    $($wit)::+::StoreError::Unavailable(other.to_string())
                }
            }
        }
    };
}

/// `destination` of `webhooks:inbox/store` both ways, for the bindings module named by the
/// path, as [`store_error_conversion`] names it.
#[macro_export]
macro_rules! destination_conversions {
    ($($wit:ident)::+) => {
        #[allow(dead_code)]
        pub(crate) fn destination_to_wit(
            view: $crate::destination::DestinationView,
        ) -> $($wit)::+::Destination {
            $($wit)::+::Destination {
                name: view.name,
                state: view.state,
                failures: view.failures,
                last_error: view.last_error,
                held: view.held,
                opened_at: view.opened_at,
                next_probe_at: view.next_probe_at,
                updated_at: view.updated_at,
            }
        }

        #[allow(dead_code)]
        pub(crate) fn destination_from_wit(
            wit: $($wit)::+::Destination,
        ) -> $crate::destination::DestinationView {
            $crate::destination::DestinationView {
                name: wit.name,
                state: wit.state,
                failures: wit.failures,
                last_error: wit.last_error,
                held: wit.held,
                opened_at: wit.opened_at,
                next_probe_at: wit.next_probe_at,
                updated_at: wit.updated_at,
            }
        }

    };
}
