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
