//! Credentials as curl and wget users keep them: `-u user:password`, a `~/.netrc` and a Netscape `cookies.txt`
//! (what curl `-b`, wget `--load-cookies` and yt-dlp `--cookies` read). Parsing and matching only; the caller
//! reads the files and turns the result into request headers.

use url::Url;

/// The `Authorization` value for HTTP Basic authentication.
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// A `-u` / `--user` value: `user:password`, split at the first `:` (an empty password, `user:`, is allowed, as
/// curl takes it; a password may contain `:`).
pub fn parse_user(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((user, password)) => Ok((user.to_owned(), password.to_owned())),
        None => Err(format!("{text:?} has no password; give it as user:password")),
    }
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A login from a netrc file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetrcLogin {
    pub login: String,
    pub password: String,
}

/// The login a netrc file (the text of `~/.netrc`) gives for `host`: the first `machine` entry of that name
/// (case-insensitive), else the `default` entry. `macdef` bodies (up to the next blank line) and `#` comments
/// are skipped; a token may be double-quoted (`password "with space"`), as curl reads it.
pub fn netrc_login(text: &str, host: &str) -> Option<NetrcLogin> {
    #[derive(PartialEq)]
    enum Entry {
        None,
        Machine(bool),
        Default,
    }
    let mut entry = Entry::None;
    let (mut login, mut password) = (None::<String>, None::<String>);
    let mut default = None;
    // An entry ends where the next begins; returns the login if it is the one wanted.
    let finish = |entry: &Entry, login: &mut Option<String>, password: &mut Option<String>| {
        let found = (login.take(), password.take());
        match (entry, found) {
            (Entry::Machine(true) | Entry::Default, (login, password)) if login.is_some() || password.is_some() => {
                Some(NetrcLogin { login: login.unwrap_or_default(), password: password.unwrap_or_default() })
            }
            _ => None,
        }
    };
    let mut tokens = Tokens::new(text);
    while let Some(token) = tokens.next() {
        match token.as_str() {
            "machine" | "default" => {
                if let Some(found) = finish(&entry, &mut login, &mut password) {
                    if entry == Entry::Default {
                        default.get_or_insert(found);
                    } else {
                        return Some(found);
                    }
                }
                entry = if token == "default" {
                    Entry::Default
                } else {
                    Entry::Machine(tokens.next().is_some_and(|name| name.eq_ignore_ascii_case(host)))
                };
            }
            "login" => login = tokens.next(),
            "password" => password = tokens.next(),
            "account" => {
                tokens.next();
            }
            "macdef" => {
                tokens.next();
                tokens.skip_macro();
            }
            _ => {}
        }
    }
    match finish(&entry, &mut login, &mut password) {
        Some(found) if entry == Entry::Default => default.or(Some(found)),
        Some(found) => Some(found),
        None => default,
    }
}

/// The tokens of a netrc file: whitespace-separated words, `"quoted strings"` (with `\"` and `\\`), `#` to the
/// end of the line a comment.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    /// A `macdef` body: everything up to the first blank line.
    fn skip_macro(&mut self) {
        // The rest of the `macdef NAME` line, then lines until an empty one.
        let Some(newline) = self.rest.find('\n') else {
            self.rest = "";
            return;
        };
        let mut rest = &self.rest[newline + 1..];
        loop {
            match rest.split_once('\n') {
                Some((line, after)) => {
                    rest = after;
                    if line.trim().is_empty() {
                        break;
                    }
                }
                None => {
                    rest = "";
                    break;
                }
            }
        }
        self.rest = rest;
    }
}

impl Iterator for Tokens<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            self.rest = self.rest.trim_start();
            if self.rest.starts_with('#') {
                self.rest = self.rest.find('\n').map_or("", |at| &self.rest[at..]);
                continue;
            }
            break;
        }
        if self.rest.is_empty() {
            return None;
        }
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut token = String::new();
            let mut chars = quoted.char_indices();
            while let Some((at, c)) = chars.next() {
                match c {
                    '"' => {
                        self.rest = &quoted[at + 1..];
                        return Some(token);
                    }
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            token.push(escaped);
                        }
                    }
                    c => token.push(c),
                }
            }
            self.rest = "";
            return Some(token);
        }
        let end = self.rest.find(char::is_whitespace).unwrap_or(self.rest.len());
        let token = self.rest[..end].to_owned();
        self.rest = &self.rest[end..];
        Some(token)
    }
}

/// One cookie of a Netscape `cookies.txt`. Its `Debug` leaves the value out: a cookie is a login.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Without a leading dot.
    pub domain: String,
    /// Sent to subdomains of `domain` too (the second field `TRUE`, or a domain written with a leading dot).
    pub subdomains: bool,
    pub path: String,
    /// Only over https.
    pub secure: bool,
    /// Seconds since the Unix epoch; `None` (written 0) for a session cookie, which never expires here.
    pub expires: Option<u64>,
    pub name: String,
    pub value: String,
    /// Written `#HttpOnly_DOMAIN` (not for scripts, in a browser; sent the same by haul).
    pub http_only: bool,
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookie")
            .field("domain", &self.domain)
            .field("subdomains", &self.subdomains)
            .field("path", &self.path)
            .field("secure", &self.secure)
            .field("expires", &self.expires)
            .field("name", &self.name)
            .field("value", &"***")
            .field("http_only", &self.http_only)
            .finish()
    }
}

/// Reads a Netscape cookies file: one cookie a line, seven tab-separated fields (domain, include subdomains,
/// path, secure, expiry, name, value; a missing value is empty). Blank lines and `#` comments are skipped, but
/// `#HttpOnly_` starts a cookie (as curl and browsers write HttpOnly ones). A line of another shape is an error
/// naming it.
pub fn parse_cookies(text: &str) -> Result<Vec<Cookie>, String> {
    Ok(parse_cookie_lines(text)?.into_iter().map(|(_, cookie)| cookie).collect())
}

/// [`parse_cookies`], each cookie with its line number (from 1), for checks that name the line.
pub fn parse_cookie_lines(text: &str) -> Result<Vec<(usize, Cookie)>, String> {
    let mut cookies = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let (line, http_only) = match line.strip_prefix("#HttpOnly_") {
            Some(rest) => (rest, true),
            None if line.trim().is_empty() || line.starts_with('#') => continue,
            None => (line, false),
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |what: &str| format!("line {}: {what} (expected 7 tab-separated fields)", index + 1);
        if !(fields.len() == 6 || fields.len() == 7) {
            return Err(bad(&format!("{} fields", fields.len())));
        }
        let flag = |text: &str, what: &str| match text.to_ascii_uppercase().as_str() {
            "TRUE" => Ok(true),
            "FALSE" => Ok(false),
            _ => Err(bad(&format!("{what} is {text:?}, not TRUE or FALSE"))),
        };
        let domain = fields[0].to_ascii_lowercase();
        let expires: u64 =
            fields[4].trim().parse().map_err(|_| bad(&format!("expiry {:?} is not a number", fields[4])))?;
        cookies.push((
            index + 1,
            Cookie {
                subdomains: flag(fields[1], "the subdomain flag")? || domain.starts_with('.'),
                domain: domain.trim_start_matches('.').to_owned(),
                path: if fields[2].is_empty() { "/".to_owned() } else { fields[2].to_owned() },
                secure: flag(fields[3], "the secure flag")?,
                expires: (expires != 0).then_some(expires),
                name: fields[5].to_owned(),
                value: fields.get(6).copied().unwrap_or_default().to_owned(),
                http_only,
            },
        ));
    }
    Ok(cookies)
}

/// Longest cookie domain, path, name and value a jar keeps (browsers take 4096 bytes per cookie).
pub const MAX_COOKIE_PART: usize = 4096;

impl Cookie {
    /// Whether a server may keep this cookie in an account's jar and send it: a domain that is a host name with
    /// at least two labels (or `localhost`, or an address, for which `subdomains` means nothing), never `.`
    /// or a top-level domain alone, which would send it to every site under it; a path from `/`; a name and a
    /// value that fit in a `Cookie` header. What is wrong, else.
    pub fn check(&self) -> Result<(), String> {
        if self.domain.is_empty() {
            return Err("the domain is empty (a cookie for \".\" would go to every site)".to_owned());
        }
        if self.domain.len() > 253
            || [&self.path, &self.name, &self.value].iter().any(|part| part.len() > MAX_COOKIE_PART)
        {
            return Err(format!("the cookie is too long (its parts take at most {MAX_COOKIE_PART} bytes)"));
        }
        let host =
            url::Host::parse(&self.domain).map_err(|_| format!("the domain {:?} is not a host name", self.domain))?;
        if let url::Host::Domain(name) = &host
            && name != "localhost"
            && !name.trim_end_matches('.').contains('.')
        {
            return Err(format!(
                "the domain {name:?} is a top-level domain: its cookie would go to every site under it"
            ));
        }
        if !self.path.starts_with('/') {
            return Err(format!("the path {:?} does not start with /", self.path));
        }
        let token = |text: &str| {
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        if !token(&self.name) {
            return Err(format!("the name {:?} is not a cookie name", self.name));
        }
        // RFC 6265's cookie-octet, plus the blank and comma that browsers send as they are.
        if self.value.bytes().any(|b| b.is_ascii_control() || b == b';' || !b.is_ascii()) {
            return Err(format!("the value of {} holds a control character, a ';' or non-ASCII text", self.name));
        }
        Ok(())
    }
}

/// `cookies` as a Netscape cookies.txt (what yt-dlp's `--cookies` and curl's `-b` read), HttpOnly ones marked
/// as browsers write them.
pub fn write_cookies(cookies: &[Cookie]) -> String {
    let mut text = String::from("# Netscape HTTP Cookie File\n");
    for cookie in cookies {
        let flag = |on: bool| if on { "TRUE" } else { "FALSE" };
        let domain = if cookie.subdomains { format!(".{}", cookie.domain) } else { cookie.domain.clone() };
        text.push_str(&format!(
            "{}{domain}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            if cookie.http_only { "#HttpOnly_" } else { "" },
            flag(cookie.subdomains),
            cookie.path,
            flag(cookie.secure),
            cookie.expires.unwrap_or(0),
            cookie.name,
            cookie.value
        ));
    }
    text
}

impl Cookie {
    /// Whether this cookie goes with a request for `url` at `now` (seconds since the Unix epoch): the host is the
    /// domain (or, with `subdomains`, under it), the path is under the cookie's, https for a secure one, and it
    /// has not expired.
    pub fn matches(&self, url: &Url, now: u64) -> bool {
        let Some(host) = url.host_str() else { return false };
        let host = host.to_ascii_lowercase();
        let domain_ok = host == self.domain
            || (self.subdomains && host.strip_suffix(&self.domain).is_some_and(|sub| sub.ends_with('.')));
        let path = url.path();
        let path_ok = path == self.path
            || (path.starts_with(&self.path) && (self.path.ends_with('/') || path[self.path.len()..].starts_with('/')));
        domain_ok
            && path_ok
            && (!self.secure || url.scheme() == "https")
            && self.expires.is_none_or(|expires| expires > now)
    }
}

/// The `Cookie` header value for `url` at `now` from `cookies`, longer paths first (RFC 6265); `None` when no
/// cookie matches.
pub fn cookie_header(cookies: &[Cookie], url: &Url, now: u64) -> Option<String> {
    let mut matching: Vec<&Cookie> = cookies.iter().filter(|cookie| cookie.matches(url, now)).collect();
    matching.sort_by_key(|cookie| std::cmp::Reverse(cookie.path.len()));
    let pairs: Vec<String> = matching.iter().map(|cookie| format!("{}={}", cookie.name, cookie.value)).collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_is_base64_of_user_colon_password() {
        assert_eq!(basic_authorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(basic_authorization("a", ""), "Basic YTo=");
        assert_eq!(basic_authorization("ab", "c"), "Basic YWI6Yw==");
        assert_eq!(basic_authorization("", ""), "Basic Og==");
    }

    #[test]
    fn user_is_split_at_the_first_colon() {
        assert_eq!(parse_user("me:pa:ss"), Ok(("me".into(), "pa:ss".into())));
        assert_eq!(parse_user("token:"), Ok(("token".into(), String::new())));
        assert!(parse_user("me").unwrap_err().contains("user:password"));
    }

    fn login(login: &str, password: &str) -> Option<NetrcLogin> {
        Some(NetrcLogin { login: login.into(), password: password.into() })
    }

    #[test]
    fn netrc_finds_the_machine_else_the_default() {
        let text = "# my hosts\nmachine files.example login alice password s3cret\n\
                    machine other.example\n  login bob\n  password \"two words\" # trailing comment\n\
                    default login anon password guest\n";
        assert_eq!(netrc_login(text, "files.example"), login("alice", "s3cret"));
        assert_eq!(netrc_login(text, "FILES.example"), login("alice", "s3cret"));
        assert_eq!(netrc_login(text, "other.example"), login("bob", "two words"));
        assert_eq!(netrc_login(text, "elsewhere.example"), login("anon", "guest"));
        assert_eq!(netrc_login("machine a login x password y", "b"), None);
        assert_eq!(netrc_login("", "a"), None);
    }

    #[test]
    fn netrc_on_one_line_with_account_and_macdef() {
        let text = "machine a login x account acct password y\nmacdef init\ncd /pub\nmachine b login no\n\n\
                    machine b login yes password p";
        assert_eq!(netrc_login(text, "a"), login("x", "y"));
        // `machine b` inside the macro body is not an entry.
        assert_eq!(netrc_login(text, "b"), login("yes", "p"));
        // The default may come first; a later machine entry still wins for its host.
        let text = "default login d password dp machine m login ml password mp";
        assert_eq!(netrc_login(text, "m"), login("ml", "mp"));
        assert_eq!(netrc_login(text, "z"), login("d", "dp"));
        assert_eq!(netrc_login("machine q login \"a\\\"b\" password x", "q"), login("a\"b", "x"));
    }

    const COOKIES: &str = "# Netscape HTTP Cookie File\n\
        # This is a generated file! Do not edit.\n\
        \n\
        .example.com\tTRUE\t/\tFALSE\t0\tsession\tall\n\
        files.example.com\tFALSE\t/private\tTRUE\t4102444800\tsecret\tyes\n\
        #HttpOnly_files.example.com\tFALSE\t/\tFALSE\t4102444800\thttponly\th1\n\
        example.com\tFALSE\t/\tFALSE\t1000\told\tgone\n\
        other.example\tFALSE\t/\tFALSE\t0\tempty\n";

    #[test]
    fn cookies_file_is_read_with_its_comments_httponly_lines_and_flags() {
        let cookies = parse_cookies(COOKIES).unwrap();
        assert_eq!(cookies.len(), 5);
        assert_eq!(
            cookies[0],
            Cookie {
                domain: "example.com".into(),
                subdomains: true,
                path: "/".into(),
                secure: false,
                expires: None,
                name: "session".into(),
                value: "all".into(),
                http_only: false,
            }
        );
        assert!(cookies[2].http_only && !cookies[1].http_only);
        assert!(!format!("{:?}", cookies[1]).contains("yes"), "Debug shows no value");
        assert_eq!(cookies[2].name, "httponly");
        assert_eq!(cookies[2].domain, "files.example.com");
        assert_eq!(cookies[3].expires, Some(1000));
        assert_eq!(cookies[4].value, "");
        assert!(parse_cookies("a\tTRUE\t/\n").unwrap_err().starts_with("line 1: 3 fields"));
        assert!(parse_cookies("\na\tyes\t/\tFALSE\t0\tn\tv").unwrap_err().contains("line 2"));
        assert!(parse_cookies("a\tTRUE\t/\tFALSE\tsoon\tn\tv").unwrap_err().contains("expiry"));
        assert_eq!(parse_cookies("a\tTRUE\t/\tFALSE\t0\tn\tv\r\n").unwrap()[0].value, "v");
    }

    #[test]
    fn cookies_match_by_domain_path_scheme_and_expiry() {
        let cookies = parse_cookies(COOKIES).unwrap();
        let now = 2_000_000_000;
        let header = |url: &str| cookie_header(&cookies, &Url::parse(url).unwrap(), now);
        assert_eq!(header("http://example.com/x").as_deref(), Some("session=all"));
        assert_eq!(header("http://files.example.com/a").as_deref(), Some("session=all; httponly=h1"));
        // Secure only over https; longer paths first.
        assert_eq!(header("http://files.example.com/private/f").as_deref(), Some("session=all; httponly=h1"));
        assert_eq!(
            header("https://files.example.com/private/f").as_deref(),
            Some("secret=yes; session=all; httponly=h1")
        );
        assert_eq!(header("https://files.example.com/privateer").as_deref(), Some("session=all; httponly=h1"));
        assert_eq!(
            header("https://files.example.com/private").as_deref(),
            Some("secret=yes; session=all; httponly=h1")
        );
        // No subdomain flag: the host only; a domain that merely ends the same is not a subdomain.
        assert_eq!(header("http://sub.files.example.com/").as_deref(), Some("session=all"));
        assert_eq!(header("http://notexample.com/"), None);
        assert_eq!(header("http://other.example/").as_deref(), Some("empty="));
        // Expired at 1000; still valid before.
        assert!(header("http://example.com/").is_some_and(|h| !h.contains("old")));
        let early = cookie_header(&cookies, &Url::parse("http://example.com/").unwrap(), 999).unwrap();
        assert!(early.contains("old=gone"), "{early}");
    }

    #[test]
    fn a_jar_keeps_only_cookies_it_can_send_to_the_sites_they_name() {
        let line = |domain: &str, name: &str, value: &str| format!("{domain}\tFALSE\t/\tFALSE\t0\t{name}\t{value}");
        let check = |text: String| parse_cookies(&text).unwrap()[0].check();
        assert_eq!(check(line("example.com", "sid", "a b,c")), Ok(()));
        assert_eq!(check(line(".files.example.com", "sid", "")), Ok(()));
        assert_eq!(check(line("localhost", "sid", "x")), Ok(()));
        assert_eq!(check(line("127.0.0.1", "sid", "x")), Ok(()));
        for (domain, name, value, why) in [
            (".", "sid", "x", "domain is empty"),
            ("", "sid", "x", "domain is empty"),
            ("com", "sid", "x", "top-level domain"),
            (".com", "sid", "x", "top-level domain"),
            ("exa mple.com", "sid", "x", "not a host name"),
            ("example.com", "", "x", "not a cookie name"),
            ("example.com", "a=b", "x", "not a cookie name"),
            ("example.com", "sid", "a;b", "control character, a ';'"),
            ("example.com", "sid", "caf\u{e9}", "non-ASCII"),
        ] {
            let error = check(line(domain, name, value)).unwrap_err();
            assert!(error.contains(why), "{domain} {name}={value}: {error}");
        }
        let long = line("example.com", "sid", &"x".repeat(MAX_COOKIE_PART + 1));
        assert!(check(long).unwrap_err().contains("too long"));
        let relative = "example.com\tFALSE\tdocs\tFALSE\t0\tsid\tx";
        assert!(parse_cookies(relative).unwrap()[0].check().unwrap_err().contains("path"));
    }

    #[test]
    fn a_written_jar_reads_back_the_same() {
        let cookies = parse_cookies(COOKIES).unwrap();
        let written = write_cookies(&cookies);
        assert!(written.starts_with("# Netscape HTTP Cookie File\n"));
        assert!(written.contains("#HttpOnly_files.example.com\tFALSE\t/\tFALSE\t4102444800\thttponly\th1\n"));
        assert_eq!(parse_cookies(&written).unwrap(), cookies);
        let lines: Vec<usize> = parse_cookie_lines(COOKIES).unwrap().iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8]);
    }
}
