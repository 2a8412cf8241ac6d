//! `pipe serve`: one bundle loaded once, scored over HTTP.
//!
//! - `POST /predict`: the audio file as the body (or a `multipart/form-data`
//!   upload's first file); JSON scores back. `?scale=label` for the labels'
//!   scale, `?segment=15` (seconds) or `?segment=whole` as in `pipe predict`.
//! - `GET /health`, `GET /model` (the model card: what it is, its CV metrics).
//!
//! Bad uploads get a 4xx with the reason (413 over the size or length limit,
//! 400 empty or malformed, 415 not audio, 422 too short to encode) and never
//! take the server down: each request runs on one of `threads` workers and a
//! panic in one becomes that request's 500. The encoder is shared by every
//! worker (a GPU encoder takes one clip at a time).

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::output::{self, Scale, Scored};
use super::score::{Scorer, Segmenting, Timings};

/// Limits and threads of the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// e.g. `127.0.0.1:8080`; port 0 picks a free one.
    pub addr: String,
    /// Largest upload accepted (bytes).
    pub max_bytes: u64,
    /// Longest recording accepted (seconds of audio).
    pub max_seconds: f64,
    /// Requests served at once.
    pub threads: usize,
}

/// A running server.
pub struct Handle {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Serves until the process ends.
    pub fn join(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }

    /// Stops accepting and waits for the workers (tests).
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        self.join();
    }
}

/// Binds `opts.addr` and starts the workers.
pub fn start(scorer: Scorer, opts: ServeOptions) -> Result<Handle> {
    let server = tiny_http::Server::http(&opts.addr)
        .map_err(|e| anyhow!("cannot listen on {}: {e}", opts.addr))?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("the server is not on an IP address")?;
    let server = Arc::new(server);
    let scorer = Arc::new(scorer);
    let stopping = Arc::new(AtomicBool::new(false));
    let workers = (0..opts.threads.max(1))
        .map(|_| {
            let (server, scorer, opts) = (server.clone(), scorer.clone(), opts.clone());
            let stopping = stopping.clone();
            std::thread::spawn(move || {
                loop {
                    match server.recv() {
                        Ok(request) => serve_one(&scorer, &opts, request),
                        // Unblocked by `stop`: the worker ends.
                        Err(_) if stopping.load(Ordering::SeqCst) => break,
                        // A failed accept is that connection's problem, not the server's.
                        Err(e) => eprintln!("warning: accepting a connection: {e}"),
                    }
                }
            })
        })
        .collect();
    Ok(Handle {
        addr,
        server,
        stopping,
        workers,
    })
}

/// An HTTP status and JSON body.
struct Reply(u16, Value);

fn error(status: u16, why: impl Into<String>) -> Reply {
    Reply(status, json!({ "error": why.into() }))
}

fn serve_one(scorer: &Scorer, opts: &ServeOptions, mut request: tiny_http::Request) {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        route(scorer, opts, &mut request)
    }));
    let Reply(status, body) =
        outcome.unwrap_or_else(|_| error(500, "internal error while scoring"));
    eprintln!(
        "{} {} -> {status} ({:.0} ms)",
        request.method(),
        request.url(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let header =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("a valid header");
    let response = tiny_http::Response::from_string(body.to_string() + "\n")
        .with_status_code(status)
        .with_header(header);
    let _ = request.respond(response);
}

fn route(scorer: &Scorer, opts: &ServeOptions, request: &mut tiny_http::Request) -> Reply {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = request.method().as_str().to_ascii_uppercase();
    match (method.as_str(), path) {
        ("GET", "/health") => Reply(
            200,
            json!({ "status": "ok", "experiment": scorer.card().experiment }),
        ),
        ("GET", "/model") => match serde_json::to_value(scorer.card()) {
            Ok(v) => Reply(200, v),
            Err(e) => error(500, e.to_string()),
        },
        ("POST", "/predict") => predict(scorer, opts, request, query),
        (_, "/health" | "/model" | "/predict") => {
            error(405, format!("{method} is not allowed on {path}"))
        }
        _ => error(
            404,
            format!("no route {path}: POST /predict, GET /health, GET /model"),
        ),
    }
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn predict(
    scorer: &Scorer,
    opts: &ServeOptions,
    request: &mut tiny_http::Request,
    query: &str,
) -> Reply {
    let scale = Scale::of(scorer.card(), query_value(query, "scale") == Some("label"));
    let segmenting = match query_value(query, "segment") {
        None | Some("auto") => Segmenting::Auto,
        Some("whole") => Segmenting::Whole,
        Some(s) => match s.trim_end_matches('s').parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Segmenting::Windows { seconds: v, hop: v },
            _ => return error(400, format!("segment={s}: expected seconds, auto or whole")),
        },
    };
    if let Some(n) = request.body_length()
        && n as u64 > opts.max_bytes
    {
        return error(
            413,
            format!(
                "the upload is {n} bytes, over the limit of {}",
                opts.max_bytes
            ),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = request
        .as_reader()
        .take(opts.max_bytes + 1)
        .read_to_end(&mut body)
    {
        return error(400, format!("reading the upload: {e}"));
    }
    if body.len() as u64 > opts.max_bytes {
        return error(
            413,
            format!("the upload is over the limit of {} bytes", opts.max_bytes),
        );
    }
    let content_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default();
    let (audio, name) = if content_type.starts_with("multipart/form-data") {
        match multipart_file(&body, &content_type) {
            Ok(part) => part,
            Err(e) => return error(400, format!("multipart upload: {e}")),
        }
    } else {
        (body, None)
    };
    if audio.is_empty() {
        return error(400, "the upload is empty: send the audio file as the body");
    }
    let ext = name
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let mut t = Timings::default();
    let pcm = match scorer.audio_bytes(audio, ext.as_deref(), &mut t) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("{e:#}");
            let status = if msg.contains("shorter than") {
                422
            } else {
                415
            };
            return error(status, format!("not usable audio: {msg}"));
        }
    };
    let secs = pcm.duration_seconds();
    if secs > opts.max_seconds {
        return error(
            413,
            format!(
                "the recording is {secs:.1} s long, over the limit of {} s",
                opts.max_seconds
            ),
        );
    }
    let result = scorer.score(&pcm, segmenting, &mut t);
    let failed = result.is_err();
    let scored = [Scored {
        file: name.unwrap_or_else(|| "upload".into()),
        result: result.map_err(|e| format!("{e:#}")),
    }];
    let mut v = output::json(scorer.card(), &scale, &scored);
    let mut file = v["files"][0].take();
    if failed {
        return Reply(422, file);
    }
    file["experiment"] = v["experiment"].take();
    file["scale"] = v["scale"].take();
    file["control"] = v["control"].take();
    file["timings_ms"] = json!({
        "decode": t.decode_s * 1e3,
        "resample": t.resample_s * 1e3,
        "features": t.features_s * 1e3,
        "head": t.head_s * 1e3,
    });
    Reply(200, file)
}

/// The first file part of a `multipart/form-data` body: its bytes and filename.
fn multipart_file(body: &[u8], content_type: &str) -> Result<(Vec<u8>, Option<String>)> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .context("no boundary in its Content-Type")?;
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from.min(hay.len())..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut at = find(body, &delim, 0).context("no part")?;
    loop {
        let start = at + delim.len();
        if body[start..].starts_with(b"--") {
            anyhow::bail!("no file part");
        }
        let head_end = find(body, b"\r\n\r\n", start).context("a part without headers")?;
        let next = find(body, &delim, head_end).context("an unterminated part")?;
        let head = String::from_utf8_lossy(&body[start..head_end]).to_string();
        // The part's data ends before the CRLF that precedes the next delimiter.
        let data_end = next.saturating_sub(2).max(head_end + 4);
        let filename = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .flat_map(|l| l.split(';'))
            .filter_map(|p| p.trim().strip_prefix("filename="))
            .next()
            .map(|f| f.trim_matches('"').to_string());
        if filename.is_some() {
            return Ok((body[head_end + 4..data_end].to_vec(), filename));
        }
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_gives_the_first_file_part() {
        let body = b"--XY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"take 1.wav\"\r\n\
Content-Type: audio/wav\r\n\r\nRIFF\r\n\x00\x01\r\n--XY--\r\n";
        let (data, name) = multipart_file(body, "multipart/form-data; boundary=XY").unwrap();
        assert_eq!(data, b"RIFF\r\n\x00\x01");
        assert_eq!(name.as_deref(), Some("take 1.wav"));
        let e = multipart_file(b"--XY--\r\n", "multipart/form-data; boundary=XY").unwrap_err();
        assert!(e.to_string().contains("no file part"), "{e}");
        assert!(multipart_file(body, "multipart/form-data").is_err());
    }
}
