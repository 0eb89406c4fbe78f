//! The few facts about an X.509 certificate that pinning needs and rustls does not expose:
//! its validity period, whether it has a subjectAltName extension, and its subject's common
//! names. A minimal DER walk (RFC 5280 §4.1) over the fields up to the extensions; it reads
//! nothing else and trusts nothing it reads: the certificate's bytes are compared with a
//! pinned copy before these facts are used.

/// What [`facts`] reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateFacts {
    /// notBefore, in seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
    /// Whether the certificate has a subjectAltName extension (then its common name is
    /// ignored for host names, as everywhere since RFC 6125).
    pub has_subject_alt_name: bool,
    /// The subject's common names (UTF8String, PrintableString or IA5String ones).
    pub common_names: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xA0;
const EXTENSIONS: u8 = 0xA3;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, id-ce-subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];

/// Reads the validity, SAN presence and common names of a DER certificate.
pub(crate) fn facts(der: &[u8]) -> Result<CertificateFacts, &'static str> {
    let certificate = Reader::new(der).take(SEQUENCE)?;
    let mut tbs = Reader::new(Reader::new(certificate).take(SEQUENCE)?);
    if tbs.peek() == Some(VERSION) {
        tbs.next()?;
    }
    tbs.take(INTEGER)?; // serialNumber
    tbs.take(SEQUENCE)?; // signature algorithm
    tbs.take(SEQUENCE)?; // issuer
    let mut validity = Reader::new(tbs.take(SEQUENCE)?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    let common_names = common_names(tbs.take(SEQUENCE)?)?;
    tbs.take(SEQUENCE)?; // subjectPublicKeyInfo
    let mut has_subject_alt_name = false;
    while !tbs.is_empty() {
        let (tag, content) = tbs.next()?;
        if tag != EXTENSIONS {
            continue; // issuerUniqueID, subjectUniqueID
        }
        let mut extensions = Reader::new(Reader::new(content).take(SEQUENCE)?);
        while !extensions.is_empty() {
            let mut extension = Reader::new(extensions.take(SEQUENCE)?);
            let oid = extension.take(OID)?;
            if extension.peek() == Some(BOOLEAN) {
                extension.next()?;
            }
            extension.take(OCTET_STRING)?;
            has_subject_alt_name |= oid == SUBJECT_ALT_NAME;
        }
    }
    Ok(CertificateFacts {
        not_before,
        not_after,
        has_subject_alt_name,
        common_names,
    })
}

/// The common names in a Name (a SEQUENCE of SETs of {type, value}).
fn common_names(name: &[u8]) -> Result<Vec<String>, &'static str> {
    let mut names = Vec::new();
    let mut rdns = Reader::new(name);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.take(SET)?);
        while !set.is_empty() {
            let mut attribute = Reader::new(set.take(SEQUENCE)?);
            let oid = attribute.take(OID)?;
            let (tag, value) = attribute.next()?;
            // UTF8String, PrintableString, IA5String; others cannot hold a host name.
            if oid == COMMON_NAME && matches!(tag, 0x0C | 0x13 | 0x16) {
                names.push(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    Ok(names)
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time((tag, content): (u8, &[u8])) -> Result<i64, &'static str> {
    let digits = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let text = content.get(range).ok_or("time too short")?;
        if !text.iter().all(u8::is_ascii_digit) {
            return Err("time has non-digits");
        }
        Ok(text.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, rest) = match (tag, content.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (digits(0..4)?, 4),
        _ => return Err("unsupported time encoding"),
    };
    if content.last() != Some(&b'Z') {
        return Err("time is not in UTC");
    }
    let month = digits(rest..rest + 2)?;
    let day = digits(rest + 2..rest + 4)?;
    let hour = digits(rest + 4..rest + 6)?;
    let minute = digits(rest + 6..rest + 8)?;
    let second = digits(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err("time out of range");
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads DER TLVs (single-byte tags, definite lengths) from a slice.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.data.first().copied()
    }

    fn next(&mut self) -> Result<(u8, &'a [u8]), &'static str> {
        let (&tag, rest) = self.data.split_first().ok_or("truncated")?;
        if tag & 0x1F == 0x1F {
            return Err("multi-byte tags are not used in certificates");
        }
        let (&first, rest) = rest.split_first().ok_or("truncated")?;
        let (length, rest) = match first {
            0..=0x7F => (usize::from(first), rest),
            0x81..=0x84 => {
                let count = usize::from(first & 0x7F);
                let bytes = rest.get(..count).ok_or("truncated")?;
                let length = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
                (length, &rest[count..])
            }
            _ => return Err("unsupported length"),
        };
        let content = rest.get(..length).ok_or("truncated")?;
        self.data = &rest[length..];
        Ok((tag, content))
    }

    fn take(&mut self, tag: u8) -> Result<&'a [u8], &'static str> {
        match self.next()? {
            (found, content) if found == tag => Ok(content),
            _ => Err("unexpected field"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// EC P-256, `/O=acme/CN=registry.example`, SAN `IP:127.0.0.1, DNS:registry`,
    /// 2026-11-30 06:54:49 to 2026-12-30 06:54:49 UTC (made with openssl 3.0).
    const WITH_SAN: &str = "MIIBxTCCAWqgAwIBAgIUXUZNlp9LZolRz72o5HdF7ZpgQK4wCgYIKoZIzj0EAwIwKjENMAsGA1UECgwEYWNtZTEZMBcGA1UEAwwQcmVnaXN0cnkuZXhhbXBsZTAeFw0yNjExMzAwNjU0NDlaFw0yNjEyMzAwNjU0NDlaMCoxDTALBgNVBAoMBGFjbWUxGTAXBgNVBAMMEHJlZ2lzdHJ5LmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT6cOe989RxJAk4N804Dt1iu/ARpi2UYEwr+MvX1WjlKYkRgDSy8rAzRgdhfnIrJUlYk+CwH8AsVFibbCLnUGObo24wbDAdBgNVHQ4EFgQUbVskQZdWRLHbUpwPpKXOlQYWurUwHwYDVR0jBBgwFoAUbVskQZdWRLHbUpwPpKXOlQYWurUwDwYDVR0TAQH/BAUwAwEB/zAZBgNVHREEEjAQhwR/AAABgghyZWdpc3RyeTAKBggqhkjOPQQDAgNJADBGAiEA+i02p2ZNe0X+MUtbE90NlnERQDgM5+du50+ktHbwaOgCIQDMx+7EKucVPbgM6Hxk46rFYMx17FvioYPdVGkEOmwztg==";
    /// EC P-256, `/CN=cn-only.example`, no SAN, CA:FALSE, from 2026-11-30 06:54:50 UTC.
    const CN_ONLY: &str = "MIIBhjCCASygAwIBAgIUekfW2EvRwwug7sJmA2DT+dsJJ18wCgYIKoZIzj0EAwIwGjEYMBYGA1UEAwwPY24tb25seS5leGFtcGxlMB4XDTI2MTEzMDA2NTQ1MFoXDTI2MTIzMDA2NTQ1MFowGjEYMBYGA1UEAwwPY24tb25seS5leGFtcGxlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiAl3MIpbI8sfqVYmymPB+ySv+enfX4KNgoT5lPt3JCtq7RbZmB8y/UWt2BP4sZTP5VcQP+dXQcXPGT0CK8ykdqNQME4wHQYDVR0OBBYEFC5+kR/4TkT4fPzCfyPIQML0MMoUMB8GA1UdIwQYMBaAFC5+kR/4TkT4fPzCfyPIQML0MMoUMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIhAKe8Aaneu8JFf10Nud30fORuYPSIRrUOpEIgj07+NkwgAiBZPzSdnPcImQZUobZg8SFYRvxbMiabnmLb4bk88qhWFQ==";

    fn der(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn reads_validity_san_and_common_name() {
        let facts = facts(&der(WITH_SAN)).unwrap();
        assert_eq!(
            facts,
            CertificateFacts {
                // `date -u -d '...' +%s` of openssl's -dates.
                not_before: 1_796_021_689,
                not_after: 1_798_613_689,
                has_subject_alt_name: true,
                common_names: vec!["registry.example".into()],
            }
        );
        let facts = super::facts(&der(CN_ONLY)).unwrap();
        assert_eq!(facts.not_before, 1_796_021_690);
        assert!(!facts.has_subject_alt_name);
        assert_eq!(facts.common_names, ["cn-only.example"]);
    }

    #[test]
    fn rejects_truncated_and_garbage_input() {
        let full = der(WITH_SAN);
        for cut in [0, 1, 10, 100, full.len() - 1] {
            assert!(facts(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(facts(b"\x30\x85\x00\x00\x00\x00\x01").is_err());
        assert!(facts(b"not a certificate").is_err());
    }

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(time((UTC_TIME, b"700101000000Z")).unwrap(), 0);
        assert_eq!(time((UTC_TIME, b"000301000000Z")).unwrap(), 951_868_800);
        assert_eq!(time((UTC_TIME, b"491231235959Z")).unwrap(), 2_524_607_999);
        assert_eq!(time((UTC_TIME, b"500101000000Z")).unwrap(), -631_152_000);
        assert_eq!(
            time((GENERALIZED_TIME, b"20500101000000Z")).unwrap(),
            2_524_608_000
        );
        assert_eq!(
            time((GENERALIZED_TIME, b"99991231235959Z")).unwrap(),
            253_402_300_799
        );
        assert!(time((UTC_TIME, b"701301000000Z")).is_err());
        assert!(time((UTC_TIME, b"700101000000+")).is_err());
        assert!(time((GENERALIZED_TIME, b"700101000000Z")).is_err());
    }
}
