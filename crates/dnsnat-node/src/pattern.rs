//! Domain patterns for JavaScript: the core's one implementation, so that
//! the client's stub and the gateway's check of an `AssignedIps` can never
//! disagree on what a pattern admits.

use dnsnat_core::pattern::{Pattern, is_hostname};
use napi::{Error, Result, Status};
use napi_derive::napi;

/// A parsed domain pattern (`app.corp.example`, `*.corp.example`,
/// `**.corp.example`, `build-?.ci.example`).
#[napi]
pub struct NativePattern {
    inner: Pattern,
}

#[napi]
impl NativePattern {
    /// Parses a pattern; throws `InvalidArg` with the reason.
    #[napi(factory)]
    pub fn parse(text: String) -> Result<NativePattern> {
        Pattern::parse(&text)
            .map(|inner| NativePattern { inner })
            .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))
    }

    /// The normalised text: lower case, no trailing dot.
    #[napi(getter)]
    pub fn text(&self) -> String {
        self.inner.as_str().to_string()
    }

    /// Whether the pattern has no wildcard.
    #[napi(getter)]
    pub fn is_exact(&self) -> bool {
        self.inner.is_exact()
    }

    /// Whether `domain` (any case, optional trailing dot) is a host name
    /// this pattern matches.
    #[napi]
    pub fn matches(&self, domain: String) -> bool {
        self.inner.matches(&domain)
    }
}

/// Whether `domain` (no trailing dot) is a plain host name: 1 to 253
/// characters, labels of 1 to 63 letters, digits, `-` or `_`.
#[napi(js_name = "isHostname")]
pub fn is_hostname_js(domain: String) -> bool {
    is_hostname(&domain)
}
