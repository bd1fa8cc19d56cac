//! A small SMTP server that keeps every message it receives: the sink that devhost's and
//! daprd's `bindings.smtp` send to in the tests, and `mail-sink` for `make run`.
//!
//! RFC 5321's minimum: `EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA` (with dot-unstuffing), `RSET`,
//! `NOOP`, `QUIT`, in plain text on 127.0.0.1 (it never offers `STARTTLS`, so a client such as
//! gomail, which upgrades only when offered, sends in the clear). [`SmtpSink::start_with_auth`]
//! also offers `AUTH PLAIN LOGIN` (RFC 4954) and then requires it. It accepts any
//! sender and recipient; a message is kept once its `DATA` ends, with its envelope and raw
//! bytes, and [`Mail::parsed`] gives the headers and the decoded body (gomail sends
//! quoted-printable).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mail_parser::MimeHeaders as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The longest command line (RFC 5321 4.5.3.1.4 says 512; extensions make it longer).
const MAX_LINE: usize = 64 * 1024;
/// The largest message kept; a larger one is refused with 552.
const MAX_MESSAGE: usize = 32 << 20;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: String,
    /// The envelope: `MAIL FROM` and every `RCPT TO` address, without the angle brackets.
    pub from: String,
    pub to: Vec<String>,
    /// The user the session authenticated as (sinks started with auth).
    pub user: Option<String>,
    /// The message as sent after `DATA`, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

/// The headers and body of a [`Mail`], decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub subject: Option<String>,
    /// `From` as `Name <address>` or `address`.
    pub from: Option<String>,
    /// The addresses of `To`.
    pub to: Vec<String>,
    /// `type/subtype`, and its `charset` if any.
    pub content_type: Option<String>,
    pub charset: Option<String>,
    /// The body, transfer encoding removed: the HTML of an HTML message, else its text, with
    /// the line ends at its end removed (SMTP ends the data with one, clients add their own:
    /// gomail none, lettre one more). Line ends inside are as sent (CRLF, as quoted-printable
    /// writers turn `\n` into).
    pub body: String,
    /// The body as plain text (an HTML body's text, as mail-parser renders it).
    pub text: String,
}

impl Mail {
    pub fn parsed(&self) -> Parsed {
        let Some(message) = mail_parser::MessageParser::default().parse(&self.data) else {
            return Parsed { body: String::from_utf8_lossy(&self.data).into_owned(), ..Parsed::default() };
        };
        let address = |a: &mail_parser::Addr| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (_, address) => address.unwrap_or_default().to_owned(),
        };
        let content_type = message.content_type();
        let is_html = content_type.is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html")));
        let body = if is_html { message.body_html(0) } else { message.body_text(0) };
        Parsed {
            subject: message.subject().map(str::to_owned),
            from: message.from().and_then(|f| f.first()).map(address),
            to: message
                .to()
                .map(|to| to.iter().filter_map(|a| a.address().map(str::to_owned)).collect())
                .unwrap_or_default(),
            content_type: content_type.map(|c| match c.subtype() {
                Some(sub) => format!("{}/{sub}", c.ctype()),
                None => c.ctype().to_owned(),
            }),
            charset: content_type.and_then(|c| c.attribute("charset")).map(str::to_owned),
            body: body.map(|b| b.trim_end_matches(['\r', '\n']).to_owned()).unwrap_or_default(),
            text: message.body_text(0).map(|b| b.trim_end_matches(['\r', '\n']).to_owned()).unwrap_or_default(),
        }
    }

    /// A raw header's value (unfolded, undecoded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = mail_parser::MessageParser::default().parse(&self.data)?;
        message.header_raw(name.to_owned()).map(|v| v.trim().to_owned())
    }
}

#[derive(Debug, Default)]
struct Inbox {
    mails: Mutex<Vec<Mail>>,
    arrived: Notify,
    /// (user, password) required when set.
    auth: Option<(String, String)>,
}

/// A running sink; stops when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    server: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// On 127.0.0.1, a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::serve(addr, None).await
    }

    /// On 127.0.0.1, a free port, offering `AUTH PLAIN LOGIN` and accepting mail only after
    /// authenticating as `user` with `password`.
    pub async fn start_with_auth(user: &str, password: &str) -> anyhow::Result<Self> {
        Self::serve(SocketAddr::from(([127, 0, 0, 1], 0)), Some((user.to_owned(), password.to_owned()))).await
    }

    async fn serve(addr: SocketAddr, auth: Option<(String, String)>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the SMTP sink to {addr}"))?;
        let addr = listener.local_addr()?;
        let inbox = Arc::new(Inbox { auth, ..Inbox::default() });
        let accepting = inbox.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let inbox = accepting.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-session leaves nothing behind.
                    let _ = session(stream, &inbox).await;
                });
            }
        });
        Ok(Self { addr, inbox, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        self.inbox.mails.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Message number `index` (0-based, in order of arrival), waiting for it as long as it takes.
    pub async fn nth(&self, index: usize) -> Mail {
        loop {
            let arrived = self.inbox.arrived.notified();
            if let Some(mail) = self.mails().into_iter().nth(index) {
                return mail;
            }
            arrived.await;
        }
    }

    /// The first message (received or arriving within `timeout`) that `matches`; the error
    /// lists what was received.
    pub async fn wait_for(&self, timeout: Duration, matches: impl Fn(&Mail) -> bool) -> anyhow::Result<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.inbox.arrived.notified();
            if let Some(mail) = self.mails().into_iter().find(|m| matches(m)) {
                return Ok(mail);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, arrived).await.is_err() {
                let received: Vec<String> = self
                    .mails()
                    .iter()
                    .map(|m| format!("  to {:?}, subject {:?}", m.to, m.parsed().subject.unwrap_or_default()))
                    .collect();
                anyhow::bail!(
                    "no matching mail within {timeout:?} at {}; received {}:\n{}",
                    self.addr,
                    received.len(),
                    received.join("\n")
                );
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One SMTP session (RFC 5321 4.1, 4.3.2 for the replies).
async fn session(stream: TcpStream, inbox: &Inbox) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 127.0.0.1 ESMTP mail-sink\r\n").await?;
    let mut helo: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut user: Option<String> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut read, &mut line, MAX_LINE).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = text.split_once(' ').unwrap_or((text, ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = Some(argument.trim().to_owned());
                (from, to) = (None, Vec::new());
                {
                    let auth = if inbox.auth.is_some() { "250-AUTH PLAIN LOGIN\r\n" } else { "" };
                    format!(
                        "250-127.0.0.1 hello {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n{auth}250 SIZE {MAX_MESSAGE}\r\n",
                        argument.trim()
                    )
                }
            }
            "HELO" => {
                helo = Some(argument.trim().to_owned());
                (from, to) = (None, Vec::new());
                "250 127.0.0.1\r\n".to_owned()
            }
            "MAIL" if helo.is_none() => "503 5.5.1 EHLO/HELO first\r\n".to_owned(),
            "MAIL" if from.is_some() => "503 5.5.1 nested MAIL command\r\n".to_owned(),
            "MAIL" if inbox.auth.is_some() && user.is_none() => "530 5.7.0 Authentication required\r\n".to_owned(),
            "AUTH" if inbox.auth.is_none() => "502 5.5.1 command not implemented\r\n".to_owned(),
            "AUTH" if helo.is_none() => "503 5.5.1 EHLO first\r\n".to_owned(),
            "AUTH" if user.is_some() => "503 5.5.1 already authenticated\r\n".to_owned(),
            "AUTH" => match authenticate(argument, &mut read, &mut write, inbox).await? {
                Some(name) => {
                    user = Some(name);
                    "235 2.7.0 Authentication successful\r\n".to_owned()
                }
                None => "535 5.7.8 Authentication credentials invalid\r\n".to_owned(),
            },
            "MAIL" => match path_of(argument, "FROM:") {
                Some(address) => {
                    from = Some(address);
                    "250 2.1.0 OK\r\n".to_owned()
                }
                None => "501 5.5.4 syntax: MAIL FROM:<address>\r\n".to_owned(),
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first\r\n".to_owned(),
            "RCPT" => match path_of(argument, "TO:").filter(|a| !a.is_empty()) {
                Some(address) => {
                    to.push(address);
                    "250 2.1.5 OK\r\n".to_owned()
                }
                None => "501 5.5.4 syntax: RCPT TO:<address>\r\n".to_owned(),
            },
            "DATA" if to.is_empty() => "503 5.5.1 RCPT first\r\n".to_owned(),
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let data = read_data(&mut read).await?;
                let (sender, recipients) = (from.take().unwrap_or_default(), std::mem::take(&mut to));
                match data {
                    Some(data) => {
                        let mail = Mail {
                            helo: helo.clone().unwrap_or_default(),
                            from: sender,
                            to: recipients,
                            user: user.clone(),
                            data,
                        };
                        inbox.mails.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(mail);
                        inbox.arrived.notify_waiters();
                        "250 2.0.0 OK queued\r\n".to_owned()
                    }
                    None => "552 5.3.4 message too big\r\n".to_owned(),
                }
            }
            "RSET" => {
                (from, to) = (None, Vec::new());
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            "VRFY" | "EXPN" | "HELP" | "STARTTLS" | "TURN" | "BDAT" => {
                "502 5.5.1 command not implemented\r\n".to_owned()
            }
            _ => "500 5.5.2 command not recognized\r\n".to_owned(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// `AUTH PLAIN [initial response]` or `AUTH LOGIN [user]` (RFC 4954, RFC 4616, the LOGIN
/// draft), challenges read from the client; the user when the credentials are right.
async fn authenticate<R, W>(
    argument: &str,
    read: &mut R,
    write: &mut W,
    inbox: &Inbox,
) -> std::io::Result<Option<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use base64::Engine as _;
    let Some((user, password)) = &inbox.auth else { return Ok(None) };
    let decode = |text: &str| -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
        String::from_utf8(bytes).ok()
    };
    let mut challenge = async |prompt: &str| -> std::io::Result<Option<String>> {
        write.write_all(format!("334 {prompt}\r\n").as_bytes()).await?;
        let mut line = Vec::new();
        read_line(read, &mut line, MAX_LINE).await?;
        let text = String::from_utf8_lossy(&line).trim().to_owned();
        Ok(if text == "*" { None } else { decode(&text) })
    };
    let (mechanism, initial) = argument.trim().split_once(' ').unwrap_or((argument.trim(), ""));
    let given = match mechanism.to_ascii_uppercase().as_str() {
        "PLAIN" => {
            let response = if initial.is_empty() { challenge("").await? } else { decode(initial) };
            // authzid NUL authcid NUL passwd
            response.and_then(|r| {
                let mut parts = r.split('\0');
                let (_, name, pass) = (parts.next()?, parts.next()?, parts.next()?);
                Some((name.to_owned(), pass.to_owned()))
            })
        }
        "LOGIN" => {
            let name = if initial.is_empty() { challenge("VXNlcm5hbWU6").await? } else { decode(initial) };
            match name {
                Some(name) => challenge("UGFzc3dvcmQ6").await?.map(|pass| (name, pass)),
                None => None,
            }
        }
        _ => None,
    };
    Ok(given.filter(|(name, pass)| name == user && pass == password).map(|(name, _)| name))
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b` (the null path `<>` is empty).
fn path_of(argument: &str, keyword: &str) -> Option<String> {
    let argument = argument.trim_start();
    if argument.len() < keyword.len() || !argument[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

/// A line including its `\n`, at most `max` bytes (the rest of a longer line is dropped).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buffer = read.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buffer.len(), false),
        };
        let room = max.saturating_sub(line.len()).min(take);
        line.extend_from_slice(&buffer[..room]);
        read.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

/// The message after `DATA`, up to the `.` line (RFC 5321 4.5.2: a leading `.` removed);
/// `None` when it exceeded [`MAX_MESSAGE`] (read to its end all the same).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(read, &mut line, MAX_LINE).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(data));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + unstuffed.len() > MAX_MESSAGE {
            too_big = true;
        } else {
            data.extend_from_slice(unstuffed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::header::{ContentTransferEncoding, ContentType};
    use lettre::message::{Mailbox, SinglePart};
    use lettre::transport::smtp::client::Tls;
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

    fn client(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").port(sink.port()).tls(Tls::None).build()
    }

    #[tokio::test]
    async fn keeps_what_a_real_client_sends_decoded() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let body = "<p>Reminder: “Pay rent” is due</p>\n.leading dot\n".to_owned() + &"x".repeat(120);
        let from: Mailbox = "Todo <todo@example.com>".parse()?;
        let message = lettre::Message::builder()
            .from(from)
            .to("ada@example.com".parse()?)
            .bcc("audit@example.com".parse()?)
            .subject("Reminder: Pay rent ✓")
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(body.clone()),
            )?;
        client(&sink).send(message).await?;
        let mail = sink.wait_for(Duration::from_secs(5), |m| m.to.contains(&"ada@example.com".to_owned())).await?;
        assert_eq!(mail.from, "todo@example.com");
        assert_eq!(mail.to, vec!["ada@example.com", "audit@example.com"]);
        let parsed = mail.parsed();
        assert_eq!(parsed.subject.as_deref(), Some("Reminder: Pay rent ✓"));
        assert_eq!(parsed.from.as_deref(), Some("Todo <todo@example.com>"));
        assert_eq!(parsed.to, vec!["ada@example.com"]);
        assert_eq!(parsed.content_type.as_deref(), Some("text/html"));
        assert_eq!(parsed.charset.as_deref().map(str::to_ascii_lowercase).as_deref(), Some("utf-8"));
        assert_eq!(parsed.body, body.replace('\n', "\r\n"));
        assert!(mail.header("bcc").is_none(), "Bcc is not part of the message");
        Ok(())
    }

    #[tokio::test]
    async fn waits_for_a_later_mail_and_says_what_came_instead() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let send = |to: &'static str| {
            let transport = client(&sink);
            async move {
                let message = lettre::Message::builder()
                    .from("a@example.com".parse()?)
                    .to(to.parse()?)
                    .subject(format!("for {to}"))
                    .body("hi".to_owned())?;
                transport.send(message).await?;
                anyhow::Ok(())
            }
        };
        send("one@example.com").await?;
        let waiting = sink.wait_for(Duration::from_secs(5), |m| m.to == ["two@example.com"]);
        let (found, sent) = tokio::join!(waiting, async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            send("two@example.com").await
        });
        sent?;
        assert_eq!(found?.parsed().subject.as_deref(), Some("for two@example.com"));
        let missing = sink.wait_for(Duration::from_millis(200), |m| m.to == ["three@example.com"]).await;
        let error = format!("{:#}", missing.err().context("no mail for three")?);
        assert!(error.contains("received 2") && error.contains("for one@example.com"), "{error}");
        Ok(())
    }

    #[tokio::test]
    async fn speaks_the_protocol_by_hand() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let stream = TcpStream::connect(sink.addr()).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut reply = String::new();
        let mut expect = async |send: &str, code: &str| -> anyhow::Result<()> {
            if !send.is_empty() {
                write.write_all(send.as_bytes()).await?;
            }
            loop {
                reply.clear();
                read.read_line(&mut reply).await?;
                anyhow::ensure!(reply.starts_with(code), "{send:?}: expected {code}, got {reply:?}");
                if reply.as_bytes().get(3) != Some(&b'-') {
                    return Ok(());
                }
            }
        };
        expect("", "220").await?;
        expect("MAIL FROM:<a@x>\r\n", "503").await?;
        expect("HELO client\r\n", "250").await?;
        expect("RCPT TO:<b@x>\r\n", "503").await?;
        expect("MAIL FROM:<a@x> BODY=8BITMIME\r\n", "250").await?;
        expect("RSET\r\n", "250").await?;
        expect("DATA\r\n", "503").await?;
        expect("mail from:<a@x>\r\n", "250").await?;
        expect("RCPT TO:<b@x>\r\n", "250").await?;
        expect("NOOP\r\n", "250").await?;
        expect("DATA\r\n", "354").await?;
        expect("Subject: s\r\n\r\n..dot\r\nline\r\n.\r\n", "250").await?;
        expect("STARTTLS\r\n", "502").await?;
        expect("QUIT\r\n", "221").await?;
        let mail = sink.wait_for(Duration::from_secs(1), |_| true).await?;
        assert_eq!(
            (mail.helo.as_str(), mail.from.as_str(), mail.to.clone()),
            ("client", "a@x", vec!["b@x".to_owned()])
        );
        assert_eq!(mail.data, b"Subject: s\r\n\r\n.dot\r\nline\r\n");
        Ok(())
    }

    #[tokio::test]
    async fn requires_auth_when_started_with_it() -> anyhow::Result<()> {
        use lettre::transport::smtp::authentication::{Credentials, Mechanism};
        let sink = SmtpSink::start_with_auth("todo", "s3cret").await?;
        let message = || {
            lettre::Message::builder()
                .from("a@example.com".parse::<Mailbox>()?)
                .to("b@example.com".parse::<Mailbox>()?)
                .subject("authenticated")
                .body("hi".to_owned())
                .map_err(anyhow::Error::from)
        };
        let send = |password: &str, mechanism: Mechanism| {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(sink.port())
                .tls(Tls::None)
                .credentials(Credentials::new("todo".to_owned(), password.to_owned()))
                .authentication(vec![mechanism])
                .build()
        };
        assert!(send("wrong", Mechanism::Plain).send(message()?).await.is_err());
        assert!(client(&sink).send(message()?).await.is_err(), "no mail without auth");
        send("s3cret", Mechanism::Plain).send(message()?).await?;
        send("s3cret", Mechanism::Login).send(message()?).await?;
        let users: Vec<Option<String>> = sink.mails().into_iter().map(|m| m.user).collect();
        assert_eq!(users, [Some("todo".to_owned()), Some("todo".to_owned())]);
        Ok(())
    }

    /// devhost's `bindings.smtp` through the sink: what the notifier sends, a second app outside
    /// the component's scopes, and an unsupported operation.
    #[tokio::test]
    async fn devhost_sends_through_its_smtp_binding() -> anyhow::Result<()> {
        let sink = SmtpSink::start().await?;
        let resources = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: mail}}\nspec:\n  type: bindings.smtp\n  \
             version: v1\n  metadata:\n    - {{name: host, value: 127.0.0.1}}\n    - {{name: port, value: \"{}\"}}\n    \
             - {{name: emailFrom, value: \"Todo <todo@example.com>\"}}\n    - {{name: skipTLSVerify, value: \"true\"}}\n\
             scopes: [notifier]\n",
            sink.port()
        );
        let starting = devhost::Devhost::builder()
            .resources_yaml(resources)
            .app(devhost::AppSpec::new("notifier", 1))
            .app(devhost::AppSpec::new("other", 2))
            .start_sidecars()
            .await?;
        let url = |app: &str| -> anyhow::Result<String> {
            Ok(format!("http://{}/v1.0/bindings/mail", starting.sidecar_addr(app).context("sidecar")?))
        };
        let http = reqwest::Client::new();
        let request = serde_json::json!({
            "operation": "create",
            "data": "<p>“Pay rent” is due & <b>late</b></p>",
            "metadata": {"emailTo": "ada@example.com", "subject": "Reminder: Pay rent"}
        });
        let answer = http.post(url("notifier")?).body(request.to_string()).send().await?;
        assert_eq!(answer.status().as_u16(), 204);
        let mail = sink.wait_for(Duration::from_secs(5), |_| true).await?;
        assert_eq!((mail.helo.as_str(), mail.from.as_str()), ("localhost", "todo@example.com"));
        assert_eq!(mail.to, ["ada@example.com"]);
        let parsed = mail.parsed();
        assert_eq!(parsed.subject.as_deref(), Some("Reminder: Pay rent"));
        assert_eq!(parsed.from.as_deref(), Some("Todo <todo@example.com>"));
        assert_eq!(parsed.content_type.as_deref(), Some("text/html"));
        assert_eq!(parsed.body, "<p>“Pay rent” is due & <b>late</b></p>");
        assert_eq!(mail.header("X-priority").as_deref(), Some("3"));

        let answer = http.post(url("other")?).body(request.to_string()).send().await?;
        assert_eq!(answer.status().as_u16(), 500);
        let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await?)?;
        assert_eq!(body["errorCode"], "ERR_INVOKE_OUTPUT_BINDING");
        assert_eq!(body["message"], "error invoking output binding mail: couldn't find output binding mail");
        let get = serde_json::json!({"operation": "get"});
        let answer = http.post(url("notifier")?).body(get.to_string()).send().await?;
        let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await?)?;
        assert_eq!(
            body["message"],
            "error invoking output binding mail: binding mail does not support operation get. supported operations:create"
        );
        assert_eq!(sink.mails().len(), 1);
        Ok(())
    }
}
