//! A real SMTP server on `127.0.0.1:0` that keeps every mail it receives, for tests of the
//! `smtp` provider and for the delivery tests and benchmarks that send through it.
//!
//! It speaks plain SMTP (no TLS): greeting, EHLO/HELO, AUTH PLAIN/LOGIN (any credentials),
//! MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT. It can be switched to
//! refuse mail with a transient (451) or permanent (550) reply, to simulate an outage.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How the sink answers `MAIL FROM` and the end of `DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpMode {
    /// Takes every mail.
    #[default]
    Accept,
    /// `451` to `MAIL FROM`.
    Transient,
    /// `550` to `MAIL FROM`.
    Permanent,
    /// Takes the envelope, then `451` at the end of `DATA` (the mail is not kept).
    TransientAtData,
    /// Takes the envelope, then `550` at the end of `DATA` (the mail is not kept).
    PermanentAtData,
}

/// One mail as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address, without brackets.
    pub from: String,
    /// The `RCPT TO` addresses, without brackets.
    pub to: Vec<String>,
    /// What followed `DATA`, dot-unstuffed, lines joined by CRLF, without the final dot.
    pub data: String,
    /// The `AUTH` line of the session, when it authenticated (the raw base64).
    pub auth: Option<String>,
}

impl ReceivedMail {
    /// The header block, unfolded, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let block = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in block.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        headers
    }

    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Everything after the header block.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("")
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    arrived: Notify,
}

#[derive(Default)]
struct State {
    mode: SmtpMode,
    mails: Vec<ReceivedMail>,
    connections: usize,
}

/// The server; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepting.state.lock().unwrap().connections += 1;
                tokio::spawn(session(stream, accepting.clone()));
            }
        });
        Self { addr, shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_mode(&self, mode: SmtpMode) {
        self.shared.state.lock().unwrap().mode = mode;
    }

    /// Every mail kept so far, in order of arrival.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.shared.state.lock().unwrap().mails.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.state.lock().unwrap().mails.len()
    }

    /// TCP connections accepted so far (to check that a pool reuses them).
    pub fn connections(&self) -> usize {
        self.shared.state.lock().unwrap().connections
    }

    /// Mails whose header `name` is `value`, e.g. `Idempotency-Key`.
    pub fn count_with_header(&self, name: &str, value: &str) -> usize {
        self.shared
            .state
            .lock()
            .unwrap()
            .mails
            .iter()
            .filter(|mail| mail.header(name).as_deref() == Some(value))
            .count()
    }

    /// Waits until at least `n` mails were kept; `Err` with the count after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ReceivedMail>, usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let count = self.count();
            if count >= n {
                return Ok(self.mails());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.count());
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Strips `FROM:` / `TO:`, the brackets and any parameters (`SIZE=…`).
fn path_of(argument: &str) -> String {
    let argument = argument.split_once(':').map_or(argument, |(_, rest)| rest);
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(start), Some(end)) if start < end => argument[start + 1..end].to_owned(),
        _ => argument.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut auth: Option<String> = None;
    macro_rules! reply {
        ($text:expr) => {
            if write.write_all($text.as_bytes()).await.is_err() {
                return;
            }
        };
    }
    macro_rules! read_line {
        () => {{
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => line.trim_end_matches(['\r', '\n']).to_owned(),
            }
        }};
    }
    reply!("220 throughline-smtp-sink ESMTP ready\r\n");
    loop {
        let command = read_line!();
        let (verb, argument) = command
            .split_once(' ')
            .map_or((command.as_str(), ""), |(verb, rest)| (verb, rest));
        let mode = shared.state.lock().unwrap().mode;
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                reply!(
                    "250-throughline-smtp-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 52428800\r\n"
                );
            }
            "HELO" => reply!("250 throughline-smtp-sink\r\n"),
            "AUTH" => {
                let mut parts = argument.split_whitespace();
                let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next().map(str::to_owned);
                match (mechanism.as_str(), initial) {
                    ("PLAIN", Some(initial)) => auth = Some(initial),
                    ("PLAIN", None) => {
                        reply!("334 \r\n");
                        auth = Some(read_line!());
                    }
                    ("LOGIN", _) => {
                        reply!("334 VXNlcm5hbWU6\r\n");
                        let user = read_line!();
                        reply!("334 UGFzc3dvcmQ6\r\n");
                        let password = read_line!();
                        auth = Some(format!("{user} {password}"));
                    }
                    _ => {
                        reply!("504 5.5.4 unrecognized authentication type\r\n");
                        continue;
                    }
                }
                reply!("235 2.7.0 authentication successful\r\n");
            }
            "MAIL" => match mode {
                SmtpMode::Transient => reply!("451 4.3.0 try again later\r\n"),
                SmtpMode::Permanent => reply!("550 5.7.1 refused\r\n"),
                _ => {
                    from = Some(path_of(argument));
                    to.clear();
                    reply!("250 2.1.0 ok\r\n");
                }
            },
            "RCPT" => {
                if from.is_none() {
                    reply!("503 5.5.1 MAIL first\r\n");
                    continue;
                }
                to.push(path_of(argument));
                reply!("250 2.1.5 ok\r\n");
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    reply!("503 5.5.1 MAIL and RCPT first\r\n");
                    continue;
                }
                reply!("354 end data with <CR><LF>.<CR><LF>\r\n");
                let mut data: Vec<String> = Vec::new();
                loop {
                    let text = read_line!();
                    if text == "." {
                        break;
                    }
                    data.push(text.strip_prefix('.').map_or(text.clone(), str::to_owned));
                }
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data: data.join("\r\n"),
                    auth: auth.clone(),
                };
                let mode = shared.state.lock().unwrap().mode;
                match mode {
                    SmtpMode::TransientAtData => {
                        reply!("451 4.3.0 try again later\r\n");
                        continue;
                    }
                    SmtpMode::PermanentAtData => {
                        reply!("550 5.7.1 refused\r\n");
                        continue;
                    }
                    _ => {}
                }
                let number = {
                    let mut state = shared.state.lock().unwrap();
                    state.mails.push(mail);
                    state.mails.len()
                };
                shared.arrived.notify_waiters();
                reply!(format!("250 2.0.0 ok: queued as SINK{number}\r\n"));
            }
            "RSET" => {
                from = None;
                to.clear();
                reply!("250 2.0.0 ok\r\n");
            }
            "NOOP" => reply!("250 2.0.0 ok\r\n"),
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => reply!("502 5.5.2 command not recognized\r\n"),
        }
    }
}
