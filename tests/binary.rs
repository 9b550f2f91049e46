//! The real binary: flags, start-up on port 0, signals.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
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
    ] {
        assert!(help.contains(flag) && help.contains(&format!("[env: {env}=")), "{flag} / {env} missing from:\n{help}");
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
    let data = std::env::temp_dir().join(format!("stackd-bin-{}", std::process::id()));
    let child = Command::new(BIN)
        .args(["--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--prefix-labels", "SKIP.app.executor"])
        .arg("--data-dir")
        .arg(&data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = KillOnDrop(child);
    // Log lines arrive through a channel, so that a silent or stuck process fails the test
    // instead of hanging it.
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listening = loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("log lines within 10 s");
        if line.contains("stackd listening") {
            break line;
        }
    };
    assert!(listening.contains("stackd listening"), "{listening}");
    let field = |name: &str| {
        let start = listening.find(&format!("{name}=")).expect(name) + name.len() + 1;
        listening[start..].split_whitespace().next().expect("value").to_string()
    };
    let (statsd, http) = (field("statsd_addr"), field("http_addr"));
    assert!(!statsd.ends_with(":0") && !http.ends_with(":0"), "real ports chosen: {listening}");
    assert!(data.is_dir(), "data dir created");

    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.send_to(b"spark.app-bin.1.cpu.trace.a-B-c-1:2|g", &statsd).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let out = Command::new("curl").args(["-s", &format!("http://{http}/flamegraph/app-bin.folded")]).output().expect("curl");
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        if body == "a.B.c:1 2\n" || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(body, "a.B.c:1 2\n");

    let status = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The process has exited: the reader thread reaches EOF and the channel closes.
    let rest: Vec<String> = lines.iter().collect();
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("shutting down")) && rest.iter().any(|l| l.contains("stopped; everything flushed")), "{rest:?}");
    let _ = std::fs::remove_dir_all(&data);
}

/// A child process killed when the test ends, whether it passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
