//! The real binary: flags, start-up on port 0, signals.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stackd");

#[test]
fn help_names_every_flag_and_its_env_twin() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8");
    for (flag, env) in [
        ("--statsd-addr", "STACKD_STATSD_ADDR"),
        ("--http-addr", "STACKD_HTTP_ADDR"),
        ("--data-dir", "STACKD_DATA_DIR"),
        ("--prefix-labels", "STACKD_PREFIX_LABELS"),
        ("--udp-recv-buffer", "STACKD_UDP_RECV_BUFFER"),
        ("--max-body-size", "STACKD_MAX_BODY_SIZE"),
        ("--max-apps", "STACKD_MAX_APPS"),
        ("--max-stacks-per-app", "STACKD_MAX_STACKS_PER_APP"),
        ("--bucket", "STACKD_BUCKET"),
        ("--gauge-ttl", "STACKD_GAUGE_TTL"),
        ("--max-label-values", "STACKD_MAX_LABEL_VALUES"),
        ("--max-series-per-app", "STACKD_MAX_SERIES_PER_APP"),
        ("--http-max-connections", "STACKD_HTTP_MAX_CONNECTIONS"),
        ("--http-header-timeout", "STACKD_HTTP_HEADER_TIMEOUT"),
        ("--http-idle-timeout", "STACKD_HTTP_IDLE_TIMEOUT"),
        ("--http-request-timeout", "STACKD_HTTP_REQUEST_TIMEOUT"),
        ("--max-concurrent-renders", "STACKD_MAX_CONCURRENT_RENDERS"),
        ("--tls-cert", "STACKD_TLS_CERT"),
        ("--tls-key", "STACKD_TLS_KEY"),
        ("--write-credentials", "STACKD_WRITE_CREDENTIALS"),
        ("--read-credentials", "STACKD_READ_CREDENTIALS"),
        ("--auth-metrics", "STACKD_AUTH_METRICS"),
    ] {
        let env_shown = help.contains(&format!("[env: {env}=")) || help.contains(&format!("[env: {env}]"));
        assert!(help.contains(flag) && env_shown, "{flag} / {env} missing from:\n{help}");
    }
    assert!(help.contains("[default: 0.0.0.0:8125]") && help.contains("[default: 0.0.0.0:8086]"));
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let out = Command::new(BIN).env("STACKD_PREFIX_LABELS", "SKIP.app-id").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'SKIP.app-id' for '--prefix-labels <PREFIX_LABELS>': label name \"app-id\" must match"), "{err}");
}

#[test]
fn starts_on_port_zero_logs_addresses_and_stops_on_sigterm() {
    let data = common::TempDir::new("bin");
    let dir = data.0.join("not-yet");
    let bin = common::Binary::start(&dir, &["--prefix-labels", "SKIP.app.executor"]);
    assert!(!bin.statsd.ends_with(":0") && !bin.http.ends_with(":0"), "real ports chosen");
    assert!(dir.join("stackd.redb").is_file(), "data dir and store created");

    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.send_to(b"spark.app-bin.1.cpu.trace.a-B-c-1:2|g", &bin.statsd).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let out = Command::new("curl").args(["-s", &bin.url("/flamegraph/app-bin.folded")]).output().expect("curl");
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        if body == "a.B.c:1 2\n" || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(body, "a.B.c:1 2\n");
    let rest = bin.stop();
    assert!(rest.iter().any(|l| l.contains("shutting down")) && rest.iter().any(|l| l.contains("stopped; everything flushed")), "{rest:?}");
}

/// What `stackd` prints when it cannot start: its last line of stderr, and the exit code.
fn refusal(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stackd {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), err.lines().last().unwrap_or_default().to_string())
}

#[test]
fn a_data_dir_that_cannot_be_used_is_one_line_saying_why() {
    let data = common::TempDir::new("bin-data-dir");
    std::fs::create_dir_all(&data.0).expect("dir");
    let file = data.0.join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let f = file.display();
    assert_eq!(refusal(&["--data-dir", &f.to_string()]), (Some(1), format!("stackd: --data-dir {f} is not a directory")));
    let under = file.join("store");
    assert_eq!(
        refusal(&["--data-dir", &under.display().to_string()]),
        (Some(1), format!("stackd: cannot create --data-dir {}: a part of the path is a file, not a directory", under.display()))
    );
    // A second stackd on the data dir of a running one.
    let dir = data.0.join("shared");
    let first = common::Binary::start(&dir, &[]);
    assert_eq!(
        refusal(&["--data-dir", &dir.display().to_string()]),
        (
            Some(1),
            format!("stackd: another stackd is using {} (its store file is locked); give each stackd its own --data-dir", dir.display())
        )
    );
    first.stop();
}

#[test]
fn the_health_probe_says_whether_stackd_answers() {
    let data = common::TempDir::new("bin-probe");
    let bin = common::Binary::start(&data.0, &[]);
    let port = bin.http.rsplit(':').next().expect("port").to_string();
    // As a container's HEALTHCHECK runs it: the same --http-addr the server has, all interfaces.
    let ok = Command::new(BIN).args(["--health-probe", "--http-addr", &format!("0.0.0.0:{port}")]).output().expect("probe");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    bin.stop();
    let down = Command::new(BIN).args(["--health-probe", "--http-addr", &format!("0.0.0.0:{port}")]).output().expect("probe");
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains(&format!("health probe: cannot connect to 127.0.0.1:{port}")));
}
