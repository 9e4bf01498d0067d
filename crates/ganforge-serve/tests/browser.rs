//! The pages in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! .ci/run installs), driven through ChromeDriver's WebDriver HTTP protocol: the image page
//! loads an image, a click shows another, the dashboard draws its charts from a run, and the
//! browser logs no errors.
//!
//! It is ignored by default, so that `cargo test --workspace` passes on a bare clone without a
//! browser; .ci/run installs Chromium and runs it with `--include-ignored`. When it is run, a
//! missing Chromium is a failure, never a silent pass.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into();
        let base = format!("http://127.0.0.1:{port}");
        let mut d = Driver { child, base, session: String::new(), agent };
        let until = Instant::now() + Duration::from_secs(20);
        while d.agent.get(&format!("{}/status", d.base)).call().is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Flags as the machine notes say: this network is closed, so no background traffic.
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=1200,900"
            ]},
            "goog:loggingPrefs": { "browser": "ALL" }
        }}});
        let r = d.post("/session", caps);
        d.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        d
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap()
    }

    fn cmd(&self, path: &str, body: Value) -> Value {
        self.post(&format!("/session/{}{path}", self.session), body)["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd("/execute/sync", json!({ "script": script, "args": [] }))
    }

    /// Waits until `script` returns true.
    fn wait_for(&self, script: &str, what: &str) {
        let until = Instant::now() + Duration::from_secs(30);
        while self.js(script) != json!(true) {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let el = self.cmd("/element", json!({ "using": "css selector", "value": css }));
        let id = el[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {el}")).to_string();
        self.cmd(&format!("/element/{id}/click"), json!({}));
    }

    /// Browser console entries since the last call.
    fn log(&self) -> Vec<Value> {
        let v = self.cmd("/se/log", json!({ "type": "browser" }));
        v.as_array().cloned().unwrap_or_else(|| panic!("ChromeDriver gave no browser log: {v}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.agent.delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does): run with --include-ignored"]
fn pages_work_in_headless_chromium() {
    assert!(
        std::path::Path::new(CHROMEDRIVER).is_file() && std::path::Path::new(CHROMIUM).is_file(),
        "this test needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver (.ci/run installs them)"
    );
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(&dir.path().join("runs"), &[]);
    let server = common::serve(&run);
    let base = format!("http://{}", server.addr);
    let d = Driver::start(&dir.path().join("profile"));

    // The page loads with the image of the seed in its URL.
    d.go(&format!("{base}/?seed=5"));
    d.wait_for(
        "const i = document.getElementById('img'); return i.dataset.seed === '5' && i.complete && i.naturalWidth === 16;",
        "the first image",
    );
    let first = d.js("return document.getElementById('img').src;");
    // A click shows another image, and the URL names its seed so it can be shared.
    d.click("#img");
    d.wait_for(
        "const i = document.getElementById('img'); return i.dataset.seed !== '5' && i.complete && i.naturalWidth === 16;",
        "a new image after the click",
    );
    assert_ne!(d.js("return document.getElementById('img').src;"), first);
    let seed = d.js("return document.getElementById('img').dataset.seed;");
    assert_eq!(d.js("return new URLSearchParams(location.search).get('seed');"), seed);
    // The interpolation strip.
    d.click("#interp");
    d.wait_for(
        "const s = document.getElementById('strip'); return s.complete && s.naturalWidth === 8 * 18 + 2;",
        "the interpolation strip",
    );

    // The dashboard draws its charts and sample timeline from the run.
    d.go(&format!("{base}/dashboard"));
    d.wait_for("return Number(document.body.dataset.polls || 0) >= 1;", "the dashboard's first poll");
    d.wait_for("return [...document.querySelectorAll('.chart')].every(i => i.complete && i.naturalWidth === 640);", "the charts");
    assert_eq!(d.js("return document.querySelectorAll('#timeline img').length;"), json!(2));
    assert!(d.js("return document.getElementById('status').textContent;").as_str().unwrap().contains("step 4"));
    assert!(d.js("return document.getElementById('findings').textContent;").as_str().unwrap().contains("checkerboard"));
    assert_eq!(d.js("return document.querySelectorAll('#evals tr').length;"), json!(3), "a header and two evaluations");
    // The charts hold the run's points: the loss chart's SVG has 8 (two curves of 4 steps).
    let svg = d.js("return fetch('/api/chart/loss.svg').then(r => r.text());");
    assert!(svg.as_str().unwrap().contains(r#"data-points="8""#));

    let errors: Vec<Value> = d.log().into_iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // The log does catch errors: one made on purpose shows up.
    d.js("console.error('probe from the test');");
    assert!(d.log().iter().any(|e| e["level"] == "SEVERE" && e["message"].as_str().unwrap_or("").contains("probe from the test")));
}
