//! What an account's API keys are for: each API presents its key in its own way.

crate::named_enum! {
    /// Which API a key authenticates.
    pub enum KeyKind as "key kind" {
        /// `Authorization: Bearer` (native API, Surge, Cloudflare API tokens, the yt-dlp web app).
        Bearer = "bearer",
        /// VideoDB's `x-access-token: sk-...`.
        Videodb = "videodb",
        /// Cloudflare's `X-Auth-Email` + `X-Auth-Key`.
        CloudflareGlobal = "cloudflare-global",
    }
}

/// A fresh secret in the shape each API's clients expect: VideoDB keys start `sk-`, Cloudflare global keys are
/// 37 hex characters, bearer tokens are long hex strings.
pub fn new_secret(kind: KeyKind) -> String {
    let random = || crate::job::AccountId::generate().to_string();
    match kind {
        KeyKind::Bearer => format!("haul_{}{}", random(), random()),
        KeyKind::Videodb => format!("sk-{}{}", random(), &random()[..16]),
        KeyKind::CloudflareGlobal => format!("{}{}", random(), &random()[..5]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_kinds_are_named() {
        for kind in KeyKind::ALL {
            assert_eq!(kind.as_str().parse::<KeyKind>(), Ok(kind));
        }
        let error = "admin".parse::<KeyKind>().unwrap_err().to_string();
        assert!(error.contains("bearer, videodb, cloudflare-global"), "{error}");
    }
}
