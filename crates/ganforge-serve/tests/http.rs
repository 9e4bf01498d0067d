//! The server over real HTTP on 127.0.0.1: images, errors, the dashboard's data, the report.

mod common;

use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into()
}

struct Got {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn get(base: &str, path: &str) -> Got {
    let mut r = agent().get(&format!("{base}{path}")).call().unwrap();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Got { status: r.status().as_u16(), content_type, body: r.body_mut().read_to_vec().unwrap() }
}

fn json(g: &Got) -> serde_json::Value {
    serde_json::from_slice(&g.body).unwrap()
}

#[test]
fn the_api_makes_images_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), &[]);
    let server = common::serve(&run);
    let base = format!("http://{}", server.addr);

    // One image: a 16x16 PNG; the same seed gives the same bytes, another seed others.
    let a = get(&base, "/api/generate?seed=123");
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    let img = image::load_from_memory(&a.body).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    assert_eq!(get(&base, "/api/generate?seed=123").body, a.body);
    assert_ne!(get(&base, "/api/generate?seed=124").body, a.body);
    // A grid of 4: 2 x 2 images of 16 with 2-pixel borders.
    let grid = image::load_from_memory(&get(&base, "/api/generate?seed=1&n=4").body).unwrap();
    assert_eq!((grid.width(), grid.height()), (38, 38));
    let strip = image::load_from_memory(&get(&base, "/api/interpolate?from=1&to=2&steps=5").body).unwrap();
    assert_eq!((strip.width(), strip.height()), (5 * 18 + 2, 20));

    // Concurrent requests (batched into shared generator calls) each get their own seed's image.
    let solo: Vec<Vec<u8>> = (0..8).map(|s| get(&base, &format!("/api/generate?seed={s}")).body).collect();
    let together: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|s| {
                sc.spawn({
                    let base = base.clone();
                    move || get(&base, &format!("/api/generate?seed={s}")).body
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(solo, together);

    let model = json(&get(&base, "/api/model"));
    assert_eq!(model["model"]["image_size"], 16);
    assert_eq!(model["model"]["arch"], "dcgan");
    assert_eq!(model["model"]["step"], 4);
    assert_eq!(model["model"]["subject"], "digit", "the mnist preset's images are digits: 'This digit does not exist'");
    assert!(model["metrics"]["metrics"]["coverage"]["covered"].as_u64().is_some());

    for (path, needle) in [
        ("/api/generate?seed=abc", "seed=\"abc\" is not a non-negative integer"),
        ("/api/generate?n=0", "from 1 to 64"),
        ("/api/generate?n=65", "from 1 to 64"),
        ("/api/generate?truncation=-1", "truncation"),
        ("/api/generate?class=1", "not conditional"),
        ("/api/generate?colour=red", "unknown parameter 'colour'"),
        ("/api/interpolate?from=1", "from and to"),
        ("/api/interpolate?from=1&to=2&steps=99", "from 2 to 16"),
    ] {
        let g = get(&base, path);
        assert_eq!(g.status, 400, "{path}");
        assert!(json(&g)["error"].as_str().unwrap().contains(needle), "{path}: {}", String::from_utf8_lossy(&g.body));
    }
    // Unknown paths, and nothing on disk but the sample grids.
    for path in
        ["/nope", "/samples/../config.toml", "/samples/..%2Fconfig.toml", "/samples/config.toml", "/api/chart/nope.svg", "/../config.toml"]
    {
        let g = get(&base, path);
        assert_eq!(g.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&g.body).contains("[model]"), "{path} leaked the config");
    }
}

#[test]
fn the_dashboard_has_its_data_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), &[]);
    let server = common::serve(&run);
    let base = format!("http://{}", server.addr);
    let m = json(&get(&base, "/api/metrics"));
    assert_eq!(m["steps"].as_array().unwrap().len(), 4);
    assert_eq!(m["evals"].as_array().unwrap().len(), 2);
    assert_eq!(m["findings"][0]["kind"], "checkerboard");
    assert_eq!(m["samples"], serde_json::json!(["step_000002.png", "step_000004.png"]));
    let grid = get(&base, "/samples/step_000004.png");
    assert_eq!((grid.status, grid.content_type.as_str()), (200, "image/png"));
    let chart = get(&base, "/api/chart/loss.svg");
    assert_eq!(chart.content_type, "image/svg+xml");
    assert!(String::from_utf8_lossy(&chart.body).contains(r#"data-points="8""#), "two curves of 4 points");
    for page in ["/", "/dashboard"] {
        let g = get(&base, page);
        assert_eq!((g.status, g.content_type.as_str()), (200, "text/html; charset=utf-8"));
    }
}

#[test]
fn a_run_without_a_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), &[]);
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    std::fs::create_dir(run.join("checkpoints")).unwrap();
    let server = common::serve(&run);
    let g = get(&format!("http://{}", server.addr), "/api/generate");
    assert_eq!(g.status, 503);
    assert!(json(&g)["error"].as_str().unwrap().contains("no checkpoint yet"));
    assert!(ganforge_serve::server::spawn(dir.path(), "127.0.0.1:0".parse().unwrap(), ganforge::burn::tensor::Device::flex()).is_err());
}

#[test]
fn the_report_is_one_self_contained_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), &[]);
    assert!(run.join("loss.png").is_file(), "training ends with a loss plot");
    let html = ganforge_serve::report::build(&run).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("data:image/png;base64,").count(), 2, "both sample grids inline");
    assert_eq!(html.matches("<svg").count(), 6, "loss, D, speed, lr, FID and coverage charts");
    assert!(html.contains("coverage:") && html.contains("checkerboard at step 3") && html.contains("[model]"));
    // Nothing is loaded from elsewhere.
    for outside in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(outside), "the report refers outside itself: {outside}");
    }
}

/// Reads from `s` until the server closes it (end of stream or reset), for at most `limit`:
/// what came, and when it closed (None: still open at the limit).
fn read_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        s.set_read_timeout(Some((limit - start.elapsed()).max(Duration::from_millis(1)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(start.elapsed())),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(_) => return (got, Some(start.elapsed())), // reset: closed too
        }
    }
    (got, None)
}

/// Idle and half-sent connections are closed after the header timeout, connections over the cap
/// wait for a free slot, and every response says nosniff. Loopback only; every wait is bounded.
#[test]
fn connections_time_out_are_capped_and_responses_say_nosniff() {
    use ganforge_serve::server::{exposure_warning, spawn_with, ServeOptions};
    use std::io::Write;
    use std::net::TcpStream;
    // No checkpoint is needed for these: a folder with a config is a run to the server.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let timeout = Duration::from_millis(500);
    let opts = ServeOptions { header_timeout: timeout, max_connections: 4 };
    let server = spawn_with(dir.path(), "127.0.0.1:0".parse().unwrap(), ganforge::burn::tensor::Device::flex(), opts).unwrap();
    let base = format!("http://{}", server.addr);

    for (path, status) in [("/", 200), ("/api/metrics", 200), ("/api/generate", 503), ("/nope", 404)] {
        let r = agent().get(&format!("{base}{path}")).call().unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{path}");
    }

    // Silent, half a request head, and kept alive after a response: each closed after the timeout.
    let connect = || TcpStream::connect(server.addr).unwrap();
    let (mut idle, mut half, mut kept) = (connect(), connect(), connect());
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    kept.write_all(b"GET /api/metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let limit = Duration::from_secs(5);
    for (name, s) in [("idle", &mut idle), ("half-sent", &mut half), ("kept-alive", &mut kept)] {
        let (got, closed) = read_until_closed(s, limit);
        let closed = closed.unwrap_or_else(|| panic!("the {name} connection is still open after {limit:?}"));
        assert!(closed < Duration::from_secs(3), "{name} closed after {closed:?}");
        if name == "kept-alive" {
            assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        }
    }

    // Twice the cap of idle connections: none lasts long, and a request behind them is served
    // once slots free up, not before the idle ones time out.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect()).collect();
    let start = std::time::Instant::now();
    let mut late = connect();
    late.write_all(b"GET /api/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let (got, closed) = read_until_closed(&mut late, limit);
    assert!(got.starts_with(b"HTTP/1.1 200") && closed.is_some(), "{}", String::from_utf8_lossy(&got));
    let waited = start.elapsed();
    assert!(waited >= timeout * 3 / 2 && waited < limit, "served after {waited:?}: two rounds of 4 idle connections come first");
    for s in &mut idle {
        assert!(read_until_closed(s, limit).1.is_some(), "an idle connection outlived the timeout");
    }

    assert_eq!(exposure_warning(&server.addr), None);
    assert_eq!(exposure_warning(&"[::1]:8080".parse().unwrap()), None);
    for exposed in ["0.0.0.0:8080", "192.168.1.5:80", "[::]:8080"] {
        let w = exposure_warning(&exposed.parse().unwrap()).unwrap_or_else(|| panic!("no warning for {exposed}"));
        assert!(w.contains("reachable by anyone on the network, without authentication"), "{w}");
    }
}

/// A class-conditional (BigGAN-style) run: `class=K` and `truncation=T` give exactly the image ganforge's
/// Sampler makes for that seed's latent (truncated: redrawn beyond T) and class.
#[test]
fn conditional_and_truncated_images_are_the_samplers() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_biggan_run(dir.path());
    let server = common::serve(&run);
    let base = format!("http://{}", server.addr);
    let sampler = ganforge::sample::Sampler::load(&run, None, &ganforge::burn::tensor::Device::flex()).unwrap();

    let three = get(&base, "/api/generate?seed=5&class=3");
    assert_eq!(three.status, 200);
    assert_eq!(three.body, sampler.generate(&sampler.latents(1, 5), Some(&[3])).png(0));
    // Each class's image is the Sampler's for that class, and the classes look different.
    let per_class: Vec<Vec<u8>> = (0..10).map(|k| get(&base, &format!("/api/generate?seed=5&class={k}")).body).collect();
    for (k, body) in per_class.iter().enumerate() {
        assert_eq!(*body, sampler.generate(&sampler.latents(1, 5), Some(&[k as u32])).png(0), "class {k}");
    }
    let distinct: std::collections::BTreeSet<&Vec<u8>> = per_class.iter().collect();
    assert!(distinct.len() >= 8, "only {} distinct images for 10 classes", distinct.len());

    let z = sampler.latents_truncated(1, 5, 0.5);
    assert!(z.iter().all(|v| v.abs() <= 0.5), "truncated latents stay within 0.5");
    let truncated = get(&base, "/api/generate?seed=5&class=3&truncation=0.5");
    assert_eq!(truncated.status, 200);
    assert_eq!(truncated.body, sampler.generate(&z, Some(&[3])).png(0));
    assert_ne!(truncated.body, three.body);

    let model = json(&get(&base, "/api/model"));
    let classes = model["model"]["classes"].as_u64().unwrap();
    assert!(classes >= 10, "{model}");
    let g = get(&base, &format!("/api/generate?seed=5&class={classes}"));
    assert_eq!(g.status, 400);
    assert!(
        json(&g)["error"].as_str().unwrap().contains(&format!("class {classes} is out of range")),
        "{}",
        String::from_utf8_lossy(&g.body)
    );
}

/// Requests that arrive together share generator calls: 16 requests released at once by a
/// barrier take fewer than 16 calls, and each still gets its own seed's image.
#[test]
fn concurrent_requests_are_batched_into_fewer_generator_calls() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::tiny_run(dir.path(), &[]);
    let server = common::serve(&run);
    let base = format!("http://{}", server.addr);
    let solo: Vec<Vec<u8>> = (0..16).map(|s| get(&base, &format!("/api/generate?seed={s}")).body).collect();
    let before = server.generator_calls();
    assert_eq!(before, 16, "one call per request made one at a time");
    let barrier = std::sync::Barrier::new(16);
    let together: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..16)
            .map(|s| {
                let (base, barrier) = (base.clone(), &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    get(&base, &format!("/api/generate?seed={s}")).body
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(solo, together);
    let calls = server.generator_calls() - before;
    assert!(calls < 16, "16 concurrent requests took {calls} generator calls: no batching");
}

/// `/api/generate?seed=123&n=4` on the old run fixture makes the images commit 2340d05 made
/// (rand 0.9, rand_chacha 0.9, rand_distr 0.5, before the upgrade to burn's rand 0.10): the
/// fixture PNG is that commit's grid for seed 123 (see ganforge's tests/seeds_pinned.rs). G's
/// float kernels may round a pixel one level differently on another CPU, never more.
#[test]
fn a_seed_makes_the_image_it_made_before_the_rand_upgrade() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ganforge/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("00000-mnist");
    std::fs::create_dir_all(run.join("checkpoints/step_000004")).unwrap();
    std::fs::copy(fixtures.join("old_run_c47ce6c/config.toml"), run.join("config.toml")).unwrap();
    for f in std::fs::read_dir(fixtures.join("old_run_c47ce6c/checkpoints/step_000004")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, run.join("checkpoints/step_000004").join(f.file_name().unwrap())).unwrap();
    }
    let server = common::serve(&run);
    let got = get(&format!("http://{}", server.addr), "/api/generate?seed=123&n=4");
    assert_eq!(got.status, 200);
    let got = image::load_from_memory(&got.body).unwrap().to_rgb8();
    let want = image::open(fixtures.join("seed_123_old_run_c47ce6c.png")).unwrap().to_rgb8();
    assert_eq!(got.dimensions(), want.dimensions());
    let worst = got.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "seed 123's grid differs from commit 2340d05's by up to {worst} levels");
}
