//! The remote half of the store: an object-store prefix (`s3://`, `gs://`,
//! `az://`, `file://`) through the Arrow project's `object_store` client.
//! Shards of one run on many machines meet here: every artifact they commit
//! is put under `<prefix>/store/<stage>/<key>.<hash>.<ext>`, the same name
//! as in the local store, and a run learns what exists from one LIST per
//! stage prefix.
//!
//! A put is create-if-absent. Two workers that put the same name put the
//! same bytes (the name ends in their blake3), so "already exists" is
//! success. Credentials come from the environment or instance metadata
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), never from `pipeline.toml`. Requests
//! are retried with exponential backoff for up to `retry_seconds`, then the
//! error names the store, the object and the reason.

use anyhow::{Context, Result, anyhow, bail};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Requests and bytes this process sent to the store (for the run summary
/// and the scaling model in docs/scaling.md).
#[derive(Debug, Default)]
pub struct Traffic {
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub puts: AtomicU64,
    /// Artifacts whose put found them there already (computed twice).
    pub existed: AtomicU64,
    pub deletes: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mb = |a: &AtomicU64| n(a) as f64 / 1e6;
        write!(
            f,
            "{} LIST, {} GET ({:.1} MB), {} PUT ({:.1} MB",
            n(&self.lists),
            n(&self.gets),
            mb(&self.bytes_down),
            n(&self.puts),
            mb(&self.bytes_up),
        )?;
        match n(&self.existed) {
            0 => f.write_str(")"),
            e => write!(f, "; {e} already there)"),
        }
    }
}

/// Requests one [`Remote::get_many`] keeps in flight.
pub const FETCH_CONCURRENCY: usize = 32;

pub struct Remote {
    url: String,
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
    /// How long a failing request is retried (`store_retry_seconds`).
    retry: Duration,
    pub traffic: Traffic,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

impl Remote {
    /// Connects to `url` and lists its prefix once, so an unreachable,
    /// unknown or unauthorised store is one clear error before any work.
    pub fn open(url: &str, retry_seconds: f64) -> Result<Remote> {
        let remote = Remote::connect(url, retry_seconds)?;
        remote
            .block(remote.inner.list_with_delimiter(Some(&remote.prefix)))
            .map_err(|e| anyhow!("store {url}: cannot list {}: {}", remote.prefix, reason(&e)))?;
        remote.traffic.lists.fetch_add(1, Ordering::Relaxed);
        Ok(remote)
    }

    fn connect(url: &str, retry_seconds: f64) -> Result<Remote> {
        // object_store's clients are async; a small runtime of our own drives
        // them, and every call blocks on it (the engine's workers are threads).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pipe-store")
            .enable_all()
            .build()
            .context("starting the object-store client's runtime")?;
        install_tls_provider();
        let parsed = url::Url::parse(url).with_context(|| {
            format!("store = \"{url}\": not a URL (expected s3://bucket/prefix, gs://, az://, file:///abs/path)")
        })?;
        let (scheme, path) =
            ObjectStoreScheme::parse(&parsed).map_err(|e| anyhow!("store = \"{url}\": {e}"))?;
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 10,
            retry_timeout: Duration::from_secs_f64(retry_seconds),
        };
        let inner: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()?,
            ),
            ObjectStoreScheme::Local => {
                let dir = parsed.to_file_path().map_err(|()| {
                    anyhow!("store = \"{url}\": a file:// store needs an absolute path")
                })?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("store {url}: creating {}", dir.display()))?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir)?)
            }
            other => bail!(
                "store = \"{url}\": {other:?} is not supported (use s3://, gs://, az:// or file://)"
            ),
        };
        let prefix = match scheme {
            // The local store is rooted at the folder itself.
            ObjectStoreScheme::Local => ObjectPath::default(),
            _ => path,
        };
        Ok(Remote {
            url: url.trim_end_matches('/').to_string(),
            inner,
            prefix,
            runtime,
            retry: Duration::from_secs_f64(retry_seconds),
            traffic: Traffic::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// `<prefix>/<rel>` (`rel` is `/`-separated).
    fn object(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    fn describe(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// The names of the objects directly under `<prefix>/<dir>/` (one LIST;
    /// the client follows its pages).
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let at = self.object(dir);
        let listing = self
            .block(self.inner.list_with_delimiter(Some(&at)))
            .map_err(|e| anyhow!("listing {}/: {}", self.describe(dir), reason(&e)))?;
        self.traffic.lists.fetch_add(1, Ordering::Relaxed);
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
    }

    /// Puts `bytes` at `rel` unless an object is already there; returns
    /// whether this call created it.
    pub fn put_new(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let len = bytes.len() as u64;
        let at = self.object(rel);
        let payload = PutPayload::from(bytes);
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.traffic.puts.fetch_add(1, Ordering::Relaxed);
        let put = self.retrying(|| self.inner.put_opts(&at, payload.clone(), create.clone()));
        match self.block(put) {
            Ok(_) => {}
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => return Ok(false),
            // A store without conditional puts: the name fixes the bytes, so
            // overwriting writes what is there already.
            Err(object_store::Error::NotImplemented { .. }) => {
                self.block(self.inner.put(&at, payload))
                    .map_err(|e| anyhow!("putting {}: {}", self.describe(rel), reason(&e)))?;
            }
            Err(e) => bail!("putting {}: {}", self.describe(rel), reason(&e)),
        }
        self.traffic.bytes_up.fetch_add(len, Ordering::Relaxed);
        Ok(true)
    }

    /// Runs `op` again, with exponential backoff, while it fails with a
    /// transport error and `retry` has not passed since the first try. The
    /// client retries by itself only what it knows is safe (not a request
    /// cut off mid-way); every request here is safe to repeat (a put is
    /// create-if-absent of bytes its name fixes).
    async fn retrying<T, F, Fut>(&self, op: F) -> object_store::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let start = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match op().await {
                Err(object_store::Error::Generic { .. }) if start.elapsed() + wait < self.retry => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// [`Remote::put_new`] of a local file's bytes.
    pub fn put_file(&self, rel: &str, file: &Path) -> Result<bool> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        self.put_new(rel, bytes)
    }

    /// The object at `rel`, or `None` if there is none.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        self.block(self.get_async(rel))
    }

    /// [`Remote::get`] of many objects, [`FETCH_CONCURRENCY`] requests in
    /// flight at once (a finishing run fetches every feature vector of the
    /// dataset), results in the order of `rels`.
    pub fn get_many(&self, rels: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        use futures_util::stream::{self, StreamExt};
        let gets = stream::iter(rels.iter().map(|rel| self.get_async(rel)));
        self.block(gets.buffered(FETCH_CONCURRENCY).collect())
    }

    async fn get_async(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let at = self.object(rel);
        self.traffic.gets.fetch_add(1, Ordering::Relaxed);
        let got = self
            .retrying(|| async {
                match self.inner.get(&at).await {
                    Ok(r) => r.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await;
        let bytes = got.map_err(|e| anyhow!("getting {}: {}", self.describe(rel), reason(&e)))?;
        if let Some(b) = &bytes {
            self.traffic
                .bytes_down
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        Ok(bytes.map(|b| b.to_vec()))
    }

    pub fn delete(&self, rel: &str) -> Result<()> {
        let at = self.object(rel);
        self.traffic.deletes.fetch_add(1, Ordering::Relaxed);
        match self.block(self.inner.delete(&at)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => bail!("deleting {}: {}", self.describe(rel), reason(&e)),
        }
    }
}

/// The client's error without its Debug noise, with its source chain.
fn reason(e: &object_store::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

/// rustls (under reqwest) is built without a default crypto provider (see
/// Cargo.toml): install ring's, once per process.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_store_puts_once_lists_and_gets() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let r = Remote::open(url.as_str(), 5.0).unwrap();
        assert!(r.list("store/decode").unwrap().is_empty());
        assert!(r.put_new("store/decode/a.b.wav", b"one".to_vec()).unwrap());
        // The second put of a name finds it there and changes nothing.
        assert!(!r.put_new("store/decode/a.b.wav", b"two".to_vec()).unwrap());
        assert_eq!(r.list("store/decode").unwrap(), vec!["a.b.wav".to_string()]);
        assert_eq!(r.get("store/decode/a.b.wav").unwrap().unwrap(), b"one");
        assert_eq!(r.get("store/decode/none").unwrap(), None);
        let many = r.get_many(&["store/decode/none".into(), "store/decode/a.b.wav".into()]);
        assert_eq!(many[0].as_ref().unwrap(), &None);
        assert_eq!(many[1].as_ref().unwrap().as_deref(), Some(&b"one"[..]));
        r.delete("store/decode/a.b.wav").unwrap();
        assert!(r.list("store/decode").unwrap().is_empty());
    }

    #[test]
    fn a_bad_url_or_scheme_is_named() {
        let e = Remote::open("not a url", 1.0).unwrap_err().to_string();
        assert!(e.contains("store = \"not a url\": not a URL"), "{e}");
        let e = Remote::open("file://relative/path", 1.0).unwrap_err();
        assert!(format!("{e:#}").contains("file://relative/path"), "{e:#}");
    }
}
