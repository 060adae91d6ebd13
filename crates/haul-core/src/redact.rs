//! Secrets taken out of text before it is logged: the password (and user) in a URL's userinfo, the values of
//! query parameters that carry credentials (`token`, `signature`, `api_key`, ...), bearer tokens, and the values
//! of `Cookie` and `Set-Cookie` headers (as a header line, or a header map's `Debug`).
//!
//! Works on any text, not only on one URL, because secrets reach logs inside other messages (an HTTP
//! client's error quoting the URL it failed on, a request span's URI). What is kept is enough to tell which
//! request it was.

use std::borrow::Cow;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Query parameter names whose values are secrets, compared without case.
const SECRET_PARAMETERS: [&str; 16] = [
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "signature",
    "sig",
    "key",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "secret",
    "auth",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// `text` with every secret it holds replaced by [`MASK`]; borrowed when there was nothing to take out.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let masked = mask_parameters(&mask_encoded_userinfo(&mask_userinfo(text)));
    let masked = mask_cookies(&mask_bearer(&masked));
    if masked == text { Cow::Borrowed(text) } else { Cow::Owned(masked) }
}

/// `scheme://user:password@host` → `scheme://***@host`.
fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first of these; an `@` before that end closes a userinfo.
        let end = after.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || is_quote(c));
        let authority = &after[..end.unwrap_or(after.len())];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// The same inside a percent-encoded URL (a redirect target in a parameter): `http%3A%2F%2Fuser%3Apass%40host`
/// → `http%3A%2F%2F***%40host`.
fn mask_encoded_userinfo(text: &str) -> String {
    const SCHEME_END: &str = "%3a%2f%2f";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(SCHEME_END) {
        let authority_start = from + found + SCHEME_END.len();
        let rest = &lower[authority_start..];
        let end = ["%2f", "%3f", "%23", "&", "#"]
            .iter()
            .filter_map(|stop| rest.find(stop))
            .chain(rest.find(|c: char| c.is_whitespace() || is_quote(c)))
            .min()
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind("%40") {
            out.push_str(&text[copied..authority_start]);
            out.push_str(MASK);
            copied = authority_start + at;
        }
        from = authority_start + end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `name=value` → `name=***` for the secret names, wherever it follows `?`, `&` or `;`, and also where a URL
/// inside another URL's parameter has them percent-encoded (`%3Ftoken%3D...`).
fn mask_parameters(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let Some(separator) = separator_at(bytes, index) else {
            index += 1;
            continue;
        };
        let name_start = index + separator;
        let name_end = name_start + bytes[name_start..].iter().take_while(|&&b| is_name_byte(b)).count();
        let Some(equals) = equals_at(bytes, name_end) else {
            index = name_start;
            continue;
        };
        if name_end == name_start || !is_secret(&text[name_start..name_end]) {
            index = name_start;
            continue;
        }
        let value_start = name_end + equals;
        let mut value_end = value_start;
        while value_end < bytes.len() && !ends_value(bytes, value_end) {
            value_end += 1;
        }
        // Whole characters only: the terminators are ASCII, so `value_end` is on a character boundary.
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_end;
        index = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of a parameter separator at `index` (`?`, `&`, `;`, or one of them percent-encoded), if any.
fn separator_at(bytes: &[u8], index: usize) -> Option<usize> {
    match bytes[index] {
        b'?' | b'&' | b';' => Some(1),
        b'%' if bytes.len() >= index + 3
            && matches!(&bytes[index + 1..index + 3], b"3F" | b"3f" | b"26" | b"3B" | b"3b") =>
        {
            Some(3)
        }
        _ => None,
    }
}

/// The length of `=` or `%3D` at `index`, if one is there.
fn equals_at(bytes: &[u8], index: usize) -> Option<usize> {
    match bytes.get(index..) {
        Some([b'=', ..]) => Some(1),
        Some([b'%', b'3', b'D' | b'd', ..]) => Some(3),
        _ => None,
    }
}

/// Where a parameter's value stops: the next parameter (plain or encoded), a fragment, a delimiter of the
/// surrounding text, or whitespace.
fn ends_value(bytes: &[u8], index: usize) -> bool {
    let byte = bytes[index];
    matches!(byte, b'&' | b'#' | b';' | b')' | b']' | b',' | b'"' | b'\'' | b'`' | b'<' | b'>')
        || byte.is_ascii_whitespace()
        || (byte == b'%' && matches!(bytes.get(index + 1..index + 3), Some(b"26" | b"23" | b"3B" | b"3b")))
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.')
}

/// `Bearer TOKEN` → `Bearer ***`.
fn mask_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_ignore_case(rest, "bearer ") {
        let (before, after) = rest.split_at(at + "bearer ".len());
        out.push_str(before);
        let token_end = after.find(|c: char| c.is_whitespace() || is_quote(c) || c == ',').unwrap_or(after.len());
        if token_end > 0 {
            out.push_str(MASK);
        }
        rest = &after[token_end..];
    }
    out.push_str(rest);
    out
}

/// `Cookie: a=b; c=d` → `Cookie: ***`, `"cookie": "a=b"` → `"cookie": "***"` (and `Set-Cookie`): the value up
/// to the end of the line, or to its closing quote when quoted. "cookies" and other words that merely start the
/// same are left alone.
fn mask_cookies(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_ignore_case(rest, "cookie") {
        let (before, after) = rest.split_at(at + "cookie".len());
        out.push_str(before);
        let header = after.strip_prefix('"').unwrap_or(after);
        let Some(value) = header.strip_prefix(':') else {
            rest = after;
            continue;
        };
        let value = value.trim_start_matches(' ');
        let (quote, value) = match value.strip_prefix('"') {
            Some(quoted) => (Some('"'), quoted),
            None => (None, value),
        };
        let end = match quote {
            Some(quote) => value.find(quote),
            None => value.find(['\n', '\r']),
        }
        .unwrap_or(value.len());
        // Everything up to the value as it was, then the mask.
        out.push_str(&after[..after.len() - value.len()]);
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

fn is_secret(name: &str) -> bool {
    let decoded = name.trim();
    SECRET_PARAMETERS.iter().any(|secret| decoded.eq_ignore_ascii_case(secret))
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | '<' | '>')
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack.as_bytes().windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_and_messages() {
        let cases = [
            (
                "GET /links/1/file?account=a&expires=9&signature=abcdef",
                "GET /links/1/file?account=a&expires=9&signature=***",
            ),
            ("uri=/api/downloads?token=s3cr3t", "uri=/api/downloads?token=***"),
            ("http://user:pass@host/f", "http://***@host/f"),
            ("https://user@h.example:8443/x?y=1", "https://***@h.example:8443/x?y=1"),
            (
                "error sending request for url (http://h/f?X-Amz-Signature=9f&X-Amz-Date=1)",
                "error sending request for url (http://h/f?X-Amz-Signature=***&X-Amz-Date=1)",
            ),
            ("a=1&API_KEY=k&b=2", "a=1&API_KEY=***&b=2"),
            ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
            ("http://h/p?tokenizer=1&keys=2", "http://h/p?tokenizer=1&keys=2"),
            ("no secrets here: http://h/f?a=b", "no secrets here: http://h/f?a=b"),
            ("mail me@example.com", "mail me@example.com"),
            ("two http://a:b@x/ and http://c:d@y/", "two http://***@x/ and http://***@y/"),
            ("\"http://h/?sig=zz\"", "\"http://h/?sig=***\""),
            (
                "http://h/go?to=http://u@h2/x%3Ftoken%3Dabc%26b%3D1&api_key=k",
                "http://h/go?to=http://***@h2/x%3Ftoken%3D***%26b%3D1&api_key=***",
            ),
            ("%3Fkey=%C3%A9t%C3%A9", "%3Fkey=***"),
        ];
        for (text, expected) in cases {
            assert_eq!(secrets(text), expected, "{text}");
        }
        assert!(matches!(secrets("nothing to hide"), Cow::Borrowed(_)));
    }

    #[test]
    fn any_text_comes_out_whole_and_without_the_secret() {
        // Every split of a URL around a secret, in every position of a longer text.
        let secret = "Zq9-very-secret";
        for prefix in ["", "x ", "(", "url=", "\u{e9}\u{1F600} "] {
            for suffix in ["", " y", ")", "&more=1", "#frag", "\u{1F600}"] {
                for url in [
                    format!("http://h/p?token={secret}"),
                    format!("http://u:{secret}@h/p"),
                    format!("http://h/p?a=1&signature={secret}"),
                    format!("http://h/go?to=http%3A%2F%2Fh2%2Fx%3Fsig%3D{secret}"),
                    format!("http://h/go?to=http%3A%2F%2Fu%3A{secret}%40h2%2Fx"),
                    format!("Bearer {secret}"),
                ] {
                    let text = format!("{prefix}{url}{suffix}");
                    let masked = secrets(&text);
                    assert!(!masked.contains(secret), "{text} -> {masked}");
                    assert!(masked.starts_with(prefix) || prefix.is_empty(), "{text} -> {masked}");
                }
            }
        }
    }

    #[test]
    fn cookie_header_values_are_masked() {
        for (text, expected) in [
            ("Cookie: sid=s3cret; b=2", "Cookie: ***"),
            ("set-cookie: sid=s3cret; Path=/\nnext line", "set-cookie: ***\nnext line"),
            (r#"{"cookie": "sid=s3cret", "range": "bytes=0-"}"#, r#"{"cookie": "***", "range": "bytes=0-"}"#),
            ("cookies imported cookies=3", "cookies imported cookies=3"),
            ("a cookie: ", "a cookie: "),
        ] {
            assert_eq!(secrets(text), expected, "{text}");
        }
    }
}
