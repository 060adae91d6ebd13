//! Categories: which of an account's rules a new download falls under, by host, URL pattern or file type.
//!
//! A rule's conditions are checked and normalised once, when the rule is made ([`RuleConditions::parse`]), so
//! matching a download against them ([`RuleConditions::matches`]) is plain comparison: every condition the rule
//! gives must hold, and a rule with none is refused.

use url::Url;

/// The longest URL pattern taken, in characters.
pub const MAX_PATTERN: usize = 2048;
/// Most extensions one rule may list, and the longest one.
pub const MAX_EXTENSIONS: usize = 64;
pub const MAX_EXTENSION: usize = 32;

/// What a download must be for a rule to apply to it. Every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleConditions {
    /// This host or any of its subdomains: lowercase, IDNA-encoded (`xn--...`), as a URL's host is.
    pub host: Option<String>,
    /// A glob over the whole URL (`*` any run of characters, `?` one character), ASCII case ignored.
    pub url_pattern: Option<String>,
    /// File types: lowercase, without the leading dot (`iso`, `tar.gz`). Any one of them matching is enough.
    pub extensions: Vec<String>,
}

/// What is wrong with a rule's condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("host must be a host name such as example.com (no scheme, port or path), got {0:?}")]
    Host(String),
    #[error("url_pattern must be 1 to {MAX_PATTERN} characters without control characters, got {0:?}")]
    Pattern(String),
    #[error(
        "extensions must be file types such as \"iso\" or \"tar.gz\" (letters, digits, '-', '_', '+', inner \
         dots; at most {MAX_EXTENSION} characters each, {MAX_EXTENSIONS} in all), got {0:?}"
    )]
    Extension(String),
    #[error("a rule needs at least one condition: host, url_pattern or extensions")]
    NoCondition,
}

impl RuleConditions {
    /// Conditions as a client gives them, checked and normalised: a host is lowercased and IDNA-encoded (a
    /// leading `*.` or `.` is dropped, since subdomains match anyway); extensions lose a leading dot and their
    /// case, and repeats go. Blank values count as not given.
    pub fn parse(host: Option<&str>, url_pattern: Option<&str>, extensions: &[String]) -> Result<Self, RuleError> {
        let host = host.map(str::trim).filter(|host| !host.is_empty()).map(parse_host).transpose()?;
        let url_pattern = match url_pattern.filter(|pattern| !pattern.trim().is_empty()) {
            None => None,
            Some(pattern) => {
                let pattern = pattern.trim();
                if pattern.chars().count() > MAX_PATTERN || pattern.chars().any(char::is_control) {
                    return Err(RuleError::Pattern(pattern.chars().take(200).collect()));
                }
                Some(pattern.to_owned())
            }
        };
        if extensions.len() > MAX_EXTENSIONS {
            return Err(RuleError::Extension(format!("{} extensions", extensions.len())));
        }
        let mut parsed: Vec<String> = Vec::new();
        for extension in extensions {
            let extension = parse_extension(extension)?;
            if !parsed.contains(&extension) {
                parsed.push(extension);
            }
        }
        let conditions = Self { host, url_pattern, extensions: parsed };
        if conditions.host.is_none() && conditions.url_pattern.is_none() && conditions.extensions.is_empty() {
            return Err(RuleError::NoCondition);
        }
        Ok(conditions)
    }

    /// Whether a download of `url`, named `filename` by its client (if it was), meets every condition. The file
    /// type is read from the last segment of the URL's path (percent-decoded; never from the query) and from
    /// `filename`: either one having a listed extension is enough.
    pub fn matches(&self, url: &Url, filename: Option<&str>) -> bool {
        if let Some(host) = &self.host
            && !host_matches(url, host)
        {
            return false;
        }
        if let Some(pattern) = &self.url_pattern
            && !glob_matches(pattern, url.as_str())
        {
            return false;
        }
        if !self.extensions.is_empty() {
            let from_url = crate::filename::name_from_url(url);
            let names = from_url.as_deref().into_iter().chain(filename);
            let mut names = names.map(str::to_lowercase);
            if !names.any(|name| self.extensions.iter().any(|extension| has_extension(&name, extension))) {
                return false;
            }
        }
        true
    }
}

fn parse_host(text: &str) -> Result<String, RuleError> {
    let bare = text.strip_prefix("*.").or_else(|| text.strip_prefix('.')).unwrap_or(text);
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    match url::Host::parse(bare) {
        Ok(host) if !bare.is_empty() => Ok(host.to_string()),
        _ => Err(RuleError::Host(text.chars().take(200).collect())),
    }
}

fn parse_extension(text: &str) -> Result<String, RuleError> {
    let invalid = || RuleError::Extension(text.chars().take(200).collect());
    let trimmed = text.trim();
    let extension = trimmed.strip_prefix('.').unwrap_or(trimmed).to_lowercase();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '+' | '.');
    if extension.is_empty()
        || extension.chars().count() > MAX_EXTENSION
        || !extension.chars().all(allowed)
        || extension.starts_with('.')
        || extension.ends_with('.')
        || extension.contains("..")
    {
        return Err(invalid());
    }
    Ok(extension)
}

/// `url`'s host is `host` or one of its subdomains. An address matches only itself.
fn host_matches(url: &Url, host: &str) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.strip_suffix('.').unwrap_or(domain).to_ascii_lowercase();
            domain == host || domain.strip_suffix(host).is_some_and(|sub| sub.ends_with('.'))
        }
        Some(address) => address.to_string() == host,
        None => false,
    }
}

/// `name` (lowercase) ends in `.extension` after something: `.iso` alone is a hidden name, not a file type.
fn has_extension(name: &str, extension: &str) -> bool {
    name.strip_suffix(extension)
        .and_then(|stem| stem.strip_suffix('.'))
        .is_some_and(|stem| !stem.is_empty() && !stem.ends_with('/'))
}

/// Whether the glob `pattern` matches all of `text`, ASCII case ignored: `*` is any run of characters (`/`
/// included), `?` exactly one. Linear backtracking over the last `*`, so no pattern takes exponential time.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has been stretched to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` take one more character and try the rest again from there.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn extensions(list: &[&str]) -> Vec<String> {
        list.iter().map(|extension| (*extension).to_owned()).collect()
    }

    /// One rule's conditions against a URL (and a client's file name), as a table row.
    fn check(host: Option<&str>, pattern: Option<&str>, exts: &[&str], cases: &[(&str, Option<&str>, bool)]) {
        let conditions = RuleConditions::parse(host, pattern, &extensions(exts)).unwrap();
        for (text, filename, expected) in cases {
            assert_eq!(conditions.matches(&url(text), *filename), *expected, "{conditions:?} on {text} {filename:?}");
        }
    }

    #[test]
    fn hosts_match_themselves_and_their_subdomains_only() {
        check(
            Some("Example.COM"),
            None,
            &[],
            &[
                ("http://example.com/a", None, true),
                ("https://EXAMPLE.com:8443/a", None, true),
                ("http://dl.example.com/a", None, true),
                ("http://a.b.example.com./a", None, true),
                ("http://notexample.com/a", None, false),
                ("http://example.com.evil.net/a", None, false),
                ("http://evil.net/example.com", None, false),
                ("http://user:example.com@evil.net/", None, false),
            ],
        );
        check(Some("*.example.com"), None, &[], &[("http://cdn.example.com/x", None, true)]);
        check(
            Some("127.1"),
            None,
            &[],
            &[("http://127.0.0.1:9/x", None, true), ("http://10.127.0.0.1.nip.io/x", None, false)],
        );
        check(Some("bücher.de"), None, &[], &[("http://www.xn--bcher-kva.de/x", None, true)]);
    }

    #[test]
    fn hosts_that_are_not_host_names_are_refused() {
        for hostile in ["http://example.com", "example.com:80", "example.com/path", "a b", "user@example.com", "*."] {
            assert!(matches!(RuleConditions::parse(Some(hostile), None, &[]), Err(RuleError::Host(_))), "{hostile}");
        }
    }

    #[test]
    fn extensions_come_from_the_paths_last_segment_or_the_clients_name() {
        check(
            None,
            None,
            &[".ISO", "tar.gz", "mkv"],
            &[
                ("http://h/dir/ubuntu.iso", None, true),
                ("http://h/dir/UBUNTU.ISO", None, true),
                ("http://h/a.tar.gz", None, true),
                ("http://h/a.gz", None, false),
                ("http://h/a.MKV#frag", None, true),
                // Percent-encoded dots are dots once decoded, as the file will be named.
                ("http://h/ubuntu%2Eiso", None, true),
                ("http://h/ubuntu%2eIsO", None, true),
                // The query is not the file: `?x=.iso` does not make a page an ISO.
                ("http://h/get.php?x=.iso", None, false),
                ("http://h/get?file=a.iso", None, false),
                ("http://h/download/?name=x.iso", None, false),
                // A directory named like a file is not the last segment.
                ("http://h/isos.iso/readme.txt", None, false),
                // A hidden name is not a file type.
                ("http://h/.iso", None, false),
                ("http://h/", None, false),
                // The client's own file name counts too.
                ("http://h/get.php?id=4", Some("Disc.ISO"), true),
                ("http://h/get.php?id=4", Some("notes.txt"), false),
            ],
        );
    }

    #[test]
    fn every_condition_given_must_hold() {
        check(
            Some("example.com"),
            Some("*/releases/*"),
            &["iso"],
            &[
                ("http://example.com/releases/a.iso", None, true),
                ("http://example.com/nightly/a.iso", None, false),
                ("http://example.com/releases/a.zip", None, false),
                ("http://other.org/releases/a.iso", None, false),
            ],
        );
    }

    #[test]
    fn url_patterns_are_globs_over_the_whole_url_ignoring_case() {
        let cases = [
            ("*", "http://h/x", true),
            ("http://h/*", "HTTP://H/a/b", true),
            ("*.iso", "http://h/a.iso", true),
            ("*.iso", "http://h/a.iso?x=1", false),
            ("*.iso*", "http://h/a.iso?x=1", true),
            ("http://h/?", "http://h/a", true),
            ("http://h/?", "http://h/ab", false),
            ("*/pub/*.zip", "https://mirror.example/pub/x/y.ZIP", true),
            ("h/*", "http://h/x", false),
            ("*a*a*a*a*a*b", &format!("http://h/{}", "a".repeat(5000)), false),
            ("", "", true),
            ("**", "", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} on {text}");
        }
    }

    #[test]
    fn conditions_are_checked_and_normalised_when_made() {
        let parsed = RuleConditions::parse(Some(" .Example.com. "), Some("  "), &extensions(&["ISO", ".iso", "Mkv"]));
        assert_eq!(
            parsed.unwrap(),
            RuleConditions {
                host: Some("example.com".into()),
                url_pattern: None,
                extensions: extensions(&["iso", "mkv"])
            }
        );
        assert_eq!(RuleConditions::parse(None, Some(""), &[]), Err(RuleError::NoCondition));
        assert_eq!(RuleConditions::parse(Some(" "), None, &[]), Err(RuleError::NoCondition));
        for hostile in ["", ".", "a..b", "../iso", "i/so", "iso.", "a b", "x\u{0}", &"a".repeat(33)] {
            let error = RuleConditions::parse(None, None, &extensions(&[hostile])).unwrap_err();
            assert!(matches!(error, RuleError::Extension(_)), "{hostile:?}: {error}");
        }
        let control = RuleConditions::parse(None, Some("http://h/\u{0}"), &[]).unwrap_err();
        assert!(matches!(control, RuleError::Pattern(_)));
        let long = "*".repeat(MAX_PATTERN + 1);
        assert!(matches!(RuleConditions::parse(None, Some(&long), &[]), Err(RuleError::Pattern(_))));
    }
}
