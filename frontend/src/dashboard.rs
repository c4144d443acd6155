//! The live page, `/dashboard`: each pair's price as the stream pushes it, its average, its quotes
//! and a candle chart, from the API's own routes. Its three files are built into the binary (no
//! CDN, no build step: plain HTML, CSS and JavaScript drawing on a canvas), so it works offline.

use poem::http::{HeaderValue, header};
use poem::{Endpoint, Request, Response, Route, get};

const PAGE: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/dashboard.js");
const STYLE: &str = include_str!("../dashboard/dashboard.css");

/// Only this origin's own files and API: no inline script, no third party, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its assets, to be nested at [`crate::routes::DASHBOARD`].
pub fn routes() -> Route {
    Route::new()
        .at("/", get(Asset { body: PAGE, content_type: "text/html; charset=utf-8" }))
        .at("/dashboard.js", get(Asset { body: SCRIPT, content_type: "text/javascript; charset=utf-8" }))
        .at("/dashboard.css", get(Asset { body: STYLE, content_type: "text/css; charset=utf-8" }))
}

/// One built-in file, answered under the page's security policy.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

impl Endpoint for Asset {
    type Output = Response;

    async fn call(&self, _: Request) -> poem::Result<Response> {
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type))
            .header(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY))
            .body(self.body))
    }
}
