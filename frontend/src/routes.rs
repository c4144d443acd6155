//! The one route table: every path an app serves, for the router, the metrics' bounded `route`
//! label and the spans' `http.route`.
//!
//! The API's own paths are read from its poem-openapi description (the `#[oai(path)]` attributes
//! are their only spelling); the spec's path, and the pages' (Swagger UI, the live page), are the
//! constants here.

use std::sync::OnceLock;

use poem_openapi::OpenApi;

use crate::api::{bitcoin::BitcoinApi, history::HistoryApi, probes::ProbesApi, rest::RestApi, stream::StreamApi};
use crate::app::App;

/// The spec, as JSON.
pub const SPEC_JSON: &str = "/openapi.json";
/// The spec, as YAML.
pub const SPEC_YAML: &str = "/openapi.yaml";
/// Swagger UI: this page and the assets under it.
pub const DOCS: &str = "/docs";

/// The live page: this page and the assets under it (bitcoin-api).
pub const DASHBOARD: &str = "/dashboard";

/// The pages `app` serves beside its API, each one path and the assets under it.
pub fn pages(app: App) -> &'static [&'static str] {
    match app {
        App::BitcoinApi => &[DOCS, DASHBOARD],
        App::RestApi => &[DOCS],
    }
}

/// True for the page at `page` and its assets: `/docs`, `/docs/index.css`, not `/docsx`.
pub fn is_under(page: &str, path: &str) -> bool {
    path.strip_prefix(page).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// True if `path` is an instance of the route `template` (`/{asset}/{currency}` matches
/// `/eth/USD`): each `{name}` segment matches one non-empty segment, the rest literally.
pub fn matches(template: &str, path: &str) -> bool {
    let (mut wanted, mut given) = (template.split('/'), path.split('/'));
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
            _ => return false,
        }
    }
}

/// True for the spec's paths and `app`'s pages: what it serves beside its API.
pub fn is_beside_api(app: App, path: &str) -> bool {
    path == SPEC_JSON || path == SPEC_YAML || pages(app).iter().any(|page| is_under(page, path))
}

/// The exact paths `app` serves: its API's, then the spec's (the pages are not listed: they are
/// matched by [`is_under`]).
pub fn of(app: App) -> &'static [&'static str] {
    static BITCOIN_API: OnceLock<Vec<&'static str>> = OnceLock::new();
    static REST_API: OnceLock<Vec<&'static str>> = OnceLock::new();
    match app {
        App::BitcoinApi => BITCOIN_API.get_or_init(|| table(<(BitcoinApi, HistoryApi, StreamApi, ProbesApi)>::meta())),
        App::RestApi => REST_API.get_or_init(|| table(<(RestApi, ProbesApi)>::meta())),
    }
}

/// The API's paths and the spec's. Built once per app and kept for the process's life, so the
/// labels can be `&'static`.
fn table(apis: Vec<poem_openapi::registry::MetaApi>) -> Vec<&'static str> {
    let api_paths = apis.into_iter().flat_map(|api| api.paths).map(|path| &*Box::leak(path.path.into_boxed_str()));
    api_paths.chain([SPEC_JSON, SPEC_YAML]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_lists_its_api_and_spec_paths() {
        let mut bitcoin = of(App::BitcoinApi).to_vec();
        bitcoin.sort_unstable();
        assert_eq!(
            bitcoin,
            [
                "/btc/USD",
                "/btc/average",
                "/liveness",
                "/openapi.json",
                "/openapi.yaml",
                "/pairs",
                "/readiness",
                "/{asset}/{currency}",
                "/{asset}/{currency}/average",
                "/{asset}/{currency}/candles",
                "/{asset}/{currency}/stream",
                "/{asset}/{currency}/ticks"
            ]
        );
        let mut rest = of(App::RestApi).to_vec();
        rest.sort_unstable();
        assert_eq!(rest, ["/", "/liveness", "/openapi.json", "/openapi.yaml", "/readiness"]);
    }

    #[test]
    fn a_template_matches_its_instances_only() {
        assert!(
            matches("/{asset}/{currency}", "/eth/USD") && matches("/{asset}/{currency}/average", "/btc/EUR/average")
        );
        assert!(!matches("/{asset}/{currency}", "/eth/USD/average") && !matches("/{asset}/{currency}", "/eth/"));
        assert!(!matches("/{asset}/{currency}/average", "/btc/EUR/candles") && matches("/pairs", "/pairs"));
    }

    #[test]
    fn a_page_is_its_path_and_what_is_under_it_only() {
        assert!(is_under(DOCS, "/docs") && is_under(DOCS, "/docs/") && is_under(DOCS, "/docs/index.css"));
        assert!(!is_under(DOCS, "/docsx") && !is_under(DOCS, "/doc"));
        let bitcoin = |path| is_beside_api(App::BitcoinApi, path);
        assert!(bitcoin("/openapi.json") && bitcoin("/openapi.yaml") && !bitcoin("/btc/USD"));
        assert!(bitcoin("/dashboard") && bitcoin("/dashboard/dashboard.js") && !bitcoin("/dashboards"));
        assert!(!is_beside_api(App::RestApi, "/dashboard") && is_beside_api(App::RestApi, "/docs"));
    }
}
