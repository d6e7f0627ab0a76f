//! A small SMTP server for tests, on 127.0.0.1: EHLO (advertising STARTTLS and AUTH as told),
//! STARTTLS and implicit TLS with a self-signed certificate (made by rcgen, written to a PEM file
//! a channel can name in `ca_file`), AUTH PLAIN and LOGIN checked against one login, MAIL, RCPT
//! and DATA capturing the message, and configurable failures (a greeting other than 220, a
//! refused recipient, a refused message, a server that never answers). Every session is recorded
//! as it goes, so a test can look at it as soon as the client returns.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `localhost` and `127.0.0.1`, the acceptor serving it and the
/// PEM file holding it (removed when dropped).
pub struct TestCert {
    pub acceptor: TlsAcceptor,
    pub pem_file: tempfile::NamedTempFile,
}

impl TestCert {
    pub fn new() -> TestCert {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).expect("self-signed cert");
        let der: CertificateDer<'static> = certified.cert.der().clone();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("server cert");
        let pem_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(pem_file.path(), certified.cert.pem()).expect("write PEM");
        TestCert { acceptor: TlsAcceptor::from(Arc::new(config)), pem_file }
    }

    /// The PEM file's path, for `ca_file`.
    pub fn ca_file(&self) -> String {
        self.pem_file.path().display().to_string()
    }
}

/// How the server behaves.
#[derive(Clone)]
pub struct Behaviour {
    /// TLS from the first byte (SMTPS) instead of plain text.
    pub implicit_tls: bool,
    /// The certificate for STARTTLS or implicit TLS; without it neither is possible.
    pub tls: Option<TlsAcceptor>,
    /// Whether EHLO advertises STARTTLS (when `tls` is set and the session is not encrypted).
    pub offer_starttls: bool,
    /// The login AUTH accepts; `None`: AUTH is not advertised and MAIL needs none.
    pub login: Option<(String, String)>,
    /// The mechanisms EHLO advertises after AUTH.
    pub auth_mechanisms: &'static str,
    /// The greeting's code and text; a code other than 220 closes the connection after it.
    pub greeting: (u16, &'static str),
    /// Accept the connection but never say anything.
    pub silent: bool,
    /// Recipients refused at RCPT, with the reply's code and text.
    pub refuse_recipients: Vec<(String, u16, &'static str)>,
    /// The reply after the message's final `.` (default `250`).
    pub data_reply: (u16, &'static str),
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            implicit_tls: false,
            tls: None,
            offer_starttls: true,
            login: None,
            auth_mechanisms: "PLAIN LOGIN",
            greeting: (220, "sink.test ESMTP ready"),
            silent: false,
            refuse_recipients: Vec::new(),
            data_reply: (250, "2.0.0 queued as 1"),
        }
    }
}

/// One AUTH exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAttempt {
    pub mechanism: String,
    pub username: String,
    pub accepted: bool,
    /// Whether the session was encrypted when the credentials came.
    pub encrypted: bool,
}

/// What one connection did.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub implicit_tls: bool,
    /// Whether the session was upgraded with STARTTLS.
    pub starttls: bool,
    /// Whether the session was encrypted when MAIL came (`None`: no MAIL).
    pub encrypted_at_mail: Option<bool>,
    pub auth: Vec<AuthAttempt>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    /// The message as received after DATA (dot-unstuffed, without the final `.`).
    pub data: Option<Vec<u8>>,
    /// Each command's verb, in order (`EHLO`, `STARTTLS`, …).
    pub verbs: Vec<String>,
}

/// A running server; it stops when dropped.
pub struct SmtpSink {
    pub port: u16,
    sessions: Arc<Mutex<Vec<Arc<Mutex<Session>>>>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start(behaviour: Behaviour) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let sessions: Arc<Mutex<Vec<Arc<Mutex<Session>>>>> = Arc::default();
        let recorded = sessions.clone();
        let behaviour = Arc::new(behaviour);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = Arc::new(Mutex::new(Session::default()));
                recorded.lock().expect("lock").push(session.clone());
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &behaviour, &session).await;
                });
            }
        });
        SmtpSink { port, sessions, task }
    }

    /// Every session so far, in the order connections came.
    pub fn sessions(&self) -> Vec<Session> {
        let sessions = self.sessions.lock().expect("lock");
        sessions.iter().map(|s| s.lock().expect("lock").clone()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Next {
    StartTls,
    Close,
}

async fn serve(stream: TcpStream, b: &Behaviour, session: &Mutex<Session>) -> io::Result<()> {
    let mut io: Box<dyn Io> = Box::new(stream);
    let mut encrypted = false;
    if b.implicit_tls {
        let acceptor = b.tls.clone().expect("implicit TLS needs a certificate");
        io = Box::new(acceptor.accept(io).await?);
        encrypted = true;
        session.lock().expect("lock").implicit_tls = true;
    }
    if b.silent {
        // Hold the connection open, saying nothing, until the client gives up.
        let mut buffer = [0u8; 64];
        while io.read(&mut buffer).await? > 0 {}
        return Ok(());
    }
    let (code, text) = b.greeting;
    io.write_all(format!("{code} {text}\r\n").as_bytes()).await?;
    io.flush().await?;
    if code != 220 {
        return Ok(());
    }
    loop {
        match converse(&mut io, b, encrypted, session).await? {
            Next::StartTls => {
                let acceptor = b.tls.clone().expect("STARTTLS needs a certificate");
                io = Box::new(acceptor.accept(io).await?);
                encrypted = true;
                session.lock().expect("lock").starttls = true;
            }
            Next::Close => return Ok(()),
        }
    }
}

async fn reply(reader: &mut BufReader<&mut Box<dyn Io>>, lines: &[String]) -> io::Result<()> {
    let writer = reader.get_mut();
    for line in lines {
        writer.write_all(line.as_bytes()).await?;
        writer.write_all(b"\r\n").await?;
    }
    writer.flush().await
}

async fn read_line(reader: &mut BufReader<&mut Box<dyn Io>>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned()))
}

fn decode(text: &str) -> String {
    String::from_utf8_lossy(&BASE64.decode(text.trim()).unwrap_or_default()).into_owned()
}

fn address(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument.rfind('>').unwrap_or(argument.len());
    argument.get(start..end).unwrap_or_default().to_owned()
}

async fn converse(
    io: &mut Box<dyn Io>,
    b: &Behaviour,
    encrypted: bool,
    session: &Mutex<Session>,
) -> io::Result<Next> {
    let mut reader = BufReader::new(io);
    let mut authenticated = false;
    loop {
        let Some(line) = read_line(&mut reader).await? else { return Ok(Next::Close) };
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let argument = line.get(verb.len()..).unwrap_or_default().trim().to_owned();
        session.lock().expect("lock").verbs.push(verb.clone());
        let simple = |code: u16, text: &str| vec![format!("{code} {text}")];
        let lines = match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut features = vec!["sink.test greets you".to_owned()];
                if b.offer_starttls && b.tls.is_some() && !encrypted {
                    features.push("STARTTLS".into());
                }
                if b.login.is_some() {
                    features.push(format!("AUTH {}", b.auth_mechanisms));
                }
                let last = features.len() - 1;
                let mut lines = Vec::new();
                for (index, feature) in features.iter().enumerate() {
                    let separator = if index == last { ' ' } else { '-' };
                    lines.push(format!("250{separator}{feature}"));
                }
                lines
            }
            "STARTTLS" if b.offer_starttls && b.tls.is_some() && !encrypted => {
                reply(&mut reader, &simple(220, "2.0.0 go ahead")).await?;
                return Ok(Next::StartTls);
            }
            "AUTH" => {
                let mut words = argument.split_whitespace();
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                let (username, password) = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(response) => response,
                            None => {
                                reply(&mut reader, &simple(334, "")).await?;
                                read_line(&mut reader).await?.unwrap_or_default()
                            }
                        };
                        let decoded = decode(&response);
                        let mut parts = decoded.split('\0').skip(1);
                        let user = parts.next().unwrap_or_default().to_owned();
                        (user, parts.next().unwrap_or_default().to_owned())
                    }
                    "LOGIN" => {
                        let user = match initial {
                            Some(user) => decode(&user),
                            None => {
                                reply(&mut reader, &simple(334, "VXNlcm5hbWU6")).await?;
                                decode(&read_line(&mut reader).await?.unwrap_or_default())
                            }
                        };
                        reply(&mut reader, &simple(334, "UGFzc3dvcmQ6")).await?;
                        (user, decode(&read_line(&mut reader).await?.unwrap_or_default()))
                    }
                    _ => {
                        reply(&mut reader, &simple(504, "5.5.4 unknown mechanism")).await?;
                        continue;
                    }
                };
                let accepted = b.login.as_ref() == Some(&(username.clone(), password));
                authenticated = accepted;
                session.lock().expect("lock").auth.push(AuthAttempt {
                    mechanism,
                    username,
                    accepted,
                    encrypted,
                });
                if accepted {
                    simple(235, "2.7.0 Authentication successful")
                } else {
                    simple(535, "5.7.8 Authentication credentials invalid")
                }
            }
            "MAIL" if b.login.is_some() && !authenticated => {
                simple(530, "5.7.0 Authentication required")
            }
            "MAIL" => {
                let mut s = session.lock().expect("lock");
                s.mail_from = Some(address(&argument));
                s.encrypted_at_mail = Some(encrypted);
                simple(250, "2.1.0 ok")
            }
            "RCPT" => {
                let to = address(&argument);
                match b.refuse_recipients.iter().find(|(refused, ..)| *refused == to) {
                    Some((_, code, text)) => simple(*code, text),
                    None => {
                        session.lock().expect("lock").rcpt_to.push(to);
                        simple(250, "2.1.5 ok")
                    }
                }
            }
            "DATA" => {
                reply(&mut reader, &simple(354, "end with <CRLF>.<CRLF>")).await?;
                let mut data = Vec::new();
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(Next::Close);
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    data.extend_from_slice(unstuffed);
                }
                let (code, text) = b.data_reply;
                if code == 250 {
                    session.lock().expect("lock").data = Some(data);
                }
                simple(code, text)
            }
            "RSET" | "NOOP" => simple(250, "2.0.0 ok"),
            "QUIT" => {
                reply(&mut reader, &simple(221, "2.0.0 bye")).await?;
                return Ok(Next::Close);
            }
            _ => simple(502, "5.5.2 command not recognized"),
        };
        reply(&mut reader, &lines).await?;
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    port
}

/// How long a test waits at most for anything.
pub const PATIENCE: Duration = Duration::from_secs(20);
