//! The dashboard: one HTML page, its ES modules and stylesheet, and the vendored chart
//! library (uPlot), all compiled into the binary with `include_bytes!` and served at `/`
//! and `/assets/{name}` by the same axum server as the API.
//!
//! The page loads `app.js` with `<script type="module">`; it imports the other modules
//! with relative specifiers (`./api.js`), which the browser resolves under `/assets/`, so
//! each module is one more entry of [`ASSETS`]. Module scripts are checked strictly
//! against their MIME type, so every `.js` is served as `text/javascript`.
//!
//! The page talks only to `/api/v1/*` on its own origin. Nothing is fetched at run time
//! from anywhere else: the Content-Security-Policy below forbids it, so a stray CDN link
//! fails in the browser tests instead of silently working online.
//!
//! Must not: read files at run time (a binary copied anywhere serves the same bytes), or
//! serve anything that is not in [`ASSETS`].

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The page itself (`/`).
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/index.html"),
};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One entry of [`ASSETS`]: the served name, its content type and, when it is not the
/// name itself, its path under `web/`.
macro_rules! embed {
    ($name:literal, $content_type:expr) => {
        embed!($name, $content_type, $name)
    };
    ($name:literal, $content_type:expr, $path:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../web/", $path)),
        }
    };
}

/// Everything under `/assets/`, the one list of served files. `app.js` is the entry
/// module; the others are imported by it (or by each other) as `./{name}`. `web/vendor/*`
/// is copied from npm by `scripts/vendor_assets.sh` and committed, so a build needs no npm.
pub const ASSETS: &[Asset] = &[
    embed!("app.js", JS),
    embed!("api.js", JS),
    embed!("ui.js", JS),
    embed!("errors.js", JS),
    embed!("charts.js", JS),
    embed!("scanner.js", JS),
    embed!("performance.js", JS),
    embed!("cache.js", JS),
    embed!("cluster.js", JS),
    embed!("screens.js", JS),
    embed!("watchlists.js", JS),
    embed!("app.css", CSS),
    embed!("uPlot.iife.min.js", JS, "vendor/uPlot.iife.min.js"),
    embed!("uPlot.min.css", CSS, "vendor/uPlot.min.css"),
];

/// Same-origin only: no CDN, no inline script. The modules' imports resolve to same-origin
/// `/assets/…` URLs, which `script-src 'self'` allows. Inline styles are allowed because
/// uPlot positions its cursor and legend through style attributes.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// The dashboard's routes; merged into the API router (GET only, so the token check,
/// which guards mutating methods, never applies).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        // Falls through to the API's error shape (normalize turns a plain 404 into it).
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A strong validator from the bytes: the browser revalidates each load (`no-cache`) and
/// gets a 304 while the binary is unchanged, and the new file right after an upgrade.
pub fn etag(body: &[u8]) -> String {
    format!(
        "\"{:016x}-{}\"",
        crate::fingerprint::fnv1a(body),
        body.len()
    )
}

fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(a.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_only_embedded_assets() {
        let html = std::str::from_utf8(INDEX.body).expect("utf-8");
        for part in html.split("/assets/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| *c != '"' && *c != '?')
                .collect();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html links /assets/{name}, which is not embedded"
            );
        }
        for a in std::iter::once(&INDEX).chain(ASSETS) {
            let text = String::from_utf8_lossy(a.body);
            // No runtime download: nothing loads from another origin.
            for bad in ["src=\"http", "href=\"http", "@import", "cdn."] {
                assert!(!text.contains(bad), "{} contains {bad}", a.name);
            }
        }
    }

    /// Every script and stylesheet of `web/` (read at test time, so a new module that was
    /// not added to the table fails here) is embedded with the bytes of that file.
    #[test]
    fn every_script_and_stylesheet_in_web_is_embedded() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut seen = 0;
        for entry in std::fs::read_dir(&web).expect("web/") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            if !path.is_file() || !(name.ends_with(".js") || name.ends_with(".css")) {
                continue;
            }
            let a = ASSETS
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("web/{name} is not in ASSETS (src/web/mod.rs)"));
            assert!(
                std::fs::read(&path).expect("read") == a.body,
                "/assets/{name} does not embed web/{name}"
            );
            seen += 1;
        }
        assert!(seen >= 2, "no scripts found in {}", web.display());
    }

    /// The specifiers of a module's static and dynamic imports (`… from "x"`, `import "x"`,
    /// `import("x")`), wherever the statement breaks its lines.
    fn imports(text: &str) -> Vec<&str> {
        let mut specs = Vec::new();
        for lead in ["from ", "import ", "import("] {
            for (at, _) in text.match_indices(lead) {
                let rest = &text[at + lead.len()..];
                let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                    continue;
                };
                if let Some(end) = rest[1..].find(quote) {
                    specs.push(&rest[1..=end]);
                }
            }
        }
        specs
    }

    /// The modules' imports: each is a relative `./{name}` (resolved under `/assets/`) of an
    /// embedded script, and every embedded module is reached from the entry `app.js`.
    #[test]
    fn module_imports_resolve_to_embedded_scripts() {
        let html = std::str::from_utf8(INDEX.body).expect("utf-8");
        assert!(
            html.contains(r#"<script src="/assets/app.js" type="module">"#),
            "index.html must load app.js as a module"
        );
        let js = |name: &str| {
            ASSETS
                .iter()
                .find(|a| a.name == name && a.content_type.starts_with("text/javascript"))
        };
        let mut reached = vec!["app.js"];
        let mut i = 0;
        while let Some(&name) = reached.get(i) {
            i += 1;
            let module = js(name).unwrap_or_else(|| panic!("{name} is not an embedded script"));
            let text = std::str::from_utf8(module.body).expect("utf-8");
            for spec in imports(text) {
                let target = spec
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{name} imports {spec}: use a ./ path"));
                let target = ASSETS
                    .iter()
                    .map(|a| a.name)
                    .find(|n| *n == target)
                    .unwrap_or_else(|| panic!("{name} imports {spec}, which is not embedded"));
                assert!(js(target).is_some(), "{name} imports {spec}, not a script");
                if !reached.contains(&target) {
                    reached.push(target);
                }
            }
        }
        for a in ASSETS {
            if a.content_type.starts_with("text/javascript") && !a.name.starts_with("uPlot") {
                assert!(
                    reached.contains(&a.name),
                    "{} is embedded but no module imports it",
                    a.name
                );
            }
        }
    }

    #[test]
    fn the_test_ids_are_on_the_page() {
        let html = std::str::from_utf8(INDEX.body).expect("utf-8");
        for id in [
            "scan-universe-size",
            "scan-start",
            "scan-progress",
            "scan-cancel",
            "results-table",
            "cache-badge",
            "cache-clear",
            "perf-chart",
            "cluster-nodes",
            "error-panel",
        ] {
            assert!(
                html.contains(&format!("data-testid=\"{id}\"")),
                "data-testid={id} missing"
            );
        }
    }

    #[test]
    fn vendored_uplot_is_the_version_pinned_in_package_lock() {
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../../web/package-lock.json")).expect("lock");
        let pinned = lock["packages"]["node_modules/uplot"]["version"]
            .as_str()
            .expect("uplot in package-lock.json");
        let js = ASSETS
            .iter()
            .find(|a| a.name == "uPlot.iife.min.js")
            .expect("embedded");
        let head = String::from_utf8_lossy(&js.body[..120]);
        assert!(
            head.contains(&format!("(v{pinned})")),
            "web/vendor/uPlot.iife.min.js is not v{pinned}: run scripts/vendor_assets.sh ({head})"
        );
        // With node_modules present (after `npm ci` in web/), the copy must be byte-identical.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules/uplot");
        if let Ok(npm) = std::fs::read(dir.join("dist/uPlot.iife.min.js")) {
            assert!(npm == js.body, "vendored uPlot differs from node_modules");
        }
        if let Ok(npm) = std::fs::read(dir.join("dist/uPlot.min.css")) {
            let css = ASSETS
                .iter()
                .find(|a| a.name == "uPlot.min.css")
                .expect("embedded");
            assert!(
                npm == css.body,
                "vendored uPlot css differs from node_modules"
            );
        }
    }

    #[test]
    fn etags_change_with_the_bytes() {
        assert_eq!(etag(b"abc"), etag(b"abc"));
        assert_ne!(etag(b"abc"), etag(b"abd"));
    }
}
