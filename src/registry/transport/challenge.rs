//! Parsing `WWW-Authenticate` (RFC 7235 §4.1, RFC 9110 §11.6.1): one header may hold several
//! challenges, each a scheme followed by comma-separated `name=value` parameters whose values
//! are tokens or quoted strings with `\` escapes. A comma also separates challenges, so a
//! parameter is told from the next challenge's scheme by the `=` that follows it.
//!
//! [`registry_challenge`] picks what the registry wants from all challenges: Bearer (with its
//! realm, service, scopes and error) over Basic.

/// One challenge: a scheme and its parameters, names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme as sent, e.g. `Bearer`.
    pub scheme: String,
    /// `(name, value)` pairs in order; names lower-cased, values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lower-case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistryChallenge {
    /// HTTP Basic.
    Basic,
    /// A token from `realm`.
    Bearer(BearerChallenge),
}

/// The parameters of a Bearer challenge that the token flow uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BearerChallenge {
    /// The token server's URL.
    pub realm: String,
    /// The `service` to name in the token request.
    pub service: Option<String>,
    /// The scopes the registry says the request needs (space-separated in the header).
    pub scopes: Vec<String>,
    /// `error`, e.g. `insufficient_scope` or `invalid_token`.
    pub error: Option<String>,
}

/// Parses one header value into its challenges.
pub(crate) fn parse(header: &str) -> Result<Vec<Challenge>, String> {
    let mut parser = Parser {
        input: header.as_bytes(),
        position: 0,
    };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        if parser.at_end() {
            return Ok(challenges);
        }
        let scheme = parser.token();
        if scheme.is_empty() {
            return Err(format!(
                "expected an auth scheme at byte {}",
                parser.position
            ));
        }
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        loop {
            let before = parser.position;
            parser.skip_separators();
            if parser.at_end() {
                break;
            }
            let name = parser.token();
            if name.is_empty() {
                return Err(format!("unexpected character at byte {}", parser.position));
            }
            parser.skip_spaces();
            if parser.peek() != Some(b'=') {
                // Not a parameter: the scheme of the next challenge.
                parser.position = before;
                break;
            }
            parser.position += 1;
            parser.skip_spaces();
            let value = match parser.peek() {
                Some(b'"') => parser.quoted()?,
                _ => parser.token(),
            };
            if value.is_empty() {
                // token68 (`Basic dXNlcg==`): credentials-like data we have no use for.
                while parser.peek() == Some(b'=') {
                    parser.position += 1;
                }
                continue;
            }
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        challenges.push(challenge);
    }
}

/// The registry's wish among all challenges of all `WWW-Authenticate` values: Bearer if any
/// (it needs a realm), else Basic; `None` when neither is offered.
pub(crate) fn registry_challenge<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Result<Option<RegistryChallenge>, String> {
    let mut basic = false;
    for header in headers {
        for challenge in parse(header)? {
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                let realm = challenge
                    .param("realm")
                    .ok_or("Bearer challenge without realm")?;
                return Ok(Some(RegistryChallenge::Bearer(BearerChallenge {
                    realm: realm.to_string(),
                    service: challenge.param("service").map(str::to_string),
                    scopes: challenge
                        .param("scope")
                        .map(|s| s.split_whitespace().map(str::to_string).collect())
                        .unwrap_or_default(),
                    error: challenge.param("error").map(str::to_string),
                })));
            }
            basic |= challenge.scheme.eq_ignore_ascii_case("basic");
        }
    }
    Ok(basic.then_some(RegistryChallenge::Basic))
}

struct Parser<'a> {
    input: &'a [u8],
    position: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.position >= self.input.len()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.position).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.position += 1;
        }
    }

    /// An RFC 9110 token (tchar*).
    fn token(&mut self) -> String {
        let start = self.position;
        while self.peek().is_some_and(is_tchar) {
            self.position += 1;
        }
        String::from_utf8_lossy(&self.input[start..self.position]).into_owned()
    }

    /// A quoted string, the opening quote at the current position; `\x` stands for `x`.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.position;
        self.position += 1;
        let mut value = Vec::new();
        while let Some(byte) = self.peek() {
            self.position += 1;
            match byte {
                b'"' => return Ok(String::from_utf8_lossy(&value).into_owned()),
                b'\\' => {
                    let escaped = self.peek().ok_or_else(|| {
                        format!("dangling escape in quoted string at byte {start}")
                    })?;
                    value.push(escaped);
                    self.position += 1;
                }
                other => value.push(other),
            }
        }
        Err(format!("unterminated quoted string at byte {start}"))
    }
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A scheme and its `(name, value)` parameters.
    type ExpectedChallenge = (&'static str, &'static [(&'static str, &'static str)]);

    #[test]
    fn parser_table() {
        let cases: &[(&str, &[ExpectedChallenge])] = &[
            ("Basic realm=\"r\"", &[("Basic", &[("realm", "r")])]),
            (
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull,push\"",
                &[(
                    "Bearer",
                    &[
                        ("realm", "https://auth.example/token"),
                        ("service", "registry.example"),
                        ("scope", "repository:a/b:pull,push"),
                    ],
                )],
            ),
            // Spaces around `=` and after commas, token values, upper-case names.
            (
                "Bearer  REALM = \"x\" ,  service=svc , error=insufficient_scope",
                &[(
                    "Bearer",
                    &[
                        ("realm", "x"),
                        ("service", "svc"),
                        ("error", "insufficient_scope"),
                    ],
                )],
            ),
            // Escapes inside quoted strings; a comma inside quotes is data.
            (
                r#"Newauth realm="apps", type=1, title="Login to \"apps\", ok""#,
                &[(
                    "Newauth",
                    &[
                        ("realm", "apps"),
                        ("type", "1"),
                        ("title", "Login to \"apps\", ok"),
                    ],
                )],
            ),
            // Several challenges in one header.
            (
                r#"Newauth realm="apps", type=1, Basic realm="simple", Bearer realm="t""#,
                &[
                    ("Newauth", &[("realm", "apps"), ("type", "1")]),
                    ("Basic", &[("realm", "simple")]),
                    ("Bearer", &[("realm", "t")]),
                ],
            ),
            // A scheme without parameters, followed by another challenge.
            (
                "Negotiate, Basic realm=\"r\"",
                &[("Negotiate", &[]), ("Basic", &[("realm", "r")])],
            ),
            // token68 is skipped.
            (
                "Basic dXNlcjpwYXNz==, Bearer realm=\"t\"",
                &[("Basic", &[]), ("Bearer", &[("realm", "t")])],
            ),
            ("", &[]),
        ];
        for (header, expected) in cases {
            let parsed = parse(header).unwrap_or_else(|e| panic!("{header}: {e}"));
            let expected: Vec<Challenge> = expected
                .iter()
                .map(|(scheme, pairs)| Challenge {
                    scheme: scheme.to_string(),
                    params: params(pairs),
                })
                .collect();
            assert_eq!(parsed, expected, "{header}");
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        for header in [
            "Bearer realm=\"unterminated",
            "Bearer realm=\"x\\",
            "=x",
            "Bearer realm=\"x\" (junk)",
        ] {
            assert!(parse(header).is_err(), "{header}");
        }
    }

    #[test]
    fn registry_challenge_prefers_bearer_and_splits_scopes() {
        let distribution = r#"Bearer realm="http://127.0.0.1:5001/auth",service="Docker registry",scope="repository:dest:pull,push repository:src:pull",error="insufficient_scope""#;
        let Some(RegistryChallenge::Bearer(bearer)) =
            registry_challenge(["Basic realm=\"r\"", distribution]).unwrap()
        else {
            panic!("expected Bearer");
        };
        assert_eq!(bearer.realm, "http://127.0.0.1:5001/auth");
        assert_eq!(bearer.service.as_deref(), Some("Docker registry"));
        assert_eq!(
            bearer.scopes,
            ["repository:dest:pull,push", "repository:src:pull"]
        );
        assert_eq!(bearer.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(
            registry_challenge(["Basic realm=\"velero-airgap-lab\""]).unwrap(),
            Some(RegistryChallenge::Basic)
        );
        assert_eq!(registry_challenge(["Negotiate"]).unwrap(), None);
        assert!(registry_challenge(["Bearer service=\"s\""]).is_err());
    }
}
