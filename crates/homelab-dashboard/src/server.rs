//! The HTTP side: the bind check (loopback, or auth), the router with GET routes only, the
//! auth gate, and the refresher that runs one `status` pass at a time and renders what the
//! routes serve, so that a page load costs a copy of a string and no API request. Must not
//! register a route that changes anything.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use homelab_kube::{Cluster, ConnectError, KubeconfigSource, StatusChecks, StatusOptions};
use homelab_plan::Plan;
use jiff::Timestamp;

use crate::alerts::{self, AlertsPage};
use crate::auth::AuthToken;
use crate::backups::{self, BackupInputs, BackupsPage};
use crate::docs::{self, Docs};
use crate::model::{Inventory, Overview, Snapshot};
use crate::nodes::{self, NodesPage};
use crate::reads::{self, ClusterReads, Targets};
use crate::{metrics, pages};

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// A file holding the token every request must carry; needed beyond loopback.
    pub auth_token_file: Option<PathBuf>,
    /// The pause between the end of one status pass and the start of the next.
    pub refresh: Duration,
    /// How each status pass runs (URL probes' TLS, retries).
    pub status: StatusOptions,
    /// The spec's etcd snapshot schedule (cron), to judge the snapshots' age by.
    pub etcd_snapshot_schedule: Option<String>,
}

/// Where the dashboard listens, once it does.
#[derive(Debug, Clone)]
pub struct Served {
    pub listen: SocketAddr,
    pub url: String,
    pub auth: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {listen}: that address is reachable from other machines and no auth is configured"
    )]
    NeedsAuth { listen: SocketAddr },
    #[error("cannot use the auth token file {}: {reason}", .path.display())]
    AuthToken { path: PathBuf, reason: String },
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot render the lab's docs for the Docs pages: {0}")]
    Docs(String),
    #[error("the dashboard's server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

impl ServeError {
    /// What to do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            ServeError::NeedsAuth { listen } => Some(format!(
                "configure auth with `--auth-token-file FILE` (a file whose first line is a token of at least {} characters; a browser asks for it as the password, any user name, and scripts send `Authorization: Bearer TOKEN`), or keep the default loopback address (127.0.0.1:{}) and reach it with `ssh -L`",
                crate::auth::MIN_TOKEN_LEN,
                listen.port()
            )),
            ServeError::AuthToken { .. } => Some(
                "write a random token into the file, e.g. `openssl rand -hex 24 > FILE`".into(),
            ),
            ServeError::Bind { .. } => {
                Some("choose a free port with --listen ADDRESS:PORT (port 0 picks one)".into())
            }
            _ => None,
        }
    }

    /// Whether the user asked for something that cannot be (exit 2) rather than it failing.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::NeedsAuth { .. } | ServeError::AuthToken { .. }
        )
    }
}

/// Refuses a bind beyond loopback without auth. Pure: looks at the address only.
pub fn check_listen(listen: &SocketAddr, auth: bool) -> Result<(), ServeError> {
    if listen.ip().is_loopback() || auth {
        Ok(())
    } else {
        Err(ServeError::NeedsAuth { listen: *listen })
    }
}

/// What the routes serve, rendered after each pass.
struct Rendered {
    overview_html: String,
    overview_json: String,
    metrics: String,
    nodes_html: String,
    nodes_json: String,
    alerts_html: String,
    alerts_json: String,
    backups_html: String,
    backups_json: String,
}

/// One pass's reads beyond the status checks, with when they were made.
struct Reads {
    reads: ClusterReads,
    at: Timestamp,
}

impl Rendered {
    /// Nothing yet: replaced before the server answers anything.
    fn empty() -> Rendered {
        Rendered {
            overview_html: String::new(),
            overview_json: String::new(),
            metrics: String::new(),
            nodes_html: String::new(),
            nodes_json: String::new(),
            alerts_html: String::new(),
            alerts_json: String::new(),
            backups_html: String::new(),
            backups_json: String::new(),
        }
    }
}

fn json_of(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("the page data serializes")
}

impl Rendered {
    fn of(state: &AppState, snapshot: Option<&Snapshot>, reads: Option<&Reads>) -> Rendered {
        let (inventory, targets) = (&state.inventory, &state.targets);
        let overview = Overview::build(inventory, snapshot);
        let read_at = reads.map(|r| r.at.to_string());
        let nodes = NodesPage::build(
            &inventory.lab,
            &inventory.k3s_version,
            &inventory.nodes,
            read_at.clone(),
            reads.map(|r| &r.reads.nodes),
            reads.map(|r| &r.reads.node_metrics),
        );
        let am = targets.alertmanager.as_ref().map(|a| a.describe());
        let alerts = AlertsPage::build(
            inventory,
            am.as_deref(),
            read_at.clone(),
            reads.and_then(|r| r.reads.alerts.as_ref()),
            reads.and_then(|r| r.reads.silences.as_ref()),
        );
        let servers: Vec<String> = inventory
            .nodes
            .iter()
            .filter(|n| n.role == "server")
            .map(|n| n.name.clone())
            .collect();
        let backups = BackupsPage::build(BackupInputs {
            lab: &inventory.lab,
            servers: &servers,
            etcd_schedule: state.etcd_schedule.as_deref(),
            now: reads.map_or_else(Timestamp::now, |r| r.at),
            read_at,
            cronjobs: snapshot
                .filter(|s| s.report.health != homelab_kube::Health::Unreachable)
                .map(|s| s.report.backups.as_slice()),
            last_backup: reads.and_then(|r| r.reads.last_backup.as_ref()),
            last_drill: reads.and_then(|r| r.reads.last_drill.as_ref()),
            etcd: reads.map(|r| &r.reads.etcd_snapshots),
        });
        Rendered {
            overview_html: pages::overview(&overview),
            overview_json: json_of(&overview),
            metrics: metrics::render(&overview, snapshot),
            nodes_html: nodes::html(&nodes),
            nodes_json: json_of(&nodes),
            alerts_html: alerts::html(&alerts),
            alerts_json: json_of(&alerts),
            backups_html: backups::html(&backups),
            backups_json: json_of(&backups),
        }
    }
}

struct AppState {
    inventory: Inventory,
    targets: Targets,
    etcd_schedule: Option<String>,
    /// The rendered tree's documents, rendered once: a request names one of these or gets
    /// 404, so no request path ever reaches the file system.
    docs: Docs,
    doc_pages: BTreeMap<String, String>,
    docs_index: String,
    docs_json: String,
    rendered: RwLock<Arc<Rendered>>,
    auth: Option<AuthToken>,
}

type Shared = Arc<AppState>;

/// Serves the lab's dashboard until `shutdown` completes (or Ctrl-C / SIGTERM): checks the
/// bind, reads the token, connects, binds, calls `on_ready`, then runs the status passes and
/// answers requests. Never writes to the cluster.
pub async fn serve(
    plan: &Plan,
    checks: StatusChecks,
    source: &KubeconfigSource,
    options: ServeOptions,
    on_ready: impl FnOnce(&Served),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_listen(&options.listen, options.auth_token_file.is_some())?;
    let auth = match &options.auth_token_file {
        Some(path) => Some(
            AuthToken::from_file(path).map_err(|reason| ServeError::AuthToken {
                path: path.clone(),
                reason,
            })?,
        ),
        None => None,
    };
    let cluster = Cluster::load(source).await?;
    let inventory = Inventory::from_plan(plan);
    let targets = Inventory::targets(plan);
    // The tree `homelab render` writes (k3s flavor: it needs no secret values), in memory.
    let tree = homelab_render::render(plan, homelab_render::Flavor::K3s, None)
        .map_err(|e| ServeError::Docs(e.to_string()))?;
    let docs = Docs::from_files(tree.iter().filter_map(|(path, file)| match &file.content {
        homelab_render::Content::Text(text) => Some((path, text.as_str())),
        homelab_render::Content::Sops(_) => None,
    }));
    let doc_pages = docs
        .docs
        .iter()
        .map(|(key, doc)| (key.clone(), docs::doc_html(&inventory.lab, doc)))
        .collect();
    let mut state = AppState {
        docs_index: docs::index_html(&inventory.lab, &docs, None),
        docs_json: json_of(&docs.docs.values().collect::<Vec<_>>()),
        docs,
        doc_pages,
        rendered: RwLock::new(Arc::new(Rendered::empty())),
        inventory,
        targets,
        etcd_schedule: options.etcd_snapshot_schedule.clone(),
        auth,
    };
    state.rendered = RwLock::new(Arc::new(Rendered::of(&state, None, None)));
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Bind {
            listen: options.listen,
            source,
        })?;
    let listen = listener.local_addr().map_err(ServeError::Serve)?;
    on_ready(&Served {
        listen,
        url: format!("http://{listen}/"),
        auth: state.auth.is_some(),
    });
    // The refresher runs beside the server in this task, not spawned: the status pass's
    // future is not `Send` for every lifetime `tokio::spawn` would need.
    let refresher = refresh_loop(
        state.clone(),
        cluster,
        checks,
        options.status.clone(),
        options.refresh,
    );
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stop_signal() => {}
        }
    });
    tokio::select! {
        result = server.into_future() => result.map_err(ServeError::Serve),
        never = refresher => match never {},
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One status pass at a time, each rendered and swapped in whole, so a page never mixes two.
async fn refresh_loop(
    state: Shared,
    cluster: Cluster,
    checks: StatusChecks,
    options: StatusOptions,
    pause: Duration,
) -> std::convert::Infallible {
    loop {
        let started = Instant::now();
        let (report, reads) = futures::join!(
            cluster.status(&checks, &options),
            reads::read_all(cluster.client(), &state.targets)
        );
        let snapshot = Snapshot {
            report,
            checked_at: Timestamp::now(),
            seconds: started.elapsed().as_secs_f64(),
        };
        let reads = Reads {
            reads,
            at: snapshot.checked_at,
        };
        let rendered = Arc::new(Rendered::of(&state, Some(&snapshot), Some(&reads)));
        *state.rendered.write().expect("render lock") = rendered;
        tokio::time::sleep(pause).await;
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/api/overview", get(overview_json))
        .route("/metrics", get(metrics_text))
        .route(
            "/nodes",
            get(|State(s): State<Shared>| async move { html(current(&s).nodes_html.clone()) }),
        )
        .route(
            "/api/nodes",
            get(|State(s): State<Shared>| async move { json(current(&s).nodes_json.clone()) }),
        )
        .route(
            "/alerts",
            get(|State(s): State<Shared>| async move { html(current(&s).alerts_html.clone()) }),
        )
        .route(
            "/backups",
            get(|State(s): State<Shared>| async move { html(current(&s).backups_html.clone()) }),
        )
        .route(
            "/api/backups",
            get(|State(s): State<Shared>| async move { json(current(&s).backups_json.clone()) }),
        )
        .route(
            "/api/alerts",
            get(|State(s): State<Shared>| async move { json(current(&s).alerts_json.clone()) }),
        )
        .route("/docs", get(docs_index))
        .route("/docs/", get(docs_index))
        .route("/docs/{*path}", get(doc_page))
        .route("/api/docs", get(docs_api))
        .route(&docs::mermaid_path(), get(mermaid_js))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        // `/healthz` answers without auth: the kubelet's probe carries none.
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Every response says it is not to be cached by a shared cache and not framed elsewhere;
/// with auth configured a request without the token gets 401 and the browser's prompt.
async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.auth {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.accepts(given) {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"homelab dashboard\", charset=\"UTF-8\"",
                )],
                "the dashboard needs its token: any user name, the token as password\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        // Scripts only from this server (the vendored Mermaid on docs pages); Mermaid's SVG
        // carries inline styles.
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    response
}

fn current(state: &AppState) -> Arc<Rendered> {
    state.rendered.read().expect("render lock").clone()
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn overview_page(State(state): State<Shared>) -> Response {
    html(current(&state).overview_html.clone())
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn overview_json(State(state): State<Shared>) -> Response {
    json(current(&state).overview_json.clone())
}

async fn metrics_text(State(state): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        current(&state).metrics.clone(),
    )
        .into_response()
}

/// The `q` parameter of a query string, decoded.
fn query_param(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
}

async fn docs_index(State(state): State<Shared>, request: Request) -> Response {
    match query_param(&request) {
        Some(q) => html(docs::index_html(
            &state.inventory.lab,
            &state.docs,
            Some(&q),
        )),
        None => html(state.docs_index.clone()),
    }
}

async fn docs_api(State(state): State<Shared>, request: Request) -> Response {
    match query_param(&request) {
        Some(q) => json(json_of(&serde_json::json!({
            "query": q,
            "hits": state.docs.search(&q),
        }))),
        None => json(state.docs_json.clone()),
    }
}

async fn doc_page(State(state): State<Shared>, Path(path): Path<String>) -> Response {
    let lab = &state.inventory.lab;
    let key = match docs::key_of(&path) {
        Ok(key) => key,
        Err(docs::Refused(why)) => {
            return (
                StatusCode::BAD_REQUEST,
                html(pages::error_page(lab, "Refused", &why)),
            )
                .into_response();
        }
    };
    match state.doc_pages.get(&key) {
        Some(page) => html(page.clone()),
        None => (
            StatusCode::NOT_FOUND,
            html(pages::not_found(
                lab,
                &format!("the rendered docs have no document {key:?}; /docs lists them"),
            )),
        )
            .into_response(),
    }
}

async fn mermaid_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // The version is in the path: the file at it never changes.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        docs::MERMAID_JS,
    )
        .into_response()
}

async fn not_found(State(state): State<Shared>, request: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        html(pages::not_found(
            &state.inventory.lab,
            &format!("nothing at {}", request.uri().path()),
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_auth_anything_else_does() {
        for ok in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:1"] {
            check_listen(&ok.parse().unwrap(), false).unwrap();
        }
        for needs in ["0.0.0.0:8080", "192.168.2.10:8080", "[::]:8080"] {
            let addr: SocketAddr = needs.parse().unwrap();
            let err = check_listen(&addr, false).unwrap_err();
            assert!(err.is_usage());
            assert!(err.to_string().contains(needs), "{err}");
            assert!(err.help().unwrap().contains("--auth-token-file"));
            check_listen(&addr, true).unwrap();
        }
    }
}
