//! Dubbo URLs as a ZooKeeper registry holds them.
//!
//! A provider is a child of `/dubbo/<interface>/providers` whose name is its URL encoded the way
//! Java's `URLEncoder.encode(url, "UTF-8")` does it (Dubbo's `URL.encode`):
//! `dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.example.DemoService%3Fapplication%3Ddemo%26...`.
//! [`decode`] undoes that, [`DubboUrl::parse`] reads the result as Dubbo's `URL.valueOf` does
//! (`protocol://[user[:password]@]host[:port]/path?key=value&...`, the port after the last `:`,
//! the last of repeated keys winning), and [`DubboUrl::to_full_string`] with [`encode`] writes a
//! provider URL back as Dubbo registers one (parameters sorted by key).
//!
//! Node names are untrusted input: everything here returns errors, never panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Why a registry node name is not a Dubbo URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape at byte {0}")]
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    #[error("not UTF-8 once decoded")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// No `protocol://`.
    #[error("no `protocol://` prefix")]
    NoProtocol,
    /// The protocol has characters a URL scheme cannot have.
    #[error("bad protocol `{0}`")]
    BadProtocol(String),
    /// An IPv6 host opened with `[` and not closed.
    #[error("unclosed `[` in the host")]
    UnclosedBracket,
    /// Something other than `:port` after a bracketed IPv6 host.
    #[error("`{0}` after `]`")]
    AfterBracket(String),
    /// What follows the host's last `:` is not a port number.
    #[error("bad port `{text}`")]
    BadPort {
        /// The text after the `:`.
        text: String,
        /// Why it is not a port.
        #[source]
        source: std::num::ParseIntError,
    },
}

/// A parsed Dubbo URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DubboUrl {
    /// `dubbo`, `tri`, `consumer`, `override`, …
    pub protocol: String,
    /// The host as written (an IPv6 address without its brackets).
    pub host: String,
    /// The port (0 when the URL has none).
    pub port: u16,
    /// The path without its leading `/` (for a provider, the interface name).
    pub path: String,
    /// The query parameters.
    pub params: BTreeMap<String, String>,
}

/// Decodes `text` as `java.net.URLDecoder` does: `%XY` is the byte `0xXY`, `+` is a space.
pub fn decode(text: &str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|c| char::from(*c).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else { return Err(UrlError::BadEscape(i)) };
                // Two hex digits: at most 255.
                out.push(u8::try_from(hi * 16 + lo).map_err(|_| UrlError::BadEscape(i))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(UrlError::NotUtf8)
}

/// Encodes `text` as `java.net.URLEncoder.encode(text, "UTF-8")` does: ASCII letters, digits and
/// `.-*_` stay, a space becomes `+`, every other byte of the UTF-8 becomes `%XY` (upper case).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

impl DubboUrl {
    /// Parses a decoded URL as Dubbo's `URL.valueOf` does.
    pub fn parse(url: &str) -> Result<DubboUrl, UrlError> {
        let (protocol, rest) = url.split_once("://").ok_or(UrlError::NoProtocol)?;
        let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_');
        if protocol.is_empty() || !protocol.chars().all(scheme_char) {
            return Err(UrlError::BadProtocol(protocol.to_string()));
        }
        // A fragment is not part of a Dubbo URL: drop it, as `URL.valueOf` does not read it.
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (address_path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = address_path.split_once('/').unwrap_or((address_path, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_host_port(host_port)?;
        let mut params = BTreeMap::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    params.insert(k.to_string(), v.to_string());
                }
                Some(_) => {}
                // Dubbo reads a bare `key` as `key=key`.
                None => {
                    params.insert(part.to_string(), part.to_string());
                }
            }
        }
        Ok(DubboUrl { protocol: protocol.to_string(), host: host.to_string(), port, path: path.to_string(), params })
    }

    /// The host and port as a socket address, when the host is an IP address and the port is set.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        (self.port != 0).then_some(SocketAddr::new(ip, self.port))
    }

    /// The URL as Dubbo writes it (`URL.toFullString`): parameters sorted by key, an IPv6 host in
    /// brackets.
    pub fn to_full_string(&self) -> String {
        let mut out = format!("{}://", self.protocol);
        if self.host.contains(':') {
            let _ = write!(out, "[{}]", self.host);
        } else {
            out.push_str(&self.host);
        }
        if self.port != 0 {
            let _ = write!(out, ":{}", self.port);
        }
        out.push('/');
        out.push_str(&self.path);
        for (i, (k, v)) in self.params.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            let _ = write!(out, "{k}={v}");
        }
        out
    }

    /// The parameter `key`, if set.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; an unbracketed IPv6 address takes its last group as
/// the port, as Dubbo does.
fn split_host_port(text: &str) -> Result<(&str, u16), UrlError> {
    let port = |p: &str| match p {
        "" => Ok(0),
        p => p.parse::<u16>().map_err(|source| UrlError::BadPort { text: p.to_string(), source }),
    };
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or(UrlError::UnclosedBracket)?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, port(p)?)),
            None if after.is_empty() => Ok((host, 0)),
            None => Err(UrlError::AfterBracket(after.to_string())),
        };
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Ok((host, port(p)?)),
        None => Ok((text, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider URL as Java Dubbo 2.7 registers it (`URL.encode(url.toFullString())`).
    const JAVA: &str = "dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.example.DemoService%3Fanyhost%3Dtrue%26application%3Ddemo-provider%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dcom.example.DemoService%26methods%3DsayHello%2CsayHelloAsync%26pid%3D4242%26release%3D2.7.23%26service_group%3Dbatchjob%26side%3Dprovider%26timestamp%3D1700000000000%26version%3D1.0.0%26weight%3D200";

    #[test]
    fn reads_a_provider_url_as_java_dubbo_writes_it() {
        let url = DubboUrl::parse(&decode(JAVA).unwrap()).unwrap();
        assert_eq!(url.protocol, "dubbo");
        assert_eq!(url.socket_addr(), Some(([10, 0, 0, 5], 20880).into()));
        assert_eq!(url.path, "com.example.DemoService");
        assert_eq!(url.param("methods"), Some("sayHello,sayHelloAsync"));
        assert_eq!(url.param("service_group"), Some("batchjob"));
        assert_eq!(url.param("weight"), Some("200"));
        assert_eq!(url.params.len(), 15);
        // Written back, it is the same node name.
        assert_eq!(encode(&url.to_full_string()), JAVA);
    }

    #[test]
    fn reads_what_dubbo_py_registers() {
        // dubbo-py 0.2.2 `DubboService.register` uses Python's `quote_plus` and forgets the `&`
        // before `group`.
        let name = "dubbo%3A%2F%2F127.0.0.1%3A20881%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue%26application%3Dpeers%26dubbo%3D2.5.3group%3Dbatch%26interface%3Dorg.apache.dubbo.demo.DemoService%26methods%3DsayHello%26pid%3D1%26revision%3D1.0.0%26side%3Dprovider%26timestamp%3D1%26version%3D1.0.0";
        let url = DubboUrl::parse(&decode(name).unwrap()).unwrap();
        assert_eq!(url.socket_addr(), Some(([127, 0, 0, 1], 20881).into()));
        assert_eq!(url.param("dubbo"), Some("2.5.3group=batch"));
        assert_eq!(url.param("group"), None);
    }

    #[test]
    fn encodes_like_java_url_encoder() {
        assert_eq!(encode("a b/c?d=e&f,g.h-i*j_k~l"), "a+b%2Fc%3Fd%3De%26f%2Cg.h-i*j_k%7El");
        assert_eq!(encode("é☃"), "%C3%A9%E2%98%83");
        assert_eq!(decode("a+b%2Fc%3fd").unwrap(), "a b/c?d");
        assert_eq!(decode(&encode("é☃ x")).unwrap(), "é☃ x");
    }

    #[test]
    fn hosts_ports_and_odd_queries() {
        let v6 = DubboUrl::parse("dubbo://[::1]:20880/x?a=1").unwrap();
        assert_eq!(v6.socket_addr(), Some("[::1]:20880".parse().unwrap()));
        assert_eq!(v6.to_full_string(), "dubbo://[::1]:20880/x?a=1");
        let bare_v6 = DubboUrl::parse("dubbo://fe80::1:20880/x").unwrap();
        assert_eq!((bare_v6.host.as_str(), bare_v6.port), ("fe80::1", 20880));
        let user = DubboUrl::parse("dubbo://u:p@10.0.0.1:1/x").unwrap();
        assert_eq!(user.socket_addr(), Some(([10, 0, 0, 1], 1).into()));
        let no_port = DubboUrl::parse("override://0.0.0.0/x?weight=1").unwrap();
        assert_eq!((no_port.port, no_port.socket_addr()), (0, None));
        let host_name = DubboUrl::parse("dubbo://provider.local:20880/x").unwrap();
        assert_eq!(host_name.socket_addr(), None, "a host name is not an address");
        let q = DubboUrl::parse("dubbo://1.2.3.4:5/x?flag&=v&k=1&k=2&e=#frag").unwrap();
        assert_eq!(q.param("flag"), Some("flag"));
        assert_eq!(q.param("k"), Some("2"), "the last of repeated keys wins");
        assert_eq!(q.param("e"), Some(""));
        assert_eq!(q.params.len(), 3);
    }

    #[test]
    fn refuses_what_is_not_a_url() {
        assert_eq!(decode("abc%2"), Err(UrlError::BadEscape(3)));
        assert_eq!(decode("%zz"), Err(UrlError::BadEscape(0)));
        assert!(matches!(decode("%ff%fe"), Err(UrlError::NotUtf8(_))));
        assert_eq!(DubboUrl::parse("10.0.0.1:20880/x"), Err(UrlError::NoProtocol));
        assert_eq!(DubboUrl::parse("://10.0.0.1:20880/x"), Err(UrlError::BadProtocol(String::new())));
        assert!(matches!(DubboUrl::parse("du bo://h:1/x"), Err(UrlError::BadProtocol(_))));
        assert_eq!(DubboUrl::parse("dubbo://[::1:20880/x"), Err(UrlError::UnclosedBracket));
        assert!(matches!(DubboUrl::parse("dubbo://h:99999/x"), Err(UrlError::BadPort { .. })));
        assert!(matches!(DubboUrl::parse("dubbo://h:-1/x"), Err(UrlError::BadPort { .. })));
        assert_eq!(DubboUrl::parse("dubbo://[::1]x/x"), Err(UrlError::AfterBracket("x".into())));
    }

    #[test]
    fn never_panics_on_arbitrary_names() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"%+:/?&=[]@#.-_azAZ09\xc3\xa9 ";
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[rng.usize(0..alphabet.len())]).collect();
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(d) = decode(&text) {
                let _ = DubboUrl::parse(&d).map(|u| (u.socket_addr(), u.to_full_string()));
            }
        }
    }
}
