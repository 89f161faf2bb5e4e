//! Outgoing HTTP from the components: `self.alt` is the app itself, as on Spin. A request
//! to `http://self.alt/...` is served by the capture component in this process (no socket,
//! so it works the same under `inbox serve` and on Lambda, where there is no listener);
//! anything else goes out as wasmtime-wasi-http sends it.

use std::pin::Pin;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// The authority Spin reads as "this app" in an outgoing request.
const SELF_AUTHORITY: &str = "self.alt";

type Answer = Pin<Box<dyn Future<Output = anyhow::Result<http::Response<WasiBody>>> + Send>>;

/// Serves a request to the app itself, in this process.
pub type SelfApp = Arc<dyn Fn(http::Request<WasiBody>) -> Answer + Send + Sync>;

pub struct OutgoingHooks {
    /// Only the capture component may call the app, as on Spin (`allowed_outbound_hosts =
    /// ["http://self"]`), and a request the app serves for itself may not call it again.
    pub self_app: Option<SelfApp>,
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Sent {
        if request.uri().host() == Some(SELF_AUTHORITY) {
            let Some(app) = self.self_app.clone() else {
                return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
            };
            return Box::new(async move {
                let response = app(request).await.map_err(|error| {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "a request to the app itself failed"
                    );
                    ErrorCode::InternalError(Some(format!("{error:#}")))
                })?;
                let done = async { Ok(()) };
                Ok((
                    response,
                    Box::new(done) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// POSTs `body` to `url` from the host itself (not a component), with the client the
/// components' requests go through: its status code, within `timeout`.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> anyhow::Result<u16> {
    use anyhow::Context;
    let uri: http::Uri = url.parse().context("not a URL")?;
    // The sender writes the path alone on the request line: the host goes in `Host`, as a
    // component's request gets it from wasi:http.
    let host = uri.authority().context("a URL without a host")?.as_str();
    let host = host
        .rsplit_once('@')
        .map_or(host, |(_, host)| host)
        .to_owned();
    let mut request = http::Request::post(uri).header(http::header::HOST, host);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let body = http_body_util::Full::new(bytes::Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = request.body(body).context("not a request")?;
    let options = RequestOptions {
        connect_timeout: Some(timeout),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let sent = async {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(|error| anyhow::anyhow!("{error:?}"))?;
        // The connection is driven until the answer is in.
        tokio::spawn(io);
        anyhow::Ok(response.status().as_u16())
    };
    tokio::time::timeout(timeout, sent)
        .await
        .context("no answer in time")?
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    fn empty_body() -> WasiBody {
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn to_self() -> http::Request<WasiBody> {
        http::Request::post("http://self.alt/api/webhooks/bigcommerce")
            .body(empty_body())
            .unwrap()
    }

    async fn send(hooks: &mut OutgoingHooks) -> Result<u16, wasmtime_wasi_http::Error> {
        let unused = Box::new(async { Ok(()) });
        let sent = Box::into_pin(hooks.send_request(to_self(), None, unused));
        sent.await.map(|(response, _)| response.status().as_u16())
    }

    #[tokio::test]
    async fn a_request_to_the_app_itself_is_served_in_process_when_allowed() {
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        let app: SelfApp = Arc::new(move |request: http::Request<WasiBody>| {
            counter.fetch_add(1, Ordering::SeqCst);
            assert_eq!(request.uri().path(), "/api/webhooks/bigcommerce");
            let body = Full::new(Bytes::from_static(b"{}"))
                .map_err(|never| match never {})
                .boxed_unsync();
            Box::pin(async move { Ok(http::Response::builder().status(202).body(body)?) })
        });
        let mut allowed = OutgoingHooks {
            self_app: Some(app),
        };
        assert_eq!(send(&mut allowed).await.unwrap(), 202);
        assert_eq!(served.load(Ordering::SeqCst), 1);

        // A component without it (a processor, or a request the app serves for itself)
        // is refused without any network.
        let mut denied = OutgoingHooks { self_app: None };
        assert!(matches!(
            send(&mut denied).await,
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        ));
    }
}
