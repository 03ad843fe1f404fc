//! The access log through the real proxy: lines go to the configured file, in the configured
//! format, written by the background writer and all there once the proxy has drained.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{call, client, provider, proxy, single_listener, status};
use metaproxy_demo_peers::provider::Behavior;

fn log_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("access-log");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_go_to_the_configured_file() {
    let p = provider("p", Behavior::default()).await;
    let path = log_path("json.log");
    let yaml = single_listener(
        &format!("access_log: {{ path: \"{}\", format: json }}", path.display()),
        "        match: [{ key: method, exact: sayHello }]",
        "    endpoints: [{ address: \"{p}\" }]",
    );
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "sayHello", &[("batchjob", "true")]).await), "20");
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    assert_eq!(status(&call(&c, "other", &[]).await), "60");
    running.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["outcome"], "response");
    assert_eq!(lines[0]["route"], "all");
    assert_eq!(lines[0]["cluster"], "c");
    assert_eq!(lines[0]["listener"], "in");
    assert_eq!(lines[2]["outcome"], "local_reply");
    assert_eq!(lines[2]["reply"], "route_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_style_format_string_picks_the_fields() {
    let p = provider("p", Behavior::default()).await;
    let path = log_path("text.log");
    let format =
        "%OPERATION% batch=%REQ(batchjob)% code=%RESPONSE_CODE% served=%RESP(served-by)% flags=%RESPONSE_FLAGS%";
    let top = format!("access_log:\n  path: \"{}\"\n  text_format: \"{format}\"", path.display());
    let yaml = single_listener(&top, "", "    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "sayHello", &[("batchjob", "true")]).await), "20");
    running.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "org.apache.dubbo.demo.DemoService/sayHello batch=true code=20 served=p flags=-\n", "{text}");
}
