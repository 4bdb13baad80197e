//! The browser flow in a real browser: headless Chromium, driven over
//! WebDriver (chromedriver, through fantoccini), opens /authorize, signs
//! in on the sign-in page, approves on the consent page and lands on the
//! client's loopback redirect URI, a listener this test runs. The code it
//! brings is exchanged at /token and the token verified. What the
//! HTTP-client tests of `browser_flow` cannot show, this does: the pages
//! render and submit in a browser under their Content-Security-Policy
//! (`style-src 'self'`; `form-action` followed through the 303 to the
//! loopback origin), the `__Host-` cookies are kept, and the development
//! CA is trusted the way a person trusts it: imported into the browser's
//! certificate store (a temporary NSS database), with no certificate
//! errors ignored.
//!
//! It needs `chromium`, `chromedriver` and `certutil` (Debian packages
//! `chromium`, `chromium-driver`, `libnss3-tools`; `.ci/run` installs
//! them). Without them the test fails, unless `MCP_AUTH_SKIP_BROWSER=1`
//! says to skip it (for a machine without a browser; CI never sets it).
//! Screenshots of the three pages go to `target/browser-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use mcp_auth::core::pkce::challenge_of;
use mcp_auth::pb;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::{TestServer, strings};
use crate::oauth::RESOURCE;

const VERIFIER: &str = "real-browser-verifier-0123456789-abcdefghijklmnopq";
const PASSWORD: &str = "correct horse battery";
/// How long any one step (a tool starting, a page loading) may take.
const STEP: Duration = Duration::from_secs(20);

/// The programs the test runs.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    certutil: PathBuf,
}

/// `name` on the `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tools, or `None` when they are missing and the caller asked to
/// skip; missing tools fail the test otherwise.
fn tools() -> Option<Tools> {
    let (chromium, chromedriver, certutil) = (
        on_path("chromium"),
        on_path("chromedriver"),
        on_path("certutil"),
    );
    if let (Some(chromium), Some(chromedriver), Some(certutil)) =
        (chromium.clone(), chromedriver.clone(), certutil.clone())
    {
        return Some(Tools {
            chromium,
            chromedriver,
            certutil,
        });
    }
    let missing: Vec<&str> = [
        ("chromium", chromium.is_none()),
        ("chromedriver", chromedriver.is_none()),
        ("certutil", certutil.is_none()),
    ]
    .into_iter()
    .filter(|(_, gone)| *gone)
    .map(|(name, _)| name)
    .collect();
    if std::env::var("MCP_AUTH_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "real_browser: skipped (MCP_AUTH_SKIP_BROWSER=1; missing: {})",
            missing.join(", ")
        );
        return None;
    }
    panic!(
        "the real-browser test needs {} on the PATH: install them with \
         `apt-get install chromium chromium-driver libnss3-tools` (.ci/run does), \
         or set MCP_AUTH_SKIP_BROWSER=1 to skip this test on a machine without a browser",
        missing.join(", ")
    );
}

/// A home directory whose NSS database (`.pki/nssdb`, where Chromium on
/// Linux keeps the user's certificates) trusts the server's development
/// CA for TLS servers, and nothing else besides the browser's own roots.
fn home_trusting(certutil: &Path, ca: &Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join(".pki").join("nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let ca = ca.to_str().unwrap();
    for args in [
        &["-N", "-d", &db, "--empty-password"][..],
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "mcp-auth development CA",
            "-t",
            "C,,",
            "-i",
            ca,
        ][..],
    ] {
        let out = std::process::Command::new(certutil)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    home
}

/// A running chromedriver, stopped on drop.
struct Driver {
    url: String,
    _child: tokio::process::Child,
}

/// Starts chromedriver on a port it picks (`--port=0`), read from the line
/// it prints, then waits until `/status` says it is ready. Chromium
/// inherits `home` as `HOME`.
async fn start_driver(chromedriver: &Path, home: &Path) -> Driver {
    let mut child = tokio::process::Command::new(chromedriver)
        .arg("--port=0")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(STEP, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("chromedriver exited before it said its port");
            eprintln!("chromedriver: {line}");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').parse::<u16>().unwrap();
            }
        }
    })
    .await
    .expect("chromedriver did not say its port");
    // Keep reading what it prints, so that it never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("chromedriver: {line}");
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(resp) = http.get(format!("{url}/status")).send().await
            && let Ok(status) = resp.json::<Value>().await
            && status["value"]["ready"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Driver { url, _child: child }
}

/// The client's loopback listener, as a native app runs one: each request
/// target it gets is sent on the channel and answered with a small page.
async fn loopback() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            // A connection of its own each: browsers open sockets they
            // may never send on.
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                let (status, body) = if target.starts_with("/callback") {
                    (
                        "200 OK",
                        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Signed in</title></head><body><h1 id=\"landed\">Back at the application</h1>\
<p>The sign-in is done; this window can be closed.</p></body></html>",
                    )
                } else {
                    ("404 Not Found", "")
                };
                let _ = tx.send(target);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (port, rx)
}

/// Where the screenshots go: `target/browser-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits for the element `css` on the page the browser goes to; on a
/// timeout, says where the browser is and what it shows.
async fn wait_for(browser: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(STEP)
        .every(Duration::from_millis(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(found) => found,
        Err(err) => {
            let page: String = browser
                .source()
                .await
                .unwrap_or_default()
                .chars()
                .take(3000)
                .collect();
            panic!(
                "no {css} ({err}) at {:?}: {page}",
                browser.current_url().await.map(|u| u.to_string()),
            )
        }
    }
}

/// What the browser does: sign in, approve, land. Returns the URL it
/// landed on.
async fn sign_in_and_approve(browser: fantoccini::Client, authorize: String) -> url::Url {
    browser.goto(&authorize).await.unwrap();
    let username = wait_for(&browser, "input#username").await;
    assert_eq!(browser.title().await.unwrap(), "Sign in");
    let asks = browser.find(Locator::Css("strong")).await.unwrap();
    assert_eq!(asks.text().await.unwrap(), "Inspector <test>");
    // The stylesheet loaded under `style-src 'self'` (the body's font is
    // its rule, not the browser default).
    let font = browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .css_value("font-family")
        .await
        .unwrap();
    assert!(font.contains("system-ui"), "stylesheet not applied: {font}");
    username.send_keys("alice").await.unwrap();
    browser
        .find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    screenshot(&browser, "login").await;
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let approve = wait_for(&browser, "button[value=approve]").await;
    assert_eq!(browser.title().await.unwrap(), "Allow access");
    let host = browser.find(Locator::Css(".host")).await.unwrap();
    let shown = host.text().await.unwrap();
    assert!(shown.starts_with("127.0.0.1:"), "{shown}");
    assert_eq!(
        host.css_value("background-color").await.unwrap(),
        "rgba(255, 244, 214, 1)",
        "the redirect host is highlighted by the stylesheet"
    );
    let scopes = browser.find(Locator::Css("ul")).await.unwrap();
    assert_eq!(scopes.text().await.unwrap(), "tools:read");
    screenshot(&browser, "consent").await;
    approve.click().await.unwrap();

    wait_for(&browser, "h1#landed").await;
    screenshot(&browser, "landing").await;
    browser.current_url().await.unwrap()
}

#[tokio::test]
async fn headless_chromium_signs_in_approves_and_lands_on_the_loopback_redirect_with_a_code() {
    let Some(tools) = tools() else { return };
    let started = Instant::now();
    let server = TestServer::start().await;
    let (port, mut requests) = loopback().await;
    let redirect = format!("http://127.0.0.1:{port}/callback");

    let admin = server.client(&server.primary).await;
    admin
        .create_user(pb::CreateUserRequest {
            username: "alice".to_owned(),
            password: PASSWORD.to_owned(),
        })
        .await
        .unwrap();
    let client_id = admin
        .create_client(pb::CreateClientRequest {
            name: "Inspector <test>".to_owned(),
            redirect_uris: vec![redirect.clone()],
            grant_types: strings(&["authorization_code", "refresh_token"]),
            allowed_scopes: strings(&["tools:read", "tools:call"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;
    let mut authorize = url::Url::parse(&format!("{}/authorize", server.http_url())).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "tools:read")
        .append_pair("state", "st-browser")
        .append_pair("code_challenge", &challenge_of(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", RESOURCE);

    let home = home_trusting(&tools.certutil, &server.ca_path());
    let driver = start_driver(&tools.chromedriver, home.path()).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert("browserName".to_owned(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": tools.chromium,
            "args": [
                "--headless=new",
                // Containers run the tests as root, where Chromium's
                // sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display()),
                "--window-size=800,900",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        }),
    );
    let browser = ClientBuilder::rustls()
        .expect("rustls for the WebDriver client")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|err| panic!("no session from chromedriver: {err}"));

    // The walk runs in a task of its own so that, whatever it asserts,
    // the session is closed (and Chromium with it) before the test ends.
    let walk = tokio::spawn(sign_in_and_approve(browser.clone(), authorize.to_string())).await;
    browser.close().await.unwrap();
    let landed = match walk {
        Ok(url) => url,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    };

    assert_eq!(&landed[..url::Position::AfterPath], redirect);
    let param = |name: &str| {
        landed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("st-browser"));
    assert_eq!(param("iss").as_deref(), Some("https://localhost:8443"));
    assert_eq!(param("error"), None);
    let code = param("code").unwrap();
    assert!(code.starts_with("mcp_ac_"), "{code}");
    // The listener got the same request the browser shows.
    let mut got = Vec::new();
    while let Ok(target) = requests.try_recv() {
        got.push(target);
    }
    let wanted = &landed[url::Position::BeforePath..];
    assert!(got.iter().any(|t| t == wanted), "{wanted} not in {got:?}");

    let resp = server
        .http_client()
        .post(format!("{}/token", server.http_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["scope"], "tools:read", "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let verdict = server
        .verify(&verifier, tokens["access_token"].as_str().unwrap())
        .await;
    assert!(verdict.active, "{verdict:?}");
    let claims = verdict.claims.unwrap();
    assert!(claims.subject.starts_with("usr_"), "{claims:?}");
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.audience, RESOURCE);
    eprintln!(
        "real_browser: done in {:?}; screenshots in {}",
        started.elapsed(),
        screenshot_dir().display()
    );
}
