//! Choosing a safe local file name from what the network says: Content-Disposition, then the URL.
//!
//! Everything a server sends is untrusted. A name must never escape the target directory, hide
//! itself, collide with a Windows device, or contain bytes that some filesystem refuses, so every
//! name passes through [`sanitize`] before it is used.

use percent_encoding::percent_decode_str;

/// The name used when neither the headers nor the URL offer anything usable.
pub const DEFAULT_FILENAME: &str = "download";

/// Longest name, in bytes, that [`sanitize`] returns. Common filesystems allow 255 bytes; keeping
/// well below that leaves room for " (n)" and temporary suffixes such as ".part".
const MAX_NAME_BYTES: usize = 200;

/// Longest extension (with its dot) that truncation keeps; anything longer is more likely a dotted
/// sentence than an extension, and keeping it could leave almost nothing of the actual name.
const MAX_EXTENSION_BYTES: usize = 32;

/// Characters that Windows (and so SMB shares and most USB sticks) refuses in names.
const ILLEGAL_CHARS: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// Device names that Windows reserves in every directory, whatever the extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Extensions that name one format together, so "x.tar.gz" numbers as "x (1).tar.gz".
const DOUBLE_EXTENSIONS: &[&str] = &[".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"];

/// Parse a Content-Disposition header value (RFC 6266): prefer `filename*` (RFC 8187/5987
/// ext-value: `charset'lang'pct-encoded`; UTF-8 and ISO-8859-1 charsets, case-insensitive), else
/// `filename=` (token or quoted-string with backslash escapes; raw UTF-8 and unquoted values with
/// spaces are accepted). Parameters may come in any order with case-insensitive names, and `;`
/// inside quotes is handled. Returns the raw (unsanitised) name; empty names count as absent.
pub fn parse_content_disposition(value: &str) -> Option<String> {
    let mut extended = None;
    let mut plain = None;
    for (name, param) in parse_params(value) {
        match name.as_str() {
            "filename*" if extended.is_none() => {
                extended = decode_ext_value(&param).filter(|s| !s.is_empty());
            }
            "filename" if plain.is_none() && !param.is_empty() => plain = Some(param),
            _ => {}
        }
    }
    extended.or(plain)
}

/// Splits a header value into `(lowercase name, value)` pairs, unquoting quoted values. Bare
/// tokens such as the disposition type are skipped. The scanner is deliberately forgiving, because
/// real servers send unquoted spaces, stray text after a closing quote and missing closing quotes.
fn parse_params(header: &str) -> Vec<(String, String)> {
    let bytes = header.as_bytes();
    let mut params = Vec::new();
    let mut i = 0;
    // Every index below sits on an ASCII delimiter or the end, so slicing never splits a char.
    while i < bytes.len() {
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' {
            i += 1;
        }
        let name = header[name_start..i].trim().to_ascii_lowercase();
        if i >= bytes.len() || bytes[i] == b';' {
            i += 1;
            continue;
        }
        i += 1;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            let (unquoted, used) = unquote(&header[i + 1..]);
            i += 1 + used;
            // Ignore anything between the closing quote and the next parameter.
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            unquoted
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            header[start..i].trim().to_string()
        };
        i += 1;
        params.push((name, value));
    }
    params
}

/// Reads a quoted-string body (after the opening quote) and returns it with the number of bytes
/// consumed, including the closing quote if there was one.
///
/// Only `\"` and `\\` are treated as escapes; any other backslash is kept, because some clients
/// send Windows paths like `"C:\dir\file.txt"` unescaped and the last component is still useful.
fn unquote(rest: &str) -> (String, usize) {
    let mut out = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (out, at + 1),
            '\\' => match chars.peek() {
                Some(&(_, next @ ('"' | '\\'))) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    (out, rest.len())
}

/// Decodes an RFC 8187 ext-value (`charset'language'percent-encoded`). Unknown charsets give
/// `None` so that the caller falls back to the plain `filename` parameter.
fn decode_ext_value(value: &str) -> Option<String> {
    let (charset, rest) = value.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    let bytes: Vec<u8> = percent_decode_str(encoded.trim()).collect();
    match charset.trim().to_ascii_lowercase().as_str() {
        // ASCII is a subset of UTF-8, so it decodes the same way.
        "utf-8" | "utf8" | "us-ascii" => Some(String::from_utf8_lossy(&bytes).into_owned()),
        // ISO-8859-1 maps every byte to the Unicode code point with the same number.
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// The last non-empty path segment of the URL, percent-decoded (lossy UTF-8), or `None` (e.g. for
/// `http://h/` or URLs without a path such as `mailto:`).
pub fn name_from_url(url: &url::Url) -> Option<String> {
    let last = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    Some(percent_decode_str(last).decode_utf8_lossy().into_owned())
}

/// Make a name from the network safe to create inside a directory: take only the last path
/// component (split on both '/' and '\\'), remove control characters (C0, DEL, C1) and
/// bidirectional-override characters, replace characters illegal on common filesystems
/// (`<>:"|?*` → '_'), trim surrounding whitespace and trailing dots, refuse "", ".", "..", prefix
/// Windows reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, case-insensitive, with or
/// without extension) with '_', turn a leading '.' into '_' (no hidden files from the network),
/// and cap to 200 bytes on a char boundary keeping the extension.
/// Returns `None` when nothing usable is left.
pub fn sanitize(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .map(|c| if ILLEGAL_CHARS.contains(&c) { '_' } else { c })
        .collect();
    // Windows silently drops trailing dots and spaces, so "a.txt." would not be the name we
    // checked; trimming them also turns "." and ".." into "" and refuses them below.
    let trimmed = trim_name_end(cleaned.trim_start());
    if trimmed.is_empty() {
        return None;
    }
    let mut name = match trimmed.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => trimmed.to_string(),
    };
    if is_windows_reserved(&name) {
        name.insert(0, '_');
    }
    Some(truncate_keeping_extension(name))
}

/// Trims trailing whitespace and dots together, since "a. ." has both interleaved.
fn trim_name_end(name: &str) -> &str {
    name.trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Bidirectional formatting characters can make "evil\u{202E}txt.exe" display as "evilexe.txt",
/// disguising the real extension, so they are dropped along with the control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether Windows would treat the name as a device: the part before the first '.' (ignoring
/// trailing spaces, which Windows also ignores) is a reserved name.
fn is_windows_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    WINDOWS_RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r))
}

/// Shortens an over-long name to [`MAX_NAME_BYTES`], cutting the stem on a char boundary so the
/// extension (and with it the file type) survives.
fn truncate_keeping_extension(name: String) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    let (stem, ext) = match split_extension(&name) {
        (stem, ext) if ext.len() <= MAX_EXTENSION_BYTES => (stem, ext),
        _ => (name.as_str(), ""),
    };
    let cut = floor_char_boundary(stem, MAX_NAME_BYTES - ext.len());
    // The stem starts with a visible character, so trimming after the cut never empties it.
    let stem = trim_name_end(&stem[..cut]);
    format!("{stem}{ext}")
}

/// The largest index <= `max` that is a char boundary of `s` (a stable stand-in for
/// `str::floor_char_boundary`).
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// Splits a name into stem and extension (with its dot). Well-known double extensions stay
/// together. A leading dot does not start an extension (".bashrc" is a name), and an "extension"
/// containing whitespace is treated as part of the name ("Report v1.2 final" has none).
fn split_extension(name: &str) -> (&str, &str) {
    for double in DOUBLE_EXTENSIONS {
        if name.len() > double.len() {
            let at = name.len() - double.len();
            if name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case(double) {
                return name.split_at(at);
            }
        }
    }
    match name.rfind('.') {
        Some(at) if at > 0 && at + 1 < name.len() && !name[at..].contains(char::is_whitespace) => name.split_at(at),
        _ => (name, ""),
    }
}

/// The name to save as: Content-Disposition name, else the URL's name, else [`DEFAULT_FILENAME`]
/// — each sanitised, falling through to the next when sanitising leaves nothing.
pub fn choose(content_disposition: Option<&str>, url: &url::Url) -> String {
    content_disposition
        .and_then(parse_content_disposition)
        .and_then(|raw| sanitize(&raw))
        .or_else(|| name_from_url(url).and_then(|raw| sanitize(&raw)))
        .unwrap_or_else(|| DEFAULT_FILENAME.to_string())
}

/// "name (n).ext" for n >= 1 (n == 0 returns the name unchanged). The extension is the part after
/// the last '.', except that well-known double extensions keep together (".tar.gz", ".tar.bz2",
/// ".tar.xz", ".tar.zst"); a name without an extension gets " (n)" appended.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// `{stem}__{tag}{ext}`: a name made unique by a tag (a download's id) before its extension, the layout the
/// yt-dlp web app keeps its files in (`{title}__{download_id}.{ext}`).
pub fn tagged(name: &str, tag: &str) -> String {
    let (stem, ext) = split_extension(name);
    format!("{stem}__{tag}{ext}")
}

/// The name [`tagged`] started from; a name without the tag is answered as it is.
pub fn untagged(name: &str, tag: &str) -> String {
    let (stem, ext) = split_extension(name);
    match stem.strip_suffix(tag).and_then(|stem| stem.strip_suffix("__")) {
        Some(stem) if !stem.is_empty() => format!("{stem}{ext}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_names_keep_their_extension() {
        for (name, tagged_name) in
            [("clip.mp4", "clip__ab12.mp4"), ("backup.tar.gz", "backup__ab12.tar.gz"), ("README", "README__ab12")]
        {
            assert_eq!(tagged(name, "ab12"), tagged_name);
            assert_eq!(untagged(tagged_name, "ab12"), name);
        }
        assert_eq!(untagged("clip.mp4", "ab12"), "clip.mp4");
        assert_eq!(untagged("__ab12.mp4", "ab12"), "__ab12.mp4");
        assert_eq!(untagged("clip__ab13.mp4", "ab12"), "clip__ab13.mp4");
    }

    /// Sanitises `raw` and compares; every accepted name must also be stable (sanitising it again
    /// changes nothing) and free of path separators.
    fn check(raw: &str, expected: Option<&str>) {
        let got = sanitize(raw);
        assert_eq!(got.as_deref(), expected, "sanitize({raw:?})");
        if let Some(name) = got {
            assert_eq!(sanitize(&name).as_deref(), Some(name.as_str()), "idempotent for {raw:?}");
            assert!(!name.contains(['/', '\\']) && name.len() <= MAX_NAME_BYTES);
        }
    }

    #[test]
    fn sanitize_hostile_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("report.pdf", Some("report.pdf")),
            ("naïve file.txt", Some("naïve file.txt")),
            ("📦 package 🎉.zip", Some("📦 package 🎉.zip")),
            ("../../etc/passwd", Some("passwd")),
            ("..\\..\\x", Some("x")),
            ("/abs/path", Some("path")),
            ("C:\\Users\\me\\evil.exe", Some("evil.exe")),
            ("dir/", None),
            ("a\u{0}b", Some("ab")),
            ("\u{7f}", None),
            ("foo\r\nbar", Some("foobar")),
            ("tab\there", Some("tabhere")),
            ("c1\u{85}\u{9f}x", Some("c1x")),
            ("evil\u{202E}txt.exe", Some("eviltxt.exe")),
            ("a<b>c:d\"e|f?g*h", Some("a_b_c_d_e_f_g_h")),
            ("  spaced  ", Some("spaced")),
            ("trailing...", Some("trailing")),
            ("trailing. . .", Some("trailing")),
            ("", None),
            ("   ", None),
            (".", None),
            ("..", None),
            ("...", None),
            (". .", None),
            (".bashrc", Some("_bashrc")),
            (".hidden.txt", Some("_hidden.txt")),
            ("con", Some("_con")),
            ("con.txt", Some("_con.txt")),
            ("CON", Some("_CON")),
            ("Nul.tar.gz", Some("_Nul.tar.gz")),
            ("com1", Some("_com1")),
            ("LPT9.log", Some("_LPT9.log")),
            ("aux .txt", Some("_aux .txt")),
            ("com10", Some("com10")),
            ("console.txt", Some("console.txt")),
            ("icon.png", Some("icon.png")),
        ];
        for (raw, expected) in cases {
            check(raw, *expected);
        }
    }

    #[test]
    fn sanitize_caps_long_names() {
        // (raw, expected length in bytes, expected ending)
        let cases = [
            (format!("{}.txt", "é".repeat(500)), 200, ".txt"),
            (format!("{}.txt", "日本".repeat(200)), 199, ".txt"),
            (format!("{}.tar.gz", "a".repeat(1000)), 200, ".tar.gz"),
            ("🎉".repeat(300), 200, "🎉"),
            (format!("{}.{}", "a".repeat(100), "b".repeat(900)), 200, "b"),
            (format!("{}{}.txt", "a".repeat(195), " ".repeat(10)), 199, "a.txt"),
            ("x".repeat(200), 200, "x"),
        ];
        for (raw, len, ending) in cases {
            let got = sanitize(&raw).expect("long names stay usable");
            assert_eq!(got.len(), len, "{got}");
            assert!(got.ends_with(ending), "{got}");
            assert!(raw.starts_with(&got[..got.len() - ending.len()]), "{got}");
            check(&raw, Some(&got));
        }
    }

    #[test]
    fn content_disposition() {
        let cases: &[(&str, Option<&str>)] = &[
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=report.pdf", Some("report.pdf")),
            ("attachment; filename*=UTF-8''na%C3%AFve%20file.txt", Some("naïve file.txt")),
            ("attachment; filename*=utf-8'en'na%C3%AFve.txt", Some("naïve.txt")),
            ("attachment; filename*=iso-8859-1'en'%A3%20rates", Some("£ rates")),
            ("attachment; filename*=ISO-8859-1''caf%E9", Some("café")),
            ("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt", Some("€ rates.txt")),
            ("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt; filename=\"fallback.txt\"", Some("€ rates.txt")),
            // Unknown charset or malformed ext-value: fall back to filename.
            ("attachment; filename*=koi8-r''%C1; filename=plain.txt", Some("plain.txt")),
            ("attachment; filename*=broken; filename=plain.txt", Some("plain.txt")),
            ("attachment; filename*=UTF-8''", None),
            ("attachment; filename=\"a;b.txt\"", Some("a;b.txt")),
            ("attachment; filename=\"a;b.txt\"; size=3", Some("a;b.txt")),
            ("inline; FILENAME= \"x.bin\"", Some("x.bin")),
            ("attachment; FileName*=UTF-8''X.bin", Some("X.bin")),
            ("attachment; filename=\"\\\"quoted\\\".txt\"", Some("\"quoted\".txt")),
            ("attachment; filename=\"back\\\\slash\"", Some("back\\slash")),
            ("attachment; filename=\"C:\\dir\\f.txt\"", Some("C:\\dir\\f.txt")),
            ("attachment; filename=my file name.txt", Some("my file name.txt")),
            ("attachment; filename=\"naïve.txt\"", Some("naïve.txt")),
            ("attachment; filename=日本語.pdf", Some("日本語.pdf")),
            ("attachment; filename=\"unterminated.txt", Some("unterminated.txt")),
            ("attachment; filename=\"x.txt\" junk; other=1", Some("x.txt")),
            ("attachment; filename=a=b.txt", Some("a=b.txt")),
            ("filename=bare.txt", Some("bare.txt")),
            ("attachment;filename=tight.txt;size=1", Some("tight.txt")),
            ("attachment; size=12; creation-date=\"x;y\"; filename=last.txt", Some("last.txt")),
            ("attachment; name=\"field\"", None),
            ("attachment; filename=\"\"", None),
            ("attachment", None),
            ("", None),
            (";;;", None),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_content_disposition(header).as_deref(), *expected, "{header:?}");
        }
    }

    #[test]
    fn url_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("http://h/", None),
            ("http://h", None),
            ("http://h/file.iso", Some("file.iso")),
            ("http://h/dir/file.iso?x=1#frag", Some("file.iso")),
            ("http://h/dir/sub/", Some("sub")),
            ("http://h/na%C3%AFve%20file.txt", Some("naïve file.txt")),
            ("http://h/bad%FF.bin", Some("bad\u{FFFD}.bin")),
            ("http://h/a%2F..%2F..%2Fetc%2Fpasswd", Some("a/../../etc/passwd")),
            ("mailto:someone@example.com", None),
        ];
        for (url, expected) in cases {
            let url = url::Url::parse(url).unwrap();
            assert_eq!(name_from_url(&url).as_deref(), *expected, "{url}");
        }
    }

    #[test]
    fn choose_falls_through() {
        let cases: &[(Option<&str>, &str, &str)] = &[
            (Some("attachment; filename=\"cd.txt\""), "http://h/url.txt", "cd.txt"),
            (Some("attachment; filename=\"..\""), "http://h/url.txt", "url.txt"),
            (Some("attachment"), "http://h/url.txt", "url.txt"),
            (None, "http://h/url.txt", "url.txt"),
            (None, "http://h/a%2F..%2F..%2Fetc%2Fpasswd", "passwd"),
            (None, "http://h/", DEFAULT_FILENAME),
            (None, "http://h/..%2F", DEFAULT_FILENAME),
            (Some("attachment; filename=\"\u{7f}\""), "http://h/%00", DEFAULT_FILENAME),
            (Some("attachment; filename=\"../../.ssh/authorized_keys\""), "http://h/x", "authorized_keys"),
            (Some("attachment; filename=con"), "http://h/x", "_con"),
        ];
        for (cd, url, expected) in cases {
            let url = url::Url::parse(url).unwrap();
            assert_eq!(choose(*cd, &url), *expected, "{cd:?} {url}");
        }
    }

    #[test]
    fn numbering() {
        let cases = [
            ("file.txt", 0, "file.txt"),
            ("file.txt", 1, "file (1).txt"),
            ("file.txt", 12, "file (12).txt"),
            ("archive.tar.gz", 2, "archive (2).tar.gz"),
            ("archive.TAR.GZ", 2, "archive (2).TAR.GZ"),
            ("archive.tar.bz2", 1, "archive (1).tar.bz2"),
            ("archive.tar.xz", 1, "archive (1).tar.xz"),
            ("archive.tar.zst", 1, "archive (1).tar.zst"),
            ("archive.tar", 1, "archive (1).tar"),
            ("photo.backup.jpg", 1, "photo.backup (1).jpg"),
            ("README", 3, "README (3)"),
            (".tar.gz", 1, ".tar (1).gz"),
            (".bashrc", 1, ".bashrc (1)"),
            ("Report v1.2 final", 1, "Report v1.2 final (1)"),
            ("naïve.txt", 1, "naïve (1).txt"),
            ("日本.tar.gz", 1, "日本 (1).tar.gz"),
        ];
        for (name, n, expected) in cases {
            assert_eq!(numbered(name, n), expected, "numbered({name:?}, {n})");
        }
    }
}
