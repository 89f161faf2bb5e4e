//! Outgoing HTTP from the components: `self.alt` is the app itself, as on Spin (a request
//! to `http://self.alt/...` is served by this host's own listener); anything else goes out
//! as wasmtime-wasi-http sends it.

use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// The authority Spin reads as "this app" in an outgoing request.
const SELF_AUTHORITY: &str = "self.alt";

pub struct OutgoingHooks {
    /// Where this host serves HTTP (`127.0.0.1:3000`), once it does.
    pub self_origin: Option<Arc<str>>,
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Sent {
        if request.uri().host() == Some(SELF_AUTHORITY) {
            let Some(origin) = self.self_origin.clone() else {
                return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
            };
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            match format!("http://{origin}{path}").parse() {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => return Box::new(async { Err(ErrorCode::HttpRequestUriInvalid.into()) }),
            }
            if let Ok(host) = origin.parse() {
                request.headers_mut().insert(http::header::HOST, host);
            }
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
