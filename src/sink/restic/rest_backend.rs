//! restic's REST protocol v2 over chanvault's own HTTP client: what
//! rustic_core reads and writes (config, keys, packs, index, snapshots) for
//! `rest:` and `rclone:` repositories.
//!
//! rustic_backend's `RestBackend` speaks the same protocol but builds its own
//! reqwest client, which follows `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` from
//! the environment and cannot be told not to: a proxy named there would see
//! the repository and, over `http://`, the basic-auth header. This one sends
//! everything through the client of [`Http`] (no proxy, `cacert`,
//! `http_credentials_file`, `timeout_seconds`), like the probe and the lock
//! files. The requests are rustic_backend 0.7's, one for one:
//!
//! ```text
//! create         POST   ?create=true
//! list           GET    <type>/        Accept: application/vnd.x.restic.rest.v2
//! list config    HEAD   config
//! read           GET    <type>/<id>    (config: GET config)
//! read a part    GET    <type>/<id>    Range: bytes=<offset>-<offset+length-1>
//! write          POST   <type>/<id>
//! remove         DELETE <type>/<id>
//! ```
//!
//! A request that fails without an answer or with a 5xx is retried
//! [`RETRIES`] time(s) after [`FIRST_RETRY_DELAY`] (doubling), as chanvault
//! set rustic's backend up (`retry=1`, backon's exponential defaults); a 4xx
//! is final. Errors carry the `reqwest::Error` (without its URL) as their
//! source, so that the target's error names the failure's class.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::blocking::{Body, RequestBuilder, Response};
use reqwest::{Method, StatusCode, Url};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use serde::Deserialize;

use super::rest::{BasicAuth, REST_V2};

/// Retries of a request that failed without an answer or with a 5xx.
const RETRIES: u32 = 1;
/// The wait before the first retry; each further one waits twice as long.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One entry of a v2 listing.
#[derive(Deserialize)]
struct ListEntry {
    name: String,
    size: u32,
}

/// A restic REST repository reached through chanvault's client.
pub(super) struct RestBackend {
    client: reqwest::blocking::Client,
    /// Base URL with a trailing slash and without credentials.
    base: Url,
    auth: Option<Arc<BasicAuth>>,
    /// The repository as configured (`rest:…` or `rclone:…`), safe to print.
    location: String,
}

impl RestBackend {
    pub(super) fn new(
        client: reqwest::blocking::Client,
        base: Url,
        auth: Option<Arc<BasicAuth>>,
        location: String,
    ) -> Self {
        Self {
            client,
            base,
            auth,
            location,
        }
    }

    /// `config` or `<type>/<id>`, relative to the base URL.
    fn path(tpe: FileType, id: &Id) -> String {
        if tpe == FileType::Config {
            "config".to_string()
        } else {
            format!("{}/{}", tpe.dirname(), id.to_hex().as_str())
        }
    }

    fn url(&self, path: &str) -> RusticResult<Url> {
        self.base.join(path).map_err(|e| {
            RusticError::with_source(
                ErrorKind::Internal,
                "cannot join `{path}` to the REST URL",
                e,
            )
            .attach_context("path", path.to_string())
        })
    }

    fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        let rb = self.client.request(method, url.clone());
        match &self.auth {
            Some(a) => rb.basic_auth(&a.user, Some(a.pass.expose())),
            None => rb,
        }
    }

    /// Send `build()`'s request, retrying as the module says; an answer
    /// outside 2xx is an error (with `ok_404`, a 404 is returned as is).
    fn send(
        &self,
        what: &str,
        path: &str,
        ok_404: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> RusticResult<Response> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut retries_left = RETRIES;
        loop {
            let sent = build().send().and_then(|r| {
                if ok_404 && r.status() == StatusCode::NOT_FOUND {
                    Ok(r)
                } else {
                    r.error_for_status()
                }
            });
            let e = match sent {
                Ok(r) => return Ok(r),
                Err(e) => e.without_url(),
            };
            let transient = e.status().is_none_or(|s| !s.is_client_error());
            if !transient || retries_left == 0 {
                return Err(http_error(what, path, e));
            }
            tracing::warn!(repository = %self.location, path, error = %crate::text::error_chain(&e), retry_in = ?delay, "REST request failed; retrying");
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
            retries_left -= 1;
        }
    }

    /// The body of an answer (reading it can fail too: cut connection, timeout).
    fn body(what: &str, path: &str, r: Response) -> RusticResult<Bytes> {
        r.bytes()
            .map_err(|e| http_error(what, path, e.without_url()))
    }
}

/// `{what} {path} failed: <reqwest's error>`, with the error as the source.
fn http_error(what: &str, path: &str, e: reqwest::Error) -> Box<RusticError> {
    let guidance = match e.status() {
        Some(s) => format!("{what} `{path}`: the REST server answered HTTP {s}"),
        None => format!("{what} `{path}` on the REST server failed"),
    };
    RusticError::with_source(ErrorKind::Backend, guidance, e)
}

impl ReadBackend for RestBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let url = self.url("config")?;
            let r = self.send("checking", "config", true, || {
                self.request(Method::HEAD, &url)
            })?;
            return Ok(if r.status() == StatusCode::NOT_FOUND {
                Vec::new()
            } else {
                vec![(Id::default(), 0)]
            });
        }
        let path = format!("{}/", tpe.dirname());
        let url = self.url(&path)?;
        let r = self.send("listing", &path, false, || {
            self.request(Method::GET, &url)
                .header(reqwest::header::ACCEPT, REST_V2)
        })?;
        let body = Self::body("listing", &path, r)?;
        // `null` is an empty listing to some servers.
        let list: Option<Vec<ListEntry>> = serde_json::from_slice(&body).map_err(|e| {
            RusticError::with_source(
                ErrorKind::Backend,
                "the REST server's listing of `{path}` is not restic's v2 JSON",
                e,
            )
            .attach_context("path", path.clone())
        })?;
        Ok(list
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((Id::parse_some(&e.name, tpe)?, e.size)))
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = Self::path(tpe, id);
        let url = self.url(&path)?;
        let r = self.send("reading", &path, false, || self.request(Method::GET, &url))?;
        Self::body("reading", &path, r)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = Self::path(tpe, id);
        let url = self.url(&path)?;
        let last = u64::from(offset) + u64::from(length).max(1) - 1;
        let range = format!("bytes={offset}-{last}");
        let r = self.send("reading", &path, false, || {
            self.request(Method::GET, &url)
                .header(reqwest::header::RANGE, range.as_str())
        })?;
        let whole = r.status() == StatusCode::OK;
        let body = Self::body("reading", &path, r)?;
        if !whole {
            return Ok(body);
        }
        // A server that ignores Range sends the whole file: cut our part out.
        let (start, end) = (offset as usize, offset as usize + length as usize);
        if end > body.len() {
            return Err(RusticError::new(
                ErrorKind::Backend,
                "`{path}` on the REST server is shorter than the part asked for",
            )
            .attach_context("path", path));
        }
        Ok(body.slice(start..end))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.url(&Self::path(tpe, id))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }
}

impl WriteBackend for RestBackend {
    fn create(&self) -> RusticResult<()> {
        let url = self.url("?create=true")?;
        self.send("creating the repository", "?create=true", false, || {
            self.request(Method::POST, &url)
        })?;
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = Self::path(tpe, id);
        let url = self.url(&path)?;
        // With a Content-Length, and again on a retry; a pack of several
        // blobs is read through in place rather than joined into one more
        // buffer of its size (megabytes at thousands of channels).
        let size = content.size() as u64;
        self.send("writing", &path, false, || {
            let body = match content.slice() {
                [one] => Body::from(one.clone()),
                _ => Body::sized(content.clone().reader(), size),
            };
            self.request(Method::POST, &url).body(body)
        })?;
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = Self::path(tpe, id);
        let url = self.url(&path)?;
        self.send("removing", &path, false, || {
            self.request(Method::DELETE, &url)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;
    use crate::secret::SecretString;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A REST server that answers each connection with the next canned
    /// answer (then closes it) and hands over each request's head and body.
    fn serve(answers: Vec<&'static str>) -> (RestBackend, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = Url::parse(&format!("http://{}/repo/", l.local_addr().unwrap())).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let (mut head, mut len) = (String::new(), 0);
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                tx.send(format!("{head}\n{}", String::from_utf8_lossy(&body)))
                    .unwrap();
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        crate::lnd::install_crypto_provider();
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap();
        let auth = Arc::new(BasicAuth {
            user: "u".into(),
            pass: SecretString::new("p".into()),
        });
        let be = RestBackend::new(client, base, Some(auth), "rest:test".into());
        (be, rx)
    }

    #[test]
    fn lists_with_restics_v2_media_type_and_credentials() {
        let (be, rx) = serve(vec![concat!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 108\r\n\r\n",
            r#"[{"name":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":7},"#,
            r#"{"name":"x","size":1}]"#
        )]);
        let list = be.list_with_size(FileType::Snapshot).unwrap();
        assert_eq!(list, vec![(ID.parse().unwrap(), 7)]);
        let req = rx.recv().unwrap().to_lowercase();
        assert!(req.starts_with("get /repo/snapshots/ http/1.1"), "{req}");
        assert!(
            req.contains("accept: application/vnd.x.restic.rest.v2"),
            "{req}"
        );
        assert!(req.contains("authorization: basic dtpw"), "{req}");
    }

    #[test]
    fn reads_a_part_with_range_and_cuts_it_from_a_whole_answer() {
        let (be, rx) = serve(vec![
            "HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Length: 3\r\n\r\ncde",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 7\r\n\r\nabcdefg",
        ]);
        let id: Id = ID.parse().unwrap();
        for _ in 0..2 {
            let part = be.read_partial(FileType::Pack, &id, false, 2, 3).unwrap();
            assert_eq!(&part[..], b"cde");
            let req = rx.recv().unwrap().to_lowercase();
            assert!(req.starts_with(&format!("get /repo/data/{ID} ")), "{req}");
            assert!(req.contains("range: bytes=2-4"), "{req}");
        }
    }

    #[test]
    fn writes_with_post_retries_a_5xx_but_not_a_4xx() {
        let (be, rx) = serve(vec![
            "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ]);
        let id: Id = ID.parse().unwrap();
        let mut content = BytesList::default();
        content.add(Bytes::from_static(b"ab"));
        content.add(Bytes::from_static(b"cd"));
        be.write_bytes(FileType::Index, &id, false, content)
            .unwrap();
        for _ in 0..2 {
            let req = rx.recv().unwrap();
            assert!(req.starts_with(&format!("POST /repo/index/{ID} ")), "{req}");
            assert!(req.ends_with("\nabcd"), "{req}");
            // Read through in place, still with its length (rest-server wants it).
            assert!(
                req.to_lowercase().contains("content-length: 4\r\n"),
                "{req}"
            );
        }
        let e = be.remove(FileType::Key, &id, false).unwrap_err();
        assert!(
            e.display_log().contains("HTTP 403 Forbidden"),
            "{}",
            e.display_log()
        );
        assert!(
            rx.recv()
                .unwrap()
                .starts_with(&format!("DELETE /repo/keys/{ID} "))
        );
        assert!(be.list(FileType::Config).unwrap().is_empty());
        assert!(rx.recv().unwrap().starts_with("HEAD /repo/config "));
    }
}
