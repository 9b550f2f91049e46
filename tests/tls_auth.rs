//! HTTPS (`--tls-cert`/`--tls-key`) with a certificate the test makes, and the optional
//! credentials, against real clients: curl and the Python InfluxDB clients.

mod common;

use std::process::Command;

use common::{Service, TempDir};

/// A self-signed certificate for localhost and 127.0.0.1 (openssl from the machine).
fn certificate(dir: &TempDir) -> (String, String) {
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by .ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert.to_string_lossy().into(), key.to_string_lossy().into())
}

/// `curl -s` with `args`: status code and body.
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

// curl runs as a blocking child process: the service needs threads of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_credentials_for_real_clients() {
    let dir = TempDir::new("tls");
    let (cert, key) = certificate(&dir);
    let svc =
        Service::start(&["--tls-cert", &cert, "--tls-key", &key, "--write-credentials", "agent:s3cret", "--read-credentials", "alice:pw"])
            .await;
    let port = svc.http.port().to_string();
    let base = format!("https://localhost:{port}");
    let (code, _) = curl(&["--cacert", &cert, &format!("{base}/ping")]);
    assert_eq!(code, "204", "/ping is open and served over TLS");
    // Plain HTTP on the TLS port gets no answer.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}/ping")]);
    assert_eq!(code, "000");
    // An unknown certificate authority is refused by the client.
    let (code, _) = curl(&[&format!("{base}/ping")]);
    assert_eq!(code, "000");

    let out = tokio::task::spawn_blocking({
        let cert = cert.clone();
        move || common::python("influx_tls_auth.py", &[&port, &cert, "agent", "s3cret"])
    })
    .await
    .expect("join");
    assert_eq!(out, "ok");
    let folded = format!("{base}/flamegraph/app-tls.folded");
    let (code, _) = curl(&["--cacert", &cert, &folded]);
    assert_eq!(code, "401", "reading needs the read credentials");
    let (code, _) = curl(&["--cacert", &cert, "-u", "agent:s3cret", &folded]);
    assert_eq!(code, "401", "write credentials do not read");
    let (code, body) = curl(&["--cacert", &cert, "-u", "alice:pw", &format!("{base}/flamegraph/spark.app-tls.1.folded")]);
    assert_eq!((code.as_str(), body.as_str()), ("200", "a.B.c:1 5\n"));
}

#[tokio::test]
async fn credentials_are_checked_like_influxdb() {
    let svc = Service::start(&["--write-credentials", "agent:s3cret,tok3n", "--read-credentials", "alice:pw"]).await;
    let line = "cpu.trace.a-B-c-1,prefix=p value=1";
    let write = |query: &str| svc.client.post(svc.url(&format!("/write?db=x{query}"))).body(line);
    let r = write("").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"InfluxDB\"");
    assert_eq!(r.text().await.expect("body"), r#"{"error":"unable to parse authentication credentials"}"#);
    let r = write("&u=agent&p=wrong").send().await.expect("POST");
    assert_eq!((r.status().as_u16(), r.text().await.expect("body")), (401, r#"{"error":"authorization failed"}"#.to_string()));
    for ok in [
        write("&u=agent&p=s3cret"),
        write("").basic_auth("agent", Some("s3cret")),
        write("").header("Authorization", "Token agent:s3cret"),
        write("").header("Authorization", "Token tok3n"),
    ] {
        assert_eq!(ok.send().await.expect("POST").status().as_u16(), 204);
    }
    let r = svc.client.post(svc.url("/api/v2/write?bucket=b")).header("Authorization", "Token nope").body(line).send().await.expect("POST");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (401, r#"{"code":"unauthorized","message":"unauthorized access"}"#.into())
    );
    let r = svc.client.post(svc.url("/query?q=SHOW+DATABASES")).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 401, "/query is part of the write API");

    let r = svc.get("/flamegraph/p.folded").await;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"stackd\"", "a browser asks");
    let r = svc.client.get(svc.url("/flamegraph/p.folded")).basic_auth("alice", Some("pw")).send().await.expect("GET");
    assert_eq!((r.status().as_u16(), r.text().await.expect("body")), (200, "a.B.c:1 4\n".to_string()));
    assert_eq!(svc.get("/apps").await.status().as_u16(), 401);
    assert_eq!(svc.get("/metrics").await.status().as_u16(), 200, "open unless --auth-metrics");
    assert_eq!(svc.metric("stackd_requests_rejected_total{reason=\"unauthorized\"}").await, 6.0);
}

#[tokio::test]
async fn auth_metrics_puts_metrics_and_ping_behind_the_read_credentials() {
    let svc = Service::start(&["--read-credentials", "alice:pw", "--auth-metrics"]).await;
    assert_eq!(svc.get("/metrics").await.status().as_u16(), 401);
    assert_eq!(svc.get("/ping").await.status().as_u16(), 401);
    let r = svc.client.get(svc.url("/metrics")).basic_auth("alice", Some("pw")).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    // With no write credentials configured, anyone may write.
    let r = svc.client.post(svc.url("/write?db=x")).body("cpu.trace.a-B-c-1,prefix=p value=1").send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 204);
}
