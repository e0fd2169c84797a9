//! Shared helpers of the S3 integration tests: the S3-compatible server on 127.0.0.1
//! (moto, started by `scripts/s3-up.sh`), buckets, the environment for `edp` processes,
//! and a fault-injecting HTTP proxy in front of the server.
//!
//! Only loopback addresses are ever contacted. Without a server the tests skip with a
//! message, unless `EDP_REQUIRE_S3=1` (CI), where they fail.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The endpoint of the test server, starting it if needed; `None` (with a SKIP message)
/// if it cannot be had and the tests are not required.
pub fn server(test: &str) -> Option<String> {
    static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();
    let got = ENDPOINT.get_or_init(|| {
        let endpoint = match std::env::var("EDP_TEST_S3_ENDPOINT") {
            Ok(e) if !e.is_empty() => Ok(e),
            _ => start(),
        }?;
        if !endpoint.starts_with("http://127.") && !endpoint.starts_with("http://localhost") {
            return Err(format!("{endpoint} is not a loopback address"));
        }
        // Every client in this process (the library called directly) uses it.
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("EDP_S3_RETRIES", "2");
        Ok(endpoint)
    });
    match got {
        Ok(e) => Some(e.clone()),
        Err(why) => {
            if std::env::var("EDP_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("{test}: EDP_REQUIRE_S3=1 but no S3 test server: {why}");
            }
            eprintln!("SKIP {test}: no S3 test server ({why}); run scripts/s3-up.sh");
            None
        }
    }
}

/// The S3 handle of this test process (made after [`server`] set the environment).
pub fn s3() -> edp::storage::S3 {
    static S3: OnceLock<edp::storage::S3> = OnceLock::new();
    S3.get_or_init(|| {
        edp::storage::Storage::new(&edp::settings::Settings::from_env())
            .s3()
            .clone()
    })
    .clone()
}

fn start() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-up.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if endpoint.is_empty() {
        return Err(format!("{} printed no endpoint", script.display()));
    }
    Ok(endpoint)
}

/// `host:port` of an `http://host:port` endpoint.
pub fn authority(endpoint: &str) -> &str {
    endpoint.trim_start_matches("http://").trim_end_matches('/')
}

/// One raw HTTP/1.1 request (unsigned: moto does not check signatures); the status.
pub fn raw_request(endpoint: &str, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(authority(endpoint)).expect("connect to the S3 test server");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        authority(endpoint)
    )
    .expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A fresh bucket with a unique name starting with `stem`.
pub fn bucket(endpoint: &str, stem: &str) -> String {
    // Bucket names: lower-case letters, digits and hyphens, at most 63 characters.
    let name = format!("{stem}-{}", uuid::Uuid::new_v4().simple());
    let status = raw_request(endpoint, "PUT", &format!("/{name}"));
    assert_eq!(status, 200, "creating bucket {name} on {endpoint}");
    name
}

/// The `edp` binary with the S3 test environment: credentials, endpoint, few retries,
/// and its own scratch directory.
pub fn edp(endpoint: &str, scratch: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edp"));
    with_env(&mut c, endpoint, scratch);
    c
}

/// True if `mpirun` is on the PATH.
pub fn have_mpirun() -> bool {
    Command::new("sh")
        .args(["-c", "command -v mpirun"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `mpirun -np <np> edp` with the same environment as [`edp`].
pub fn mpirun(np: usize, endpoint: &str, scratch: &Path) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--oversubscribe",
        "-np",
        &np.to_string(),
        env!("CARGO_BIN_EXE_edp"),
    ])
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    .env_remove("EDP_MPI")
    .stdin(std::process::Stdio::null());
    with_env(&mut c, endpoint, scratch);
    c
}

fn with_env(c: &mut Command, endpoint: &str, scratch: &Path) {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("EDP_S3_RETRIES", "2")
        .env("EDP_SCRATCH_DIR", scratch)
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG");
}

/// Uploads every file under `dir` to `s3://bucket/prefix/<relative path>`.
pub fn upload_tree(dir: &Path, bucket: &str, prefix: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let key = if prefix.is_empty() {
                rel
            } else {
                format!("{prefix}/{rel}")
            };
            let url = edp::storage::S3Url {
                bucket: bucket.into(),
                key,
            };
            s3().upload_file(&p, &url).expect("upload");
            n += 1;
        }
    }
    n
}

/// What the proxy has seen and what it does.
#[derive(Debug, Default)]
pub struct ProxyState {
    /// Requests whose path contains this fail with 500 (every attempt).
    pub fail_path: Option<String>,
    /// `METHOD path` of every request forwarded or failed, in order.
    pub log: Vec<String>,
}

/// A tiny HTTP/1.1 proxy on 127.0.0.1 in front of the S3 test server that answers
/// `500 Internal Server Error` to requests matching `fail_path` and forwards the rest,
/// one request per connection (it answers `Connection: close`).
pub struct Proxy {
    pub endpoint: String,
    pub state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let (st, up) = (Arc::clone(&state), authority(upstream).to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (st, up) = (Arc::clone(&st), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &st);
                });
            }
        });
        Proxy { endpoint, state }
    }

    pub fn fail(&self, path_part: Option<&str>) {
        self.state.lock().unwrap().fail_path = path_part.map(str::to_string);
    }

    /// Requests seen so far with this method whose path contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(part))
            .count()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

fn read_head(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Ok(None);
        }
        head.push(b[0]);
    }
    Ok(Some(head))
}

fn serve(mut client: TcpStream, upstream: &str, st: &Mutex<ProxyState>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut length = 0usize;
    let mut headers = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") {
            // Not needed by the client under test; refuse loudly rather than mis-forward.
            client.write_all(
                b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        if !lower.starts_with("connection:") {
            headers.push(l.to_string());
        }
    }
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let fail = {
        let mut s = st.lock().unwrap();
        s.log.push(format!("{method} {path}"));
        s.fail_path
            .as_ref()
            .is_some_and(|f| path.contains(f.as_str()))
    };
    if fail {
        let msg = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>";
        write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        )?;
        client.write_all(msg)?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{request_line}\r\n");
    for h in headers {
        req.push_str(&h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(&body)?;
    // The upstream closes after its answer; pass its head with `Connection: close`.
    let Some(rhead) = read_head(&mut up)? else {
        return Ok(());
    };
    let rtext = String::from_utf8_lossy(&rhead).into_owned();
    let mut out = String::new();
    for l in rtext.split("\r\n").filter(|l| !l.is_empty()) {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    client.write_all(out.as_bytes())?;
    std::io::copy(&mut up, &mut client)?;
    Ok(())
}
