//! The `garden-standins` binary: `all` serves both stand-ins and stops cleanly on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn wait_for(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn all_serves_both_and_stops_on_sigterm() {
    let (converse, tools) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_garden-standins"))
        .args([
            "all",
            "--converse-port",
            &converse.to_string(),
            "--tools-port",
            &tools.to_string(),
        ])
        .args([
            "--agent-url",
            "http://127.0.0.1:1",
            "--throttle-rate",
            "0.25",
            "--seed",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(converse);
    wait_for(tools);

    let health = get(converse, "/_standin/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let stats = get(converse, "/_standin/stats");
    assert!(stats.contains("\"throttle_rate\":0.25"), "{stats}");
    // The MCP endpoint is there: a GET without a session is refused, not a 404.
    let mcp = get(tools, "/mcp");
    assert!(!mcp.starts_with("HTTP/1.1 404"), "{mcp}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no exit after sigterm");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn refuses_a_throttle_rate_outside_zero_to_one() {
    let output = Command::new(env!("CARGO_BIN_EXE_garden-standins"))
        .args(["converse", "--throttle-rate", "2"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("between 0 and 1"));
}
